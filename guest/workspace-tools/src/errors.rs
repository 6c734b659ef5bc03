//! Building the error objects of SPEC section 0.

use crate::wit::exports::toolshed::tools::workspace_tools::ToolError;
use crate::wit::toolshed::infra::types::{ApiError, QueryError};
use toolshed_guest::types::{ErrorCategory, Validation};

pub use toolshed_guest::error;

/// A failed database read, worded for the model.
pub fn query_failed(what: &str, err: QueryError) -> ToolError {
    match err {
        QueryError::NotFound => error(
            ErrorCategory::ResourceUnavailable,
            "NOT_FOUND",
            format!("{what}: not found"),
        ),
        QueryError::Failed(text) => error(
            ErrorCategory::InternalError,
            "DATABASE_ERROR",
            format!("{what}: {text}"),
        ),
    }
}

/// The category an API status code falls into.
pub fn api_category(status: u16) -> ErrorCategory {
    match status {
        400 | 409 | 422 => ErrorCategory::ValidationFailed,
        401 | 403 => ErrorCategory::PermissionDenied,
        404 | 429 => ErrorCategory::ResourceUnavailable,
        _ => ErrorCategory::ExternalCommandFailed,
    }
}

/// The validations of an API error, as the tool error carries them.
pub fn validations(api: &ApiError) -> Option<Vec<Validation>> {
    if api.validations.is_empty() {
        return None;
    }
    Some(
        api.validations
            .iter()
            .map(|v| Validation { field: v.field.clone(), detail: v.detail.clone() })
            .collect(),
    )
}

/// An API error kept as structured as it came: message, detail, validations.
pub fn api_error(api: &ApiError) -> ToolError {
    let message = if api.message.is_empty() { "request failed".to_string() } else { api.message.clone() };
    let mut err = error(api_category(api.status), &format!("API_{}", api.status), message);
    if !api.detail.is_empty() {
        err.detail = Some(api.detail.clone());
    }
    err.validations = validations(api);
    err
}

/// The whole text of an API error, as a log line would show it.
pub fn api_error_text(api: &ApiError) -> String {
    let mut text = if api.message.is_empty() { "request failed".to_string() } else { api.message.clone() };
    if !api.detail.is_empty() {
        text = format!("{text}: {}", api.detail);
    }
    if !api.validations.is_empty() {
        let fields: Vec<String> =
            api.validations.iter().map(|v| format!("{}: {}", v.field, v.detail)).collect();
        text = format!("{text} ({})", fields.join("; "));
    }
    text
}

/// Whether `text` is a UUID in its canonical hyphenated form.
pub fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    groups.len() == 5
        && groups
            .iter()
            .zip(lengths)
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_check_accepts_canonical_and_rejects_others() {
        assert!(is_uuid("123e4567-e89b-12d3-a456-426614174000"));
        assert!(!is_uuid("123e4567e89b12d3a456426614174000"));
        assert!(!is_uuid("not-a-uuid"));
        assert!(!is_uuid("123e4567-e89b-12d3-a456-42661417400z"));
    }

}
