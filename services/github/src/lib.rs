//! GitHub service: branches, commits, pull requests and reviews; a local forge by default.
//!
//! Serves `cap.github.v1.GitHub` and the gRPC health service over mutual TLS (service name
//! `github`). The embedded default backend is [`cap_forge::Forge`]: bare repositories under
//! `--forge-root`, pull requests and reviews in the SQL store at `--database-url`. The service
//! owns the forge: repositories come into it through `ImportRepository` (or by being placed
//! there by an operator), never by another process writing under its root.
//!
//! With `--backend github` the same contract is served by [`cap_forge::github::GitHubForge`]:
//! a GitHub App (`--github-app-id`, `--github-app-key-file`) on GitHub or GitHub Enterprise
//! (`--github-api-url`); see docs/github-app.md. The audit log stays in `--database-url`.

use std::path::PathBuf;

use anyhow::Context as _;
use cap_audit::AuditLog;
use cap_forge::github::{AppKey, GitHubConfig, GitHubForge};
use cap_forge::{Forge, ForgeConfig};
use cap_mtls::ServiceTls;
use cap_proto::common::v1::file_change::Change;
use cap_proto::github::v1 as pb;
use cap_proto::github::v1::git_hub_server::{GitHub, GitHubServer};
use tonic::transport::server::Router;
use tonic::{Request, Response, Status};

pub mod webhook;

/// The GitHub service's configuration.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "cap-github",
    about = "Branches, commits and pull requests on the local git forge"
)]
pub struct Config {
    /// Flags every service takes.
    #[command(flatten)]
    pub common: cap_runtime::CommonArgs,
    /// The store for pull requests and reviews: `postgres://...` or a SQLite URL; default a
    /// SQLite file `github.db` in the data directory.
    #[arg(long, env = "CAP_GITHUB_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory of the forge's bare repositories; default `forge/` in the data directory.
    #[arg(long, env = "CAP_GITHUB_FORGE_ROOT")]
    pub forge_root: Option<PathBuf>,
    /// Base URL of the dashboard; pull request URLs are `{public_url}/#/pull-requests/{id}` (the dashboard's route).
    #[arg(long, env = "CAP_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
    pub public_url: String,
    /// Where the audit log's Ed25519 signing key is kept (made on first start); the fleet
    /// gives the supervisors' so one public key verifies both. Default the data dir.
    #[arg(long, env = "CAP_AUDIT_KEY_DIR")]
    pub audit_key_dir: Option<PathBuf>,
    /// Which forge serves the contract: the embedded local forge, or GitHub through a GitHub
    /// App.
    #[arg(long, env = "CAP_GITHUB_BACKEND", value_enum, default_value_t = BackendKind::Local)]
    pub backend: BackendKind,
    /// The GitHub App's id (`--backend github`).
    #[arg(long, env = "CAP_GITHUB_APP_ID")]
    pub github_app_id: Option<u64>,
    /// The PEM file of the GitHub App's private key (`--backend github`); read once at start,
    /// never logged.
    #[arg(long, env = "CAP_GITHUB_APP_KEY_FILE")]
    pub github_app_key_file: Option<PathBuf>,
    /// GitHub's REST API: `https://api.github.com`, or `https://HOST/api/v3` for GitHub
    /// Enterprise Server.
    #[arg(long, env = "CAP_GITHUB_API_URL", default_value = cap_forge::github::DEFAULT_API_URL)]
    pub github_api_url: String,
    /// Labels put on every pull request opened on GitHub (comma-separated; empty for none).
    #[arg(
        long,
        env = "CAP_GITHUB_LABELS",
        value_delimiter = ',',
        default_value = "coding-assistant"
    )]
    pub github_labels: Vec<String>,
    /// Where the GitHub forge keeps its bare copies of repositories; default `github-cache/`
    /// in the data directory.
    #[arg(long, env = "CAP_GITHUB_CACHE_DIR")]
    pub github_cache_dir: Option<PathBuf>,
    /// Where GitHub webhook deliveries are received (`POST /webhooks/github`, plain HTTP:
    /// GitHub has no client certificate of the fleet's; put TLS in front). Off when unset.
    #[arg(long, env = "CAP_GITHUB_WEBHOOK_LISTEN")]
    pub webhook_listen: Option<std::net::SocketAddr>,
    /// The file holding the webhook secret (needed with `--webhook-listen`, unless
    /// `CAP_GITHUB_WEBHOOK_SECRET` holds it); read once, never logged.
    #[arg(long, env = "CAP_GITHUB_WEBHOOK_SECRET_FILE")]
    pub webhook_secret_file: Option<PathBuf>,
}

