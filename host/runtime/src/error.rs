//! Error objects of SPEC section 0 for failures the host itself detects.

use serde_json::{Value, json};

/// The category of a failure; it decides whether a retry can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// The input did not fit the tool's schema.
    ValidationFailed,
    /// The plugin returned something the host could not render.
    SerializationError,
    /// A limit or a fault in the plugin or host.
    InternalError,
    /// The host cannot run the call now.
    ResourceUnavailable,
    /// The call ran out of time.
    Timeout,
}

impl Category {
    /// The category's snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Category::ValidationFailed => "validation_failed",
            Category::SerializationError => "serialization_error",
            Category::InternalError => "internal_error",
            Category::ResourceUnavailable => "resource_unavailable",
            Category::Timeout => "timeout",
        }
    }

    /// Whether a retry can succeed.
    pub fn recoverable(self) -> bool {
        matches!(self, Category::ValidationFailed | Category::ResourceUnavailable | Category::Timeout)
    }
}

/// The code of the error object for a tool no plugin serves.
pub const UNKNOWN_TOOL: &str = "UNKNOWN_TOOL";

/// A failure detected by the host, before or around the guest.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct HostError {
    /// The broad kind.
    pub category: Category,
    /// A stable UPPER_SNAKE code.
    pub code: &'static str,
    /// What went wrong and what to do.
    pub message: String,
    /// Next steps worth trying.
    pub suggestions: Vec<String>,
    /// Further structured fields, such as the limit that was hit.
    pub fields: serde_json::Map<String, Value>,
}

impl HostError {
    /// A host error of `category` with `code` and `message`.
    pub fn new(category: Category, code: &'static str, message: impl Into<String>) -> Self {
        Self { category, code, message: message.into(), suggestions: Vec::new(), fields: Default::default() }
    }

    /// The error for tool `name`, which no plugin serves; `served` are the
    /// tools that are.
    pub fn unknown_tool(name: &str, served: &[String]) -> Self {
        HostError::new(Category::ValidationFailed, UNKNOWN_TOOL, format!("there is no tool named {:?}", crate::text::clip(name, 100)))
            .suggest(format!("Use one of: {}.", served.join(", ")))
    }

    /// Adds a suggested next step.
    pub fn suggest(mut self, suggestion: impl Into<String>) -> Self {
        self.suggestions.push(suggestion.into());
        self
    }

    /// Adds a structured field.
    pub fn field(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.to_string(), value.into());
        self
    }

    /// The error object a client sees.
    pub fn to_json(&self) -> Value {
        let mut value = json!({
            "error": self.message,
            "category": self.category.name(),
            "code": self.code,
            "recoverable": self.category.recoverable(),
        });
        if !self.suggestions.is_empty() {
            value["suggestions"] = json!(self.suggestions);
        }
        for (key, field) in &self.fields {
            value[key] = field.clone();
        }
        value
    }
}
