//! Admission control: at most as many calls run as the instance pool has
//! slots; the next ones wait in a bounded queue for a while, then are told
//! the host is busy.
//!
//! A full pool is the host's condition, not the plugin's fault, so the
//! answer is a recoverable `resource_unavailable` error naming the capacity,
//! never a trap blamed on the plugin.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Category, HostError};

/// How many calls may run at once unless configured otherwise: `serve`, the
/// CLI and the benchmarks all use it.
pub const DEFAULT_CONCURRENT_CALLS: u32 = 10_000;
/// How long a call waits for a free slot before it is told the host is busy.
pub const DEFAULT_QUEUE_WAIT: Duration = Duration::from_secs(10);

/// The gate every call passes before it takes an instance slot.
pub struct Admission {
    slots: Arc<Semaphore>,
    capacity: u32,
    queued: AtomicUsize,
    max_queued: usize,
    queue_wait: Duration,
}

/// A call's slot; dropping it frees the slot for the next call.
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
}

/// Counts a call as queued until it leaves the queue.
struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Admission {
    /// A gate for `capacity` running calls, with at most as many waiting,
    /// each for at most `queue_wait`.
    pub fn new(capacity: u32, queue_wait: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
            queued: AtomicUsize::new(0),
            max_queued: capacity as usize,
            queue_wait,
        }
    }

    /// How many call slots there are: as many calls of plugins that take
    /// one slot may run at once.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// How many call slots running calls hold now.
    pub fn running(&self) -> usize {
        self.capacity as usize - self.slots.available_permits()
    }

    /// Takes `slots` call slots (a plugin's
    /// [`slots`](crate::Plugin::slots), at most the capacity: the plugin
    /// was refused at load otherwise), waiting in the queue when too few
    /// are free.
    ///
    /// # Errors
    ///
    /// A recoverable "host busy" error when the queue is full or the wait
    /// runs out.
    pub async fn admit(&self, slots: u32) -> Result<Admitted, HostError> {
        let slots = slots.clamp(1, self.capacity);
        if let Ok(permit) = self.slots.clone().try_acquire_many_owned(slots) {
            return Ok(Admitted { _permit: permit });
        }
        if self.queued.fetch_add(1, Ordering::Relaxed) >= self.max_queued {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(self.busy());
        }
        let _queued = Queued(&self.queued);
        match tokio::time::timeout(self.queue_wait, self.slots.clone().acquire_many_owned(slots)).await {
            Ok(Ok(permit)) => Ok(Admitted { _permit: permit }),
            _ => Err(self.busy()),
        }
    }

    fn busy(&self) -> HostError {
        HostError::new(
            Category::ResourceUnavailable,
            "HOST_BUSY",
            format!(
                "the host is busy: all {} call slots are taken and the queue did not clear within {} s; try again shortly",
                self.capacity,
                self.queue_wait.as_secs()
            ),
        )
        .field("capacity", self.capacity)
        .suggest("Wait a few seconds, then make the same call again.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_of_several_slots_holds_them_all_until_it_ends() {
        // No queue wait: a call that finds too few free slots is told at once.
        let admission = Admission::new(4, Duration::ZERO);
        let runtime_plugin = admission.admit(3).await.expect("three of four slots are free");
        assert_eq!(admission.running(), 3);
        let rust_plugin = admission.admit(1).await.expect("the fourth is free");
        assert_eq!(admission.admit(1).await.err().expect("all four are held").code, "HOST_BUSY");
        drop(runtime_plugin);
        let _again = admission.admit(3).await.expect("freed with the call");
        drop(rust_plugin);
        assert_eq!(admission.running(), 3);
    }

    #[tokio::test]
    async fn a_call_asking_more_slots_than_exist_takes_them_all() {
        let admission = Admission::new(2, Duration::ZERO);
        let _all = admission.admit(10).await.expect("clamped to the capacity");
        assert_eq!(admission.running(), 2);
    }
}
