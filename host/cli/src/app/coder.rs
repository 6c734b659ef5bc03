//! `serve --backend coder`: the workspace tools drive a Coder deployment,
//! while chats, their bindings and tasks stay in toolshed's own store.

use std::path::Path;
use std::sync::Arc;

use toolshed_coder::api::User;
use toolshed_coder::{ChatStore, ClientConfig, CoderBackend, CoderConfig, SessionToken};
use toolshed_infra::{Chat, ChatBinding, Db, QueryError, Refused};
use toolshed_local::LocalBackend;
use toolshed_local::store::{Binding, StoreError};
use toolshed_runtime::CallContext;

/// Chats kept in the local backend's store, for a backend that has none.
pub struct StoreChats(pub Arc<LocalBackend>);

#[toolshed_runtime::async_trait]
impl ChatStore for StoreChats {
    async fn chat(&self, cx: &CallContext) -> Result<Chat, QueryError> {
        self.0.store().chat(&cx.chat_id, &cx.owner_id, &cx.organization_id).await.map_err(store_failed)
    }

    async fn bind(&self, cx: &CallContext, binding: &ChatBinding) -> Result<(), Refused<QueryError>> {
        let binding =
            Binding { workspace_id: binding.workspace_id.as_deref(), build_id: binding.build_id.as_deref(), agent_id: binding.agent_id.as_deref() };
        match self.0.store().bind(&cx.chat_id, &cx.owner_id, &cx.organization_id, &binding).await {
            Ok(()) => Ok(()),
            Err(StoreError::Quota(quota)) => Err(Refused::Quota(quota)),
            Err(e) => Err(store_failed(e).into()),
        }
    }
}

/// A store failure as the caller sees it: no query or server in it; the
/// detail goes to the log.
fn store_failed(e: StoreError) -> QueryError {
    tracing::warn!("the chat store failed: {e}");
    QueryError::Failed("the chat store failed; the detail is in the host's log".into())
}

/// A backend over the deployment at `url` with the token in `token_file`,
/// checked by asking Coder who the token belongs to. The chat TTL and the
/// template allowlist are the local store's settings.
///
/// # Errors
///
/// When the token file cannot be read, the URL is not one, Coder cannot be
/// reached, or it refuses the token: each says what to do.
pub async fn open(local: &Arc<LocalBackend>, url: &str, token_file: &Path) -> anyhow::Result<(Arc<CoderBackend>, User)> {
    let token = SessionToken::from_file(token_file).map_err(anyhow::Error::msg)?;
    let settings = toolshed_local::local_context("settings");
    let mut config = CoderConfig::new(ClientConfig::new(url, token));
    config.workspace_ttl = local.workspace_ttl(&settings).await.unwrap_or_else(|_| "0s".into());
    config.template_allowlist = local.template_allowlist(&settings).await.unwrap_or_default();
    let backend = Arc::new(CoderBackend::new(config, Arc::new(StoreChats(local.clone()))).map_err(anyhow::Error::msg)?);
    let me = backend.whoami().await.map_err(|e| anyhow::anyhow!("{}", e.explain()))?;
    anyhow::ensure!(!me.id.is_empty(), "Coder at {url} answered /api/v2/users/me without a user id: is --coder-url a Coder deployment?");
    tracing::info!(url = %backend.client().url(), user = %me.username, "serving the tools over Coder");
    Ok((backend, me))
}
