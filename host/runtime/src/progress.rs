//! Progress a call reports while it waits, delivered to that call's caller
//! only.
//!
//! Every call has its own delivery path: a [`ProgressSink`] given with the
//! call. Nothing is shared between calls, so one chat's flood of progress
//! never delays another chat's notifications. Messages are cut to
//! [`MAX_MESSAGE_BYTES`] before they reach a sink, and the standard sink,
//! [`latest`], keeps only the newest message: a slow reader sees the latest
//! state and no queue grows behind it.

use std::sync::Arc;

use tokio::sync::watch;

use crate::text;

/// The longest progress message a sink receives; longer ones are cut, with
/// a marker saying how much was dropped.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// One progress report of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Counts the reports of this call from 1, so a reader can tell how many
    /// it did not see.
    pub sequence: u64,
    /// What the tool reported, at most [`MAX_MESSAGE_BYTES`] long.
    pub message: String,
}

/// Where one call's progress goes. Called on the call's own task, so it must
/// return at once: store, signal, never wait.
pub trait ProgressSink: Send + Sync + 'static {
    /// Receives one report.
    fn report(&self, progress: Progress);
}

/// The sending half of [`latest`].
#[derive(Debug, Clone)]
pub struct LatestProgress(Arc<watch::Sender<Option<Progress>>>);

impl ProgressSink for LatestProgress {
    fn report(&self, progress: Progress) {
        self.0.send_replace(Some(progress));
    }
}

/// A sink that keeps only the newest report, and a receiver that wakes when
/// it changes. Memory stays at one message however fast the tool reports and
/// however slowly the receiver reads.
pub fn latest() -> (Arc<dyn ProgressSink>, watch::Receiver<Option<Progress>>) {
    let (sender, receiver) = watch::channel(None);
    (Arc::new(LatestProgress(Arc::new(sender))), receiver)
}

/// A call's reporter: numbers the reports and cuts long messages.
pub(crate) struct Reporter {
    sink: Option<Arc<dyn ProgressSink>>,
    sent: u64,
}

impl Reporter {
    pub(crate) fn new(sink: Option<Arc<dyn ProgressSink>>) -> Self {
        Self { sink, sent: 0 }
    }

    pub(crate) fn report(&mut self, message: &str) {
        let Some(sink) = &self.sink else { return };
        self.sent += 1;
        sink.report(Progress { sequence: self.sent, message: text::clip(message, MAX_MESSAGE_BYTES) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_sink_keeps_one_message_and_numbers_them() {
        let (sink, receiver) = latest();
        let mut reporter = Reporter::new(Some(sink));
        for i in 0..1_000 {
            reporter.report(&format!("step {i}"));
        }
        let seen = receiver.borrow().clone().unwrap();
        assert_eq!(seen, Progress { sequence: 1_000, message: "step 999".into() });
    }

    #[test]
    fn long_messages_are_cut_with_a_marker() {
        let (sink, receiver) = latest();
        Reporter::new(Some(sink)).report(&"x".repeat(1 << 20));
        let message = receiver.borrow().clone().unwrap().message;
        assert!(message.len() <= MAX_MESSAGE_BYTES, "{}", message.len());
        assert!(message.ends_with("bytes cut]"), "{message}");
    }
}
