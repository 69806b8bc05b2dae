//! Context agent service: AgentOrchestrator that indexes a task's workspace and reports the
//! context the planner needs, and `ContextService`, the model's analysis tools over indexed
//! workspaces.
//!
//! Flags, wiring and the gRPC doors only: [`cap_agent_server::AgentServer`] serves the
//! [`cap_context::ContextAgent`] role (what it copies, indexes and reports is documented
//! there); each `ContextService` RPC calls the agent's method of the same name.

use cap_agent_server::{AgentServer, to_status};
use cap_context::{ContextAgent, Limits};
use cap_proto::agent::v1::agent_orchestrator_server::AgentOrchestratorServer;
use cap_proto::context::v1 as pb;
use cap_proto::context::v1::context_service_server::{ContextService, ContextServiceServer};
use cap_sandbox_client::{GrpcSandbox, MAX_MESSAGE_BYTES};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

/// The service's name in the fleet (its TLS identity).
pub const SERVICE_NAME: &str = "context-agent";

/// The context agent's configuration.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "cap-context-agent",
    about = "Indexes a workspace and reports its context"
)]
pub struct Config {
    /// Flags every agent service takes.
    #[command(flatten)]
    pub agent: cap_runtime::AgentArgs,
    /// Files larger than this are not copied or indexed, in bytes.
    #[arg(long, env = "CAP_CONTEXT_MAX_FILE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_file_bytes: u64,
    /// At most this many files are copied from a workspace.
    #[arg(long, env = "CAP_CONTEXT_MAX_FILES", default_value_t = 50_000)]
    pub max_files: usize,
    /// An OpenAI-compatible embeddings endpoint's base URL (`http://host:port/v1`); with it
    /// `semantic_search` fuses vector similarity with full-text ranking, without it full text
    /// alone ranks.
    #[arg(long, env = "CAP_EMBEDDINGS_BASE_URL", requires = "embeddings_model")]
    pub embeddings_base_url: Option<String>,
    /// The embedding model's name at that endpoint.
    #[arg(long, env = "CAP_EMBEDDINGS_MODEL")]
    pub embeddings_model: Option<String>,
    /// The endpoint's bearer token, when it needs one.
    #[arg(long, env = "CAP_EMBEDDINGS_API_KEY", hide_env_values = true)]
    pub embeddings_api_key: Option<String>,
    /// Chunks sent per embeddings request.
    #[arg(long, env = "CAP_EMBEDDINGS_BATCH_SIZE", default_value_t = cap_index::DEFAULT_BATCH_SIZE)]
    pub embeddings_batch_size: usize,
}

impl Config {
    /// The embeddings endpoint, when one is configured; checked, so a bad one stops the start.
    pub fn embeddings(&self) -> cap_index::Result<Option<cap_index::EmbeddingsConfig>> {
        let Some(base_url) = &self.embeddings_base_url else {
            return Ok(None);
        };
        let config = cap_index::EmbeddingsConfig {
            base_url: base_url.clone(),
            model: self.embeddings_model.clone().unwrap_or_default(),
            api_key: self.embeddings_api_key.clone(),
            batch_size: self.embeddings_batch_size,
        };
        config.validate()?;
        Ok(Some(config))
    }
}

/// Serves the context agent until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let listener = config.agent.common.bind().await?;
    serve(config, listener).await
}

/// Serves the context agent on an already bound listener (tests bind port 0 themselves).
pub async fn serve(config: Config, listener: TcpListener) -> anyhow::Result<()> {
    let tls = config.agent.common.tls(SERVICE_NAME)?;
    let sandbox = GrpcSandbox::shared(tls.channel(&config.agent.sandbox_url)?, MAX_MESSAGE_BYTES);
    let limits = Limits {
        max_file_bytes: config.max_file_bytes,
        max_files: config.max_files,
    };
    let store = config.agent.common.data_dir.join("context-index");
    let agent = ContextAgent::new(sandbox, store, limits, config.embeddings()?);
    // One health service reporting both gRPC services (the runtime's helper names one).
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<AgentOrchestratorServer<AgentServer<ContextAgent>>>()
        .await;
    reporter
        .set_serving::<ContextServiceServer<ContextDoors>>()
        .await;
    let router = cap_runtime::grpc_server(&tls)?
        .add_service(health)
        .add_service(AgentServer::new(agent.clone()).into_service())
        .add_service(ContextServiceServer::new(ContextDoors(agent)));
    cap_runtime::serve(router, listener).await?;
    Ok(())
}

/// `ContextService` over the context agent: each RPC one call of it.
#[derive(Clone)]
pub struct ContextDoors(pub ContextAgent);

/// A call's answer, its error mapped to a status in the adapter's one place.
fn reply<T>(result: cap_context::Result<T>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(|error| to_status(&error))
}

#[tonic::async_trait]
impl ContextService for ContextDoors {
    async fn index_workspace(
        &self,
        request: Request<pb::IndexWorkspaceRequest>,
    ) -> Result<Response<pb::IndexWorkspaceResponse>, Status> {
        reply(self.0.index_workspace(request.into_inner()).await)
    }

    async fn get_file_summary(
        &self,
        request: Request<pb::GetFileSummaryRequest>,
    ) -> Result<Response<pb::GetFileSummaryResponse>, Status> {
        reply(self.0.get_file_summary(request.into_inner()).await)
    }

    async fn find_dependencies(
        &self,
        request: Request<pb::FindDependenciesRequest>,
    ) -> Result<Response<pb::FindDependenciesResponse>, Status> {
        reply(self.0.find_dependencies(request.into_inner()).await)
    }

    async fn semantic_search(
        &self,
        request: Request<pb::SemanticSearchRequest>,
    ) -> Result<Response<pb::SemanticSearchResponse>, Status> {
        reply(self.0.semantic_search(request.into_inner()).await)
    }

    async fn detect_patterns(
        &self,
        request: Request<pb::DetectPatternsRequest>,
    ) -> Result<Response<pb::DetectPatternsResponse>, Status> {
        reply(self.0.detect_patterns(request.into_inner()).await)
    }

    async fn get_repo_map(
        &self,
        request: Request<pb::GetRepoMapRequest>,
    ) -> Result<Response<pb::GetRepoMapResponse>, Status> {
        reply(self.0.get_repo_map(request.into_inner()).await)
    }

    async fn analyze_trace(
        &self,
        request: Request<pb::AnalyzeTraceRequest>,
    ) -> Result<Response<pb::AnalyzeTraceResponse>, Status> {
        reply(self.0.analyze_trace(request.into_inner()).await)
    }

    async fn release_workspace(
        &self,
        request: Request<pb::ReleaseWorkspaceRequest>,
    ) -> Result<Response<pb::ReleaseWorkspaceResponse>, Status> {
        reply(self.0.release_workspace(request.into_inner()).await)
    }
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