/// The forge behind the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// Bare repositories on disk, pull requests in the SQL store (the embedded default).
    Local,
    /// GitHub (or GitHub Enterprise Server) through a GitHub App.
    Github,
}

impl Config {
    /// The forge settings these flags describe, defaults filled in from the data directory.
    pub fn forge_config(&self) -> ForgeConfig {
        let data_dir = &self.common.data_dir;
        ForgeConfig {
            root: self
                .forge_root
                .clone()
                .unwrap_or_else(|| data_dir.join("forge")),
            database_url: self
                .database_url
                .clone()
                .unwrap_or_else(|| cap_storage::sqlite_url(&data_dir.join("github.db"))),
            public_url: self.public_url.clone(),
        }
    }

    /// The GitHub forge's settings (`--backend github`); the App id and key are required.
    pub fn github_config(&self) -> anyhow::Result<GitHubConfig> {
        let app_id = self
            .github_app_id
            .context("--backend github needs --github-app-id (CAP_GITHUB_APP_ID)")?;
        let key_file = self
            .github_app_key_file
            .as_deref()
            .context("--backend github needs --github-app-key-file (CAP_GITHUB_APP_KEY_FILE)")?;
        let key = AppKey::read(key_file)?;
        let cache_dir = self
            .github_cache_dir
            .clone()
            .unwrap_or_else(|| self.common.data_dir.join("github-cache"));
        let mut config = GitHubConfig::new(app_id, key, cache_dir);
        config.api_url = self.github_api_url.clone();
        config.labels = self
            .github_labels
            .iter()
            .map(|label| label.trim().to_owned())
            .filter(|label| !label.is_empty())
            .collect();
        Ok(config)
    }
}

/// Serves the GitHub service until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let tls = config.common.tls("github")?;
    // The default SQLite file lives there, and SQLite creates files but not directories.
    std::fs::create_dir_all(&config.common.data_dir)?;
    let forge_config = config.forge_config();
    let key_dir = config
        .audit_key_dir
        .as_deref()
        .unwrap_or(&config.common.data_dir);
    // Reviews and merges are recorded beside the pull requests, in the same database.
    let audit = AuditLog::open(
        &forge_config.database_url,
        Some(cap_audit::Signer::load_or_create(key_dir)?),
        cap_audit::AuditConfig::default(),
    )
    .await?;
    audit.spawn_checkpoints();
    let backend = match config.backend {
        BackendKind::Local => Backend::Local(Forge::open(forge_config.clone()).await?),
        BackendKind::Github => {
            let github = config.github_config()?;
            tracing::info!(app_id = github.app_id, api_url = %github.api_url, "serving GitHub through the GitHub App");
            Backend::GitHub(GitHubForge::new(github)?)
        }
    };
    if let Some(address) = config.webhook_listen {
        let secret = webhook_secret(&config, &process_env())?;
        let deliveries = cap_forge::webhook::Deliveries::open(&forge_config.database_url).await?;
        let state = webhook::WebhookState::new(secret, deliveries, backend.clone(), audit.clone());
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen for webhooks on {address}"))?;
        tracing::info!(%address, "receiving GitHub webhooks on /webhooks/github");
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, webhook::router(state)).await {
                tracing::error!(%error, "webhook listener stopped");
            }
        });
    }
    let listener = config.common.bind().await?;
    cap_runtime::serve(router(&tls, backend, audit).await?, listener).await?;
    Ok(())
}

