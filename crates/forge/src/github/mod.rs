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
pub mod codeowners;
mod json;
pub mod template;

pub use api::RetryPolicy;
pub use auth::AppKey;
pub use codeowners::{CodeOwners, Reviewers};

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

    // ---- repositories ----

    async fn repo(&self, repository_id: &str) -> Result<json::Repo> {
        validate::repository_id(repository_id)?;
        self.get(
            repository_id,
            &format!("/repos/{repository_id}"),
            "repository",
        )
        .await?
        .ok_or_else(|| Error::RepositoryNotFound(repository_id.to_owned()))
    }

    async fn branch(&self, repository_id: &str, branch: &str) -> Result<Option<json::Branch>> {
        self.get(
            repository_id,
            &format!("/repos/{repository_id}/branches/{branch}"),
            "branch",
        )
        .await
    }

    /// The repository: its clone URL (the plain HTTPS one: a clone needs a token of its own),
    /// default branch and that branch's head.
    pub async fn get_repository(&self, repository_id: &str) -> Result<Repository> {
        let repo = self.repo(repository_id).await?;
        let head = self
            .branch(repository_id, &repo.default_branch)
            .await?
            .ok_or_else(|| Error::BranchNotFound {
                repository_id: repository_id.to_owned(),
                branch: repo.default_branch.clone(),
            })?;
        Ok(Repository {
            repository_id: repository_id.to_owned(),
            clone_url: repo.clone_url,
            default_branch: repo.default_branch,
            head_sha: head.commit.sha,
        })
    }

    /// The repository with its languages, the default branch's protection, CODEOWNERS and
    /// pull request template.
    pub async fn metadata(&self, repository_id: &str) -> Result<RepositoryMetadata> {
        let repo = self.repo(repository_id).await?;
        let branch = repo.default_branch.clone();
        let head =
            self.branch(repository_id, &branch)
                .await?
                .ok_or_else(|| Error::BranchNotFound {
                    repository_id: repository_id.to_owned(),
                    branch: branch.clone(),
                })?;
        let languages: HashMap<String, u64> = self
            .get(
                repository_id,
                &format!("/repos/{repository_id}/languages"),
                "languages",
            )
            .await?
            .unwrap_or_default();
        let mut languages: Vec<_> = languages.into_iter().collect();
        languages.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));

        // Three listings find both files whatever their case, instead of a probe per name.
        let mut listings = Vec::new();
        for directory in template::DIRECTORIES {
            let listing: Option<serde_json::Value> = self
                .get(
                    repository_id,
                    &format!("/repos/{repository_id}/contents/{directory}?ref={branch}"),
                    "directory listing",
                )
                .await?;
            // A file named `docs` (an object, not a list) holds neither file.
            let entries: Vec<json::Content> = listing
                .filter(serde_json::Value::is_array)
                .map(serde_json::from_value)
                .transpose()
                .map_err(|error| Error::GitHubResponse {
                    what: "directory listing".into(),
                    reason: error.to_string(),
                })?
                .unwrap_or_default();
            listings.push((directory, entries));
        }
        let find = |directory: &str, name: &str| {
            listings
                .iter()
                .filter(|(dir, _)| *dir == directory)
                .flat_map(|(_, entries)| entries)
                .find(|entry| entry.kind == "file" && entry.name.eq_ignore_ascii_case(name))
                .map(|entry| entry.path.clone())
        };
        let codeowners_path = codeowners::LOCATIONS.iter().find_map(|location| {
            let (directory, name) = location.rsplit_once('/').unwrap_or(("", location));
            find(directory, name)
        });
        let codeowners = match codeowners_path {
            Some(path) => self
                .file(repository_id, &path, &branch)
                .await?
                .map(|text| CodeOwners::parse(&path, &text)),
            None => None,
        };
        let template_path = template::DIRECTORIES
            .iter()
            .find_map(|directory| find(directory, template::FILE_NAME));
        let pull_request_template = match template_path {
            Some(path) => self.file(repository_id, &path, &branch).await?,
            None => None,
        };
        Ok(RepositoryMetadata {
            repository: Repository {
                repository_id: repository_id.to_owned(),
                clone_url: repo.clone_url,
                default_branch: branch,
                head_sha: head.commit.sha,
            },
            languages,
            default_branch_protected: head.protected,
            required_status_checks: head
                .protection
                .and_then(|p| p.required_status_checks)
                .map(|checks| checks.contexts)
                .unwrap_or_default(),
            codeowners,
            pull_request_template,
        })
    }

    /// A text file of `branch` through the contents API.
    async fn file(&self, repository_id: &str, path: &str, branch: &str) -> Result<Option<String>> {
        let Some(content) = self
            .get::<json::Content>(
                repository_id,
                &format!("/repos/{repository_id}/contents/{path}?ref={branch}"),
                "file",
            )
            .await?
        else {
            return Ok(None);
        };
        let bad = |reason: &str| Error::GitHubResponse {
            what: format!("contents of {path}"),
            reason: reason.to_owned(),
        };
        if content.encoding.as_deref() != Some("base64") {
            return Err(bad("not base64-encoded"));
        }
        let encoded: String = content
            .content
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        let bytes = STANDARD.decode(encoded).map_err(|_| bad("bad base64"))?;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }

    // ---- git ----

    /// The `Authorization` header git sends: GitHub takes an installation token as the
    /// password of `x-access-token`.
    fn git_header(token: &str) -> String {
        let credential = STANDARD.encode(format!("x-access-token:{token}"));
        format!("Authorization: Basic {credential}")
    }

    fn protocols(&self) -> &'static [Protocol] {
        if self.inner.plain_http {
            &[Protocol::Https, Protocol::Http]
        } else {
            &[Protocol::Https]
        }
    }

    /// The clone URL GitHub gave, checked to be one git may use here.
    fn clone_url(&self, repo: &json::Repo) -> Result<String> {
        let allowed = repo.clone_url.starts_with("https://")
            || (self.inner.plain_http && repo.clone_url.starts_with("http://"));
        if !allowed {
            return Err(Error::GitHubResponse {
                what: "repository".into(),
                reason: format!("clone_url {:?} is not an HTTPS URL", repo.clone_url),
            });
        }
        Ok(repo.clone_url.clone())
    }

    /// The forge's bare copy of `repository_id` (made when missing) and the lock to hold
    /// while using it.
    async fn copy(&self, repository_id: &str) -> Result<(PathBuf, Arc<Mutex<()>>)> {
        let (owner, name) = validate::repository_id(repository_id)?;
        let dir = self.inner.cache_dir.join(owner).join(format!("{name}.git"));
        let lock = self
            .inner
            .copies
            .lock()
            .await
            .entry(repository_id.to_owned())
            .or_default()
            .clone();
        if !dir.join("HEAD").is_file() {
            Git::new()
                .args(["init", "--bare", "--quiet"])
                .args([dir.as_os_str()])
                .run()
                .await?;
        }
        Ok((dir, lock))
    }

    /// Fetches `branch` of `url` into the copy's `refs/heads/{branch}` (the copy follows the
    /// remote; this moves only the local copy's ref) and returns its head.
    async fn fetch(&self, dir: &Path, url: &str, token: &str, branch: &str) -> Result<String> {
        let output = Git::with_git_dir(dir)
            .allow_protocols(self.protocols())
            .http_header(Self::git_header(token))
            .args([
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                "--",
            ])
            .args([url, &format!("+refs/heads/{branch}:refs/heads/{branch}")])
            .output()
            .await?;
        if !output.success() {
            return Err(remote_git_error(&output));
        }
        Git::with_git_dir(dir)
            .args([
                "rev-parse",
                "--verify",
                &format!("refs/heads/{branch}^{{commit}}"),
            ])
            .text()
            .await
            .map_err(Error::from)
    }

    /// Pushes `sha` to `branch` of `url`, never forced: a branch that moved on GitHub refuses
    /// it ([`Error::RefMoved`]).
    async fn push(
        &self,
        dir: &Path,
        url: &str,
        token: &str,
        sha: &str,
        branch: &str,
    ) -> Result<()> {
        let output = Git::with_git_dir(dir)
            .allow_protocols(self.protocols())
            .http_header(Self::git_header(token))
            .args(["push", "--quiet", "--porcelain", "--"])
            .args([url, &format!("{sha}:refs/heads/{branch}")])
            .output()
            .await?;
        if output.success() {
            return Ok(());
        }
        let text = format!(
            "{}\n{}",
            output.text(),
            String::from_utf8_lossy(&output.stderr)
        );
        if text.contains("[rejected]")
            || text.contains("non-fast-forward")
            || text.contains("fetch first")
        {
            return Err(Error::RefMoved {
                reference: format!("refs/heads/{branch}"),
            });
        }
        if text.contains("protected branch") || text.contains("[remote rejected]") {
            return Err(Error::GitHubRefused {
                what: format!("push to {branch}"),
                message: output.stderr_tail(3),
            });
        }
        Err(remote_git_error(&output))
    }

    /// Refuses a branch this forge does not own.
    fn own_branch(branch: &str) -> Result<()> {
        validate::branch(branch)?;
        if !branch.starts_with(BRANCH_PREFIX) || branch.len() == BRANCH_PREFIX.len() {
            return Err(Error::InvalidBranch {
                branch: branch.to_owned(),
                reason: "the GitHub forge creates and pushes only branches under `coding-assistant/`",
            });
        }
        Ok(())
    }

    /// Creates `branch` on GitHub at `from_sha` (the default branch's head when empty) by a
    /// push; returns the commit it points at.
    pub async fn create_branch(
        &self,
        repository_id: &str,
        branch: &str,
        from_sha: &str,
    ) -> Result<String> {
        Self::own_branch(branch)?;
        if !from_sha.is_empty() {
            validate::sha(from_sha)?;
        }
        let repo = self.repo(repository_id).await?;
        let url = self.clone_url(&repo)?;
        if self.branch(repository_id, branch).await?.is_some() {
            return Err(Error::BranchExists {
                repository_id: repository_id.to_owned(),
                branch: branch.to_owned(),
            });
        }
        let token = self.token(repository_id).await?;
        let (dir, lock) = self.copy(repository_id).await?;
        let _held = lock.lock().await;
        let head = self.fetch(&dir, &url, &token, &repo.default_branch).await?;
        let start = if from_sha.is_empty() {
            head
        } else {
            crate::repos::resolve(&dir, &format!("{from_sha}^{{commit}}"))
                .await?
                .ok_or_else(|| Error::CommitNotFound {
                    repository_id: repository_id.to_owned(),
                    sha: from_sha.to_owned(),
                })?
        };
        self.push(&dir, &url, &token, &start, branch).await?;
        tracing::info!(%repository_id, %branch, %start, "created branch on GitHub");
        Ok(start)
    }

    /// Commits `changes` on top of `branch` as the bot (the local forge's plumbing, on the
    /// forge's copy) and pushes the commit, never forced. A protected branch is refused before
    /// anything is written.
    pub async fn commit_changes(
        &self,
        repository_id: &str,
        branch: &str,
        message: &str,
        changes: Vec<FileChange>,
    ) -> Result<String> {
        Self::own_branch(branch)?;
        validate::text("commit message", message)?;
        if changes.is_empty() {
            return Err(Error::EmptyChangeSet);
        }
        let repo = self.repo(repository_id).await?;
        let url = self.clone_url(&repo)?;
        match self.branch(repository_id, branch).await? {
            None => {
                return Err(Error::BranchNotFound {
                    repository_id: repository_id.to_owned(),
                    branch: branch.to_owned(),
                });
            }
            Some(found) if found.protected => {
                return Err(Error::GitHubRefused {
                    what: format!("commit to {branch}"),
                    message: "the branch is protected on GitHub; the forge pushes only to \
                              unprotected branches of its own"
                        .into(),
                });
            }
            Some(_) => {}
        }
        let token = self.token(repository_id).await?;
        let (dir, lock) = self.copy(repository_id).await?;
        let _held = lock.lock().await;
        self.fetch(&dir, &url, &token, branch).await?;
        let commit =
            crate::repos::commit_on_branch(&dir, repository_id, branch, message, changes).await?;
        self.push(&dir, &url, &token, &commit, branch).await?;
        tracing::info!(%repository_id, %branch, %commit, "pushed commit to GitHub");
        Ok(commit)
    }

    // ---- pull requests ----

    /// Opens a pull request of `head_branch` into `base_branch`: the body put into the
    /// repository's template when it has one, the CODEOWNERS of the changed paths requested
    /// as reviewers, the configured labels set. A failure to request reviewers or set labels
    /// is logged, not fatal: the pull request exists by then.
    pub async fn open_pull_request(
        &self,
        repository_id: &str,
        head_branch: &str,
        base_branch: &str,
        title: &str,
        body: &str,
        task_id: &str,
    ) -> Result<PullRequest> {
        validate::repository_id(repository_id)?;
        validate::branch(head_branch)?;
        validate::branch(base_branch)?;
        validate::text("title", title)?;
        if task_id.contains("-->") || task_id.contains('\n') {
            return Err(Error::InvalidArgument {
                field: "task_id",
                reason: "must not hold `-->` or a line break".into(),
            });
        }
        let metadata = self.metadata(repository_id).await?;
        let mut text = match &metadata.pull_request_template {
            Some(template) => template::fill(template, body),
            None => body.trim().to_owned(),
        };
        if !task_id.is_empty() {
            text.push_str(&format!("\n\n{TASK_MARKER}{task_id}{MARKER_END}\n"));
        }
        let reply = self
            .call(
                repository_id,
                Method::POST,
                &format!("/repos/{repository_id}/pulls"),
                Some(serde_json::json!({
                    "title": title,
                    "head": head_branch,
                    "base": base_branch,
                    "body": text,
                })),
                api::JSON,
            )
            .await?;
        match reply.status {
            StatusCode::CREATED => {}
            StatusCode::UNPROCESSABLE_ENTITY if reply.message().contains("already exists") => {
                return self
                    .existing_pull(repository_id, head_branch, base_branch, task_id)
                    .await;
            }
            StatusCode::UNPROCESSABLE_ENTITY => {
                return Err(Error::GitHubRefused {
                    what: "opening the pull request".into(),
                    message: reply.message(),
                });
            }
            StatusCode::NOT_FOUND => {
                return Err(Error::RepositoryNotFound(repository_id.to_owned()));
            }
            _ => return Err(reply.unexpected("pull request")),
        }
        let pull: json::Pull = reply.json("pull request")?;
        let number = pull.number;
        if let Some(codeowners) = &metadata.codeowners {
            self.request_reviewers(repository_id, number, codeowners)
                .await;
        }
        if !self.inner.labels.is_empty() {
            let reply = self
                .call(
                    repository_id,
                    Method::POST,
                    &format!("/repos/{repository_id}/issues/{number}/labels"),
                    Some(serde_json::json!({ "labels": self.inner.labels })),
                    api::JSON,
                )
                .await;
            match reply {
                Ok(reply) if reply.status == StatusCode::OK => {}
                Ok(reply) => {
                    tracing::warn!(%repository_id, number, status = %reply.status, message = %reply.message(), "labels not set")
                }
                Err(error) => {
                    tracing::warn!(%repository_id, number, error = %cap_errors::Chain(&error), "labels not set")
                }
            }
        }
        tracing::info!(%repository_id, number, "opened pull request on GitHub");
        self.get_pull_request(&pull_request_id(repository_id, number))
            .await
    }

    /// The open pull request of the same branches: the task that opened it gets it back (its
    /// first answer lost, or a retry after GitHub made it but answered 5xx), as on the local
    /// forge; anyone else gets [`Error::PullRequestExists`].
    async fn existing_pull(
        &self,
        repository_id: &str,
        head: &str,
        base: &str,
        task_id: &str,
    ) -> Result<PullRequest> {
        let (owner, _) = validate::repository_id(repository_id)?;
        let pulls: Vec<json::Pull> = self
            .get(
                repository_id,
                &format!("/repos/{repository_id}/pulls?state=open&head={owner}:{head}&base={base}"),
                "pull requests",
            )
            .await?
            .unwrap_or_default();
        let Some(pull) = pulls.into_iter().next() else {
            return Err(Error::GitHubRefused {
                what: "opening the pull request".into(),
                message: "GitHub says one already exists, but lists none".into(),
            });
        };
        let id = pull_request_id(repository_id, pull.number);
        let same_task =
            !task_id.is_empty() && pull.body.as_deref().and_then(task_of) == Some(task_id);
        if same_task {
            tracing::info!(%repository_id, %id, %task_id, "pull request already open for this task");
            return self.get_pull_request(&id).await;
        }
        Err(Error::PullRequestExists {
            id,
            number: pull.number,
            head_branch: head.to_owned(),
            base_branch: base.to_owned(),
        })
    }

    /// Requests the CODEOWNERS of the pull request's files as its reviewers.
    async fn request_reviewers(&self, repository_id: &str, number: u64, codeowners: &CodeOwners) {
        let outcome = async {
            let files: Vec<json::PullFile> = self
                .get_pages(
                    repository_id,
                    &format!("/repos/{repository_id}/pulls/{number}/files?per_page=100"),
                    "pull request files",
                )
                .await?
                .unwrap_or_default();
            let reviewers = codeowners.reviewers_for(
                files.iter().map(|file| file.filename.as_str()),
                /*author*/ "",
            );
            if reviewers.is_empty() {
                return Ok(reviewers);
            }
            let reply = self
                .call(
                    repository_id,
                    Method::POST,
                    &format!("/repos/{repository_id}/pulls/{number}/requested_reviewers"),
                    Some(serde_json::json!({
                        "reviewers": reviewers.users,
                        "team_reviewers": reviewers.teams,
                    })),
                    api::JSON,
                )
                .await?;
            if reply.status == StatusCode::CREATED {
                Ok(reviewers)
            } else {
                Err(reply.unexpected("requested reviewers"))
            }
        }
        .await;
        match outcome {
            Ok(reviewers) => {
                tracing::info!(%repository_id, number, users = ?reviewers.users, teams = ?reviewers.teams, codeowners = %codeowners.path, "requested code owners' review")
            }
            Err(error) => {
                tracing::warn!(%repository_id, number, error = %cap_errors::Chain(&error), "code owners not requested")
            }
        }
    }

    /// The pull request `owner:name:number`, with its diff and reviews.
    pub async fn get_pull_request(&self, id: &str) -> Result<PullRequest> {
        let (repository_id, number) = parse_pull_request_id(id)?;
        let pull: json::Pull = self
            .get(
                &repository_id,
                &format!("/repos/{repository_id}/pulls/{number}"),
                "pull request",
            )
            .await?
            .ok_or_else(|| Error::PullRequestNotFound(id.to_owned()))?;
        let diff = self
            .call(
                &repository_id,
                Method::GET,
                &format!("/repos/{repository_id}/pulls/{number}"),
                None,
                api::DIFF,
            )
            .await?;
        if diff.status != StatusCode::OK {
            return Err(diff.unexpected("pull request diff"));
        }
        let mut pr = self.pull_request(&repository_id, pull).await?;
        pr.diff = diff.body;
        Ok(pr)
    }

    /// The platform's pull requests of `repository_id` (those carrying a task marker), newest
    /// first, without their diffs (one more call each; [`Self::get_pull_request`] has it).
    pub async fn list_pull_requests(
        &self,
        repository_id: Option<&str>,
    ) -> Result<Vec<PullRequest>> {
        let Some(repository_id) = repository_id else {
            return Err(Error::InvalidArgument {
                field: "repository_id",
                reason: "the GitHub forge lists the pull requests of one repository at a time"
                    .into(),
            });
        };
        validate::repository_id(repository_id)?;
        let pulls: Vec<json::Pull> = self
            .get_pages(
                repository_id,
                &format!("/repos/{repository_id}/pulls?state=all&per_page=100"),
                "pull requests",
            )
            .await?
            .ok_or_else(|| Error::RepositoryNotFound(repository_id.to_owned()))?;
        let mut out = Vec::new();
        for pull in pulls {
            if pull.body.as_deref().and_then(task_of).is_some() {
                out.push(self.pull_request(repository_id, pull).await?);
            }
        }
        Ok(out)
    }

    /// A pull request from GitHub's answer and its reviews (no diff).
    async fn pull_request(&self, repository_id: &str, pull: json::Pull) -> Result<PullRequest> {
        let number = pull.number;
        let reviews: Vec<json::Review> = self
            .get_pages(
                repository_id,
                &format!("/repos/{repository_id}/pulls/{number}/reviews?per_page=100"),
                "reviews",
            )
            .await?
            .unwrap_or_default();
        let reviews: Vec<Review> = reviews.into_iter().filter_map(review_of).collect();
        let state = if pull.merged.unwrap_or(false) || pull.merged_at.is_some() {
            PullRequestState::Merged
        } else if pull.state == "closed" {
            PullRequestState::Rejected
        } else {
            match reviews.last() {
                None => PullRequestState::Open,
                // A new head makes an approval stale, as on the local forge: nothing
                // unreviewed is merged.
                Some(review)
                    if review.action == ReviewAction::Approve
                        && review.head_sha != pull.head.sha =>
                {
                    PullRequestState::Open
                }
                Some(review) => review.action.resulting_state(),
            }
        };
        let body = pull.body.unwrap_or_default();
        Ok(PullRequest {
            pull_request_id: pull_request_id(repository_id, number),
            repository_id: repository_id.to_owned(),
            number,
            title: pull.title,
            task_id: task_of(&body).unwrap_or_default().to_owned(),
            body,
            head_branch: pull.head.branch,
            base_branch: pull.base.branch,
            head_sha: pull.head.sha,
            base_sha: pull.base.sha,
            merge_sha: pull
                .merge_commit_sha
                .filter(|_| state == PullRequestState::Merged),
            state,
            diff: String::new(),
            reviews,
            url: pull.html_url,
            created_at_ms: auth::timestamp_ms(pull.created_at.as_deref()),
            updated_at_ms: auth::timestamp_ms(pull.updated_at.as_deref()),
        })
    }

    /// Records a platform user's review on GitHub (a `COMMENT` review whose marker holds the
    /// verdict; line comments as review comments on the head); a rejection also closes the
    /// pull request.
    pub async fn review(
        &self,
        id: &str,
        action: ReviewAction,
        reviewer: &str,
        comments: Vec<ReviewComment>,
    ) -> Result<PullRequest> {
        validate::text("reviewer", reviewer)?;
        let pr = self.get_pull_request(id).await?;
        if pr.state.is_closed() {
            return Err(Error::PullRequestClosed {
                id: id.to_owned(),
                state: pr.state,
            });
        }
        let repository_id = &pr.repository_id;
        for comment in &comments {
            validate::path(&comment.file)?;
        }
        let marker = ReviewMarker {
            action: action.as_str().to_owned(),
            reviewer: reviewer.to_owned(),
            comments: comments.clone(),
        };
        let verdict = match action {
            ReviewAction::Approve => "Approved",
            ReviewAction::RequestChanges => "Changes requested",
            ReviewAction::Reject => "Rejected",
        };
        let mut body = format!("**{verdict}** by {reviewer} in the coding assistant.\n");
        for comment in comments.iter().filter(|c| c.line == 0) {
            body.push_str(&format!("\n- `{}`: {}\n", comment.file, comment.body));
        }
        body.push_str(&format!(
            "\n{REVIEW_MARKER}{}{MARKER_END}\n",
            marker.encode()?
        ));
        let line_comments: Vec<_> = comments
            .iter()
            .filter(|c| c.line > 0)
            .map(|c| serde_json::json!({ "path": c.file, "line": c.line, "side": "RIGHT", "body": c.body }))
            .collect();
        let reply = self
            .call(
                repository_id,
                Method::POST,
                &format!("/repos/{repository_id}/pulls/{}/reviews", pr.number),
                Some(serde_json::json!({
                    "commit_id": pr.head_sha,
                    "body": body,
                    "event": "COMMENT",
                    "comments": line_comments,
                })),
                api::JSON,
            )
            .await?;
        match reply.status {
            StatusCode::OK => {}
            StatusCode::UNPROCESSABLE_ENTITY => {
                return Err(Error::GitHubRefused {
                    what: "the review".into(),
                    message: reply.message(),
                });
            }
            _ => return Err(reply.unexpected("review")),
        }
        if action == ReviewAction::Reject {
            let reply = self
                .call(
                    repository_id,
                    Method::PATCH,
                    &format!("/repos/{repository_id}/pulls/{}", pr.number),
                    Some(serde_json::json!({ "state": "closed" })),
                    api::JSON,
                )
                .await?;
            if reply.status != StatusCode::OK {
                return Err(reply.unexpected("closing the pull request"));
            }
        }
        tracing::info!(%id, %action, %reviewer, "reviewed pull request on GitHub");
        self.get_pull_request(id).await
    }

    /// Merges an approved pull request (a merge commit, only if the head is still the reviewed
    /// one); GitHub's own rules (required checks and reviews) may still refuse it.
    pub async fn merge(&self, id: &str) -> Result<PullRequest> {
        let pr = self.get_pull_request(id).await?;
        if pr.state.is_closed() {
            return Err(Error::PullRequestClosed {
                id: id.to_owned(),
                state: pr.state,
            });
        }
        if pr.state != PullRequestState::Approved {
            return Err(Error::NotApproved {
                id: id.to_owned(),
                state: pr.state,
            });
        }
        let repository_id = &pr.repository_id;
        let reply = self
            .call(
                repository_id,
                Method::PUT,
                &format!("/repos/{repository_id}/pulls/{}/merge", pr.number),
                Some(serde_json::json!({ "sha": pr.head_sha, "merge_method": "merge" })),
                api::JSON,
            )
            .await?;
        match reply.status {
            StatusCode::OK => {}
            StatusCode::CONFLICT => {
                return Err(Error::RefMoved {
                    reference: format!("refs/heads/{}", pr.head_branch),
                });
            }
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::UNPROCESSABLE_ENTITY => {
                return Err(Error::GitHubRefused {
                    what: "the merge".into(),
                    message: reply.message(),
                });
            }
            _ => return Err(reply.unexpected("merge")),
        }
        tracing::info!(%id, "merged pull request on GitHub");
        self.get_pull_request(id).await
    }
}

