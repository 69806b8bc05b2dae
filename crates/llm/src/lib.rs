//! Client for chat models with tool calls: OpenAI-compatible chat-completions endpoints and
//! Anthropic's Messages API, with a router over a primary endpoint and its fallbacks.
//!
//! Any server speaking `POST {base_url}/chat/completions` works: vLLM, Ollama, llama.cpp server,
//! OpenAI itself, or the scripted model server of `cap-scripted-model`; with
//! [`Provider::Anthropic`], `POST {base_url}/messages` in Anthropic's own shapes. Requests are
//! non-streaming; a reply carries the assistant's text and its tool calls with their arguments
//! as the raw JSON text the model produced (possibly invalid, which the caller reports back to
//! the model).
//!
//! Failures are classified by [`Error::is_retryable`]; [`retry`] retries the retryable ones with
//! bounded exponential backoff; each endpoint has its circuit breaker; [`ModelRouter`] moves
//! to the next endpoint when one fails.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cap_circuit::Breaker;

use serde::{Deserialize, Serialize};

mod anthropic;
mod endpoints;
mod router;
mod wire;

pub use endpoints::load_fallbacks;
pub use router::{ModelRouter, RoutedReply};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client configuration cannot be used (bad base URL, TLS setup).
    #[error("invalid model configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// The endpoint did not answer within the configured timeout.
    #[error("model endpoint timed out")]
    Timeout {
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The endpoint could not be reached.
    #[error("cannot connect to the model endpoint")]
    Connect {
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The connection failed while sending the request or reading the response.
    #[error("transport failure talking to the model endpoint")]
    Transport {
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The endpoint answered with a non-success HTTP status.
    #[error("model endpoint answered HTTP {status}: {message}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The error message from the body (shortened), or the body itself.
        message: String,
    },
    /// The body is not a chat completion.
    #[error("model endpoint sent a body that is not a chat completion")]
    Decode {
        /// Where and why parsing failed.
        #[source]
        source: serde_path_to_error::Error<serde_json::Error>,
    },
    /// The completion has no choices.
    #[error("model endpoint sent a chat completion without choices")]
    NoChoices,
    /// The endpoint failed too often in a row: calls fail at once for a while (the message
    /// says until when) instead of adding to its load.
    #[error("{message}")]
    CircuitOpen {
        /// What the circuit says.
        message: String,
    },
    /// Every endpoint of a [`ModelRouter`] failed; each failure, in the order tried.
    #[error("every model endpoint failed: {}", describe_failures(failures))]
    AllEndpointsFailed {
        /// The endpoint (`model at base URL`) and how it failed.
        failures: Vec<(String, Error)>,
    },
}

fn describe_failures(failures: &[(String, Error)]) -> String {
    failures
        .iter()
        .map(|(endpoint, error)| format!("{endpoint}: {}", cap_errors::chain(error)))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// Whether the same request may succeed when sent again.
    pub fn is_retryable(&self) -> bool {
        // Exhaustive on purpose: a new variant must decide here.
        match self {
            Error::Timeout { .. } | Error::Connect { .. } | Error::Transport { .. } => true,
            Error::Status { status, .. } => *status == 429 || *status >= 500,
            // An open circuit is retried by whoever called, later, not by this call.
            Error::InvalidConfig { .. }
            | Error::Decode { .. }
            | Error::NoChoices
            | Error::CircuitOpen { .. } => false,
            // Later, one of them may answer again.
            Error::AllEndpointsFailed { failures } => failures.iter().any(|(_, error)| {
                error.is_retryable() || matches!(error, Error::CircuitOpen { .. })
            }),
        }
    }
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// The wire format an endpoint speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// OpenAI's chat completions (`{base_url}/chat/completions`, bearer token): OpenAI,
    /// vLLM, Ollama, llama.cpp server, the scripted model.
    #[default]
    OpenAi,
    /// Anthropic's Messages API (`{base_url}/messages`, `x-api-key`).
    Anthropic,
}

impl Provider {
    /// The name flags and files use.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Provider {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "openai" => Ok(Provider::OpenAi),
            "anthropic" => Ok(Provider::Anthropic),
            other => Err(Error::InvalidConfig {
                reason: format!("unknown model provider {other:?}; use openai or anthropic"),
            }),
        }
    }
}

