//! The GitHub forge: the same operations as the local [`crate::Forge`], on GitHub through a
//! GitHub App.
//!
//! The App's JWT (RS256, [`AppKey`]) finds each repository's installation and is exchanged for
//! an installation token, kept per installation and renewed `token_renew_before` its expiry.
//! REST calls go through one client ([`api`]) that waits out rate limits and sends 5xx through
//! a circuit breaker. git runs on the host through [`cap_git`]'s hardened runner, on a bare
//! copy of each repository under `cache_dir` that the forge made itself: fetched over HTTPS
//! with the token in an `Authorization` header given to that one command (never in a URL or a
//! file), committed with the local forge's own plumbing, pushed without force. The forge only
//! ever creates and pushes branches under [`BRANCH_PREFIX`], and never one GitHub protects.
//!
//! Pull requests are GitHub's; nothing is stored here. Their id is `owner:name:number`; the
//! task id rides in the body as a hidden marker. A review by a human of the platform is posted
//! as a `COMMENT` review carrying a marker with its verdict and reviewer, because GitHub
//! refuses an App's approval of the App's own pull request; approvals and change requests
//! that humans leave on GitHub itself count as well (the latest verdict wins).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cap_circuit::Breaker;
use cap_git::{Git, Protocol};
use reqwest::{Method, StatusCode};
use tokio::sync::Mutex;

use crate::types::{
    PullRequest, PullRequestState, Repository, Review, ReviewAction, ReviewComment,
};
use crate::{Error, FileChange, Result, validate};

mod api;
mod auth;
mod checks;
pub mod codeowners;
mod json;
mod pulls;
mod repos;
pub mod template;

pub use api::RetryPolicy;
pub use auth::AppKey;
pub use codeowners::{CodeOwners, Reviewers};
pub use pulls::{parse_pull_request_id, pull_request_id};

/// The only branches this forge creates or pushes to (the workflow's branch names).
pub const BRANCH_PREFIX: &str = "coding-assistant/";
/// The most pages of a list read (100 items each): files of a pull request, its reviews, a
/// repository's pull requests.
const MAX_PAGES: usize = 10;
/// Default REST API base URL (GitHub Cloud).
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// The marker of a task id in a pull request's body.
const TASK_MARKER: &str = "<!-- coding-assistant:task ";
/// The marker of a platform review in a review's body.
const REVIEW_MARKER: &str = "<!-- coding-assistant:review ";
const MARKER_END: &str = " -->";

/// How the GitHub forge reaches GitHub.
#[derive(Debug)]
pub struct GitHubConfig {
    /// The App's id (its settings page shows it).
    pub app_id: u64,
    /// The App's private key.
    pub key: AppKey,
    /// REST API base URL: [`DEFAULT_API_URL`], `https://HOST/api/v3` for GitHub Enterprise
    /// Server. `http://` only for a stand-in on loopback; git is then allowed `http://` too.
    pub api_url: String,
    /// Where the bare working copies of repositories are kept (made if missing).
    pub cache_dir: PathBuf,
    /// Labels put on every pull request the forge opens (made by GitHub if missing).
    pub labels: Vec<String>,
    /// How calls are retried.
    pub retry: RetryPolicy,
    /// A token is renewed this long before GitHub lets it expire (tokens live an hour).
    pub token_renew_before: Duration,
    /// 5xx or unreachable answers in a row that open the circuit.
    pub breaker_failures: u32,
    /// How long the open circuit refuses calls before a trial one.
    pub breaker_open_for: Duration,
}

impl GitHubConfig {
    /// A configuration with the defaults: GitHub Cloud, label `coding-assistant`, renewal 5
    /// minutes early, the circuit opening after 5 failures for 30 s.
    pub fn new(app_id: u64, key: AppKey, cache_dir: PathBuf) -> Self {
        Self {
            app_id,
            key,
            api_url: DEFAULT_API_URL.to_owned(),
            cache_dir,
            labels: vec!["coding-assistant".to_owned()],
            retry: RetryPolicy::default(),
            token_renew_before: Duration::from_secs(5 * 60),
            breaker_failures: 5,
            breaker_open_for: Duration::from_secs(30),
        }
    }
}

