//! `toolshed:runtime@0.3.0`, the newest runtime interfaces, and the one
//! implementation every version delegates to.

use std::time::Duration;

use wasmtime::component::Resource;

use crate::call_log::Level;
use crate::locks::{HeldLock, LockMisuse, LockName, Take};
use crate::park::{MAX_PARKS_PER_CALL, MAX_STATE_BYTES, ParkMisuse, ParkRequest, Parked};
use crate::state::CallState;

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/runtime",
        inline: "
            package toolshed:runtime-host;
            world host {
                import toolshed:runtime/clock@0.3.0;
                import toolshed:runtime/locks@0.3.0;
                import toolshed:runtime/events@0.3.0;
                import toolshed:runtime/log@0.3.0;
                import toolshed:runtime/call@0.3.0;
                import toolshed:runtime/park@0.3.0;
                import toolshed:runtime/content@0.3.0;
                import toolshed:runtime/ask@0.3.0;
            }
        ",
        world: "toolshed:runtime-host/host",
        imports: { default: async | trappable },
        with: { "toolshed:runtime/locks.lock-guard": crate::locks::HeldLock },
        require_store_data_send: true,
    });
}

use bindings::toolshed::runtime::{ask, call, clock, content, events, locks, log, park};

/// The longest single sleep; the call's deadline ends any wait sooner.
const LONGEST_SLEEP: Duration = Duration::from_secs(24 * 60 * 60);

impl CallState {
    pub(crate) async fn now(&mut self) -> wasmtime::Result<u64> {
        let clock = &self.shared.clock;
        self.call.import(async |_| clock.now_ms()).await
    }

    pub(crate) async fn sleep(&mut self, ms: u64) -> wasmtime::Result<()> {
        let clock = &self.shared.clock;
        self.call.import(async |_| clock.sleep(Duration::from_millis(ms).min(LONGEST_SLEEP)).await).await
    }

    /// Takes lock `key`, or says why not. Checked before waiting: a call
    /// that asks for a key it holds would otherwise wait for itself until
    /// its deadline. A lock the call kept while parked is handed back at
    /// once.
    pub(crate) async fn acquire(&mut self, key: String) -> wasmtime::Result<Result<Resource<HeldLock>, LockMisuse>> {
        match self.locks.check(&key) {
            Err(misuse) => return self.call.import(async |_| Err(misuse)).await,
            Ok(Take::Carried) => {
                self.call.import(async |_| ()).await?;
                let held = self.locks.take_back(&key).ok_or_else(|| wasmtime::format_err!("carried lock {key:?} vanished"))?;
                return Ok(Ok(self.table.push(held)?));
            }
            Ok(Take::New) => {}
        }
        let (locks, plugin) = (self.shared.locks.clone(), self.call.plugin().clone());
        let name = |cx: &crate::CallContext| LockName { plugin, owner: cx.owner_id.clone(), chat: cx.chat_id.clone(), key: key.clone() };
        let guard = self.call.import(async |cx| locks.acquire(&name(cx)).await).await?;
        // A lock service that fails ends the call: the guarded step must
        // not run unguarded.
        let guard = guard.map_err(wasmtime::Error::new)?;
        let held = self.locks.taken(&key, guard);
        Ok(Ok(self.table.push(held)?))
    }

    pub(crate) async fn release(&mut self, lock: Resource<HeldLock>) -> wasmtime::Result<()> {
        let held = self.table.delete(lock)?;
        self.locks.released(held.key());
        Ok(())
    }

    /// Ends this run and asks the host to park the call (see
    /// [`crate::park`]); the error it returns carries no failure.
    pub(crate) async fn park(&mut self, ms: u64, state: Vec<u8>) -> wasmtime::Result<()> {
        self.call.import(async |_| ()).await?;
        if state.len() > MAX_STATE_BYTES {
            return Err(ParkMisuse::StateTooLarge(state.len()).into());
        }
        if self.parks >= MAX_PARKS_PER_CALL {
            return Err(ParkMisuse::TooMany.into());
        }
        self.park = Some(ParkRequest { ms: ms.min(LONGEST_SLEEP.as_millis() as u64), state });
        Err(Parked.into())
    }

    pub(crate) async fn resumed(&mut self) -> wasmtime::Result<Option<Vec<u8>>> {
        let resumed = self.resumed.clone();
        self.call.import(async |_| resumed).await
    }