/// Where and how to reach the model.
#[derive(Clone, PartialEq, Eq)]
pub struct ModelConfig {
    /// The wire format.
    pub provider: Provider,
    /// Base URL of the API, e.g. `http://127.0.0.1:1234/v1`.
    pub base_url: String,
    /// Bearer token (OpenAI) or `x-api-key` (Anthropic), if the endpoint needs one. Never
    /// logged.
    pub api_key: Option<String>,
    /// Model name sent with every request, e.g. `qwen2.5-coder`.
    pub model: String,
    /// Timeout of one request, connection included.
    pub timeout: Duration,
    /// Most tokens one reply may have: sent to Anthropic, which requires it.
    pub max_output_tokens: u32,
    /// Requests in a row that end failed for the endpoint's own reasons (after their
    /// retries) before its circuit opens.
    pub circuit_failures: u32,
    /// How long an open circuit fails requests at once.
    pub circuit_open_for: Duration,
}

impl Default for ModelConfig {
    /// No endpoint (set `base_url` and `model`), 120 s per request, 4096 output tokens, the
    /// circuit opening for [`CIRCUIT_OPEN_FOR`] after [`CIRCUIT_FAILURES`] failures.
    fn default() -> Self {
        Self {
            provider: Provider::OpenAi,
            base_url: String::new(),
            api_key: None,
            model: String::new(),
            timeout: Duration::from_secs(120),
            max_output_tokens: 4096,
            circuit_failures: CIRCUIT_FAILURES,
            circuit_open_for: CIRCUIT_OPEN_FOR,
        }
    }
}

impl ModelConfig {
    /// How the endpoint is named in messages: `model at base URL (provider)`.
    pub fn endpoint_name(&self) -> String {
        format!("{} at {} ({})", self.model, self.base_url, self.provider)
    }
}

impl fmt::Debug for ModelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelConfig")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .field("max_output_tokens", &self.max_output_tokens)
            .field("circuit_failures", &self.circuit_failures)
            .field("circuit_open_for", &self.circuit_open_for)
            .finish()
    }
}

/// One message of a conversation, in the roles the chat-completions API knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    /// Instructions for the model.
    System {
        /// The text.
        content: String,
    },
    /// What the user asks.
    User {
        /// The text.
        content: String,
    },
    /// What the model answered earlier, tool calls included.
    Assistant {
        /// The text, if any.
        content: Option<String>,
        /// The tool calls, as the model sent them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    /// The result of one tool call.
    Tool {
        /// The id of the call this answers.
        tool_call_id: String,
        /// The result text.
        content: String,
    },
}

impl Message {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Message::System {
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Message::User {
            content: content.into(),
        }
    }

    /// A tool result message.
    pub fn tool(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Message::Tool {
            tool_call_id: tool_call_id.into(),
            content: content.into(),
        }
    }
}

impl From<&AssistantReply> for Message {
    fn from(reply: &AssistantReply) -> Self {
        Message::Assistant {
            content: reply.content.clone(),
            tool_calls: reply.tool_calls.clone(),
        }
    }
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// The name the model calls it by.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON schema of its parameters.
    pub parameters: serde_json::Value,
}

/// A tool call made by the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "wire::WireToolCall", from = "wire::WireToolCall")]
pub struct ToolCall {
    /// The call id, echoed in the tool result. Generated (`call_N`) when the server sent none.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as the raw JSON text the model sent; may be invalid JSON.
    pub arguments: String,
}

/// Token counts reported by the endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens of the prompt.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Tokens of the completion.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Both.
    #[serde(default)]
    pub total_tokens: u64,
}

/// The model's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssistantReply {
    /// The text, if any.
    pub content: Option<String>,
    /// The tool calls, in order; empty when the model answered in text only.
    pub tool_calls: Vec<ToolCall>,
    /// Why generation stopped (`stop`, `tool_calls`, `length`, ...), when the server said.
    pub finish_reason: Option<String>,
    /// Token counts, when the server reported them.
    pub usage: Option<Usage>,
}

/// Requests in a row that end failed for the endpoint's own reasons (after their retries)
/// before its circuit opens.
pub const CIRCUIT_FAILURES: u32 = 5;

/// How long an open circuit fails requests at once.
pub const CIRCUIT_OPEN_FOR: Duration = Duration::from_secs(30);

/// A client of one chat-completions endpoint. Clones share its circuit breaker.
#[derive(Debug, Clone)]
pub struct ChatClient {
    config: ModelConfig,
    url: reqwest::Url,
    http: reqwest::Client,
    circuit: Arc<Breaker>,
}

