//! A stand-in for GitHub's OAuth pages and the few REST endpoints GitHub sign-in calls, on
//! loopback, answering with GitHub's documented shapes: the authorize page redirects back
//! with a code and the same state, `POST /login/oauth/access_token` exchanges a code once
//! (errors as HTTP 200 with `error`, as GitHub does), `/user`, `/user/orgs` and
//! `/repos/{owner}/{repo}` (with `permissions`) need the issued bearer token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::net::TcpListener;

/// A GitHub account of the stand-in.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: i64,
    pub login: String,
    pub orgs: Vec<String>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Who is signed in at "GitHub" in the test's browser.
    signed_in: Option<i64>,
    accounts: HashMap<i64, Account>,
    /// code -> (account id, redirect_uri it was issued for).
    codes: HashMap<String, (i64, String)>,
    /// access token -> account id.
    tokens: HashMap<String, i64>,
    /// `owner/name` -> account id -> may push.
    repos: HashMap<String, HashMap<i64, bool>>,
    /// Query strings the authorize page was called with.
    authorize_queries: Vec<HashMap<String, String>>,
    /// `Authorization` headers of REST calls, with their paths.
    api_calls: Vec<(String, String)>,
    /// Form bodies the token endpoint received.
    exchanges: Vec<HashMap<String, String>>,
}

/// The stand-in and where it listens.
#[derive(Debug, Clone)]
pub struct GitHubStandIn {
    pub url: String,
    pub client_id: String,
    pub client_secret: String,
    inner: Arc<Mutex<Inner>>,
}

impl GitHubStandIn {
    /// Serves a stand-in on 127.0.0.1:0 with an OAuth app whose credentials are made now.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let standin = Self {
            url: format!("http://{}", listener.local_addr().unwrap()),
            client_id: format!("Iv1.{}", &uuid::Uuid::new_v4().simple().to_string()[..16]),
            client_secret: format!("test-secret-{}", uuid::Uuid::new_v4().simple()),
            inner: Arc::default(),
        };
        let app = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(access_token))
            .route("/user", get(user))
            .route("/user/orgs", get(user_orgs))
            .route("/repos/{owner}/{repo}", get(repo))
            .with_state(standin.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        standin
    }

    /// Adds (or replaces) an account.
    pub fn account(&self, id: i64, login: &str, orgs: &[&str]) {
        self.inner.lock().unwrap().accounts.insert(
            id,
            Account {
                id,
                login: login.to_owned(),
                orgs: orgs.iter().map(|org| (*org).to_owned()).collect(),
            },
        );
    }

    /// Signs the browser in at GitHub as `id` (whom the authorize page then grants).
    pub fn sign_in_as(&self, id: i64) {
        self.inner.lock().unwrap().signed_in = Some(id);
    }

    /// Gives `id` access to `full_name`, with push or read-only.
    pub fn grant(&self, full_name: &str, id: i64, push: bool) {
        self.inner
            .lock()
            .unwrap()
            .repos
            .entry(full_name.to_owned())
            .or_default()
            .insert(id, push);
    }

    pub fn authorize_queries(&self) -> Vec<HashMap<String, String>> {
        self.inner.lock().unwrap().authorize_queries.clone()
    }

    pub fn api_calls(&self) -> Vec<(String, String)> {
        self.inner.lock().unwrap().api_calls.clone()
    }

    pub fn exchanges(&self) -> Vec<HashMap<String, String>> {
        self.inner.lock().unwrap().exchanges.clone()
    }

    /// The access tokens issued so far.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.inner.lock().unwrap().tokens.keys().cloned().collect()
    }

    /// Revokes every issued token (as the user would on GitHub's settings page).
    pub fn revoke_tokens(&self) {
        self.inner.lock().unwrap().tokens.clear();
    }
}