    pub(crate) async fn chat_updated(&mut self) -> wasmtime::Result<()> {
        let events = &self.shared.events;
        self.call.import(async |cx| events.chat_updated(cx).await).await
    }

    pub(crate) async fn report_progress(&mut self, message: String) -> wasmtime::Result<()> {
        let progress = &mut self.progress;
        self.call.import(async |_| progress.report(&message)).await
    }

    pub(crate) async fn log_line(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        self.call.limiter.enter_import()?;
        self.write_log(level, &message);
        self.call.limiter.leave_import();
        Ok(())
    }

    /// Adds a content block to the call's answer, or says why not.
    pub(crate) async fn add_content(&mut self, block: crate::content::Block) -> wasmtime::Result<Result<(), crate::content::Refusal>> {
        let content = &mut self.content;
        self.call.import(async |_| content.add(block)).await
    }

    /// Asks the caller's user through their client, waiting at most until
    /// the call's deadline; the answer is checked against the schema
    /// before the tool sees it.
    pub(crate) async fn ask_user(&mut self, message: String, schema: String) -> wasmtime::Result<Result<crate::client::Answer, crate::client::AskError>> {
        use crate::client::{Answer, AskError, MAX_MESSAGE_BYTES, MAX_SCHEMA_BYTES, check_answer, check_schema};
        let client = self.client.clone();
        let deadline = self.call.deadline();
        self.call
            .import(async |_| {
                if message.len() > MAX_MESSAGE_BYTES {
                    return Err(AskError::BadSchema(format!("the message is {} bytes, more than {MAX_MESSAGE_BYTES}", message.len())));
                }
                if schema.len() > MAX_SCHEMA_BYTES {
                    return Err(AskError::BadSchema(format!("the schema is {} bytes, more than {MAX_SCHEMA_BYTES}", schema.len())));
                }
                let schema: serde_json::Value = serde_json::from_str(&schema).map_err(|e| AskError::BadSchema(format!("not JSON: {e}")))?;
                check_schema(&schema).map_err(AskError::BadSchema)?;
                let asking = client.as_ref().and_then(|client| client.ask(message, schema.clone())).ok_or(AskError::CannotAsk)?;
                let answer = tokio::time::timeout_at(deadline, asking)
                    .await
                    .map_err(|_| AskError::NoAnswer("the call's deadline passed before the user answered".into()))??;
                if let Answer::Accept(fields) = &answer {
                    check_answer(&schema, fields).map_err(AskError::AnswerMismatch)?;
                }
                Ok(answer)
            })
            .await
    }

    /// Asks the caller's model, waiting at most until the call's deadline.
    pub(crate) async fn sample_model(&mut self, prompt: String, max_tokens: u32) -> wasmtime::Result<Result<String, crate::client::AskError>> {
        use crate::client::{AskError, MAX_PROMPT_BYTES};
        let client = self.client.clone();
        let deadline = self.call.deadline();
        self.call
            .import(async |_| {
                if prompt.len() > MAX_PROMPT_BYTES {
                    return Err(AskError::BadSchema(format!("the prompt is {} bytes, more than {MAX_PROMPT_BYTES}", prompt.len())));
                }
                let sampling = client.as_ref().and_then(|client| client.sample(prompt, max_tokens)).ok_or(AskError::CannotAsk)?;
                let text = tokio::time::timeout_at(deadline, sampling)
                    .await
                    .map_err(|_| AskError::NoAnswer("the call's deadline passed before the model answered".into()))??;
                Ok(crate::text::clip(&text, MAX_PROMPT_BYTES))
            })
            .await
    }

    pub(crate) async fn wait_budget(&mut self) -> wasmtime::Result<Option<u64>> {
        let (clock, until) = (&self.shared.clock, self.wait_until);
        self.call.import(async |_| until.map(|until| until.saturating_sub(clock.now_ms()))).await
    }
}

impl clock::Host for CallState {
    async fn now(&mut self) -> wasmtime::Result<u64> {
        CallState::now(self).await
    }

    async fn sleep(&mut self, ms: u64) -> wasmtime::Result<()> {
        CallState::sleep(self, ms).await
    }
}