impl ChatClient {
    /// A client for `config`; fails when the base URL is not an http(s) URL.
    pub fn new(config: ModelConfig) -> Result<Self> {
        let base = config.base_url.trim_end_matches('/');
        let path = match config.provider {
            Provider::OpenAi => "chat/completions",
            Provider::Anthropic => "messages",
        };
        let url =
            reqwest::Url::parse(&format!("{base}/{path}")).map_err(|e| Error::InvalidConfig {
                reason: format!("base URL {:?} is not a URL ({e})", config.base_url),
            })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::InvalidConfig {
                reason: format!("base URL {:?} must be http or https", config.base_url),
            });
        }
        if config.model.trim().is_empty() {
            return Err(Error::InvalidConfig {
                reason: "model name is empty".to_owned(),
            });
        }
        if config.timeout.is_zero() {
            return Err(Error::InvalidConfig {
                reason: "timeout must be positive".to_owned(),
            });
        }
        if config.max_output_tokens == 0 {
            return Err(Error::InvalidConfig {
                reason: "max_output_tokens must be positive".to_owned(),
            });
        }
        if config.circuit_failures == 0 || config.circuit_open_for.is_zero() {
            return Err(Error::InvalidConfig {
                reason: "the circuit needs at least one failure and a positive open time"
                    .to_owned(),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| Error::InvalidConfig {
                reason: format!("HTTP client setup failed: {e}"),
            })?;
        let circuit = Breaker::new("model", config.circuit_failures, config.circuit_open_for);
        Ok(Self {
            config,
            url,
            http,
            circuit: Arc::new(circuit),
        })
    }

    /// The configuration this client was made from.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Sends one chat-completion request and parses the reply.
    pub async fn chat(&self, messages: &[Message], tools: &[ToolSpec]) -> Result<AssistantReply> {
        let config = &self.config;
        let mut request = self.http.post(self.url.clone());
        request = match config.provider {
            Provider::OpenAi => {
                let body = wire::ChatRequest::new(&config.model, messages, tools);
                match &config.api_key {
                    Some(key) => request.bearer_auth(key),
                    None => request,
                }
                .json(&body)
            }
            Provider::Anthropic => {
                let body = anthropic::MessagesRequest::new(
                    &config.model,
                    config.max_output_tokens,
                    messages,
                    tools,
                );
                let request = request.header("anthropic-version", anthropic::API_VERSION);
                match &config.api_key {
                    Some(key) => request.header("x-api-key", key),
                    None => request,
                }
                .json(&body)
            }
        };
        let response = request.send().await.map_err(classify)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(classify)?;
        if !status.is_success() {
            return Err(Error::Status {
                status: status.as_u16(),
                message: wire::error_message(&bytes),
            });
        }
        let reply = match config.provider {
            Provider::OpenAi => wire::parse_response(&bytes)?,
            Provider::Anthropic => anthropic::parse_response(&bytes)?,
        };
        tracing::debug!(
            finish_reason = reply.finish_reason.as_deref().unwrap_or(""),
            tool_calls = reply.tool_calls.len(),
            "model replied"
        );
        Ok(reply)
    }

    /// [`ChatClient::chat`] retried per `policy` while the failure is retryable.
    pub async fn chat_with_retry(
        &self,
        messages: &[Message],
        tools: &[ToolSpec],
        policy: &RetryPolicy,
    ) -> Result<AssistantReply> {
        self.circuit
            .guard(
                retry(policy, || self.chat(messages, tools)),
                Error::is_retryable,
                |message| Error::CircuitOpen { message },
            )
            .await
    }
}

fn classify(source: reqwest::Error) -> Error {
    if source.is_timeout() {
        Error::Timeout { source }
    } else if source.is_connect() {
        Error::Connect { source }
    } else if source.is_builder() {
        Error::InvalidConfig {
            reason: format!("cannot build the request: {source}"),
        }
    } else {
        Error::Transport { source }
    }
}

/// How often and how patiently to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 0 counts as 1.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub initial_backoff: Duration,
    /// Upper bound of one wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// PRD 14: at most three retries, waiting 1 s, 2 s, 4 s (never more than 8 s).
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Runs `op` until it succeeds, fails with a non-retryable error, or `policy.max_attempts` are
/// used up; returns the last error then.
pub async fn retry<T, F, Fut>(policy: &RetryPolicy, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let attempts = policy.max_attempts.max(1);
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(error) if error.is_retryable() && attempt < attempts => {
                let wait = policy.backoff(attempt);
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    attempt,
                    ?wait,
                    "model request failed; retrying"
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
