//! Coding agent service: AgentOrchestrator over the tool-calling loop.
//!
//! Flags and wiring only: [`cap_agent_server::AgentServer`] serves the
//! [`cap_agent::CodingAgent`] role. `ExecuteTask` runs it on the task's sandbox session and streams
//! its events (Thought, Action, Observation, Checkpoint, ErrorReport) as they happen. The
//! stream ends OK when the agent finished, stopped at its step limit or was interrupted, and
//! with an error status (after an ErrorReport event) when the model endpoint or the sandbox
//! failed. `GetAgentStatus` reports the running tasks; `InterruptTask` stops one at its next
//! step (its staged edits are written first, a Checkpoint `interrupted` ends the stream).
//! A caller that stops listening interrupts its task too.

use std::fmt;
use std::time::Duration;

use cap_agent::{AgentConfig, CodingAgent};
use cap_agent_server::AgentServer;
use cap_llm::{ModelConfig, Provider};
use cap_mtls::ServiceTls;
use cap_proto::agent::v1::agent_orchestrator_server::AgentOrchestratorServer;
use cap_sandbox_client::{GrpcSandbox, MAX_MESSAGE_BYTES};
use tokio::net::TcpListener;
use tonic::transport::server::Router;

/// The service's name in the fleet (its TLS identity).
pub const SERVICE_NAME: &str = "coding-agent";

/// The coding agent's configuration.
#[derive(Clone, clap::Parser)]
#[command(
    name = "cap-coding-agent",
    about = "Changes a repository with a model and tools, in the sandbox"
)]
pub struct Config {
    /// Flags every agent service takes.
    #[command(flatten)]
    pub agent: cap_runtime::AgentArgs,
    /// Base URL of the model endpoint, e.g. `http://127.0.0.1:1234/v1`.
    #[arg(long, env = "CAP_MODEL_BASE_URL")]
    pub model_base_url: String,
    /// What the endpoint speaks: `openai` (chat completions: OpenAI, vLLM, Ollama,
    /// llama.cpp server) or `anthropic` (the Messages API).
    #[arg(long, env = "CAP_MODEL_PROVIDER", default_value = "openai")]
    pub model_provider: Provider,
    /// Most tokens one reply may have (Anthropic requires a bound).
    #[arg(
        long,
        env = "CAP_MODEL_MAX_OUTPUT_TOKENS",
        default_value_t = 4096,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000)
    )]
    pub model_max_output_tokens: u32,
    /// The model's context window in tokens: older turns are condensed into a summary
    /// before the conversation passes three quarters of it; 0 never condenses.
    #[arg(
        long,
        env = "CAP_MODEL_CONTEXT_WINDOW",
        default_value_t = cap_agent::DEFAULT_CONTEXT_WINDOW
    )]
    pub model_context_window: u32,
    /// The model that summarises condensed turns, on the same endpoint (a smaller, cheaper
    /// one); default the coding model.
    #[arg(long, env = "CAP_SUMMARY_MODEL")]
    pub summary_model: Option<String>,
    /// A TOML file of fallback endpoints (`[[fallback]]` tables: provider, base_url, model,
    /// api_key_env, ...), asked in order when the endpoint above fails or its circuit is
    /// open.
    #[arg(long, env = "CAP_MODEL_FALLBACKS")]
    pub model_fallbacks: Option<std::path::PathBuf>,
    /// Bearer token for the model endpoint, if it needs one. Never logged.
    #[arg(long, env = "CAP_MODEL_API_KEY", hide_env_values = true)]
    pub model_api_key: Option<String>,
    /// Model name sent with every request.
    #[arg(long, env = "CAP_MODEL", default_value = "qwen2.5-coder")]
    pub model: String,
    /// Model turns allowed per task.
    #[arg(
        long,
        env = "CAP_MAX_STEPS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    pub max_steps: u32,
    /// Timeout of one model request, in seconds.
    #[arg(
        long,
        env = "CAP_MODEL_TIMEOUT_SECONDS",
        default_value_t = 120,
        value_parser = clap::value_parser!(u64).range(1..=3_600)
    )]
    pub model_timeout_seconds: u64,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("agent", &self.agent)
            .field("model_base_url", &self.model_base_url)
            .field("model_provider", &self.model_provider)
            .field("model_max_output_tokens", &self.model_max_output_tokens)
            .field("model_fallbacks", &self.model_fallbacks)
            .field("model_context_window", &self.model_context_window)
            .field("summary_model", &self.summary_model)
            .field(
                "model_api_key",
                &self.model_api_key.as_ref().map(|_| "<redacted>"),
            )
            .field("model", &self.model)
            .field("max_steps", &self.max_steps)
            .field("model_timeout_seconds", &self.model_timeout_seconds)
            .finish()
    }
}

impl Config {
    /// The agent configuration these flags describe, the fallbacks file read (their keys
    /// from the environment).
    pub fn agent_config(&self) -> Result<AgentConfig, cap_llm::Error> {
        let primary = ModelConfig {
            provider: self.model_provider,
            base_url: self.model_base_url.clone(),
            api_key: self.model_api_key.clone().filter(|key| !key.is_empty()),
            model: self.model.clone(),
            timeout: Duration::from_secs(self.model_timeout_seconds),
            max_output_tokens: self.model_max_output_tokens,
            ..ModelConfig::default()
        };
        let fallbacks = match &self.model_fallbacks {
            Some(path) => cap_llm::load_fallbacks(path, &primary, |name| std::env::var(name).ok())?,
            None => Vec::new(),
        };
        let summariser = self
            .summary_model
            .as_ref()
            .filter(|model| !model.trim().is_empty())
            .map(|model| ModelConfig {
                model: model.clone(),
                ..primary.clone()
            });
        let mut config = AgentConfig::new(primary, self.max_steps);
        config.summariser = summariser;
        config.fallbacks = fallbacks;
        config.context_window = self.model_context_window;
        Ok(config)
    }
}

/// Serves the coding agent until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let listener = config.agent.common.bind().await?;
    serve(config, listener).await
}

/// Serves the coding agent on an already bound listener (tests bind port 0 themselves).
pub async fn serve(config: Config, listener: TcpListener) -> anyhow::Result<()> {
    let tls = config.agent.common.tls(SERVICE_NAME)?;
    let router = router(&config, &tls).await?;
    tracing::info!(
        model = %config.model,
        provider = %config.model_provider,
        base_url = %config.model_base_url,
        fallbacks = ?config.model_fallbacks,
        "coding agent ready"
    );
    cap_runtime::serve(router, listener).await?;
    Ok(())
}

/// The gRPC router: the agent and the health service over mutual TLS with `tls`, the
/// sandbox dialled with the same identity.
pub async fn router(config: &Config, tls: &ServiceTls) -> anyhow::Result<Router> {
    let sandbox = GrpcSandbox::shared(tls.channel(&config.agent.sandbox_url)?, MAX_MESSAGE_BYTES);
    let agent = AgentServer::new(CodingAgent::new(config.agent_config()?, sandbox)?);
    let health =
        cap_runtime::health_service::<AgentOrchestratorServer<AgentServer<CodingAgent>>>().await;
    Ok(cap_runtime::grpc_server(tls)?
        .add_service(health)
        .add_service(agent.into_service()))
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
