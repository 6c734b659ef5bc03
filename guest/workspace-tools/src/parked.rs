//! The build wait a lifecycle tool parks in, and where its next run goes on.
//!
//! A tool that made a build waits for it polling every two seconds. Between
//! polls it parks: the host ends the run and keeps only [`BuildWait`],
//! encoded, and the tool's next run reads it back and polls again on the
//! same schedule. The chat's lock stays with the call while it is parked.

use crate::builds::{Again, wait_for_build_from};
use crate::capabilities::Capabilities;
use crate::errors::error;
use crate::wit::exports::toolshed::tools::workspace_tools::ToolError;
use toolshed_guest::types::ErrorCategory;

/// What a tool waiting on its build keeps while parked.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildWait {
    /// The build being waited on.
    pub build_id: String,
    /// The workspace's full name, for the answer.
    pub workspace_name: String,
    /// When the wait began, on the host clock: the wait limit and the time
    /// waited count from here, across runs.
    pub started: u64,
    /// A start's new template version, when it moved to one.
    pub new_version: Option<String>,
}

impl BuildWait {
    /// The state as the host keeps it.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::json!({
            "build_id": self.build_id,
            "workspace_name": self.workspace_name,
            "started": self.started,
            "new_version": self.new_version,
        })
        .to_string()
        .into_bytes()
    }

    /// The state read back; none when it is not one this tool wrote.
    pub fn decode(state: &[u8]) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_slice(state).ok()?;
        Some(Self {
            build_id: value["build_id"].as_str()?.to_string(),
            workspace_name: value["workspace_name"].as_str()?.to_string(),
            started: value["started"].as_u64()?,
            new_version: value["new_version"].as_str().map(str::to_string),
        })
    }

    /// The wait this run of `tool` goes on with, if an earlier run parked.
    ///
    /// # Errors
    ///
    /// When the host hands back a state this tool did not write.
    pub fn resumed<C: Capabilities>(host: &C, tool: &str) -> Result<Option<Self>, ToolError> {
        let Some(state) = host.resumed() else { return Ok(None) };
        Self::decode(&state).map(Some).ok_or_else(|| {
            error(ErrorCategory::InternalError, "RESUME_STATE_INVALID", format!("{tool} was resumed with a state it did not write; make the same call again"))
        })
    }

    /// Waits for the build to end, parking between polls. A failure is
    /// `prefix: <why>`, with `again` as the call that waits on.
    pub fn wait<C: Capabilities>(&self, host: &C, prefix: &str, again: Again<'_>) -> Result<(), ToolError> {
        wait_for_build_from(host, &self.build_id, self.started, Some(&|| self.encode())).map_err(|failure| failure.into_tool_error(prefix, &self.build_id, again))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_reads_back_as_it_was_written() {
        let wait = BuildWait { build_id: "b".into(), workspace_name: "alice/w".into(), started: 42, new_version: Some("v2".into()) };
        assert_eq!(BuildWait::decode(&wait.encode()), Some(wait.clone()));
        let plain = BuildWait { new_version: None, ..wait };
        assert_eq!(BuildWait::decode(&plain.encode()), Some(plain));
        assert_eq!(BuildWait::decode(b"{\"build_id\": 1}"), None);
        assert_eq!(BuildWait::decode(b"\xff"), None);
    }
}
