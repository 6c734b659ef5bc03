//! A plugin's log lines: one escaped record per line, named by plugin, tool
//! and chat, and capped in bytes per call.
//!
//! Records go through `tracing`; the `toolshed` binary writes them from a
//! thread of their own (a non-blocking writer that drops lines when the
//! output cannot keep up), so a plugin that logs never blocks an async
//! worker, and a reader that stops reading never stops the host.

use crate::text;

/// How much a log line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Detail for debugging.
    Debug,
    /// Normal operation.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

/// The longest single record; longer messages are cut with a marker.
pub const MAX_RECORD_BYTES: usize = 2 << 10;
/// The most message bytes one call may log; later lines are dropped.
pub const MAX_BYTES_PER_CALL: usize = 64 << 10;

/// The log budget of one call.
#[derive(Debug, Default)]
pub struct CallLog {
    written: usize,
    dropped: u64,
}

/// Who wrote a record.
pub struct Origin<'a> {
    /// The plugin.
    pub plugin: &'a str,
    /// The tool being called.
    pub tool: &'a str,
    /// The calling chat.
    pub chat: &'a str,
}

impl CallLog {
    /// Writes one record of `message` at `level`, unless the call's budget
    /// is spent, and answers the line written. The first line past the
    /// budget writes one warning instead.
    pub fn write(&mut self, origin: &Origin<'_>, level: Level, message: &str) -> Option<String> {
        if self.written >= MAX_BYTES_PER_CALL {
            self.dropped += 1;
            if self.dropped == 1 {
                tracing::warn!(
                    plugin = origin.plugin,
                    tool = origin.tool,
                    chat = origin.chat,
                    "the plugin logged {MAX_BYTES_PER_CALL} bytes in this call; its further lines are dropped"
                );
            }
            return None;
        }
        let line = text::one_line(&text::clip(message, MAX_RECORD_BYTES));
        self.written += line.len();
        let Origin { plugin, tool, chat } = *origin;
        match level {
            Level::Debug => tracing::debug!(plugin, tool, chat, "{line}"),
            Level::Info => tracing::info!(plugin, tool, chat, "{line}"),
            Level::Warn => tracing::warn!(plugin, tool, chat, "{line}"),
            Level::Error => tracing::error!(plugin, tool, chat, "{line}"),
        }
        Some(line)
    }

    /// Lines dropped because the budget was spent.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}