impl locks::Host for CallState {
    async fn acquire(&mut self, key: String) -> wasmtime::Result<Result<Resource<HeldLock>, locks::LockError>> {
        Ok(CallState::acquire(self, key).await?.map_err(|misuse| match misuse {
            LockMisuse::KeyTooLong(_) => locks::LockError::KeyTooLong,
            LockMisuse::TooMany => locks::LockError::TooManyHeld,
            LockMisuse::AlreadyHeld(_) => locks::LockError::AlreadyHeld,
        }))
    }
}

impl locks::HostLockGuard for CallState {
    async fn drop(&mut self, lock: Resource<HeldLock>) -> wasmtime::Result<()> {
        self.release(lock).await
    }
}

impl events::Host for CallState {
    async fn chat_updated(&mut self) -> wasmtime::Result<()> {
        CallState::chat_updated(self).await
    }

    async fn progress(&mut self, message: String) -> wasmtime::Result<()> {
        self.report_progress(message).await
    }
}

impl log::Host for CallState {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Debug => Level::Debug,
            log::Level::Info => Level::Info,
            log::Level::Warn => Level::Warn,
            log::Level::Error => Level::Error,
        };
        self.log_line(level, message).await
    }
}

impl content::Host for CallState {
    async fn add(&mut self, block: content::Block) -> wasmtime::Result<Result<(), content::ContentError>> {
        use crate::content::{Block, Body, Refusal};
        let body = |body: content::Body| match body {
            content::Body::Text(text) => Body::Text(text),
            content::Body::Blob(bytes) => Body::Blob(bytes),
        };
        let block = match block {
            content::Block::Text(text) => Block::Text(text),
            content::Block::Image(media) => Block::Image { data: media.data, mime_type: media.mime_type },
            content::Block::Audio(media) => Block::Audio { data: media.data, mime_type: media.mime_type },
            content::Block::Resource(r) => Block::Resource { uri: r.uri, mime_type: r.mime_type, body: body(r.body) },
            content::Block::ResourceLink(l) => Block::ResourceLink { uri: l.uri, name: l.name, description: l.description, mime_type: l.mime_type },
        };
        Ok(self.add_content(block).await?.map_err(|refusal| match refusal {
            Refusal::TooLarge(_) => content::ContentError::TooLarge,
            Refusal::TooMuch => content::ContentError::TooMuch,
            Refusal::BadMimeType(_) => content::ContentError::BadMimeType,
            Refusal::BadUri => content::ContentError::BadUri,
        }))
    }
}

impl ask::Host for CallState {
    async fn can_ask(&mut self) -> wasmtime::Result<bool> {
        let client = self.client.clone();
        self.call.import(async |_| client.is_some_and(|c| c.can_ask())).await
    }

    async fn ask(&mut self, message: String, schema: String) -> wasmtime::Result<Result<ask::Answer, ask::AskError>> {
        use crate::client::Answer;
        Ok(match self.ask_user(message, schema).await? {
            Ok(Answer::Accept(fields)) => Ok(ask::Answer::Accept(serde_json::Value::Object(fields).to_string())),
            Ok(Answer::Decline) => Ok(ask::Answer::Decline),
            Ok(Answer::Cancel) => Ok(ask::Answer::Cancel),
            Err(error) => Err(wit_ask_error(error)),
        })
    }

    async fn sample(&mut self, prompt: String, max_tokens: u32) -> wasmtime::Result<Result<String, ask::AskError>> {
        Ok(self.sample_model(prompt, max_tokens).await?.map_err(wit_ask_error))
    }
}

fn wit_ask_error(error: crate::client::AskError) -> ask::AskError {
    use crate::client::AskError;
    match error {
        AskError::CannotAsk => ask::AskError::CannotAsk,
        AskError::BadSchema(_) => ask::AskError::BadSchema,
        AskError::AnswerMismatch(_) => ask::AskError::AnswerMismatch,
        AskError::NoAnswer(_) => ask::AskError::NoAnswer,
    }
}

impl call::Host for CallState {
    async fn wait_budget(&mut self) -> wasmtime::Result<Option<u64>> {
        CallState::wait_budget(self).await
    }
}

impl park::Host for CallState {
    async fn park(&mut self, ms: u64, state: Vec<u8>) -> wasmtime::Result<()> {
        CallState::park(self, ms, state).await
    }

    async fn resumed(&mut self) -> wasmtime::Result<Option<Vec<u8>>> {
        CallState::resumed(self).await
    }
}
