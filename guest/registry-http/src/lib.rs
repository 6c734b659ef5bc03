//! provision_registry_http: the registry seed's job done over the
//! platform's HTTP API. The plugin knows the API's base URL and the
//! organization from its configuration (`wasi:config`); the host adds the
//! platform token to every request the policy lets it send, so the plugin
//! never holds it. Each failure tells the model what to do: log in again
//! (401), pick one of the projects the platform suggests (404), or wait as
//! long as the platform's `Retry-After` says (429).

#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({
    path: "wit",
    world: "toolshed:registry-http/registry-http@0.1.0",
    with: { "toolshed:tools/types@0.3.0": toolshed_guest::types },
    generate_all,
});

use exports::toolshed::registry_http::registry_http_tools::{Guest, ProvisionArgs, Provisioned, ToolError};
use serde_json::{Value, json};
use toolshed::runtime::clock;
use toolshed_guest::types::ErrorCategory;
use toolshed_guest::{error, suggest};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, IncomingResponse, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

/// How many times one call reads the task before answering STILL_IN_PROGRESS.
const POLLS: u32 = 30;

/// A response: its status, its Retry-After in seconds, and its JSON body.
struct Answer {
    status: u16,
    retry_after: Option<u64>,
    body: Value,
}

fn setting(key: &str) -> Option<String> {
    wasi::config::store::get(key).ok().flatten()
}

fn network(message: String) -> ToolError {
    suggest(error(ErrorCategory::NetworkError, "PLATFORM_UNREACHABLE", message), &["Try again in a minute; if it keeps failing, ask the operator whether the platform's URL is allowed in the policy."])
}

/// Sends `method` to `base_url` + `path` with a JSON body, and reads the answer.
fn call(method: Method, path: &str, body: Option<&Value>) -> Result<Answer, ToolError> {
    let base = setting("base_url").ok_or_else(|| {
        suggest(error(ErrorCategory::InternalError, "NOT_CONFIGURED", "the plugin has no base_url in its configuration"), &["Ask the operator to set config.base_url in the plugin's policy."])
    })?;
    let (scheme, rest) = base.split_once("://").ok_or_else(|| error(ErrorCategory::InternalError, "NOT_CONFIGURED", format!("base_url {base} has no scheme")))?;
    let (authority, prefix) = match rest.find('/') {
        Some(at) => (&rest[..at], rest[at..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let text = body.map(Value::to_string);
    let headers = Fields::new();
    let _ = headers.append("content-type", b"application/json");
    if let Some(text) = &text {
        let _ = headers.append("content-length", text.len().to_string().as_bytes());
    }
    let request = OutgoingRequest::new(headers);
    let _ = request.set_method(&method);
    let _ = request.set_scheme(Some(&if scheme == "http" { Scheme::Http } else { Scheme::Https }));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(&format!("{prefix}{path}")));
    let outgoing = request.body().map_err(|()| network("the request body was refused".into()))?;
    let future = outgoing_handler::handle(request, None).map_err(|e| network(format!("the request was refused: {e:?}")))?;
    if let Some(text) = text {
        let stream = outgoing.write().map_err(|()| network("the request body was refused".into()))?;
        let written = stream.blocking_write_and_flush(text.as_bytes());
        drop(stream);
        written.map_err(|e| network(format!("sending the request failed: {e:?}")))?;
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| network(format!("sending the request failed: {e:?}")))?;
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(network(format!("the platform could not be reached: {code:?}"))),
        _ => return Err(network("the platform did not answer".into())),
    };
    read(&response)
}

fn read(response: &IncomingResponse) -> Result<Answer, ToolError> {
    let status = response.status();
    let retry_after = response.headers().get("retry-after").into_iter().next().and_then(|v| String::from_utf8_lossy(&v).trim().parse().ok());
    let body = response.consume().map_err(|()| network("the answer had no body".into()))?;
    let mut bytes = Vec::new();
    {
        let stream = body.stream().map_err(|()| network("the answer had no body".into()))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => return Err(network(format!("reading the answer failed: {}", e.to_debug_string()))),
            }
        }
    }
    drop(body);
    Ok(Answer { status, retry_after, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) })
}

