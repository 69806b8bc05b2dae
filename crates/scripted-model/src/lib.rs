//! A scripted model server speaking the OpenAI chat-completions protocol: what `cap up` runs
//! when no model endpoint is configured (the demo), and what the tests play the model with.
//!
//! [`ScriptedModel`] listens on `127.0.0.1:0` and answers `POST /v1/chat/completions` by playing
//! a script of [`ScriptStep`]s in order, one step per request: tool calls, a text reply, an HTTP
//! error or a malformed body. Requests with `"stream": true` get the same answer as server-sent
//! events (`chat.completion.chunk` deltas, tool-call argument pieces, `data: [DONE]`). Past the
//! end of the script it answers 500 `script exhausted`. Every request body is recorded.
//!
//! The same server answers `POST /v1/embeddings` with deterministic vectors built from word
//! concepts the test names ([`ScriptedModel::set_embedding_concepts`]), and can be told to
//! fail those requests ([`ScriptedModel::fail_embeddings`]).
//!
//! The platform cannot tell it from a real endpoint: the product's HTTP client talks to it
//! unchanged. Scripts are serde, so a script can be a JSON file ([`load_script`]; the
//! `cap-scripted-model` binary serves one).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

mod embeddings;
pub use embeddings::HASHED_DIMENSIONS;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The script file could not be read.
    #[error("cannot read script {}", path.display())]
    ReadScript {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The script file is not a JSON array of [`ScriptStep`]s.
    #[error("script {} is not a JSON array of steps", path.display())]
    ParseScript {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The server could not bind its listener or stopped serving.
    #[error("scripted model server: {what}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// One answer of the script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ScriptStep {
    /// The model calls tools (finish reason `tool_calls`).
    ToolCalls {
        /// The calls, in order.
        calls: Vec<ScriptToolCall>,
        /// Text sent alongside the calls.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
    },
    /// The model answers in text only.
    Text {
        /// The text.
        content: String,
        /// Finish reason; `stop` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        finish_reason: Option<String>,
    },
    /// The server fails with this HTTP status and an OpenAI-shaped error body.
    HttpError {
        /// The HTTP status code.
        status: u16,
        /// The error message; a default one when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// The server answers 200 with this body as-is (meant not to parse).
    Malformed {
        /// The body.
        body: String,
    },
}

/// A tool call of a [`ScriptStep::ToolCalls`] step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptToolCall {
    /// The tool's name.
    pub name: String,
    /// The arguments as raw text; may be invalid JSON on purpose.
    pub arguments: String,
    /// The call id; `call_<request>_<index>` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl ScriptStep {
    /// A step calling one tool with `arguments` (raw text).
    pub fn tool_call(name: impl Into<String>, arguments: impl Into<String>) -> Self {
        Self::tool_calls([(name, arguments)])
    }

    /// A step calling several tools at once.
    pub fn tool_calls<N: Into<String>, A: Into<String>>(
        calls: impl IntoIterator<Item = (N, A)>,
    ) -> Self {
        ScriptStep::ToolCalls {
            calls: calls
                .into_iter()
                .map(|(name, arguments)| ScriptToolCall {
                    name: name.into(),
                    arguments: arguments.into(),
                    id: None,
                })
                .collect(),
            content: None,
        }
    }

    /// A step answering `content` in text.
    pub fn text(content: impl Into<String>) -> Self {
        ScriptStep::Text {
            content: content.into(),
            finish_reason: None,
        }
    }

    /// A step failing with HTTP `status`.
    pub fn http_error(status: u16) -> Self {
        ScriptStep::HttpError {
            status,
            message: None,
        }
    }

    /// A step answering 200 with `body` as-is.
    pub fn malformed(body: impl Into<String>) -> Self {
        ScriptStep::Malformed { body: body.into() }
    }

    /// Adds text alongside the tool calls of a [`ScriptStep::ToolCalls`] step (no-op otherwise).
    pub fn with_content(mut self, text: impl Into<String>) -> Self {
        if let ScriptStep::ToolCalls { content, .. } = &mut self {
            *content = Some(text.into());
        }
        self
    }
}

/// Reads a script from a JSON file holding an array of steps.
pub fn load_script(path: &Path) -> Result<Vec<ScriptStep>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadScript {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| Error::ParseScript {
        path: path.to_owned(),
        source,
    })
}

