//! Sign-in with GitHub (the OAuth web flow) and the GitHub half of the allow-list.
//!
//! `GET /api/v1/auth/github` explains the scopes asked for; `.../start` sends the browser to
//! GitHub's authorize page with a random `state`, which the gateway records (single use, ten
//! minutes) and also puts in a short-lived cookie, so the callback must come back to the same
//! browser; `.../callback` checks the state, exchanges the code, reads `/user` (and
//! `/user/orgs` when only some organisations are admitted), finds or makes the platform user
//! linked to the GitHub account id and opens the same session a password sign-in opens.
//!
//! A user who signs in through GitHub targets only repositories the allow-list and their
//! GitHub access both grant: [`check_repository_access`] asks GitHub whether they may push.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use cap_identity::{
    Credential, DEFAULT_ORGANISATION, GitHubAccount, OAuthState, Principal, Role, TokenVault,
};
use serde::Serialize;

use crate::auth::{cookie, secure_attribute, session_cookie_header};
use crate::error::{Error, Result};
use crate::github_api::{GitHubApi, RepositoryAccess};
use crate::input::QueryParams;
use crate::state::AppState;
use crate::tasks::is_host;

/// The scopes GitHub sign-in asks for, each with why, as shown before the redirect.
pub const SCOPES: [(&str, &str); 3] = [
    (
        "repo",
        "read and write your repositories: before a task runs the gateway checks that you may \
         push to its repository, and the platform's branches and pull requests go there",
    ),
    (
        "read:org",
        "read your organisation memberships: a gateway may admit only members of some \
         organisations",
    ),
    (
        "write:discussion",
        "write team discussions, for review threads the platform may post for your team; the \
         gateway itself makes no discussion calls today",
    ),
];
/// The cookie binding a sign-in's `state` to the browser that started it.
pub const STATE_COOKIE: &str = "cap_oauth_state";
/// How long a sign-in may take between start and callback.
pub const STATE_LIFETIME: Duration = Duration::from_secs(600);
/// Where GitHub sends the browser back.
pub const CALLBACK_PATH: &str = "/api/v1/auth/github/callback";
/// Where a sign-in starts.
pub const START_PATH: &str = "/api/v1/auth/github/start";
/// The path the state cookie is sent to (the start and callback routes only).
const STATE_COOKIE_PATH: &str = "/api/v1/auth/github";

/// The OAuth app's client secret: never shown by `Debug`, never logged.
#[derive(Clone)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// The secret itself, for the code exchange only.
    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(redacted)")
    }
}

impl FromStr for ClientSecret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        Ok(Self(text.trim().to_owned()))
    }
}

/// Flags of GitHub sign-in; it is off while `--github-oauth-client-id` is unset.
#[derive(Debug, Clone, clap::Args)]
pub struct OAuthArgs {
    /// Client id of the GitHub OAuth app; GitHub sign-in is off without it.
    #[arg(long = "github-oauth-client-id", env = "CAP_GITHUB_OAUTH_CLIENT_ID")]
    pub client_id: Option<String>,
    /// The OAuth app's client secret. Prefer the environment variable or
    /// `--github-oauth-client-secret-file`: a flag's value shows in process lists.
    #[arg(
        long = "github-oauth-client-secret",
        env = "CAP_GITHUB_OAUTH_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub client_secret: Option<ClientSecret>,
    /// A file holding the OAuth app's client secret.
    #[arg(
        long = "github-oauth-client-secret-file",
        env = "CAP_GITHUB_OAUTH_CLIENT_SECRET_FILE"
    )]
    pub client_secret_file: Option<PathBuf>,
    /// GitHub's web host, where `/login/oauth/authorize` and `/login/oauth/access_token` are
    /// (GitHub Enterprise: its host).
    #[arg(
        long = "github-oauth-url",
        env = "CAP_GITHUB_OAUTH_URL",
        default_value = "https://github.com"
    )]
    pub web_url: String,
    /// GitHub's REST API (`/user`, `/user/orgs`, `/repos/...`).
    #[arg(
        long = "github-api-url",
        env = "CAP_GITHUB_API_URL",
        default_value = "https://api.github.com"
    )]
    pub api_url: String,
    /// The callback URL registered with the OAuth app
    /// (`https://HOST/api/v1/auth/github/callback`); built from the `Host` the browser used
    /// when unset.
    #[arg(
        long = "github-oauth-redirect-url",
        env = "CAP_GITHUB_OAUTH_REDIRECT_URL"
    )]
    pub redirect_url: Option<String>,
    /// Role of the accounts a first GitHub sign-in creates (an Admin changes it later).
    #[arg(
        long = "github-default-role",
        env = "CAP_GITHUB_DEFAULT_ROLE",
        default_value = "viewer"
    )]
    pub default_role: Role,
    /// GitHub organisations whose members may sign in (repeatable, or comma-separated in the
    /// environment); any GitHub account when none is given.
    #[arg(long = "github-org", env = "CAP_GITHUB_ORGS", value_delimiter = ',')]
    pub organisations: Vec<String>,
}