/// The environment variables the service reads itself (beyond clap's).
fn process_env() -> std::collections::HashMap<String, String> {
    std::env::vars()
        .filter(|(name, _)| name == WEBHOOK_SECRET_ENV)
        .collect()
}

/// The environment variable that may hold the webhook secret itself.
pub const WEBHOOK_SECRET_ENV: &str = "CAP_GITHUB_WEBHOOK_SECRET";

/// The webhook secret: from `--webhook-secret-file`, else from [`WEBHOOK_SECRET_ENV`] in
/// `env` (a map, so tests need not set the process's environment). Never logged.
pub fn webhook_secret(
    config: &Config,
    env: &std::collections::HashMap<String, String>,
) -> anyhow::Result<Vec<u8>> {
    let secret = match &config.webhook_secret_file {
        Some(path) => std::fs::read(path)
            .with_context(|| format!("cannot read the webhook secret file {}", path.display()))?,
        None => env
            .get(WEBHOOK_SECRET_ENV)
            .map(|s| s.as_bytes().to_vec())
            .context(
                "--webhook-listen needs --webhook-secret-file (CAP_GITHUB_WEBHOOK_SECRET_FILE) \
                 or CAP_GITHUB_WEBHOOK_SECRET",
            )?,
    };
    // A file's trailing newline is not part of the secret GitHub was given.
    let trimmed = secret.trim_ascii().to_vec();
    anyhow::ensure!(!trimmed.is_empty(), "the webhook secret is empty");
    Ok(trimmed)
}

/// The service's gRPC router (GitHub + health, mutual TLS from `tls`), ready to serve on any
/// listener; tests serve it in-process on port 0.
pub async fn router(
    tls: &ServiceTls,
    backend: impl Into<Backend>,
    audit: AuditLog,
) -> anyhow::Result<Router> {
    Ok(cap_runtime::grpc_server(tls)?
        .add_service(cap_runtime::health_service::<GitHubServer<GitHubService>>().await)
        .add_service(GitHubServer::new(GitHubService::new(backend, audit))))
}

/// The forge the service speaks to.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The embedded local forge.
    Local(Forge),
    /// GitHub through a GitHub App.
    GitHub(GitHubForge),
}

impl From<Forge> for Backend {
    fn from(forge: Forge) -> Self {
        Self::Local(forge)
    }
}

impl From<GitHubForge> for Backend {
    fn from(forge: GitHubForge) -> Self {
        Self::GitHub(forge)
    }
}

/// Calls the same operation on whichever forge `$backend` holds.
macro_rules! on_backend {
    ($backend:expr, $forge:ident => $call:expr) => {
        match $backend {
            Backend::Local($forge) => $call,
            Backend::GitHub($forge) => $call,
        }
    };
}

/// The `GitHub` gRPC service backed by the local forge or by GitHub.
#[derive(Debug, Clone)]
pub struct GitHubService {
    backend: Backend,
    /// Who reviewed and merged what.
    audit: AuditLog,
}

impl GitHubService {
    /// A service over `backend`, recording reviews and merges in `audit`.
    pub fn new(backend: impl Into<Backend>, audit: AuditLog) -> Self {
        Self {
            backend: backend.into(),
            audit,
        }
    }

    /// Records a human's action on `pr`, trying again while the store's trouble passes.
    /// The action has taken effect; when even that fails the caller is told so (and the log
    /// holds the whole record), rather than answered as if all were kept.
    async fn record(
        &self,
        actor: &str,
        action: &str,
        pr: &cap_forge::PullRequest,
        details: serde_json::Value,
    ) -> Result<(), Status> {
        let entry = cap_audit::Entry::new(actor, action, &pr.task_id, details);
        self.audit
            .append_retrying(&[entry])
            .await
            .map(drop)
            .map_err(|_| {
                Status::unavailable(format!(
                    "{action} of pull request {} took effect but its audit record could not \
                     be written; the service log holds it",
                    pr.pull_request_id
                ))
            })
    }
}