#[derive(Debug, Default)]
struct ScriptState {
    steps: Mutex<VecDeque<ScriptStep>>,
    requests: Mutex<Vec<Value>>,
    answered: AtomicUsize,
    embeddings: embeddings::EmbeddingState,
}

impl ScriptState {
    fn new(script: Vec<ScriptStep>) -> Arc<Self> {
        Arc::new(Self {
            steps: Mutex::new(script.into()),
            ..Self::default()
        })
    }

    fn next_step(&self) -> Option<ScriptStep> {
        self.steps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }

    fn record(&self, body: Value) {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(body);
    }
}

/// A scripted model server on loopback; shuts down when dropped.
#[derive(Debug)]
pub struct ScriptedModel {
    addr: SocketAddr,
    state: Arc<ScriptState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ScriptedModel {
    /// Starts serving `script` on `127.0.0.1:0`.
    pub async fn start(script: Vec<ScriptStep>) -> Result<Self> {
        let io = |what| move |source| Error::Io { what, source };
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(io("binding 127.0.0.1:0"))?;
        let addr = listener
            .local_addr()
            .map_err(io("reading the bound address"))?;
        let state = ScriptState::new(script);
        let (shutdown, stopped) = oneshot::channel::<()>();
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(error) = server.await {
                tracing::warn!(%error, "scripted model server failed");
            }
        });
        Ok(Self {
            addr,
            state,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// The base URL to configure a client with: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request body received so far, in order (non-JSON bodies as a JSON string).
    pub fn requests(&self) -> Vec<Value> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops accepting connections and waits until the server has stopped.
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Embeds with one dimension per concept (a list of words); see the `embeddings` module.
    pub fn set_embedding_concepts(&self, concepts: &[&[&str]]) {
        self.state.embeddings.set_concepts(
            concepts
                .iter()
                .map(|words| words.iter().map(|w| w.to_lowercase()).collect())
                .collect(),
        );
    }

    /// Makes every later embeddings request answer HTTP `status` (`None`: answer again).
    pub fn fail_embeddings(&self, status: Option<u16>) {
        self.state.embeddings.set_failure(status);
    }

    /// The inputs of every embeddings request received so far, one list per request.
    pub fn embedding_inputs(&self) -> Vec<Vec<String>> {
        self.state.embeddings.inputs()
    }

    /// Steps not played yet.
    pub fn remaining(&self) -> usize {
        self.state
            .steps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for ScriptedModel {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Serves `script` on `listener` until the process ends (for a stand-alone binary).
pub async fn serve_script(listener: TcpListener, script: Vec<ScriptStep>) -> Result<()> {
    axum::serve(listener, router(ScriptState::new(script)))
        .await
        .map_err(|source| Error::Io {
            what: "serving",
            source,
        })
}

fn router(state: Arc<ScriptState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(completions))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .with_state(state)
}

fn error_response(status: StatusCode, message: &str, kind: &str) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "code": status.as_u16()}});
    (status, axum::Json(body)).into_response()
}

