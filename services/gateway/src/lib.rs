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
use axum::routing::{get, patch, post};

pub mod admin;
pub mod auth;
mod dashboard;
pub mod error;
pub mod events;
mod github_api;
pub mod input;
pub mod oauth;
pub mod oversight;
pub mod pull_requests;
mod state;
pub mod tasks;
mod ws;

pub use error::{Error, Result};
pub use state::{AppState, DEFAULT_REQUESTS_PER_MINUTE, EventsPolicy, Limits};

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
    /// The gateway's own store of users, sessions and tokens (`postgres://...`); a SQLite
    /// file `gateway.db` in the data directory when unset.
    #[arg(long, env = "CAP_GATEWAY_DATABASE_URL")]
    pub database_url: Option<String>,
    /// A repository id or glob the default organisation may target, added to its allow-list
    /// at start (repeatable; Admins manage the rest through `/api/v1/allow-list`).
    #[arg(long = "allow-repository", value_name = "PATTERN")]
    pub allow_repositories: Vec<String>,
    /// Requests a minute each user may send.
    #[arg(long, env = "CAP_REQUESTS_PER_MINUTE", default_value_t = DEFAULT_REQUESTS_PER_MINUTE)]
    pub requests_per_minute: u32,
    /// Mark session cookies `Secure` (the gateway is reached over HTTPS). Requests that
    /// arrive through a proxy saying `X-Forwarded-Proto: https` get it anyway.
    #[arg(long, env = "CAP_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// Where the audit log's Ed25519 signing key is kept (made on first start); the fleet
    /// gives the supervisors', so one public key verifies every log. Default the data dir.
    #[arg(long, env = "CAP_AUDIT_KEY_DIR")]
    pub audit_key_dir: Option<std::path::PathBuf>,
    /// Sign-in with GitHub (off without a client id).
    #[command(flatten)]
    pub github_oauth: oauth::OAuthArgs,
}

/// The name the gateway's health status is reported under.
#[derive(Debug, Clone, Copy)]
pub struct GatewayHealth;

impl tonic::server::NamedService for GatewayHealth {
    const NAME: &'static str = "gateway";
}

/// The HTTP application: REST API, WebSocket streams, dashboard, JSON 404/405; every route
/// behind [`auth::guard`].
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
        .route(
            "/api/v1/tasks/{task_id}/checkpoints",
            get(tasks::checkpoints),
        )
        .route("/api/v1/tasks/{task_id}/rollback", post(tasks::rollback))
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
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/auth/me", get(auth::me))
        .route("/api/v1/auth/github", get(oauth::explain))
        .route(oauth::START_PATH, get(oauth::start))
        .route(oauth::CALLBACK_PATH, get(oauth::callback))
        .route("/api/v1/users", get(admin::users).post(admin::add_user))
        .route("/api/v1/users/{name}", patch(admin::change_user))
        .route(
            "/api/v1/tokens",
            get(admin::tokens).post(admin::create_token),
        )
        .route(
            "/api/v1/tokens/{token_id}",
            axum::routing::delete(admin::revoke_token),
        )
        .route(
            "/api/v1/allow-list",
            get(admin::allow_list)
                .post(admin::allow)
                .delete(admin::disallow),
        )
        .route("/api/v1/audit", get(oversight::audit))
        .route("/api/v1/quarantine", get(oversight::quarantined))
        .route(
            "/api/v1/quarantine/{task_id}/files",
            get(oversight::quarantined_file),
        )
        // After routing, so the guard sees which route matched; the fallbacks stay open.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
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
    // The fleet gives each service its own data directory.
    let identity_dir = config.common.data_dir.clone();
    std::fs::create_dir_all(&identity_dir)?;
    let database_url = config
        .database_url
        .clone()
        .unwrap_or_else(|| cap_storage::sqlite_url(&identity_dir.join("gateway.db")));
    let store = cap_identity::IdentityStore::open(&database_url).await?;
    let key_dir = config.audit_key_dir.as_deref().unwrap_or(&identity_dir);
    // Admins' changes and sign-ins, beside the users and tokens they concern.
    let audit = cap_audit::AuditLog::open(
        &database_url,
        Some(cap_audit::Signer::load_or_create(key_dir)?),
        cap_audit::AuditConfig::default(),
    )
    .await?;
    audit.spawn_checkpoints();
    store.ensure_first_admin(&identity_dir).await?;
    for pattern in &config.allow_repositories {
        store
            .allow_repository(&cap_identity::AllowedRepository {
                organisation: cap_identity::DEFAULT_ORGANISATION.to_owned(),
                pattern: pattern.clone(),
                allow_self_approval: false,
            })
            .await?;
    }
    let auth = cap_identity::Authenticator::new(store, &identity_dir)?;
    let per_minute = std::num::NonZeroU32::new(config.requests_per_minute)
        .ok_or_else(|| anyhow::anyhow!("--requests-per-minute must be at least 1"))?;
    let mut state = AppState::connect(&tls, &config.supervisor_url, &config.github_url, auth)?
        .with_limits(Limits::new(per_minute))
        .with_secure_cookies(config.secure_cookies)
        .with_audit(audit);
    if let Some(oauth) = oauth::GitHubOAuth::from_args(&config.github_oauth, &identity_dir)? {
        tracing::info!("GitHub sign-in is on");
        state = state.with_github_oauth(oauth);
    }
    // HTTP first: once the gRPC address file appears (what launchers wait for), both are up.
    let http_listener =
        cap_runtime::bind(config.http_listen, config.http_addr_file.as_deref()).await?;
    let grpc_listener = config.common.bind().await?;
    let health = cap_runtime::health_service::<GatewayHealth>().await;
    let grpc = cap_runtime::grpc_server(&tls)?.add_service(health);

    let stopping = state.clone();
    let http = axum::serve(
        http_listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
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
