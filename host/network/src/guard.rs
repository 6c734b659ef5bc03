//! The guard every outgoing request passes: the allow-list, the address
//! check and the per-call bounds. A refused request never reaches a
//! socket; it is answered `HttpRequestDenied` and logged with the plugin,
//! the tool and the chat (never with a header, so never with a secret).

use std::sync::Arc;

use toolshed_runtime::limiter::ComputeRestart;
use toolshed_runtime::policy::NetworkPolicy;
use toolshed_runtime::state::Call;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::NetworkProviders;
use crate::allow_list::check;
use crate::who::Who;

/// The guard of one run of a call: who is calling, what its plugin may
/// reach, and how many requests it has made.
pub struct Guard {
    policy: Option<Arc<NetworkPolicy>>,
    providers: Option<NetworkProviders>,
    pub(crate) who: Arc<Who>,
    deadline: tokio::time::Instant,
    restart: ComputeRestart,
    requests: u32,
}

impl Guard {
    /// The guard for a run of `call`, over the host's providers.
    pub(crate) fn new(call: &Call, providers: Option<NetworkProviders>) -> Self {
        Self {
            policy: call.network().cloned(),
            providers,
            who: Arc::new(Who { cx: call.context().clone(), plugin: call.plugin().clone(), tool: call.tool().clone() }),
            deadline: call.deadline(),
            restart: call.compute_restart(),
            requests: 0,
        }
    }
}

type Sent = Box<dyn Future<Output = Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>), Error>> + Send>;

impl WasiHttpHooks for Guard {
    fn send_request(&mut self, request: http::Request<WasiBody>, options: Option<RequestOptions>, _: Box<dyn Future<Output = Result<(), Error>> + Send>) -> Sent {
        let method = request.method().as_str().to_string();
        let uri = request.uri().to_string();
        let refuse = |who: &Who, reason: &str, code: Error| -> Sent {
            who.refused(&method, &uri, reason);
            Box::new(async move { Err(code) })
        };
        let (Some(policy), Some(providers)) = (&self.policy, &self.providers) else {
            return refuse(&self.who, "the plugin's policy lists no destination", Error::HttpRequestDenied);
        };
        if providers.deny_all {
            return refuse(&self.who, "this host sends no requests (a smoke call)", Error::HttpRequestDenied);
        }
        self.requests += 1;
        if self.requests > policy.limits.max_requests {
            let reason = format!("the call already made its {} requests", policy.limits.max_requests);
            return refuse(&self.who, &reason, Error::HttpRequestDenied);
        }
        let allowed = match check(policy, &method, request.uri()) {
            Ok(allowed) => allowed,
            Err(reason) => return refuse(&self.who, &reason, Error::HttpRequestDenied),
        };
        let connections = providers.connections(&self.who.plugin, policy.limits.max_connections);
        let job = crate::send::Job {
            request,
            allowed,
            limits: policy.limits.clone(),
            options,
            deadline: self.deadline,
            providers: providers.clone(),
            connections,
            who: self.who.clone(),
            restart: self.restart.clone(),
        };
        Box::new(job.run())
    }
}