/// The error of a fetch or push that failed: GitHub unreachable or answering 5xx is
/// [`Error::GitHubUnavailable`] (so the caller hears that GitHub is down, not of an internal
/// error); anything else stays a git failure.
fn remote_git_error(output: &cap_git::Output) -> Error {
    let stderr = output.stderr_tail(2);
    let down = [
        "returned error: 5",
        "Failed to connect",
        "Could not resolve host",
        "timed out",
    ]
    .iter()
    .any(|sign| stderr.contains(sign));
    if down {
        Error::GitHubUnavailable(format!("git could not reach GitHub: {stderr}"))
    } else {
        output.error().into()
    }
}

/// A pull request's id: `owner:name:number` (`:` is in no repository name, and is safe in a
/// URL path).
pub fn pull_request_id(repository_id: &str, number: u64) -> String {
    format!("{}:{number}", repository_id.replacen('/', ":", 1))
}

/// The repository and number of a pull request id.
pub fn parse_pull_request_id(id: &str) -> Result<(String, u64)> {
    let bad = || Error::InvalidArgument {
        field: "pull_request_id",
        reason: format!("{id:?} is not `owner:name:number`"),
    };
    let mut parts = id.split(':');
    let (Some(owner), Some(name), Some(number), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let number: u64 = number.parse().map_err(|_| bad())?;
    let repository_id = format!("{owner}/{name}");
    validate::repository_id(&repository_id)?;
    Ok((repository_id, number))
}

/// The task id a body's marker names.
fn task_of(body: &str) -> Option<&str> {
    let start = body.rfind(TASK_MARKER)? + TASK_MARKER.len();
    let end = body[start..].find(MARKER_END)?;
    Some(body[start..start + end].trim())
}

/// What a platform review's marker holds.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ReviewMarker {
    action: String,
    reviewer: String,
    #[serde(default)]
    comments: Vec<ReviewComment>,
}