/// GitHub sign-in, configured.
#[derive(Debug)]
pub struct GitHubOAuth {
    client_id: String,
    client_secret: ClientSecret,
    api: GitHubApi,
    redirect_url: Option<String>,
    default_role: Role,
    organisations: Vec<String>,
    state_lifetime: Duration,
    vault: TokenVault,
}

impl GitHubOAuth {
    /// GitHub sign-in from its flags, with the token key in `data_dir`; `None` when no client
    /// id is configured.
    pub fn from_args(args: &OAuthArgs, data_dir: &Path) -> Result<Option<Self>> {
        let Some(client_id) = args.client_id.as_deref().map(str::trim) else {
            return Ok(None);
        };
        let bad = |message: String| Error::OAuthConfig(message);
        if client_id.is_empty() || !client_id.chars().all(|c| c.is_ascii_graphic()) {
            return Err(bad(
                "--github-oauth-client-id must be the OAuth app's client id (printable, no spaces)"
                    .into(),
            ));
        }
        let client_secret = match (&args.client_secret, &args.client_secret_file) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "give the GitHub client secret once: either CAP_GITHUB_OAUTH_CLIENT_SECRET \
                     or --github-oauth-client-secret-file"
                        .into(),
                ));
            }
            (Some(secret), None) => secret.clone(),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|error| {
                    bad(format!(
                        "cannot read --github-oauth-client-secret-file {}: {error}",
                        path.display()
                    ))
                })?;
                ClientSecret(text.trim().to_owned())
            }
            (None, None) => {
                return Err(bad(
                    "--github-oauth-client-id is set but the client secret is not: set \
                     CAP_GITHUB_OAUTH_CLIENT_SECRET or --github-oauth-client-secret-file"
                        .into(),
                ));
            }
        };
        if client_secret.expose().trim().is_empty() {
            return Err(bad("the GitHub client secret is empty".into()));
        }
        let web_url = base_url("--github-oauth-url", &args.web_url)?;
        let api_url = base_url("--github-api-url", &args.api_url)?;
        let redirect_url = match &args.redirect_url {
            Some(url) => {
                base_url("--github-oauth-redirect-url", url)?;
                Some(url.trim().to_owned())
            }
            None => None,
        };
        for org in &args.organisations {
            if org.is_empty() || !org.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(bad(format!(
                    "--github-org {org:?} is not a GitHub organisation login"
                )));
            }
        }
        let vault = TokenVault::load_or_create(data_dir)?;
        Ok(Some(Self {
            client_id: client_id.to_owned(),
            client_secret,
            api: GitHubApi::new(web_url, api_url)?,
            redirect_url,
            default_role: args.default_role,
            organisations: args.organisations.clone(),
            state_lifetime: STATE_LIFETIME,
            vault,
        }))
    }

    /// Replaces how long a sign-in may take (ten minutes by default).
    pub fn with_state_lifetime(mut self, lifetime: Duration) -> Self {
        self.state_lifetime = lifetime;
        self
    }

    /// The callback URL: the configured one, or the gateway's own as the browser addressed it.
    fn redirect_uri(&self, state: &AppState, headers: &HeaderMap) -> Result<String> {
        if let Some(url) = &self.redirect_url {
            return Ok(url.clone());
        }
        let host = headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .filter(|host| is_host(host))
            .ok_or_else(|| {
                Error::bad_request(
                    "invalid_value",
                    Some("host"),
                    "the request has no usable Host header to build the GitHub callback URL \
                     from; the operator sets --github-oauth-redirect-url",
                )
            })?;
        let scheme = if secure_attribute(state, headers).is_empty() {
            "http"
        } else {
            "https"
        };
        Ok(format!("{scheme}://{host}{CALLBACK_PATH}"))
    }
}

