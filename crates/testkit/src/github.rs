//! A GitHub API stand-in on loopback: the REST routes the GitHub forge calls, answering with
//! the shapes of GitHub's documented REST API (version 2022-11-28), and a real git remote over
//! smart HTTP (`git http-backend` run as CGI) under `/git/{owner}/{name}.git`.
//!
//! It checks what GitHub checks: the App's JWT (RS256, verified with the App's public key;
//! `iss` the App id, not expired) on `/app/...` and `/repos/{o}/{r}/installation`, and an
//! unexpired installation token of the repository's installation on every other call (REST:
//! `Authorization: Bearer`, git: Basic `x-access-token:<token>`). Repositories are bare git
//! repositories under the root given to [`GitHubStandIn::start`]; branches, contents, diffs
//! and merges are read from and written to them, so what a test pushes is what the REST
//! routes answer. Faults ([`GitHubStandIn::push_fault`]) answer the next REST calls with a
//! given status and headers (rate limits, 5xx).

// Only tests use the stand-in; a poisoned lock or a broken fixture should fail them loudly.
// A refused call's answer is the error value of the checks, as in a handler.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::result_large_err)]

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

/// Generates a GitHub App key pair in `dir` with `openssl` (no key is ever committed): the
/// private key as GitHub hands it out (PEM, PKCS#1) at `<dir>/<name>.pem`, and the public key
/// as DER (PKCS#1 `RSAPublicKey`) for [`GitHubStandIn::start`].
pub fn generate_app_key(dir: &Path, name: &str) -> (PathBuf, Vec<u8>) {
    let key = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.der"));
    let run = |args: &[&std::ffi::OsStr]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(&[
        "genrsa".as_ref(),
        "-traditional".as_ref(),
        "-out".as_ref(),
        key.as_os_str(),
        "2048".as_ref(),
    ]);
    run(&[
        "rsa".as_ref(),
        "-in".as_ref(),
        key.as_os_str(),
        "-RSAPublicKey_out".as_ref(),
        "-outform".as_ref(),
        "DER".as_ref(),
        "-out".as_ref(),
        public.as_os_str(),
    ]);
    (
        key,
        std::fs::read(public).expect("openssl wrote the public key"),
    )
}

/// How a repository is set up in the stand-in.
#[derive(Debug, Clone)]
pub struct RepoSetup {
    /// The App installation that covers it.
    pub installation: u64,
    /// Its default branch.
    pub default_branch: String,
    /// Languages and their bytes (`GET /repos/{o}/{r}/languages`).
    pub languages: Vec<(String, u64)>,
    /// Branches GitHub protects, with their required status checks.
    pub protected: Vec<(String, Vec<String>)>,
}

impl RepoSetup {
    /// Installation 1, default branch `main`, nothing else.
    pub fn new() -> Self {
        Self {
            installation: 1,
            default_branch: "main".into(),
            languages: Vec::new(),
            protected: Vec::new(),
        }
    }
}

impl Default for RepoSetup {
    fn default() -> Self {
        Self::new()
    }
}

/// A pull request as the stand-in keeps it.
#[derive(Debug, Clone)]
pub struct PullRecord {
    /// Its number.
    pub number: u64,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Head branch.
    pub head: String,
    /// Base branch.
    pub base: String,
    /// `open` or `closed`.
    pub state: String,
    /// Opened as a draft.
    pub draft: bool,
    /// The merge commit once merged.
    pub merge_sha: Option<String>,
    /// Requested reviewers (logins).
    pub requested_reviewers: Vec<String>,
    /// Requested teams (slugs).
    pub requested_teams: Vec<String>,
    /// Labels.
    pub labels: Vec<String>,
    /// Reviews as posted (the request bodies).
    pub reviews: Vec<Value>,
    created_at: String,
}

/// A check reported on every commit of a repository (the stand-in does not run CI: the test
/// says what CI would have reported).
#[derive(Debug, Clone)]
pub enum ScriptedCheck {
    /// A check run (`GET .../commits/{ref}/check-runs`).
    Run {
        /// Its name.
        name: String,
        /// `queued`, `in_progress` or `completed`.
        status: String,
        /// Once completed: `success`, `failure`, ...
        conclusion: Option<String>,
        /// Output title.
        title: String,
        /// Output summary.
        summary: String,
    },
    /// A commit status (`GET .../commits/{ref}/status`).
    Status {
        /// Its context.
        context: String,
        /// `pending`, `success`, `failure` or `error`.
        state: String,
        /// Its description.
        description: String,
    },
}