impl ReviewMarker {
    /// JSON with `<` and `>` escaped, so no text of a comment can end the HTML comment.
    fn encode(&self) -> Result<String> {
        let text = serde_json::to_string(self).map_err(|error| Error::InvalidArgument {
            field: "review",
            reason: error.to_string(),
        })?;
        Ok(text.replace('<', "\\u003c").replace('>', "\\u003e"))
    }

    fn decode(body: &str) -> Option<Self> {
        let start = body.rfind(REVIEW_MARKER)? + REVIEW_MARKER.len();
        let end = body[start..].find(MARKER_END)?;
        serde_json::from_str(&body[start..start + end]).ok()
    }
}

/// A review as the platform sees it: a platform review by its marker, a human's approval or
/// change request on GitHub by its state; plain comments are no verdict and left out.
fn review_of(review: json::Review) -> Option<Review> {
    let created_at_ms = auth::timestamp_ms(review.submitted_at.as_deref());
    let head_sha = review.commit_id.unwrap_or_default();
    let review_id = review.id.to_string();
    if let Some(marker) = review.body.as_deref().and_then(ReviewMarker::decode) {
        return Some(Review {
            review_id,
            action: marker.action.parse().ok()?,
            reviewer: marker.reviewer,
            comments: marker.comments,
            head_sha,
            created_at_ms,
        });
    }
    let action = match review.state.as_str() {
        "APPROVED" => ReviewAction::Approve,
        "CHANGES_REQUESTED" => ReviewAction::RequestChanges,
        _ => return None,
    };
    Some(Review {
        review_id,
        action,
        reviewer: review.user.map(|user| user.login).unwrap_or_default(),
        comments: Vec::new(),
        head_sha,
        created_at_ms,
    })
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
