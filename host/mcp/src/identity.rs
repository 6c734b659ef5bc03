//! Who is calling: the principal a transport establishes, never a value
//! from the request's arguments or metadata.

use toolshed_runtime::CallContext;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's id; chats and workspaces belong to it.
    pub owner_id: String,
    /// The user's name as people read it.
    pub owner_name: String,
    /// The organization the user acts in.
    pub organization_id: String,
    /// What the credential allows, such as `toolshed:tools`.
    pub scopes: Vec<String>,
}

impl Principal {
    /// The context of a call by this principal in chat `chat_id`.
    pub fn context(&self, chat_id: &str) -> CallContext {
        CallContext {
            chat_id: chat_id.to_string(),
            owner_id: self.owner_id.clone(),
            owner_name: self.owner_name.clone(),
            organization_id: self.organization_id.clone(),
        }
    }

    /// Whether the credential carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}
