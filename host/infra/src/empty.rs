//! A backend with nothing in it: reads find nothing, requests fail. Smoke
//! calls of new plugin versions run against it.

use std::time::Duration;

use async_trait::async_trait;
use toolshed_runtime::CallContext;

use crate::{
    Agent, AgentConnect, Build, Chat, ChatBinding, Control, ControlError, CreateBuildRequest, CreateWorkspaceRequest, CreatedWorkspace, Db,
    Job, QueryError, Refused, Template, TemplateParameter, Workspace,
};

/// The empty backend.
#[derive(Debug, Default, Clone, Copy)]
pub struct EmptyInfra;

#[async_trait]
impl Db for EmptyInfra {
    async fn chat(&self, _: &CallContext) -> Result<Chat, QueryError> {
        Err(QueryError::NotFound)
    }
    async fn workspace(&self, _: &CallContext, _: &str) -> Result<Workspace, QueryError> {
        Err(QueryError::NotFound)
    }
    async fn latest_build(&self, _: &CallContext, _: &str) -> Result<Build, QueryError> {
        Err(QueryError::NotFound)
    }
    async fn build(&self, _: &CallContext, _: &str) -> Result<Build, QueryError> {
        Err(QueryError::NotFound)
    }
    async fn job(&self, _: &CallContext, _: &str) -> Result<Job, QueryError> {
        Err(QueryError::NotFound)
    }
    async fn build_agents(&self, _: &CallContext, _: &str) -> Result<Vec<Agent>, QueryError> {
        Ok(Vec::new())
    }
    async fn agent(&self, _: &CallContext, _: &str) -> Result<Agent, QueryError> {
        Err(QueryError::NotFound)
    }
    async fn templates(&self, _: &CallContext) -> Result<Vec<Template>, QueryError> {
        Ok(Vec::new())
    }
    async fn template(&self, _: &CallContext, _: &str) -> Result<Template, QueryError> {
        Err(QueryError::NotFound)
    }
    async fn template_parameters(&self, _: &CallContext, _: &str) -> Result<Vec<TemplateParameter>, QueryError> {
        Err(QueryError::NotFound)
    }
    async fn workspace_ttl(&self, _: &CallContext) -> Result<String, QueryError> {
        Ok("0s".into())
    }
    async fn template_allowlist(&self, _: &CallContext) -> Result<Vec<String>, QueryError> {
        Ok(Vec::new())
    }
    async fn bind_chat(&self, _: &CallContext, _: ChatBinding) -> Result<(), Refused<QueryError>> {
        Err(QueryError::NotFound.into())
    }
}

#[async_trait]
impl Control for EmptyInfra {
    async fn create_workspace(&self, _: &CallContext, _: CreateWorkspaceRequest) -> Result<CreatedWorkspace, Refused<ControlError>> {
        Err(ControlError::Failed("this host has no backend".into()).into())
    }
    async fn create_build(&self, _: &CallContext, _: CreateBuildRequest) -> Result<Build, Refused<ControlError>> {
        Err(ControlError::Failed("this host has no backend".into()).into())
    }
}

#[async_trait]
impl crate::BuildLogs for EmptyInfra {
    async fn last_line(&self, _: &CallContext, _: &str) -> Option<String> {
        None
    }
}

#[async_trait]
impl crate::BuildVersions for EmptyInfra {
    async fn start_uses_active_version(&self, _: &CallContext, _: &str) -> bool {
        false
    }
}

#[async_trait]
impl AgentConnect for EmptyInfra {
    fn available(&self) -> bool {
        false
    }
    async fn connect(&self, _: &CallContext, _: &str, _: Duration) -> Result<(), String> {
        Err("this host has no backend".into())
    }
}