/// `http(s)://host[:port][/path]` without a trailing slash; plain HTTP only to loopback (a
/// stand-in), since the client secret and tokens travel on these connections.
fn base_url(flag: &str, url: &str) -> Result<String> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let host = rest
        .map(|rest| rest.split('/').next().unwrap_or_default())
        .unwrap_or_default();
    let loopback = ["127.0.0.1", "[::1]", "localhost"]
        .iter()
        .any(|name| host == *name || host.starts_with(&format!("{name}:")));
    if host.is_empty() || !is_host(host) || (url.starts_with("http://") && !loopback) {
        return Err(Error::OAuthConfig(format!(
            "{flag} {url:?} is not an https:// URL (plain http:// only to loopback)"
        )));
    }
    Ok(url.to_owned())
}

/// One scope and why it is asked for.
#[derive(Debug, Serialize)]
pub struct ScopeReason {
    /// The GitHub scope.
    pub scope: &'static str,
    /// Why the platform needs it.
    pub why: &'static str,
}

/// What new GitHub users get.
#[derive(Debug, Serialize)]
pub struct NewUsers {
    /// Their platform name.
    pub name: &'static str,
    /// Their role.
    pub role: Role,
}

/// Answer of `GET /api/v1/auth/github`.
#[derive(Debug, Serialize)]
pub struct Explanation {
    /// The scopes GitHub will ask the user to grant, each with why.
    pub scopes: Vec<ScopeReason>,
    /// Where the browser goes to sign in.
    pub start_url: &'static str,
    /// What a first sign-in makes.
    pub new_users: NewUsers,
    /// GitHub organisations whose members may sign in; empty: any GitHub account.
    pub organisations: Vec<String>,
}

fn configured(state: &AppState) -> Result<&GitHubOAuth> {
    state.github_oauth().ok_or(Error::OAuthNotConfigured)
}

/// `GET /api/v1/auth/github`: what signing in with GitHub asks for and why.
pub async fn explain(State(state): State<AppState>) -> Result<Json<Explanation>> {
    let oauth = configured(&state)?;
    Ok(Json(Explanation {
        scopes: SCOPES
            .iter()
            .map(|(scope, why)| ScopeReason { scope, why })
            .collect(),
        start_url: START_PATH,
        new_users: NewUsers {
            name: "gh-<login>",
            role: oauth.default_role,
        },
        organisations: oauth.organisations.clone(),
    }))
}

/// `GET /api/v1/auth/github/start`: to GitHub's authorize page, with a fresh state.
pub async fn start(State(state): State<AppState>, headers: HeaderMap) -> Result<Response> {
    let oauth = configured(&state)?;
    let redirect_uri = oauth.redirect_uri(&state, &headers)?;
    let nonce = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(cap_identity::keys::random::<32>()?);
    let expires_at_ms = cap_storage::now_ms()
        .saturating_add(i64::try_from(oauth.state_lifetime.as_millis()).unwrap_or(i64::MAX));
    state
        .authenticator()
        .store()
        .issue_oauth_state(&nonce, expires_at_ms)
        .await?;
    let scope = SCOPES.map(|(scope, _)| scope).join(" ");
    let location = format!(
        "{}?client_id={}&redirect_uri={}&scope={}&state={}",
        oauth.api.authorize_url(),
        encode(&oauth.client_id),
        encode(&redirect_uri),
        encode(&scope),
        nonce,
    );
    // Lax, not Strict: the callback is a top-level navigation from GitHub's site, on which
    // browsers withhold Strict cookies.
    let cookie = format!(
        "{STATE_COOKIE}={nonce}; Path={STATE_COOKIE_PATH}; HttpOnly; SameSite=Lax; Max-Age={}{}",
        oauth.state_lifetime.as_secs(),
        secure_attribute(&state, &headers),
    );
    redirect(&location, &[cookie])
}

