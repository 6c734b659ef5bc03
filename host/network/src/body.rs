//! Bodies with a cap: a request body past its cap fails before more is
//! sent, a response body past its cap is cut there (a response that never
//! ends included), and a response that stops coming is cut after its wait.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use toolshed_runtime::limiter::ComputeRestart;
use wasmtime_wasi_http::Error;

/// Which way a body goes, for the error past its cap.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Direction {
    Request,
    Response,
}

/// A body cut at `cap` bytes.
pub(crate) struct Capped<B> {
    inner: B,
    cap: u64,
    seen: u64,
    direction: Direction,
    /// The longest wait between two frames, and its timer.
    idle: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
    restart: ComputeRestart,
    ended: bool,
}

impl<B> Capped<B> {
    pub(crate) fn new(inner: B, cap: u64, direction: Direction, idle: Option<Duration>, restart: ComputeRestart) -> Self {
        let idle = idle.map(|wait| (wait, Box::pin(tokio::time::sleep(wait))));
        Self { inner, cap, seen: 0, direction, idle, restart, ended: false }
    }

    fn too_large(&self) -> Error {
        match self.direction {
            Direction::Request => Error::HttpRequestBodySize(Some(self.cap)),
            Direction::Response => Error::HttpResponseBodySize(Some(self.cap)),
        }
    }
}

impl<B: Body<Data = Bytes, Error = Error> + Unpin> Body for Capped<B> {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                self.seen = self.seen.saturating_add(len);
                if self.seen > self.cap {
                    self.ended = true;
                    return Poll::Ready(Some(Err(self.too_large())));
                }
                if let Some((wait, timer)) = &mut self.idle {
                    let wait = *wait;
                    timer.as_mut().reset(tokio::time::Instant::now() + wait);
                }
                self.restart.restart();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.ended = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.ended = true;
                self.restart.restart();
                Poll::Ready(None)
            }
            Poll::Pending => {
                if let Some((_, timer)) = &mut self.idle {
                    if timer.as_mut().poll(cx).is_ready() {
                        self.ended = true;
                        return Poll::Ready(Some(Err(Error::ConnectionReadTimeout)));
                    }
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