#[tonic::async_trait]
impl GitHub for GitHubService {
    async fn get_repository(
        &self,
        request: Request<pb::GetRepositoryRequest>,
    ) -> Result<Response<pb::Repository>, Status> {
        let request = request.into_inner();
        let repository =
            on_backend!(&self.backend, forge => forge.get_repository(&request.repository_id).await)
                .map_err(status)?;
        Ok(Response::new(repository_message(repository)))
    }

    async fn import_repository(
        &self,
        request: Request<pb::ImportRepositoryRequest>,
    ) -> Result<Response<pb::ImportRepositoryResponse>, Status> {
        let request = request.into_inner();
        let default_branch = match request.default_branch.as_str() {
            "" => "main",
            branch => branch,
        };
        let message = match request.message.as_str() {
            "" => format!("Import {}", request.repository_id),
            message => message.to_owned(),
        };
        let files = request
            .files
            .into_iter()
            .map(|file| cap_forge::ImportFile {
                path: file.path,
                content: file.content,
                executable: file.executable,
            })
            .collect();
        let Backend::Local(forge) = &self.backend else {
            return Err(status(cap_forge::Error::Unsupported(
                "ImportRepository is for the local forge; on GitHub, create the repository \
                 there and install the App on it",
            )));
        };
        let imported = forge
            .import_files(&request.repository_id, default_branch, &message, files)
            .await
            .map_err(status)?;
        let (repository, created) = match imported {
            cap_forge::Imported::Created(repository) => (repository, true),
            cap_forge::Imported::Unchanged(repository) => (repository, false),
        };
        Ok(Response::new(pb::ImportRepositoryResponse {
            repository: Some(repository_message(repository)),
            created,
        }))
    }

    async fn create_branch(
        &self,
        request: Request<pb::CreateBranchRequest>,
    ) -> Result<Response<pb::CreateBranchResponse>, Status> {
        let request = request.into_inner();
        let head_sha = on_backend!(&self.backend, forge => forge
            .create_branch(&request.repository_id, &request.branch, &request.from_sha)
            .await)
        .map_err(status)?;
        Ok(Response::new(pb::CreateBranchResponse {
            branch: request.branch,
            head_sha,
        }))
    }