/// `GET /api/v1/auth/github/callback?code&state`: checks the state, signs the GitHub user
/// in and sends the browser to the dashboard.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: QueryParams,
) -> Result<Response> {
    let oauth = configured(&state)?;
    query.only(&["code", "state", "error", "error_description", "error_uri"])?;
    check_state(&state, oauth, &headers, &query).await?;
    if let Some(error) = query.get("error") {
        // The user declined, or GitHub refused the request, on GitHub's page.
        let description = query.get("error_description").unwrap_or(error);
        return Err(Error::Forbidden(format!(
            "GitHub did not sign you in ({error}: {description})"
        )));
    }
    let code = query
        .get("code")
        .filter(|code| !code.is_empty())
        .ok_or_else(|| {
            Error::bad_request(
                "missing_field",
                Some("code"),
                "the callback has no `code` parameter from GitHub",
            )
        })?;
    let redirect_uri = oauth.redirect_uri(&state, &headers)?;
    let token = oauth
        .api
        .exchange_code(
            &oauth.client_id,
            oauth.client_secret.expose(),
            code,
            &redirect_uri,
        )
        .await?;
    let github = oauth.api.user(&token).await?;
    if !oauth.organisations.is_empty() {
        let member_of = oauth.api.organisations(&token).await?;
        let admitted = member_of.iter().any(|org| {
            oauth
                .organisations
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(org))
        });
        if !admitted {
            return Err(Error::Forbidden(format!(
                "GitHub user {} is not a member of {}, the organisations this gateway admits",
                github.login,
                oauth.organisations.join(", ")
            )));
        }
    }
    let account = GitHubAccount {
        id: github.id,
        login: github.login,
    };
    let auth = state.authenticator();
    let user = auth
        .store()
        .github_user(&account, oauth.default_role, DEFAULT_ORGANISATION)
        .await?;
    let session = auth
        .open_session(&user.name, user.role, &user.organisation)
        .await?;
    if let Credential::Session { session_id, .. } = &session.principal.credential {
        // Kept sealed in the database rather than in this process's memory: sessions outlive
        // a gateway restart and are served by every replica, and the token must be there
        // whenever the session submits. The key stays in the data directory; the row goes
        // with the session.
        let sealed = oauth.vault.seal(session_id, &token)?;
        auth.store()
            .keep_github_token(session_id, account.id, &sealed, session.expires_at_ms)
            .await?;
    }
    tracing::info!(user = %user.name, github_login = %account.login, "signed in with GitHub");
    state
        .audit(
            &user.name,
            "auth.signed_in",
            serde_json::json!({ "with": "github", "github_login": account.login }),
        )
        .await?;
    let clear_state = format!(
        "{STATE_COOKIE}=; Path={STATE_COOKIE_PATH}; HttpOnly; SameSite=Lax; Max-Age=0{}",
        secure_attribute(&state, &headers),
    );
    redirect(
        "/",
        &[
            session_cookie_header(&state, &headers, &session.token),
            clear_state,
        ],
    )
}

/// The state must be in the query, equal to the one this browser's cookie holds, issued
/// here, unused and in time; the message names which check failed.
async fn check_state(
    state: &AppState,
    oauth: &GitHubOAuth,
    headers: &HeaderMap,
    query: &QueryParams,
) -> Result<()> {
    let returned = query
        .get("state")
        .filter(|value| !value.is_empty())
        .ok_or_else(|| {
            Error::bad_request(
                "missing_field",
                Some("state"),
                "the callback has no `state` parameter: start the sign-in at \
             /api/v1/auth/github/start",
            )
        })?;
    let held = cookie(headers, STATE_COOKIE).ok_or_else(|| {
        Error::Forbidden(format!(
            "this browser holds no sign-in state (cookie `{STATE_COOKIE}`): the sign-in was \
             started in another browser or too long ago; start again"
        ))
    })?;
    if !constant_time_eq(returned.as_bytes(), held.as_bytes()) {
        return Err(Error::Forbidden(
            "the `state` parameter does not match the one this browser was given (altered, or \
             from another sign-in): start again"
                .into(),
        ));
    }
    match state
        .authenticator()
        .store()
        .use_oauth_state(returned)
        .await?
    {
        OAuthState::Fresh => Ok(()),
        OAuthState::Unknown => Err(Error::Forbidden(
            "the `state` was not issued by this gateway: start the sign-in again".into(),
        )),
        OAuthState::Used(_) => Err(Error::Forbidden(
            "the `state` was used already (each sign-in's state works once): start again".into(),
        )),
        OAuthState::Expired(_) => Err(Error::Forbidden(format!(
            "the `state` expired: a sign-in must finish within {} s; start again",
            oauth.state_lifetime.as_secs()
        ))),
    }
}

