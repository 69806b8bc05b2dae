//! Testing agent service: AgentOrchestrator that runs a repository's own tests in the sandbox.
//!
//! Flags and wiring only: [`cap_agent_server::AgentServer`] serves the
//! [`cap_testing::TestingAgent`] role (its steps, verdict policy and events are documented
//! there) over mutual TLS, with the sandbox dialled with the same identity.

use std::time::Duration;

use cap_agent_server::AgentServer;
use cap_proto::agent::v1::agent_orchestrator_server::AgentOrchestratorServer;
use cap_sandbox_client::{GrpcSandbox, MAX_MESSAGE_BYTES};
use cap_testing::TestingAgent;
use tokio::net::TcpListener;

/// The service's name in the fleet (its TLS identity).
pub const SERVICE_NAME: &str = "testing-agent";

/// The testing agent's configuration.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "cap-testing-agent",
    about = "Runs a repository's own tests in the sandbox"
)]
pub struct Config {
    /// Flags every agent service takes.
    #[command(flatten)]
    pub agent: cap_runtime::AgentArgs,
    /// How long one test run may take before the sandbox kills it, in seconds.
    #[arg(
        long,
        env = "CAP_TEST_TIMEOUT_SECONDS",
        default_value_t = 600,
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub test_timeout_seconds: u64,
}

/// Serves the testing agent until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let listener = config.agent.common.bind().await?;
    serve(config, listener).await
}

/// Serves the testing agent on an already bound listener (tests bind port 0 themselves).
pub async fn serve(config: Config, listener: TcpListener) -> anyhow::Result<()> {
    let tls = config.agent.common.tls(SERVICE_NAME)?;
    let sandbox = GrpcSandbox::shared(tls.channel(&config.agent.sandbox_url)?, MAX_MESSAGE_BYTES);
    let agent = AgentServer::new(TestingAgent::new(
        sandbox,
        Duration::from_secs(config.test_timeout_seconds),
    ));
    let health =
        cap_runtime::health_service::<AgentOrchestratorServer<AgentServer<TestingAgent>>>().await;
    let router = cap_runtime::grpc_server(&tls)?
        .add_service(health)
        .add_service(agent.into_service());
    cap_runtime::serve(router, listener).await?;
    Ok(())
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
