//! What every toolshed guest shares: the `toolshed:tools/types` bindings
//! (the tool error) and helpers that build error objects per the contract.
//!
//! A guest maps the interface onto this crate, so all guests use one type:
//!
//! ```text
//! wit_bindgen::generate!({
//!     path: "../../wit/tools",
//!     world: "toolshed:tools/workspace-plugin@0.3.0",
//!     with: { "toolshed:tools/types@0.3.0": toolshed_guest::types },
//!     generate_all,
//! });
//! ```

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/tools",
        inline: "package toolshed:guest-support; world types { import toolshed:tools/types@0.3.0; }",
        world: "toolshed:guest-support/types",
        generate_all,
    });
}

/// The `toolshed:tools/types` interface: the tool error and its parts.
pub use bindings::toolshed::tools::types;

pub mod wait_budget;

use types::{ErrorCategory, ToolError};

/// Whether a retry can help, per category (SPEC section 0).
pub fn recoverable(category: ErrorCategory) -> bool {
    matches!(
        category,
        ErrorCategory::FileNotFound
            | ErrorCategory::ValidationFailed
            | ErrorCategory::Timeout
            | ErrorCategory::NetworkError
            | ErrorCategory::ResourceUnavailable
            | ErrorCategory::UserCancelled
    )
}

/// A tool error with `category`, `code` and `message`; `recoverable` follows
/// the category, the optional fields are empty.
pub fn error(category: ErrorCategory, code: &str, message: impl Into<String>) -> ToolError {
    ToolError {
        error: message.into(),
        category,
        code: code.to_string(),
        recoverable: recoverable(category),
        suggestions: None,
        build_id: None,
        template_id: None,
        detail: None,
        validations: None,
        task_id: None,
    }
}

/// `err` with `suggestions` as its next steps.
pub fn suggest(mut err: ToolError, suggestions: &[&str]) -> ToolError {
    if !suggestions.is_empty() {
        err.suggestions = Some(suggestions.iter().map(|s| s.to_string()).collect());
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recoverable_follows_the_category() {
        assert!(error(ErrorCategory::Timeout, "X", "x").recoverable);
        assert!(error(ErrorCategory::UserCancelled, "X", "x").recoverable);
        assert!(!error(ErrorCategory::InternalError, "X", "x").recoverable);
        assert!(!error(ErrorCategory::PermissionDenied, "X", "x").recoverable);
    }
}