    async fn commit_changes(
        &self,
        request: Request<pb::CommitChangesRequest>,
    ) -> Result<Response<pb::CommitChangesResponse>, Status> {
        let request = request.into_inner();
        let changes = request
            .changes
            .into_iter()
            .map(|change| {
                let content = match change.change {
                    Some(Change::Content(content)) => Some(content),
                    Some(Change::Deleted(true)) => None,
                    Some(Change::Deleted(false)) | None => {
                        return Err(Status::invalid_argument(format!(
                            "change of {:?} has neither content nor deleted = true",
                            change.path
                        )));
                    }
                };
                Ok(cap_forge::FileChange {
                    path: change.path,
                    content,
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let commit_sha = on_backend!(&self.backend, forge => forge
            .commit_changes(
                &request.repository_id,
                &request.branch,
                &request.message,
                changes,
            )
            .await)
        .map_err(status)?;
        Ok(Response::new(pb::CommitChangesResponse { commit_sha }))
    }

    async fn open_pull_request(
        &self,
        request: Request<pb::OpenPullRequestRequest>,
    ) -> Result<Response<pb::PullRequest>, Status> {
        let r = request.into_inner();
        let pr = on_backend!(&self.backend, forge => if r.draft {
            forge
                .open_draft_pull_request(
                    &r.repository_id,
                    &r.head_branch,
                    &r.base_branch,
                    &r.title,
                    &r.body,
                    &r.task_id,
                )
                .await
        } else {
            forge
                .open_pull_request(
                    &r.repository_id,
                    &r.head_branch,
                    &r.base_branch,
                    &r.title,
                    &r.body,
                    &r.task_id,
                )
                .await
        })
        .map_err(status)?;
        Ok(Response::new(pull_request(pr)))
    }

    async fn get_pull_request(
        &self,
        request: Request<pb::GetPullRequestRequest>,
    ) -> Result<Response<pb::PullRequest>, Status> {
        let id = request.into_inner().pull_request_id;
        let pr = on_backend!(&self.backend, forge => forge.get_pull_request(&id).await)
            .map_err(status)?;
        Ok(Response::new(pull_request(pr)))
    }

    async fn list_pull_requests(
        &self,
        request: Request<pb::ListPullRequestsRequest>,
    ) -> Result<Response<pb::ListPullRequestsResponse>, Status> {
        let repository_id = request.into_inner().repository_id;
        let filter = (!repository_id.is_empty()).then_some(repository_id.as_str());
        let pulls = on_backend!(&self.backend, forge => forge.list_pull_requests(filter).await)
            .map_err(status)?;
        Ok(Response::new(pb::ListPullRequestsResponse {
            pull_requests: pulls.into_iter().map(pull_request).collect(),
        }))
    }

    async fn review_pull_request(
        &self,
        request: Request<pb::ReviewPullRequestRequest>,
    ) -> Result<Response<pb::PullRequest>, Status> {
        let actor = cap_runtime::acting_user(&request);
        let request = request.into_inner();
        let action = match pb::ReviewAction::try_from(request.action) {
            Ok(pb::ReviewAction::Approve) => cap_forge::ReviewAction::Approve,
            Ok(pb::ReviewAction::RequestChanges) => cap_forge::ReviewAction::RequestChanges,
            Ok(pb::ReviewAction::Reject) => cap_forge::ReviewAction::Reject,
            Ok(pb::ReviewAction::Unspecified) | Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "review action {} is not APPROVE, REQUEST_CHANGES or REJECT",
                    request.action
                )));
            }
        };
        let comments = request
            .comments
            .into_iter()
            .map(|c| cap_forge::ReviewComment {
                file: c.file,
                line: c.line,
                body: c.body,
            })
            .collect::<Vec<_>>();
        let comment_count = comments.len();
        let pr = on_backend!(&self.backend, forge => forge
            .review(
                &request.pull_request_id,
                action,
                &request.reviewer,
                comments,
            )
            .await)
        .map_err(status)?;
        let details = serde_json::json!({
            "pull_request_id": pr.pull_request_id,
            "review": format!("{action:?}"),
            "reviewer": request.reviewer,
            "comments": comment_count,
            "head_sha": pr.head_sha,
            "state": pr.state.to_string(),
        });
        self.record(&actor, "pull_request.reviewed", &pr, details)
            .await?;
        Ok(Response::new(pull_request(pr)))
    }

    async fn merge_pull_request(
        &self,
        request: Request<pb::MergePullRequestRequest>,
    ) -> Result<Response<pb::PullRequest>, Status> {
        let actor = cap_runtime::acting_user(&request);
        let id = request.into_inner().pull_request_id;
        let pr = on_backend!(&self.backend, forge => forge.merge(&id).await).map_err(status)?;
        let details = serde_json::json!({
            "pull_request_id": pr.pull_request_id,
            "head_sha": pr.head_sha,
            "base_branch": pr.base_branch,
        });
        self.record(&actor, "pull_request.merged", &pr, details)
            .await?;
        Ok(Response::new(pull_request(pr)))
    }

    async fn get_required_checks(
        &self,
        request: Request<pb::GetRequiredChecksRequest>,
    ) -> Result<Response<pb::GetRequiredChecksResponse>, Status> {
        let id = request.into_inner().pull_request_id;
        let checks = on_backend!(&self.backend, forge => forge.required_checks(&id).await)
            .map_err(status)?;
        Ok(Response::new(pb::GetRequiredChecksResponse {
            head_sha: checks.head_sha,
            state: checks.state.as_str().to_owned(),
            checks: checks
                .checks
                .into_iter()
                .map(|check| pb::RequiredCheck {
                    name: check.name,
                    state: check.state.as_str().to_owned(),
                    summary: check.summary,
                    url: check.url,
                })
                .collect(),
        }))
    }
}

fn repository_message(repository: cap_forge::Repository) -> pb::Repository {
    pb::Repository {
        repository_id: repository.repository_id,
        clone_url: repository.clone_url,
        default_branch: repository.default_branch,
        head_sha: repository.head_sha,
    }
}