async fn authorize(
    State(standin): State<GitHubStandIn>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = standin.inner.lock().unwrap();
    inner.authorize_queries.push(query.clone());
    if query.get("client_id") != Some(&standin.client_id) {
        return (StatusCode::NOT_FOUND, "unknown OAuth app").into_response();
    }
    let (Some(redirect_uri), Some(state)) = (query.get("redirect_uri"), query.get("state")) else {
        return (StatusCode::BAD_REQUEST, "redirect_uri and state expected").into_response();
    };
    let Some(account) = inner.signed_in else {
        return (StatusCode::UNAUTHORIZED, "nobody signed in at GitHub").into_response();
    };
    let code = uuid::Uuid::new_v4().simple().to_string()[..20].to_owned();
    inner
        .codes
        .insert(code.clone(), (account, redirect_uri.clone()));
    let location = format!("{redirect_uri}?code={code}&state={}", percent_encode(state));
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

fn oauth_error(error: &str, description: &str) -> Response {
    // GitHub answers refused exchanges with 200 and an `error` member.
    axum::Json(json!({
        "error": error,
        "error_description": description,
        "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors",
    }))
    .into_response()
}

async fn access_token(
    State(standin): State<GitHubStandIn>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let form = parse_form(&body);
    let mut inner = standin.inner.lock().unwrap();
    inner.exchanges.push(form.clone());
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    if !wants_json {
        return (
            StatusCode::NOT_ACCEPTABLE,
            "the gateway always asks for JSON",
        )
            .into_response();
    }
    if form.get("client_id") != Some(&standin.client_id)
        || form.get("client_secret") != Some(&standin.client_secret)
    {
        return oauth_error(
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
        );
    }
    let code = form.get("code").cloned().unwrap_or_default();
    let Some((account, redirect_uri)) = inner.codes.remove(&code) else {
        return oauth_error(
            "bad_verification_code",
            "The code passed is incorrect or expired.",
        );
    };
    if form.get("redirect_uri") != Some(&redirect_uri) {
        return oauth_error(
            "redirect_uri_mismatch",
            "The redirect_uri MUST match the registered callback URL for this application.",
        );
    }
    let token = format!("gho_{}", uuid::Uuid::new_v4().simple());
    inner.tokens.insert(token.clone(), account);
    axum::Json(json!({
        "access_token": token,
        "token_type": "bearer",
        "scope": "repo,read:org,write:discussion",
    }))
    .into_response()
}

fn bad_credentials() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({
            "message": "Bad credentials",
            "documentation_url": "https://docs.github.com/rest",
            "status": "401",
        })),
    )
        .into_response()
}

/// The account the request's bearer token belongs to, recording the call.
fn caller(standin: &GitHubStandIn, headers: &HeaderMap, path: &str) -> Option<Account> {
    let mut inner = standin.inner.lock().unwrap();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    inner
        .api_calls
        .push((path.to_owned(), authorization.clone()));
    let token = authorization.strip_prefix("Bearer ")?;
    let id = *inner.tokens.get(token)?;
    inner.accounts.get(&id).cloned()
}

async fn user(State(standin): State<GitHubStandIn>, headers: HeaderMap) -> Response {
    let Some(account) = caller(&standin, &headers, "/user") else {
        return bad_credentials();
    };
    axum::Json(json!({
        "login": account.login,
        "id": account.id,
        "node_id": format!("MDQ6VXNlcj{}", account.id),
        "type": "User",
        "site_admin": false,
        "name": null,
        "email": null,
    }))
    .into_response()
}

async fn user_orgs(State(standin): State<GitHubStandIn>, headers: HeaderMap) -> Response {
    let Some(account) = caller(&standin, &headers, "/user/orgs") else {
        return bad_credentials();
    };
    let orgs: Vec<_> = account
        .orgs
        .iter()
        .enumerate()
        .map(|(index, login)| {
            json!({
                "login": login,
                "id": 1000 + index,
                "node_id": format!("MDEyOk9yZ2FuaXphdGlvbj{index}"),
                "description": null,
            })
        })
        .collect();
    axum::Json(orgs).into_response()
}

async fn repo(
    State(standin): State<GitHubStandIn>,
    Path((owner, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let full_name = format!("{owner}/{name}");
    let Some(account) = caller(&standin, &headers, &format!("/repos/{full_name}")) else {
        return bad_credentials();
    };
    let push = standin
        .inner
        .lock()
        .unwrap()
        .repos
        .get(&full_name)
        .and_then(|access| access.get(&account.id).copied());
    let Some(push) = push else {
        // Private repositories the caller cannot see are 404, like unknown ones.
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({
                "message": "Not Found",
                "documentation_url": "https://docs.github.com/rest/repos/repos#get-a-repository",
                "status": "404",
            })),
        )
            .into_response();
    };
    axum::Json(json!({
        "id": 1_296_269,
        "name": name,
        "full_name": full_name,
        "private": true,
        "owner": { "login": owner },
        "permissions": {
            "admin": false,
            "maintain": false,
            "push": push,
            "triage": push,
            "pull": true,
        },
    }))
    .into_response()
}

fn parse_form(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (percent_decode(name), percent_decode(value)))
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                index += 2;
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8(out).unwrap()
}

pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