/// For a user who signs in through GitHub: GitHub must let them push to `repository_id`
/// (`owner/name`), asked with their own OAuth token. Local accounts (password, API tokens)
/// work on the local forge, which has no GitHub access to ask about, and pass.
pub(crate) async fn check_repository_access(
    state: &AppState,
    actor: &Principal,
    repository_id: &str,
) -> Result<()> {
    let store = state.authenticator().store();
    let Some(account) = store.github_account_of(&actor.user).await? else {
        return Ok(());
    };
    let missing = |why: String| {
        Error::Forbidden(format!(
            "GitHub access to {repository_id} is missing: {why}"
        ))
    };
    let Some(oauth) = state.github_oauth() else {
        return Err(missing(format!(
            "{} signs in through GitHub, and GitHub sign-in is not configured on this gateway \
             to check it",
            actor.user
        )));
    };
    let sealed = match &actor.credential {
        Credential::Session { session_id, .. } => store
            .github_token(session_id)
            .await?
            .map(|sealed| (session_id, sealed)),
        Credential::ApiToken { .. } => None,
    };
    let Some((session_id, sealed)) = sealed else {
        return Err(missing(format!(
            "{} signs in through GitHub and this request carries no GitHub sign-in (an API \
             token, or a session another way opened): sign in with GitHub to submit",
            actor.user
        )));
    };
    let token = oauth.vault.open(session_id, &sealed).map_err(|error| {
        tracing::warn!(user = %actor.user, %error, "a stored GitHub token did not open");
        missing(
            "the gateway cannot use the stored GitHub sign-in: sign in with GitHub again".into(),
        )
    })?;
    let Some((owner, name)) = github_repository(repository_id) else {
        return Err(missing(
            "it is not a GitHub repository name of the form `owner/name`".into(),
        ));
    };
    match oauth.api.repository_access(&token, owner, name).await? {
        RepositoryAccess::Push => Ok(()),
        RepositoryAccess::ReadOnly => Err(missing(format!(
            "GitHub lets {} read it but not push to it",
            account.login
        ))),
        RepositoryAccess::NotFound => Err(missing(format!(
            "GitHub knows no such repository, or does not show it to {}",
            account.login
        ))),
        RepositoryAccess::TokenRefused => Err(missing(format!(
            "GitHub no longer accepts {}'s sign-in (revoked or expired): sign in with GitHub \
             again",
            account.login
        ))),
    }
}

/// `owner/name` when both are names GitHub allows (letters, digits, `-`, `_`, `.`).
fn github_repository(repository_id: &str) -> Option<(&str, &str)> {
    let (owner, name) = repository_id.split_once('/')?;
    let part = |text: &str| {
        !text.is_empty()
            && text.len() <= 100
            && text != "."
            && text != ".."
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    (part(owner) && part(name)).then_some((owner, name))
}

fn redirect(location: &str, cookies: &[String]) -> Result<Response> {
    let mut response = StatusCode::FOUND.into_response();
    let headers = response.headers_mut();
    let location = HeaderValue::from_str(location).map_err(|_| {
        Error::OAuthConfig("a sign-in redirect URL is not a valid header value".into())
    })?;
    headers.insert(header::LOCATION, location);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    Ok(response)
}

/// Percent-encodes a query value (RFC 3986 unreserved characters and `:` stay).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            // `:` may stay in a query value; GitHub's documented URLs keep it (`read:org`).
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
#[path = "oauth_tests.rs"]
mod tests;