fn pull_request(pr: cap_forge::PullRequest) -> pb::PullRequest {
    pb::PullRequest {
        pull_request_id: pr.pull_request_id,
        repository_id: pr.repository_id,
        number: pr.number,
        title: pr.title,
        body: pr.body,
        head_branch: pr.head_branch,
        base_branch: pr.base_branch,
        head_sha: pr.head_sha,
        base_sha: pr.base_sha,
        state: pr.state.as_str().to_owned(),
        draft: pr.draft,
        task_id: pr.task_id,
        diff: pr.diff,
        reviews: pr.reviews.into_iter().map(review).collect(),
        url: pr.url,
        created_at_ms: pr.created_at_ms,
        updated_at_ms: pr.updated_at_ms,
    }
}

fn review(review: cap_forge::Review) -> pb::Review {
    let action = match review.action {
        cap_forge::ReviewAction::Approve => pb::ReviewAction::Approve,
        cap_forge::ReviewAction::RequestChanges => pb::ReviewAction::RequestChanges,
        cap_forge::ReviewAction::Reject => pb::ReviewAction::Reject,
    };
    pb::Review {
        review_id: review.review_id,
        action: action.into(),
        reviewer: review.reviewer,
        comments: review
            .comments
            .into_iter()
            .map(|c| pb::ReviewComment {
                file: c.file,
                line: c.line,
                body: c.body,
            })
            .collect(),
        created_at_ms: review.created_at_ms,
    }
}

/// The one place forge errors become gRPC statuses. Callers get the error's own message,
/// except for internal failures: those are logged with their cause chain and the caller gets a
/// short message (a git command line or a database error is no business of the client's).
pub fn status(error: cap_forge::Error) -> Status {
    use cap_forge::Error as E;
    let message = error.to_string();
    match error {
        E::InvalidRepositoryId { .. }
        | E::InvalidBranch { .. }
        | E::InvalidPath { .. }
        | E::InvalidSha { .. }
        | E::InvalidArgument { .. }
        | E::EmptyChangeSet
        | E::WebhookPayload(_) => Status::invalid_argument(message),
        E::WebhookSignature(_) => Status::unauthenticated(message),
        E::RepositoryNotFound(_)
        | E::GitHubNotInstalled(_)
        | E::BranchNotFound { .. }
        | E::CommitNotFound { .. }
        | E::PathNotFound { .. }
        | E::PullRequestNotFound(_) => Status::not_found(message),
        E::RepositoryExists(_) | E::BranchExists { .. } | E::PullRequestExists { .. } => {
            Status::already_exists(message)
        }
        // `RefMoved` (a concurrent writer won) would fit ABORTED, but the gateway shows
        // FAILED_PRECONDITION as 409 Conflict, which is what it is to a caller; the message
        // says to retry.
        E::NoChanges(_)
        | E::PullRequestClosed { .. }
        | E::NotApproved { .. }
        | E::MergeConflict { .. }
        | E::RefMoved { .. }
        | E::GitHubRefused { .. } => Status::failed_precondition(message),
        E::Unsupported(_) => Status::unimplemented(message),
        // Each message names GitHub, so a task's error says which service is down.
        E::GitHubUnavailable(_) | E::GitHubCircuitOpen(_) | E::GitHubTransport { .. } => {
            tracing::warn!(error = %cap_errors::Chain(&error), "GitHub unavailable");
            Status::unavailable(message)
        }
        E::GitHubRateLimited { .. } => Status::resource_exhausted(message),
        // GitHub's own message (an unexpected status for the call) is no secret of ours.
        E::GitHubApi { .. } => {
            tracing::error!(error = %cap_errors::Chain(&error), "unexpected GitHub answer");
            Status::internal(message)
        }
        E::Git { .. }
        | E::GitOutput { .. }
        | E::GitProcess(_)
        | E::Io { .. }
        | E::Storage(_)
        | E::Database(_)
        | E::CorruptRecord { .. }
        | E::GitHubKey { .. }
        | E::GitHubResponse { .. } => {
            tracing::error!(error = %cap_errors::Chain(&error), "github service internal error");
            Status::internal("internal error in the github service (details in its log)")
        }
    }
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