impl ScriptedCheck {
    /// A completed check run named `name` concluding `conclusion`, its output summary
    /// `summary`.
    pub fn run(name: &str, conclusion: &str, summary: &str) -> Self {
        Self::Run {
            name: name.into(),
            status: "completed".into(),
            conclusion: Some(conclusion.into()),
            title: format!("{name}: {conclusion}"),
            summary: summary.into(),
        }
    }

    /// A check run named `name` still in progress.
    pub fn running(name: &str) -> Self {
        Self::Run {
            name: name.into(),
            status: "in_progress".into(),
            conclusion: None,
            title: String::new(),
            summary: String::new(),
        }
    }

    /// A commit status of `context` in `state`.
    pub fn status(context: &str, state: &str, description: &str) -> Self {
        Self::Status {
            context: context.into(),
            state: state.into(),
            description: description.into(),
        }
    }
}

/// A scripted answer: status, headers, GitHub's error message (a default one when `None`).
type Fault = (u16, Vec<(String, String)>, Option<String>);

struct Inner {
    repos: HashMap<String, RepoSetup>,
    /// Token -> (installation, expiry).
    tokens: HashMap<String, (u64, SystemTime)>,
    token_lifetime: Duration,
    /// The most items a list answers per page (GitHub: at most 100, whatever `per_page` asks).
    page_size: usize,
    /// git over HTTP answers 503 while set.
    git_down: bool,
    tokens_issued: u32,
    /// Status, headers and message of the answers to the next REST calls.
    faults: VecDeque<Fault>,
    pulls: HashMap<String, Vec<PullRecord>>,
    /// Checks reported on every commit, per repository, newest first.
    checks: HashMap<String, Vec<ScriptedCheck>>,
    requests: Vec<String>,
}

struct Shared {
    app_id: u64,
    public_key_der: Vec<u8>,
    root: PathBuf,
    url: String,
    inner: Mutex<Inner>,
}

/// The running stand-in; stops when dropped.
pub struct GitHubStandIn {
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for GitHubStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl GitHubStandIn {
    /// Serves on a free loopback port for the App `app_id` whose public key is
    /// `public_key_der` (PKCS#1 `RSAPublicKey`, DER), with repositories under `root`
    /// (`<root>/<owner>/<name>.git`).
    pub async fn start(
        app_id: u64,
        public_key_der: Vec<u8>,
        root: PathBuf,
    ) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            app_id,
            public_key_der,
            root,
            url,
            inner: Mutex::new(Inner {
                repos: HashMap::new(),
                tokens: HashMap::new(),
                token_lifetime: Duration::from_secs(3600),
                page_size: 100,
                git_down: false,
                tokens_issued: 0,
                faults: VecDeque::new(),
                pulls: HashMap::new(),
                checks: HashMap::new(),
                requests: Vec::new(),
            }),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { shared, server })
    }

    /// The API base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// The bare repository of `repository_id` (whether or not it exists yet).
    pub fn bare_path(&self, repository_id: &str) -> PathBuf {
        self.shared.root.join(format!("{repository_id}.git"))
    }

    /// Makes `repository_id` known (its bare repository must exist under the root).
    pub fn add_repository(&self, repository_id: &str, setup: RepoSetup) {
        self.lock().repos.insert(repository_id.to_owned(), setup);
    }

    /// Installation tokens issued from now on live `lifetime`.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.lock().token_lifetime = lifetime;
    }

    /// Revokes every installation token issued so far (as `DELETE /installation/token`, or
    /// an administrator, would).
    pub fn revoke_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// Lists answer at most `size` items per page, with a `Link: <...>; rel="next"` header
    /// to the rest.
    pub fn set_page_size(&self, size: usize) {
        self.lock().page_size = size.max(1);
    }

    /// git over HTTP answers `503 Service Unavailable` while `down`.
    pub fn set_git_down(&self, down: bool) {
        self.lock().git_down = down;
    }

    /// How many installation tokens were issued.
    pub fn tokens_issued(&self) -> u32 {
        self.lock().tokens_issued
    }

    /// The next REST call (not git) is answered `status` with `headers` and a GitHub error
    /// body instead; several faults answer several calls, in order.
    pub fn push_fault(&self, status: u16, headers: &[(&str, &str)]) {
        let headers = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.lock().faults.push_back((status, headers, None));
    }

    /// The next REST call is answered `status` with GitHub's error `message` and no headers.
    pub fn push_fault_with_message(&self, status: u16, message: &str) {
        self.lock()
            .faults
            .push_back((status, Vec::new(), Some(message.to_owned())));
    }

    /// Faults not yet served.
    pub fn pending_faults(&self) -> usize {
        self.lock().faults.len()
    }

    /// Every request so far, as `METHOD /path`.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    /// Every commit of `repository_id` reports `checks` from now on (newest first: the first
    /// of a name is its latest report).
    pub fn set_checks(&self, repository_id: &str, checks: Vec<ScriptedCheck>) {
        self.lock().checks.insert(repository_id.to_owned(), checks);
    }

    /// A pull request as the stand-in holds it.
    pub fn pull(&self, repository_id: &str, number: u64) -> Option<PullRecord> {
        self.lock()
            .pulls
            .get(repository_id)?
            .iter()
            .find(|pull| pull.number == number)
            .cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.inner.lock().unwrap()
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
        })),
    )
        .into_response()
}

