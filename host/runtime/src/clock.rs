//! The [`Clock`] every wait of a plugin goes through, and the clocks a host
//! can use: real time, tokio's (pausable) time, and real time sped up.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

/// The time source for `clock.now` and `clock.sleep`.
///
/// Tests inject a virtual clock so a ten-minute wait runs in milliseconds.
#[async_trait]
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Waits for `duration`.
    async fn sleep(&self, duration: Duration);
}

/// The real clock: system time and tokio timers.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// A clock on tokio's timer: it follows tokio's paused, auto-advancing time
/// in tests, and starts at `epoch_ms`.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: tokio::time::Instant,
    epoch_ms: u64,
}

impl TokioClock {
    /// A clock reading `epoch_ms` now and advancing with tokio's time.
    pub fn starting_at(epoch_ms: u64) -> Self {
        Self { start: tokio::time::Instant::now(), epoch_ms }
    }
}

#[async_trait]
impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.epoch_ms + self.start.elapsed().as_millis() as u64
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// Real time running `factor` times faster: a two-second poll takes a
/// twentieth of that at factor 20. For tests and demos against real
/// processes, where a paused clock would race ahead of them.
#[derive(Debug, Clone, Copy)]
pub struct ScaledClock {
    start: std::time::Instant,
    epoch_ms: u64,
    factor: u32,
}

impl ScaledClock {
    /// A clock reading the real time now and running `factor` times faster.
    pub fn new(factor: u32) -> Self {
        Self { start: std::time::Instant::now(), epoch_ms: SystemClock.now_ms(), factor: factor.max(1) }
    }
}

#[async_trait]
impl Clock for ScaledClock {
    fn now_ms(&self) -> u64 {
        self.epoch_ms + self.start.elapsed().as_millis() as u64 * u64::from(self.factor)
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration / self.factor).await;
    }
}