/// The tool error for an answer that is not a success, telling the model
/// what to do.
fn failure(answer: &Answer, project: &str) -> ToolError {
    let said = answer.body["error"].as_str().unwrap_or("").to_string();
    match answer.status {
        401 => suggest(
            error(ErrorCategory::PermissionDenied, "PLATFORM_UNAUTHORIZED", format!("the platform refused the token: {said}")),
            &["Ask the user to log in to the platform again (the operator runs `toolshed secret set PLATFORM_TOKEN` with a fresh token), then call provision_registry_http again."],
        ),
        404 => {
            let mut err = error(ErrorCategory::ValidationFailed, "PROJECT_NOT_FOUND", format!("project {project} was not found: {said}"));
            let known: Vec<String> = answer.body["suggestions"].as_array().into_iter().flatten().filter_map(|s| s.as_str().map(|s| format!("Use project_id \"{s}\" if that is the project meant."))).collect();
            err.suggestions = Some(if known.is_empty() { vec!["Check the project id with the user, then call again.".into()] } else { known });
            err
        }
        429 => {
            let wait = answer.retry_after.unwrap_or(60);
            let mut err = error(ErrorCategory::ResourceUnavailable, "PLATFORM_RATE_LIMITED", format!("the platform asks to wait {wait} s before the next request"));
            err.suggestions = Some(vec![format!("Wait {wait} seconds, then make the same call again.")]);
            err.detail = Some(json!({ "retry_after_s": wait }).to_string());
            err
        }
        status => error(ErrorCategory::ExternalCommandFailed, "PLATFORM_ERROR", format!("the platform answered {status}: {said}")),
    }
}

struct RegistryHttp;

impl Guest for RegistryHttp {
    fn provision_registry_http(args: ProvisionArgs) -> Result<Provisioned, ToolError> {
        let project = args.project_id.clone();
        let task_id = match args.task_id {
            Some(id) => id,
            None => {
                let organization = setting("organization").unwrap_or_default();
                let body = json!({
                    "organization": organization,
                    "cluster_id": args.cluster_id,
                    "region": args.region,
                    "name": args.registry_name.unwrap_or_else(|| "main".into()),
                });
                let answer = call(Method::Post, &format!("/projects/{project}/registries"), Some(&body))?;
                if !(200..300).contains(&answer.status) {
                    return Err(failure(&answer, &project));
                }
                answer.body["task_id"].as_str().map(str::to_string).ok_or_else(|| network("the platform answered without a task id".into()))?
            }
        };
        let poll_ms = setting("poll_ms").and_then(|ms| ms.parse().ok()).unwrap_or(2000);
        for poll in 0..POLLS {
            if poll > 0 {
                clock::sleep(poll_ms);
            }
            let answer = call(Method::Get, &format!("/tasks/{task_id}"), None)?;
            if !(200..300).contains(&answer.status) {
                return Err(failure(&answer, &project));
            }
            match answer.body["status"].as_str() {
                Some("completed") => {
                    let url = answer.body["registry_url"].as_str().unwrap_or("").to_string();
                    return Ok(Provisioned { task_id, message: format!("registry ready at {url}"), registry_url: url });
                }
                Some("failed") => {
                    let mut err = error(ErrorCategory::ExternalCommandFailed, "PROVISIONING_FAILED", format!("provisioning failed: {}", answer.body["message"].as_str().unwrap_or("no reason given")));
                    err.task_id = Some(task_id);
                    return Err(err);
                }
                _ => {}
            }
        }
        let mut err = error(ErrorCategory::Timeout, "STILL_IN_PROGRESS", format!("task {task_id} is still provisioning"));
        err.suggestions = Some(vec![format!("Call provision_registry_http again with task_id \"{task_id}\" to keep waiting.")]);
        err.task_id = Some(task_id);
        Err(err)
    }
}

export!(RegistryHttp);
