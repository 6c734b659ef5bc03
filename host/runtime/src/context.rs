//! Who is calling.

/// Who is calling: bound by the host for each call (from the transport's
/// identity), never taken from the model's arguments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallContext {
    /// The chat the call belongs to.
    pub chat_id: String,
    /// The user who owns the chat.
    pub owner_id: String,
    /// The owner's name as people read it, such as in `owner/workspace`.
    pub owner_name: String,
    /// The organization the chat belongs to.
    pub organization_id: String,
}