fn now_rfc3339(offset: Duration) -> String {
    let at = SystemTime::now() + offset;
    let secs = at.duration_since(UNIX_EPOCH).unwrap().as_secs();
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or("").to_owned();
    shared
        .inner
        .lock()
        .unwrap()
        .requests
        .push(format!("{method} {path}"));
    if let Some(rest) = path.strip_prefix("/git/") {
        if shared.inner.lock().unwrap().git_down {
            return error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
        }
        return git_http(&shared, &method, rest, &query, &headers, body).await;
    }
    let fault = shared.inner.lock().unwrap().faults.pop_front();
    if let Some((status, fault_headers, message)) = fault {
        let mut response = error(
            StatusCode::from_u16(status).unwrap(),
            message
                .as_deref()
                .unwrap_or("stand-in fault: API rate limit exceeded or server error"),
        );
        for (name, value) in fault_headers {
            response.headers_mut().insert(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        return response;
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let params = parse_query(&query);
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(value) => value,
            Err(_) => return error(StatusCode::BAD_REQUEST, "Problems parsing JSON"),
        }
    };
    match segments.as_slice() {
        ["app", "installations", id, "access_tokens"] if method == Method::POST => {
            if let Err(response) = check_jwt(&shared, &bearer) {
                return response;
            }
            let Ok(installation) = id.parse::<u64>() else {
                return error(StatusCode::NOT_FOUND, "Not Found");
            };
            let mut inner = shared.inner.lock().unwrap();
            inner.tokens_issued += 1;
            let token = format!("standin-installation-token-{}", inner.tokens_issued);
            let lifetime = inner.token_lifetime;
            inner
                .tokens
                .insert(token.clone(), (installation, SystemTime::now() + lifetime));
            (
                StatusCode::CREATED,
                axum::Json(json!({
                    "token": token,
                    "expires_at": now_rfc3339(lifetime),
                    "permissions": {"contents": "write", "pull_requests": "write", "metadata": "read"},
                    "repository_selection": "selected",
                })),
            )
                .into_response()
        }
        ["repos", owner, name, "installation"] if method == Method::GET => {
            if let Err(response) = check_jwt(&shared, &bearer) {
                return response;
            }
            let repository_id = format!("{owner}/{name}");
            let inner = shared.inner.lock().unwrap();
            match inner.repos.get(&repository_id) {
                Some(setup) => axum::Json(json!({
                    "id": setup.installation,
                    "app_id": shared.app_id,
                    "account": {"login": owner},
                    "target_type": "Organization",
                }))
                .into_response(),
                None => error(StatusCode::NOT_FOUND, "Not Found"),
            }
        }
        ["repos", owner, name, rest @ ..] => {
            let repository_id = format!("{owner}/{name}");
            let setup = shared
                .inner
                .lock()
                .unwrap()
                .repos
                .get(&repository_id)
                .cloned();
            let Some(setup) = setup else {
                return error(StatusCode::NOT_FOUND, "Not Found");
            };
            if let Err(response) = check_token(&shared, &bearer, setup.installation) {
                return response;
            }
            let repo = Repo {
                shared: &shared,
                id: repository_id,
                dir: shared.root.join(format!("{owner}/{name}.git")),
                setup,
            };
            repo.route(&method, rest, &params, &headers, body).await
        }
        _ => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.replace("%2F", "/").replace("%3A", ":")))
        .collect()
}

#[derive(serde::Deserialize)]
struct AppClaims {
    #[allow(dead_code)]
    iss: String,
    iat: u64,
}

fn check_jwt(shared: &Shared, jwt: &str) -> Result<(), Response> {
    let key = jsonwebtoken::DecodingKey::from_rsa_der(&shared.public_key_der);
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[shared.app_id.to_string()]);
    validation.set_required_spec_claims(&["exp", "iss", "iat"]);
    match jsonwebtoken::decode::<AppClaims>(jwt, &key, &validation) {
        Ok(data) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            if data.claims.iat > now + 60 {
                return Err(error(
                    StatusCode::UNAUTHORIZED,
                    "'Issued at' claim ('iat') must be an Integer representing a time in the past.",
                ));
            }
            Ok(())
        }
        Err(_) => Err(error(
            StatusCode::UNAUTHORIZED,
            "A JSON web token could not be decoded",
        )),
    }
}

