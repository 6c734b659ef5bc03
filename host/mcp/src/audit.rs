//! The audit: one JSON line for each call, each task read or cancelled,
//! and each request refused at the door, naming who made it.
//!
//! It has a sink of its own, not the log: the log's filter (`TOOLSHED_LOG`)
//! and its lossy writer never apply to it. Records are written by a thread
//! of their own, so a slow sink never stalls a call; they wait in a queue
//! of [`QUEUE`] records, and when the sink falls that far behind, the
//! records past it are counted and the count is written as a record of its
//! own (`"event": "audit_dropped"`) once the sink catches up: nothing is
//! lost without a trace. [`AuditLog::flush`] writes out what is queued,
//! which a command does before it exits.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Records that may wait for the sink before new ones are dropped (and
/// counted).
pub const QUEUE: usize = 16_384;

/// Where audit records go.
pub struct AuditLog {
    queue: SyncSender<Entry>,
    /// Records dropped since the sink last reported drops.
    unreported: Arc<AtomicU64>,
    /// Records dropped in all.
    dropped: AtomicU64,
}

enum Entry {
    Record(Value),
    /// Write out what came before, then say so.
    Flush(std::sync::mpsc::Sender<()>),
}

impl AuditLog {
    /// An audit written to `sink` as JSON lines.
    pub fn to_writer(sink: Box<dyn Write + Send>) -> AuditLog {
        Self::with_queue(sink, QUEUE)
    }

    /// An audit on standard error.
    pub fn stderr() -> AuditLog {
        Self::to_writer(Box::new(std::io::stderr()))
    }

    /// An audit appended to the file at `path`, made readable by its owner
    /// only.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened.
    pub fn file(path: &Path) -> anyhow::Result<AuditLog> {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| anyhow::anyhow!("opening the audit log {}: {e}", path.display()))?;
        Ok(Self::to_writer(Box::new(file)))
    }

    fn with_queue(sink: Box<dyn Write + Send>, queue: usize) -> AuditLog {
        let (sender, receiver) = sync_channel(queue);
        let unreported = Arc::new(AtomicU64::new(0));
        let counted = unreported.clone();
        // The thread ends when the last sender goes, after writing the rest.
        std::thread::Builder::new().name("toolshed-audit".into()).spawn(move || write_out(receiver, sink, &counted)).expect("a thread for the audit");
        AuditLog { queue: sender, unreported, dropped: AtomicU64::new(0) }
    }

    /// Records `event` with `fields` (an object), stamped with the time.
    pub fn record(&self, event: &str, fields: Value) {
        let mut record = json!({ "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true), "target": "toolshed::audit", "event": event });
        if let (Some(record), Value::Object(fields)) = (record.as_object_mut(), fields) {
            record.extend(fields);
        }
        match self.queue.try_send(Entry::Record(record)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.unreported.fetch_add(1, Ordering::Relaxed);
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// How many records were dropped because the sink fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes out every record made before this call, waiting at most
    /// `within` (a sink that never drains must not keep a process from
    /// exiting); returns whether it was all written.
    pub fn flush(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let (done, written) = std::sync::mpsc::channel();
        let mut entry = Entry::Flush(done);
        loop {
            match self.queue.try_send(entry) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    entry = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return false,
            }
        }
        written.recv_timeout(deadline.saturating_duration_since(Instant::now())).is_ok()
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.flush(Duration::from_secs(5));
    }
}

/// The writer thread: records as they come, the drops' count when there
/// were drops, and the sink flushed whenever the queue is empty.
fn write_out(queue: Receiver<Entry>, sink: Box<dyn Write + Send>, unreported: &AtomicU64) {
    let mut sink = std::io::BufWriter::new(sink);
    let mut next = queue.recv().ok();
    while let Some(entry) = next {
        match entry {
            Entry::Record(record) => {
                let _ = serde_json::to_writer(&mut sink, &record);
                let _ = sink.write_all(b"\n");
            }
            Entry::Flush(done) => {
                report_drops(&mut sink, unreported);
                let _ = sink.flush();
                let _ = done.send(());
            }
        }
        next = match queue.try_recv() {
            Ok(entry) => Some(entry),
            // Caught up: the drops (which only a full queue makes) are
            // reported, and the sink flushed, before waiting for more.
            Err(TryRecvError::Empty) => {
                report_drops(&mut sink, unreported);
                let _ = sink.flush();
                queue.recv().ok()
            }
            Err(TryRecvError::Disconnected) => None,
        };
    }
    report_drops(&mut sink, unreported);
    let _ = sink.flush();
}

fn report_drops(sink: &mut impl Write, unreported: &AtomicU64) {
    let count = unreported.swap(0, Ordering::Relaxed);
    if count > 0 {
        let record = json!({ "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true), "target": "toolshed::audit", "event": "audit_dropped", "count": count,
            "reason": "the audit's sink fell behind" });
        let _ = serde_json::to_writer(&mut *sink, &record);
        let _ = sink.write_all(b"\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A sink that blocks until opened, then keeps what it is given.
    #[derive(Clone)]
    struct Gated {
        open: Arc<(Mutex<bool>, std::sync::Condvar)>,
        kept: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gated {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let (open, opened) = &*self.open;
            let mut open = open.lock().unwrap();
            while !*open {
                open = opened.wait(open).unwrap();
            }
            self.kept.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn records_past_a_stuck_sink_are_counted_and_the_count_is_written() {
        let sink = Gated { open: Arc::new((Mutex::new(false), std::sync::Condvar::new())), kept: Arc::default() };
        let audit = AuditLog::with_queue(Box::new(sink.clone()), 8);
        for i in 0..100 {
            audit.record("call", json!({ "n": i }));
        }
        assert!(audit.dropped() >= 100 - 8 - 1, "{} dropped", audit.dropped());
        *sink.open.0.lock().unwrap() = true;
        sink.open.1.notify_all();
        assert!(audit.flush(Duration::from_secs(10)));
        let text = String::from_utf8(sink.kept.lock().unwrap().clone()).unwrap();
        let records: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let written = records.iter().filter(|r| r["event"] == "call").count() as u64;
        let reported: u64 = records.iter().filter(|r| r["event"] == "audit_dropped").map(|r| r["count"].as_u64().unwrap()).sum();
        assert_eq!(written + reported, 100, "every record is written or counted: {text}");
        assert_eq!(reported, audit.dropped());
    }

    #[test]
    fn a_flush_writes_out_what_came_before() {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let sink = Gated { open: Arc::new((Mutex::new(true), std::sync::Condvar::new())), kept: kept.clone() };
        let audit = AuditLog::to_writer(Box::new(sink));
        audit.record("call", json!({ "principal": "ada" }));
        assert!(audit.flush(Duration::from_secs(10)));
        let text = String::from_utf8(kept.lock().unwrap().clone()).unwrap();
        assert!(text.contains("\"principal\":\"ada\"") && text.contains("\"target\":\"toolshed::audit\""), "{text}");
    }
}
