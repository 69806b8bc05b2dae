//! Gateway: the platform's REST and WebSocket API (PRD 13.1) and its dashboard, served with
//! axum; inside, a gRPC client of the supervisor (tasks, events) and of the github service
//! (pull requests, reviews), both over mutual TLS.
//!
//! The gateway owns no task or pull-request data: every route reads and writes through the
//! owning service's RPCs. Its own gRPC listener serves only the health service.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::routing::{get, post};

mod dashboard;
pub mod error;
pub mod events;
pub mod input;
pub mod pull_requests;
mod state;
pub mod tasks;
mod ws;

pub use error::{Error, Result};
pub use state::{AppState, EventsPolicy};

/// Largest request body accepted (a 20 000-character prompt is at most 80 KB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The gateway's flags.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "cap-gateway",
    about = "REST and WebSocket API and dashboard of the platform"
)]
pub struct Config {
    /// Common flags; `--listen` serves the gRPC health service over mTLS as `gateway`.
    #[command(flatten)]
    pub common: cap_runtime::CommonArgs,
    /// Address to serve HTTP (REST, WebSocket, dashboard) on; port 0 picks a free port.
    #[arg(long, env = "CAP_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    pub http_listen: SocketAddr,
    /// File to write the bound HTTP address to once listening.
    #[arg(long, env = "CAP_HTTP_ADDR_FILE")]
    pub http_addr_file: Option<PathBuf>,
    /// The supervisor's gRPC URL, e.g. `https://127.0.0.1:50051`.
    #[arg(long, env = "CAP_SUPERVISOR_URL")]
    pub supervisor_url: String,
    /// The github service's gRPC URL, e.g. `https://127.0.0.1:50052`.
    #[arg(long, env = "CAP_GITHUB_URL")]
    pub github_url: String,
}

/// The name the gateway's health status is reported under.
#[derive(Debug, Clone, Copy)]
pub struct GatewayHealth;

impl tonic::server::NamedService for GatewayHealth {
    const NAME: &'static str = "gateway";
}

/// The HTTP application: REST API, WebSocket streams, dashboard, JSON 404/405.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(dashboard::index))
        .route("/assets/app.js", get(dashboard::script))
        .route("/assets/style.css", get(dashboard::style))
        .route("/healthz", get(healthz))
        .route("/api/v1/tasks", post(tasks::submit).get(tasks::list))
        .route("/api/v1/tasks/{task_id}", get(tasks::get))
        .route("/api/v1/tasks/{task_id}/events", get(tasks::events))
        .route("/api/v1/tasks/{task_id}/interrupt", post(tasks::interrupt))
        .route("/api/v1/tasks/{task_id}/resume", post(tasks::resume))
        .route(
            "/api/v1/tasks/{task_id}/constraints",
            post(tasks::add_constraint),
        )
        .route("/api/v1/tasks/{task_id}/abort", post(tasks::abort))
        .route("/api/v1/tasks/{task_id}/approve", post(tasks::approve))
        .route("/api/v1/tasks/{task_id}/reject", post(tasks::reject))
        .route("/api/v1/pull-requests", get(pull_requests::list))
        .route("/api/v1/pull-requests/{pr_id}", get(pull_requests::get))
        .route(
            "/api/v1/pull-requests/{pr_id}/review",
            post(pull_requests::review),
        )
        .route(
            "/api/v1/pull-requests/{pr_id}/merge",
            post(pull_requests::merge),
        )
        .route("/ws/tasks/{task_id}/stream", get(ws::stream))
        .route("/ws/tasks/{task_id}/logs", get(ws::stream))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

async fn not_found(uri: Uri) -> Error {
    Error::RouteNotFound {
        path: uri.path().to_owned(),
    }
}

async fn method_not_allowed(method: Method) -> Error {
    Error::MethodNotAllowed {
        method: method.to_string(),
    }
}

/// Runs the gateway until SIGINT or SIGTERM: HTTP on `--http-listen`, the gRPC health
/// service on `--listen`.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let tls = config.common.tls("gateway")?;
    let state = AppState::connect(&tls, &config.supervisor_url, &config.github_url)?;
    // HTTP first: once the gRPC address file appears (what launchers wait for), both are up.
    let http_listener =
        cap_runtime::bind(config.http_listen, config.http_addr_file.as_deref()).await?;
    let grpc_listener = config.common.bind().await?;
    let health = cap_runtime::health_service::<GatewayHealth>().await;
    let grpc = cap_runtime::grpc_server(&tls)?.add_service(health);

    let stopping = state.clone();
    let http = axum::serve(http_listener, app(state)).with_graceful_shutdown(async move {
        cap_runtime::shutdown_signal().await;
        // Open WebSockets would otherwise hold the graceful shutdown open.
        stopping.shutdown();
    });
    tokio::try_join!(
        async {
            cap_runtime::serve(grpc, grpc_listener)
                .await
                .map_err(anyhow::Error::from)
        },
        async { http.await.map_err(anyhow::Error::from) },
    )?;
    Ok(())
}
