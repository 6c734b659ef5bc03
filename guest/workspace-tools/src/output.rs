//! A build's output as a resource: `build://BUILD_ID/output`, readable by
//! the build's owner only (the host scopes the read to the caller).

use toolshed_guest::types::ErrorCategory;

use crate::capabilities::Capabilities;
use crate::errors::error;
use crate::wit::exports::toolshed::tools::workspace_tools::ToolError;

/// The URI pattern of build outputs.
pub const URI_TEMPLATE: &str = "build://{build_id}/output";

/// The most of a build's output one read returns: its end.
pub const MAX_BYTES: u32 = 64 << 10;

/// The URI of build `build_id`'s output.
pub fn uri(build_id: &str) -> String {
    format!("build://{build_id}/output")
}

/// The build a URI names, if it is a build output's URI.
fn build_of(uri: &str) -> Option<&str> {
    uri.strip_prefix("build://")?.strip_suffix("/output").filter(|id| !id.is_empty() && !id.contains('/'))
}

/// The output `uri` names, if it is a build of the caller's that printed.
///
/// # Errors
///
/// `RESOURCE_NOT_FOUND` for any other URI, another owner's build included.
pub fn read<C: Capabilities>(host: &C, uri: &str) -> Result<String, ToolError> {
    build_of(uri)
        .and_then(|id| host.build_output(id))
        .ok_or_else(|| error(ErrorCategory::FileNotFound, "RESOURCE_NOT_FOUND", "no build output at this URI that you can read"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_build_output_uris_name_a_build() {
        assert_eq!(build_of(&uri("5f0c")), Some("5f0c"));
        for other in ["build://5f0c", "build:///output", "build://a/b/output", "test://5f0c/output"] {
            assert_eq!(build_of(other), None, "{other}");
        }
    }
}
