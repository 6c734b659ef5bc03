//! Where a chat's updates go: the front end showing the chat hears that its
//! bound workspace, build or agent changed.

use async_trait::async_trait;

use crate::context::CallContext;

/// Where chat-updated events go: the front end showing the chat.
#[async_trait]
pub trait ChatEvents: Send + Sync + 'static {
    /// The chat's bound workspace, build or agent changed.
    async fn chat_updated(&self, cx: &CallContext);
}

/// Events that go nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

#[async_trait]
impl ChatEvents for NoEvents {
    async fn chat_updated(&self, _cx: &CallContext) {}
}