async fn completions(State(state): State<Arc<ScriptState>>, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(error) => {
            state.record(Value::String(String::from_utf8_lossy(&body).into_owned()));
            return error_response(
                StatusCode::BAD_REQUEST,
                &format!("request body is not JSON: {error}"),
                "invalid_request_error",
            );
        }
    };
    state.record(request.clone());
    if !request.get("messages").is_some_and(Value::is_array) {
        return error_response(
            StatusCode::BAD_REQUEST,
            "request has no `messages` array",
            "invalid_request_error",
        );
    }
    let Some(step) = state.next_step() else {
        return error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "script exhausted",
            "server_error",
        );
    };
    let number = state.answered.fetch_add(1, Ordering::SeqCst);
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("scripted")
        .to_owned();
    let stream = request
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let include_usage = request
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let prompt_tokens = body.len() / 4;
    let reply = match step {
        ScriptStep::HttpError { status, message } => {
            let message = message.unwrap_or_else(|| format!("scripted HTTP {status}"));
            return match StatusCode::from_u16(status) {
                Ok(code) => error_response(code, &message, "scripted_error"),
                Err(_) => error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("script step has an invalid HTTP status {status}"),
                    "server_error",
                ),
            };
        }
        ScriptStep::Malformed { body } => {
            let kind = if stream {
                "text/event-stream"
            } else {
                "application/json"
            };
            return ([(header::CONTENT_TYPE, kind)], body).into_response();
        }
        ScriptStep::Text {
            content,
            finish_reason,
        } => Reply {
            content: Some(content),
            calls: Vec::new(),
            finish_reason: finish_reason.unwrap_or_else(|| "stop".to_owned()),
        },
        ScriptStep::ToolCalls { calls, content } => Reply {
            content,
            calls: calls
                .into_iter()
                .enumerate()
                .map(|(index, call)| {
                    let id = call.id.unwrap_or_else(|| format!("call_{number}_{index}"));
                    (id, call.name, call.arguments)
                })
                .collect(),
            finish_reason: "tool_calls".to_owned(),
        },
    };
    let meta = Meta {
        id: format!("chatcmpl-scripted-{number}"),
        model,
        prompt_tokens,
    };
    if stream {
        sse_response(&meta, &reply, include_usage)
    } else {
        axum::Json(completion_json(&meta, &reply)).into_response()
    }
}

struct Reply {
    content: Option<String>,
    /// (id, name, raw arguments)
    calls: Vec<(String, String, String)>,
    finish_reason: String,
}

struct Meta {
    id: String,
    model: String,
    prompt_tokens: usize,
}

impl Reply {
    fn completion_tokens(&self) -> usize {
        let text = self.content.as_deref().map_or(0, str::len);
        let calls: usize = self
            .calls
            .iter()
            .map(|(_, name, args)| name.len() + args.len())
            .sum();
        (text + calls).div_ceil(4)
    }

    fn usage(&self, meta: &Meta) -> Value {
        let completion = self.completion_tokens();
        json!({
            "prompt_tokens": meta.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": meta.prompt_tokens + completion,
        })
    }
}

fn created() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn completion_json(meta: &Meta, reply: &Reply) -> Value {
    let mut message = json!({"role": "assistant", "content": reply.content});
    if !reply.calls.is_empty() {
        message["tool_calls"] = reply
            .calls
            .iter()
            .map(|(id, name, arguments)| {
                json!({"id": id, "type": "function",
                       "function": {"name": name, "arguments": arguments}})
            })
            .collect();
    }
    json!({
        "id": meta.id,
        "object": "chat.completion",
        "created": created(),
        "model": meta.model,
        "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
        "usage": reply.usage(meta),
    })
}

/// Splits `text` into pieces of at most `size` characters (at least one piece).
fn pieces(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    chars
        .chunks(size)
        .map(|chunk| chunk.iter().collect())
        .collect()
}

fn sse_response(meta: &Meta, reply: &Reply, include_usage: bool) -> Response {
    let created = created();
    let chunk = |delta: Value, finish_reason: Value| {
        json!({
            "id": meta.id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": meta.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        })
    };
    let mut chunks = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    if let Some(content) = &reply.content {
        for piece in pieces(content, 8) {
            chunks.push(chunk(json!({"content": piece}), Value::Null));
        }
    }
    for (index, (id, name, arguments)) in reply.calls.iter().enumerate() {
        chunks.push(chunk(
            json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                                   "function": {"name": name, "arguments": ""}}]}),
            Value::Null,
        ));
        for piece in pieces(arguments, 16) {
            chunks.push(chunk(
                json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                Value::Null,
            ));
        }
    }
    chunks.push(chunk(json!({}), Value::String(reply.finish_reason.clone())));
    if include_usage {
        chunks.push(json!({
            "id": meta.id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": meta.model,
            "choices": [],
            "usage": reply.usage(meta),
        }));
    }
    let mut frames: Vec<std::result::Result<Bytes, std::convert::Infallible>> = chunks
        .iter()
        .map(|chunk| Ok(Bytes::from(format!("data: {chunk}\n\n"))))
        .collect();
    frames.push(Ok(Bytes::from_static(b"data: [DONE]\n\n")));
    let body = Body::from_stream(futures::stream::iter(frames));
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
