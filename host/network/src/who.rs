//! Who sends a request: the call's context, its plugin and its tool, for
//! the log and for choosing the caller's secrets.

use std::sync::Arc;

use toolshed_runtime::CallContext;

/// Who sends a request, for the log and the secrets.
pub(crate) struct Who {
    pub(crate) cx: CallContext,
    pub(crate) plugin: Arc<str>,
    pub(crate) tool: Arc<str>,
}

impl Who {
    /// Logs a refused request.
    pub(crate) fn refused(&self, method: &str, uri: &str, reason: &str) {
        tracing::warn!(
            plugin = %self.plugin,
            tool = %self.tool,
            chat = %self.cx.chat_id,
            method,
            uri,
            "outgoing request refused: {reason}"
        );
    }
}