/// What the forge knows about a repository beyond [`Repository`].
#[derive(Debug)]
pub struct RepositoryMetadata {
    /// Id, clone URL, default branch and its head.
    pub repository: Repository,
    /// Languages by bytes of code, largest first (GitHub's linguist).
    pub languages: Vec<(String, u64)>,
    /// Whether GitHub protects the default branch.
    pub default_branch_protected: bool,
    /// The default branch's required status checks (contexts), when protected.
    pub required_status_checks: Vec<String>,
    /// CODEOWNERS of the default branch, if it has one.
    pub codeowners: Option<CodeOwners>,
    /// The pull request template of the default branch, if it has one.
    pub pull_request_template: Option<String>,
}

/// The GitHub forge. Cheap to clone: clones share tokens, caches and the breaker.
#[derive(Debug, Clone)]
pub struct GitHubForge {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    api: api::Api,
    app_id: u64,
    key: AppKey,
    cache_dir: PathBuf,
    labels: Vec<String>,
    token_renew_before: Duration,
    /// git may speak `http://` (a stand-in), not only `https://`.
    plain_http: bool,
    installations: Mutex<HashMap<String, u64>>,
    tokens: Mutex<auth::TokenCache>,
    /// One git operation at a time on each repository's copy.
    copies: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl GitHubForge {
    /// A forge for `config`; reaches GitHub only when first used.
    pub fn new(config: GitHubConfig) -> Result<Self> {
        let plain_http = match config.api_url.split_once("://") {
            Some(("https", _)) => false,
            Some(("http", _)) => true,
            _ => {
                return Err(Error::InvalidArgument {
                    field: "GitHub API URL",
                    reason: format!("{:?} is not an http(s) URL", config.api_url),
                });
            }
        };
        std::fs::create_dir_all(&config.cache_dir).map_err(|source| Error::Io {
            path: config.cache_dir.clone(),
            source,
        })?;
        let breaker = Arc::new(Breaker::new(
            "GitHub",
            config.breaker_failures,
            config.breaker_open_for,
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                api: api::Api::new(&config.api_url, breaker, config.retry)?,
                app_id: config.app_id,
                key: config.key,
                cache_dir: config.cache_dir,
                labels: config.labels,
                token_renew_before: config.token_renew_before,
                plain_http,
                installations: Mutex::new(HashMap::new()),
                tokens: Mutex::new(auth::TokenCache::default()),
                copies: Mutex::new(HashMap::new()),
            }),
        })
    }

    // ---- authentication ----

    /// An installation token for the repository `owner/name`: the cached one while it is good
    /// for `token_renew_before`, else a new one.
    async fn token(&self, repository_id: &str) -> Result<String> {
        let installation = self.installation(repository_id).await?;
        // Held across the exchange, so concurrent callers wait for one new token.
        let mut tokens = self.inner.tokens.lock().await;
        let now = SystemTime::now();
        if let Some(token) = tokens.fresh(installation, now, self.inner.token_renew_before) {
            return Ok(token.token.clone());
        }
        let reply = self
            .app_call(
                Method::POST,
                &format!("/app/installations/{installation}/access_tokens"),
            )
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            // Uninstalled (or installed again under a new id): look it up afresh next time.
            self.inner
                .installations
                .lock()
                .await
                .retain(|_, id| *id != installation);
            return Err(Error::GitHubNotInstalled(repository_id.to_owned()));
        }
        if reply.status != StatusCode::CREATED {
            return Err(reply.unexpected("installation token"));
        }
        let token: json::AccessToken = reply.json("installation token")?;
        let expires_at =
            auth::parse_timestamp(&token.expires_at).ok_or_else(|| Error::GitHubResponse {
                what: "installation token".into(),
                reason: format!("expires_at {:?} is not RFC 3339", token.expires_at),
            })?;
        tracing::info!(installation, "new GitHub installation token");
        tokens.insert(
            installation,
            auth::InstallationToken {
                token: token.token.clone(),
                expires_at,
            },
        );
        Ok(token.token)
    }

    /// Drops `token` from the cache (whichever installation it was of).
    async fn forget_token(&self, token: &str) {
        self.inner.tokens.lock().await.forget(token);
    }

    /// The App's installation on `owner/name`.
    async fn installation(&self, repository_id: &str) -> Result<u64> {
        if let Some(id) = self.inner.installations.lock().await.get(repository_id) {
            return Ok(*id);
        }
        let reply = self
            .app_call(Method::GET, &format!("/repos/{repository_id}/installation"))
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Err(Error::GitHubNotInstalled(repository_id.to_owned()));
        }
        if reply.status != StatusCode::OK {
            return Err(reply.unexpected("installation"));
        }
        let installation: json::Installation = reply.json("installation")?;
        self.inner
            .installations
            .lock()
            .await
            .insert(repository_id.to_owned(), installation.id);
        Ok(installation.id)
    }

    /// A call as the App itself (its JWT).
    async fn app_call(&self, method: Method, path: &str) -> Result<api::Reply> {
        let jwt = self
            .inner
            .key
            .app_jwt(self.inner.app_id, SystemTime::now())?;
        self.inner
            .api
            .call(method, path, &format!("Bearer {jwt}"), None, api::JSON)
            .await
    }

    /// A call on `repository_id` with its installation token.
    async fn call(
        &self,
        repository_id: &str,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        accept: &str,
    ) -> Result<api::Reply> {
        let token = self.token(repository_id).await?;
        let reply = self
            .inner
            .api
            .call(
                method.clone(),
                path,
                &format!("Bearer {token}"),
                body.as_ref(),
                accept,
            )
            .await?;
        if reply.status != StatusCode::UNAUTHORIZED {
            return Ok(reply);
        }
        // A token GitHub no longer takes (revoked, or our clock ahead of GitHub's): drop it
        // and try once more with a new one.
        tracing::warn!(%repository_id, "GitHub refused the installation token; renewing it");
        self.forget_token(&token).await;
        let token = self.token(repository_id).await?;
        self.inner
            .api
            .call(
                method,
                path,
                &format!("Bearer {token}"),
                body.as_ref(),
                accept,
            )
            .await
    }

    /// A GET of JSON on `repository_id`: `Ok(None)` for 404.
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        repository_id: &str,
        path: &str,
        what: &str,
    ) -> Result<Option<T>> {
        let reply = self
            .call(repository_id, Method::GET, path, None, api::JSON)
            .await?;
        match reply.status {
            StatusCode::OK => reply.json(what).map(Some),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(reply.unexpected(what)),
        }
    }

    /// A GET of a JSON list on `repository_id`, following `next` links for at most
    /// [`MAX_PAGES`] pages: `Ok(None)` for 404.
    async fn get_pages<T: serde::de::DeserializeOwned>(
        &self,
        repository_id: &str,
        path: &str,
        what: &str,
    ) -> Result<Option<Vec<T>>> {
        let mut all = Vec::new();
        let mut path = path.to_owned();
        for _ in 0..MAX_PAGES {
            let reply = self
                .call(repository_id, Method::GET, &path, None, api::JSON)
                .await?;
            match reply.status {
                StatusCode::OK => all.extend(reply.json::<Vec<T>>(what)?),
                StatusCode::NOT_FOUND => return Ok(None),
                _ => return Err(reply.unexpected(what)),
            }
            match reply.next {
                Some(next) => path = next,
                None => return Ok(Some(all)),
            }
        }
        tracing::warn!(%repository_id, %what, pages = MAX_PAGES, "list cut at the page limit");
        Ok(Some(all))
    }
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
