//! The plugins built into the `toolshed` command, compiled from this
//! repository's guest crates by the build script, and the policy that grants
//! them what their WIT worlds import.

#![deny(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

/// Every built-in plugin as `(name, component bytes)`.
pub fn all() -> [(&'static str, &'static [u8]); 2] {
    [("workspace-tools", WORKSPACE_TOOLS), ("registry-tools", REGISTRY_TOOLS)]
}

/// What `serve` tells an MCP client about the built-in tools when it
/// initializes.
pub const INSTRUCTIONS: &str = "Tools to find templates and create, start and stop this chat's development workspace. \
Errors say what to do next: follow their suggestions, and when one is STILL_IN_PROGRESS, make the call it names to keep waiting.";

/// The policy text for the built-in plugins.
pub const POLICY_TOML: &str = include_str!("../policy.toml");

/// The policy for the built-in plugins: their grants and smoke calls, over
/// the default limits.
pub fn policy() -> toolshed_runtime::Policy {
    toolshed_runtime::Policy::from_toml(POLICY_TOML).expect("the built-in policy parses")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_builtin_policy_grants_the_workspace_tools_infra_and_nothing_to_others() {
        let policy = super::policy();
        let grants = policy.plugin("workspace-tools").grants;
        assert!(grants.iter().any(|g| g.allows("toolshed:infra/control@0.1.0")));
        assert!(!policy.plugin("other").grants.iter().any(|g| g.allows("toolshed:infra/control@0.1.0")));
        assert!(!policy.plugin("registry-tools").grants.iter().any(|g| g.allows("toolshed:infra/db@0.1.0")));
    }
}