fn check_token(shared: &Shared, token: &str, installation: u64) -> Result<(), Response> {
    let inner = shared.inner.lock().unwrap();
    match inner.tokens.get(token) {
        Some((of, expires)) if *of == installation && *expires > SystemTime::now() => Ok(()),
        _ => Err(error(StatusCode::UNAUTHORIZED, "Bad credentials")),
    }
}

/// Runs git on a stand-in repository (the remote's side: plain git, no host configuration).
async fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = tokio::process::Command::new("git")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .args([
            "-c",
            "user.name=GitHub",
            "-c",
            "user.email=noreply@github.invalid",
        ])
        .arg(format!("--git-dir={}", dir.display()))
        .args(args)
        .output()
        .await
        .ok()?;
    output.status.success().then(|| {
        String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_owned()
    })
}

struct Repo<'a> {
    shared: &'a Shared,
    id: String,
    dir: PathBuf,
    setup: RepoSetup,
}

impl Repo<'_> {
    async fn head(&self, branch: &str) -> Option<String> {
        git(
            &self.dir,
            &[
                "rev-parse",
                "--verify",
                &format!("refs/heads/{branch}^{{commit}}"),
            ],
        )
        .await
    }

    async fn route(
        &self,
        method: &Method,
        rest: &[&str],
        params: &HashMap<String, String>,
        headers: &HeaderMap,
        body: Value,
    ) -> Response {
        let url = &self.shared.url;
        match (method.clone(), rest) {
            (Method::GET, []) => axum::Json(json!({
                "id": 1296269,
                "name": self.id.split('/').nth(1),
                "full_name": self.id,
                "owner": {"login": self.id.split('/').next()},
                "private": true,
                "default_branch": self.setup.default_branch,
                "clone_url": format!("{url}/git/{}.git", self.id),
                "html_url": format!("{url}/{}", self.id),
            }))
            .into_response(),
            (Method::GET, ["languages"]) => {
                let map: serde_json::Map<String, Value> = self
                    .setup
                    .languages
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect();
                axum::Json(Value::Object(map)).into_response()
            }
            (Method::GET, ["branches", branch @ ..]) => {
                let branch = branch.join("/");
                let Some(sha) = self.head(&branch).await else {
                    return error(StatusCode::NOT_FOUND, "Branch not found");
                };
                let protection = self.setup.protected.iter().find(|(b, _)| *b == branch);
                axum::Json(json!({
                    "name": branch,
                    "commit": {"sha": sha, "url": format!("{url}/repos/{}/commits/{sha}", self.id)},
                    "protected": protection.is_some(),
                    "protection": {
                        "enabled": protection.is_some(),
                        "required_status_checks": {
                            "enforcement_level": if protection.is_some() { "non_admins" } else { "off" },
                            "contexts": protection.map(|(_, c)| c.clone()).unwrap_or_default(),
                        },
                    },
                }))
                .into_response()
            }
            (Method::GET, ["contents", path @ ..]) => {
                let path = path.join("/");
                let reference = params
                    .get("ref")
                    .cloned()
                    .unwrap_or_else(|| self.setup.default_branch.clone());
                self.contents(&reference, &path).await
            }
            (Method::GET, ["commits", reference, "check-runs"]) => {
                if self.resolve(reference).await.is_none() {
                    return error(StatusCode::NOT_FOUND, "No commit found for SHA");
                }
                let runs: Vec<Value> = self
                    .checks()
                    .into_iter()
                    .filter_map(|check| match check {
                        ScriptedCheck::Run {
                            name,
                            status,
                            conclusion,
                            title,
                            summary,
                        } => Some(json!({
                            "id": 4,
                            "name": name,
                            "head_sha": reference,
                            "status": status,
                            "conclusion": conclusion,
                            "html_url": format!("{url}/{}/runs/{name}", self.id),
                            "details_url": format!("{url}/ci/{name}"),
                            "output": {"title": title, "summary": summary, "text": null},
                        })),
                        ScriptedCheck::Status { .. } => None,
                    })
                    .collect();
                axum::Json(json!({"total_count": runs.len(), "check_runs": runs})).into_response()
            }
            (Method::GET, ["commits", reference, "status"]) => {
                let Some(sha) = self.resolve(reference).await else {
                    return error(StatusCode::NOT_FOUND, "No commit found for SHA");
                };
                let statuses: Vec<Value> = self
                    .checks()
                    .into_iter()
                    .filter_map(|check| match check {
                        ScriptedCheck::Status {
                            context,
                            state,
                            description,
                        } => Some(json!({
                            "context": context,
                            "state": state,
                            "description": description,
                            "target_url": format!("{url}/ci/{context}"),
                        })),
                        ScriptedCheck::Run { .. } => None,
                    })
                    .collect();
                // GitHub's combined state: failure over pending over success; pending when
                // nothing reported.
                let states: Vec<&str> = statuses
                    .iter()
                    .filter_map(|s| s["state"].as_str())
                    .collect();
                let state = if states.iter().any(|s| *s == "failure" || *s == "error") {
                    "failure"
                } else if states.is_empty() || states.contains(&"pending") {
                    "pending"
                } else {
                    "success"
                };
                axum::Json(json!({
                    "state": state,
                    "sha": sha,
                    "total_count": statuses.len(),
                    "statuses": statuses,
                }))
                .into_response()
            }
            (Method::POST, ["pulls"]) => self.create_pull(body).await,
            (Method::GET, ["pulls"]) => {
                let pulls = self.pulls();
                let mut out = Vec::new();
                for pull in pulls.iter().rev() {
                    let state = params.get("state").map_or("open", String::as_str);
                    if state != "all" && pull.state != state {
                        continue;
                    }
                    if let Some(head) = params.get("head")
                        && head.rsplit(':').next() != Some(pull.head.as_str())
                    {
                        continue;
                    }
                    if params.get("base").is_some_and(|base| *base != pull.base) {
                        continue;
                    }
                    out.push(self.pull_json(pull).await);
                }
                self.page(out, params, "pulls")
            }
            (_, ["pulls", number, tail @ ..]) => {
                let Ok(number) = number.parse::<u64>() else {
                    return error(StatusCode::NOT_FOUND, "Not Found");
                };
                let Some(pull) = self.pulls().into_iter().find(|p| p.number == number) else {
                    return error(StatusCode::NOT_FOUND, "Not Found");
                };
                self.pull_route(method, tail, pull, params, headers, body)
                    .await
            }
            (Method::POST, ["issues", number, "labels"]) => {
                let labels: Vec<String> = body["labels"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|l| l.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                let Ok(number) = number.parse::<u64>() else {
                    return error(StatusCode::NOT_FOUND, "Not Found");
                };
                let all = self.update(number, |pull| {
                    for label in &labels {
                        if !pull.labels.contains(label) {
                            pull.labels.push(label.clone());
                        }
                    }
                    pull.labels.clone()
                });
                match all {
                    Some(all) => axum::Json(json!(
                        all.iter()
                            .map(|name| json!({"name": name, "color": "ededed"}))
                            .collect::<Vec<_>>()
                    ))
                    .into_response(),
                    None => error(StatusCode::NOT_FOUND, "Not Found"),
                }
            }
            _ => error(StatusCode::NOT_FOUND, "Not Found"),
        }
    }

    async fn contents(&self, reference: &str, path: &str) -> Response {
        let object = if path.is_empty() {
            format!("{reference}^{{tree}}")
        } else {
            format!("{reference}:{path}")
        };
        match git(&self.dir, &["cat-file", "-t", &object])
            .await
            .as_deref()
        {
            Some("tree") => {
                let listing = git(&self.dir, &["ls-tree", &object])
                    .await
                    .unwrap_or_default();
                let entries: Vec<Value> = listing
                    .lines()
                    .filter_map(|line| {
                        let (meta, name) = line.split_once('\t')?;
                        let kind = if meta.split_whitespace().nth(1)? == "tree" { "dir" } else { "file" };
                        let full = if path.is_empty() { name.to_owned() } else { format!("{path}/{name}") };
                        Some(json!({"type": kind, "name": name, "path": full, "sha": meta.split_whitespace().nth(2)}))
                    })
                    .collect();
                axum::Json(Value::Array(entries)).into_response()
            }
            Some("blob") => {
                let output = tokio::process::Command::new("git")
                    .arg(format!("--git-dir={}", self.dir.display()))
                    .args(["cat-file", "blob", &object])
                    .output()
                    .await
                    .unwrap();
                // GitHub wraps its base64 at 60 columns.
                let encoded = STANDARD.encode(&output.stdout);
                let wrapped: Vec<String> = encoded
                    .as_bytes()
                    .chunks(60)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect();
                axum::Json(json!({
                    "type": "file",
                    "encoding": "base64",
                    "name": path.rsplit('/').next(),
                    "path": path,
                    "size": output.stdout.len(),
                    "content": wrapped.join("\n") + "\n",
                }))
                .into_response()
            }
            _ => error(StatusCode::NOT_FOUND, "Not Found"),
        }
    }

    fn checks(&self) -> Vec<ScriptedCheck> {
        self.shared
            .inner
            .lock()
            .unwrap()
            .checks
            .get(&self.id)
            .cloned()
            .unwrap_or_default()
    }

    /// The commit a sha or branch names.
    async fn resolve(&self, reference: &str) -> Option<String> {
        git(
            &self.dir,
            &["rev-parse", "--verify", &format!("{reference}^{{commit}}")],
        )
        .await
    }

    fn pulls(&self) -> Vec<PullRecord> {
        self.shared
            .inner
            .lock()
            .unwrap()
            .pulls
            .get(&self.id)
            .cloned()
            .unwrap_or_default()
    }

    fn update<T>(&self, number: u64, f: impl FnOnce(&mut PullRecord) -> T) -> Option<T> {
        let mut inner = self.shared.inner.lock().unwrap();
        let pull = inner
            .pulls
            .get_mut(&self.id)?
            .iter_mut()
            .find(|p| p.number == number)?;
        Some(f(pull))
    }

    async fn pull_json(&self, pull: &PullRecord) -> Value {
        let url = &self.shared.url;
        let head_sha = self.head(&pull.head).await.unwrap_or_default();
        let base_sha = self.head(&pull.base).await.unwrap_or_default();
        let merged = pull.merge_sha.is_some();
        json!({
            "url": format!("{url}/repos/{}/pulls/{}", self.id, pull.number),
            "id": 1000 + pull.number,
            "number": pull.number,
            "state": pull.state,
            "title": pull.title,
            "body": pull.body,
            "draft": pull.draft,
            "html_url": format!("{url}/{}/pull/{}", self.id, pull.number),
            "user": {"login": "coding-assistant[bot]", "type": "Bot"},
            "head": {"ref": pull.head, "sha": head_sha, "label": format!("x:{}", pull.head)},
            "base": {"ref": pull.base, "sha": base_sha, "label": format!("x:{}", pull.base)},
            "merged": merged,
            "merged_at": if merged { json!(pull.created_at) } else { Value::Null },
            "merge_commit_sha": pull.merge_sha,
            "requested_reviewers": pull.requested_reviewers.iter().map(|l| json!({"login": l})).collect::<Vec<_>>(),
            "requested_teams": pull.requested_teams.iter().map(|s| json!({"slug": s})).collect::<Vec<_>>(),
            "labels": pull.labels.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
            "created_at": pull.created_at,
            "updated_at": pull.created_at,
        })
    }

    async fn create_pull(&self, body: Value) -> Response {
        let text = |key: &str| body[key].as_str().unwrap_or("").to_owned();
        let (title, head, base) = (text("title"), text("head"), text("base"));
        let invalid = |field: &str| {
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(json!({
                    "message": "Validation Failed",
                    "errors": [{"resource": "PullRequest", "field": field, "code": "invalid"}],
                })),
            )
                .into_response()
        };
        if title.is_empty() {
            return invalid("title");
        }
        if self.head(&head).await.is_none() {
            return invalid("head");
        }
        if self.head(&base).await.is_none() {
            return invalid("base");
        }
        let record = {
            let mut inner = self.shared.inner.lock().unwrap();
            let pulls = inner.pulls.entry(self.id.clone()).or_default();
            if pulls
                .iter()
                .any(|p| p.state == "open" && p.head == head && p.base == base)
            {
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    axum::Json(json!({
                        "message": "Validation Failed",
                        "errors": [{"resource": "PullRequest", "code": "custom",
                                    "message": format!("A pull request already exists for x:{head}.")}],
                    })),
                )
                    .into_response();
            }
            let record = PullRecord {
                number: pulls.len() as u64 + 1,
                title,
                body: text("body"),
                head,
                base,
                state: "open".into(),
                draft: body["draft"].as_bool().unwrap_or(false),
                merge_sha: None,
                requested_reviewers: Vec::new(),
                requested_teams: Vec::new(),
                labels: Vec::new(),
                reviews: Vec::new(),
                created_at: now_rfc3339(Duration::ZERO),
            };
            pulls.push(record.clone());
            record
        };
        (
            StatusCode::CREATED,
            axum::Json(self.pull_json(&record).await),
        )
            .into_response()
    }

    /// One page (`page`, from 1) of `items`, with a `Link` to the next one as GitHub sends.
    fn page(&self, items: Vec<Value>, params: &HashMap<String, String>, route: &str) -> Response {
        let size = self.shared.inner.lock().unwrap().page_size;
        let page: usize = params
            .get("page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1)
            .max(1);
        let chunk: Vec<Value> = items
            .iter()
            .skip((page - 1) * size)
            .take(size)
            .cloned()
            .collect();
        let mut response = axum::Json(Value::Array(chunk)).into_response();
        if items.len() > page * size {
            let mut query: Vec<String> = params
                .iter()
                .filter(|(k, _)| k.as_str() != "page")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            query.sort();
            query.push(format!("page={}", page + 1));
            let link = format!(
                "<{}/repos/{}/{route}?{}>; rel=\"next\"",
                self.shared.url,
                self.id,
                query.join("&")
            );
            response
                .headers_mut()
                .insert(header::LINK, link.parse().unwrap());
        }
        response
    }

    async fn pull_route(
        &self,
        method: &Method,
        tail: &[&str],
        pull: PullRecord,
        params: &HashMap<String, String>,
        headers: &HeaderMap,
        body: Value,
    ) -> Response {
        let head_sha = self.head(&pull.head).await.unwrap_or_default();
        let base_sha = self.head(&pull.base).await.unwrap_or_default();
        match (method.clone(), tail) {
            (Method::GET, []) => {
                let accept = headers
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if accept.contains("diff") {
                    let diff = git(&self.dir, &["diff", &format!("{base_sha}...{head_sha}")])
                        .await
                        .unwrap_or_default();
                    return ([(header::CONTENT_TYPE, "text/plain")], diff + "\n").into_response();
                }
                axum::Json(self.pull_json(&pull).await).into_response()
            }
            (Method::PATCH, []) => {
                if let Some(state) = body["state"].as_str() {
                    self.update(pull.number, |p| p.state = state.to_owned());
                }
                let pull = self.update(pull.number, |p| p.clone()).unwrap();
                axum::Json(self.pull_json(&pull).await).into_response()
            }
            (Method::GET, ["files"]) => {
                let names = git(
                    &self.dir,
                    &["diff", "--name-only", &format!("{base_sha}...{head_sha}")],
                )
                .await
                .unwrap_or_default();
                let files: Vec<Value> = names
                    .lines()
                    .map(|name| json!({"filename": name, "status": "modified"}))
                    .collect();
                self.page(files, params, &format!("pulls/{}/files", pull.number))
            }
            (Method::POST, ["requested_reviewers"]) => {
                let list = |key: &str| -> Vec<String> {
                    body[key]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                let (users, teams) = (list("reviewers"), list("team_reviewers"));
                let pull = self
                    .update(pull.number, |p| {
                        p.requested_reviewers.extend(users);
                        p.requested_teams.extend(teams);
                        p.clone()
                    })
                    .unwrap();
                (StatusCode::CREATED, axum::Json(self.pull_json(&pull).await)).into_response()
            }
            (Method::GET, ["reviews"]) => {
                let reviews: Vec<Value> = pull
                    .reviews
                    .iter()
                    .enumerate()
                    .map(|(i, review)| review_json(i, review))
                    .collect();
                self.page(reviews, params, &format!("pulls/{}/reviews", pull.number))
            }
            (Method::POST, ["reviews"]) => {
                let index = pull.reviews.len();
                let mut review = body.clone();
                review["submitted_at"] = json!(now_rfc3339(Duration::ZERO));
                if review["commit_id"].is_null() {
                    review["commit_id"] = json!(head_sha);
                }
                self.update(pull.number, |p| p.reviews.push(review.clone()));
                axum::Json(review_json(index, &review)).into_response()
            }
            (Method::PUT, ["merge"]) => {
                if pull.state != "open" {
                    return error(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "Pull Request is not mergeable",
                    );
                }
                if body["sha"].as_str().is_some_and(|sha| sha != head_sha) {
                    return error(
                        StatusCode::CONFLICT,
                        "Head branch was modified. Review and try the merge again.",
                    );
                }
                let Some(tree) = git(
                    &self.dir,
                    &["merge-tree", "--write-tree", &base_sha, &head_sha],
                )
                .await
                else {
                    return error(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "Pull Request is not mergeable",
                    );
                };
                let tree = tree.lines().next().unwrap_or("").to_owned();
                let message = format!("Merge pull request #{} from {}", pull.number, pull.head);
                let commit = git(
                    &self.dir,
                    &[
                        "commit-tree",
                        &tree,
                        "-p",
                        &base_sha,
                        "-p",
                        &head_sha,
                        "-m",
                        &message,
                    ],
                )
                .await
                .unwrap();
                git(
                    &self.dir,
                    &[
                        "update-ref",
                        &format!("refs/heads/{}", pull.base),
                        &commit,
                        &base_sha,
                    ],
                )
                .await
                .unwrap();
                self.update(pull.number, |p| {
                    p.state = "closed".into();
                    p.merge_sha = Some(commit.clone());
                });
                axum::Json(json!({"sha": commit, "merged": true, "message": "Pull Request successfully merged"}))
                    .into_response()
            }
            _ => error(StatusCode::NOT_FOUND, "Not Found"),
        }
    }
}

fn review_json(index: usize, review: &Value) -> Value {
    let state = match review["event"].as_str() {
        Some("APPROVE") => "APPROVED",
        Some("REQUEST_CHANGES") => "CHANGES_REQUESTED",
        _ => "COMMENTED",
    };
    json!({
        "id": 80 + index as u64,
        "user": review.get("user").cloned().unwrap_or(json!({"login": "coding-assistant[bot]"})),
        "body": review["body"],
        "state": state,
        "commit_id": review["commit_id"],
        "submitted_at": review["submitted_at"],
    })
}

impl GitHubStandIn {
    /// Records a review left by a human on GitHub itself (`APPROVE`, `REQUEST_CHANGES` or
    /// `COMMENT`).
    pub fn add_human_review(&self, repository_id: &str, number: u64, login: &str, event: &str) {
        let head = self
            .pull(repository_id, number)
            .expect("no such pull request")
            .head;
        // On the head as it is now, as GitHub records `commit_id`.
        let commit_id = crate::git::git(
            &self.bare_path(repository_id),
            &["rev-parse", &format!("refs/heads/{head}")],
        );
        let mut inner = self.lock();
        let pull = inner
            .pulls
            .get_mut(repository_id)
            .and_then(|pulls| pulls.iter_mut().find(|p| p.number == number))
            .expect("no such pull request");
        pull.reviews.push(json!({
            "user": {"login": login},
            "body": "",
            "event": event,
            "commit_id": commit_id,
            "submitted_at": now_rfc3339(Duration::ZERO),
        }));
    }
}

/// Serves `git http-backend` as CGI for `/git/{owner}/{name}.git/...`, after checking the
/// Basic `x-access-token` credential against the repository's installation.
async fn git_http(
    shared: &Shared,
    method: &Method,
    rest: &str,
    query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let unauthorized = || {
        Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(header::WWW_AUTHENTICATE, "Basic realm=\"GitHub\"")
            .body(Body::from("authentication required"))
            .unwrap()
    };
    let Some((owner, tail)) = rest.split_once('/') else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let Some((name, _)) = tail.split_once(".git/") else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let repository_id = format!("{owner}/{name}");
    let Some(installation) = shared
        .inner
        .lock()
        .unwrap()
        .repos
        .get(&repository_id)
        .map(|s| s.installation)
    else {
        return error(StatusCode::NOT_FOUND, "Repository not found.");
    };
    let credential = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| STANDARD.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok());
    let Some(token) = credential
        .as_deref()
        .and_then(|c| c.strip_prefix("x-access-token:"))
    else {
        return unauthorized();
    };
    if check_token(shared, token, installation).is_err() {
        return unauthorized();
    }
    let header_value = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", &shared.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", method.as_str())
        .env("QUERY_STRING", query)
        .env("PATH_INFO", format!("/{rest}"))
        .env("CONTENT_TYPE", header_value(header::CONTENT_TYPE))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env(
            "HTTP_CONTENT_ENCODING",
            header_value(header::CONTENT_ENCODING),
        )
        .env(
            "GIT_PROTOCOL",
            header_value(header::HeaderName::from_static("git-protocol")),
        )
        .env("REMOTE_USER", "x-access-token")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("git http-backend starts");
    let mut stdin = child.stdin.take().unwrap();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = stdin.write_all(&body).await;
    });
    let output = child.wait_with_output().await.unwrap();
    let _ = writer.await;
    cgi_response(&output.stdout)
}

/// Turns a CGI answer (headers, a blank line, the body) into a response.
fn cgi_response(stdout: &[u8]) -> Response {
    let split = stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| (at, 4))
        .or_else(|| {
            stdout
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|at| (at, 2))
        });
    let Some((at, gap)) = split else {
        return error(
            StatusCode::BAD_GATEWAY,
            "git http-backend printed no headers",
        );
    };
    let mut builder = Response::builder().status(StatusCode::OK);
    for line in String::from_utf8_lossy(&stdout[..at]).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value
                .split_whitespace()
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(500);
            builder = builder.status(code);
        } else {
            builder = builder.header(name.trim(), value);
        }
    }
    builder
        .body(Body::from(stdout[at + gap..].to_vec()))
        .unwrap()
}
