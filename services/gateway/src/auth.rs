//! Who is calling and what they may do: one guard in front of every route, sign-in and
//! sign-out, and the acting user passed on to the services inside.
//!
//! A request proves who it is with `Authorization: Bearer <token>` (a session token or an API
//! token) or the dashboard's `cap_session` cookie (HTTP-only, same-site strict). State changes
//! authenticated by the cookie must also carry `X-CSRF-Token` with the session's CSRF value,
//! and WebSocket upgrades by cookie must come from the gateway's own origin. The role each
//! route needs is in [`required_role`], the one table the guard reads.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cap_identity::{Credential, Principal, Role};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::input::{ApiJson, JsonBody};
use crate::state::AppState;

/// The dashboard's session cookie.
pub const SESSION_COOKIE: &str = "cap_session";
/// The header cookie-authenticated state changes echo the session's CSRF value in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The gRPC metadata key naming the acting user for the services inside.
pub use cap_proto::ACTOR_METADATA;

/// The role a route needs; `None` for the public ones (dashboard assets, health, sign-in).
pub fn required_role(method: &Method, route: &str) -> Option<Role> {
    match route {
        "/"
        | "/assets/app.js"
        | "/assets/style.css"
        | "/healthz"
        | "/api/v1/auth/login"
        | "/api/v1/auth/github"
        | crate::oauth::START_PATH
        | crate::oauth::CALLBACK_PATH => None,
        "/api/v1/auth/me" | "/api/v1/auth/logout" => Some(Role::Viewer),
        route
            if route.starts_with("/api/v1/users")
                || route.starts_with("/api/v1/tokens")
                || route.starts_with("/api/v1/allow-list")
                || route.starts_with("/api/v1/audit")
                || route.starts_with("/api/v1/quarantine") =>
        {
            Some(Role::Admin)
        }
        _ if method == Method::GET || method == Method::HEAD => Some(Role::Viewer),
        // Submitting, steering, deciding, reviewing and merging.
        _ => Some(Role::Developer),
    }
}

/// The guard: authenticates, checks the role, the CSRF header and the rate limits, and hands
/// the [`Principal`] to the handler as a request extension.
pub async fn guard(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = matched.as_ref().map_or("", MatchedPath::as_str).to_owned();
    let Some(required) = required_role(request.method(), &route) else {
        if route == "/api/v1/auth/login" || route == crate::oauth::START_PATH {
            // Sign-in attempts are limited per client address: password guessing is slow, and
            // each GitHub sign-in started records a state.
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "unknown".to_owned(), |info| info.0.ip().to_string());
            if let Err(error) = state.limits().sign_in(&peer) {
                return error.into_response();
            }
        }
        return next.run(request).await;
    };
    match authorize(&state, request.method(), request.headers(), required).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

async fn authorize(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    required: Role,
) -> Result<Principal> {
    let (credential, by_cookie) = presented(headers).ok_or_else(|| {
        Error::Unauthenticated(
            "sign in first: send `Authorization: Bearer <token>` (a session or API token) or \
             the dashboard's session cookie"
                .into(),
        )
    })?;
    let principal = state.authenticator().authenticate(&credential).await?;
    if !principal.role.allows(required) {
        return Err(Error::Forbidden(format!(
            "this needs the {required} role; {} is a {}",
            principal.user, principal.role
        )));
    }
    if by_cookie {
        check_cookie_request(method, headers, &principal)?;
    }
    state.limits().request(&principal.user)?;
    Ok(principal)
}

/// The credential a request carries: the bearer token first, else the session cookie
/// (`true` when it came from the cookie).
fn presented(headers: &HeaderMap) -> Option<(String, bool)> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))?;
        return Some((token.trim().to_owned(), false));
    }
    session_cookie(headers).map(|token| (token, true))
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE)
}

/// The value of the cookie `wanted`, if the request carries it.
pub(crate) fn cookie(headers: &HeaderMap, wanted: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == wanted)
        .map(|(_, value)| value.to_owned())
}

/// A cookie rides along on requests other sites make the browser send: state changes must
/// echo the CSRF value (which those sites cannot read), and WebSockets, which browsers open
/// across origins, must come from this origin.
fn check_cookie_request(method: &Method, headers: &HeaderMap, principal: &Principal) -> Result<()> {
    let Credential::Session { csrf, .. } = &principal.credential else {
        return Ok(());
    };
    let is_upgrade = headers
        .get(header::UPGRADE)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if is_upgrade {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let same = match (host, origin) {
            (Some(host), Some(origin)) => origin
                .split_once("://")
                .is_some_and(|(_, rest)| rest == host),
            // Not a browser: nothing to forge.
            (_, None) => true,
            (None, Some(_)) => false,
        };
        if !same {
            return Err(Error::Forbidden(
                "a WebSocket authenticated by the session cookie must come from the dashboard's \
                 own origin"
                    .into(),
            ));
        }
        return Ok(());
    }
    if method == Method::GET || method == Method::HEAD {
        return Ok(());
    }
    let echoed = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if echoed != Some(csrf.as_str()) {
        return Err(Error::Forbidden(format!(
            "a change authenticated by the session cookie needs the `{CSRF_HEADER}` header with \
             the session's CSRF token (from GET /api/v1/auth/me)"
        )));
    }
    Ok(())
}

/// `message` with the acting user in its metadata, for an upstream call.
pub fn acting<T>(principal: &Principal, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    // User names are checked to be metadata-safe when made; a value that is not is dropped,
    // and the service inside then records the call as anonymous rather than as someone else.
    if let Ok(value) = principal.user.parse() {
        request.metadata_mut().insert(ACTOR_METADATA, value);
    }
    request
}

/// The four-eyes rule: the author of a task may not approve (or merge) its change unless an
/// allow-list entry for the repository lets them.
pub async fn four_eyes(
    state: &AppState,
    actor: &Principal,
    task: &cap_proto::supervisor::v1::Task,
    what: &str,
) -> Result<()> {
    if task.requested_by != actor.user {
        return Ok(());
    }
    let allowed = state
        .authenticator()
        .store()
        .repository_entries(&actor.organisation, &task.repository_id)
        .await?
        .iter()
        .any(|entry| entry.allow_self_approval);
    if allowed {
        return Ok(());
    }
    Err(Error::Forbidden(format!(
        "{} submitted task {} and cannot {what} its change: {} needs a second person to \
         review (four-eyes rule)",
        actor.user, task.task_id, task.repository_id
    )))
}

/// Body of `POST /api/v1/auth/login`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// The user's name.
    pub username: String,
    /// Their password.
    pub password: String,
}

impl JsonBody for LoginBody {
    const OBJECTS: &'static [&'static str] = &[""];
}

/// Who is signed in, as `/api/v1/auth/*` answers.
#[derive(Debug, Serialize)]
pub struct Me {
    /// The user.
    pub user: String,
    /// Their role.
    pub role: Role,
    /// Their organisation.
    pub organisation: String,
    /// For `X-CSRF-Token` on cookie-authenticated changes; absent for API tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    /// The session token, only in the sign-in answer (scripts use it as a bearer token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// RFC 3339, only in the sign-in answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl Me {
    fn of(principal: &Principal) -> Self {
        Self {
            user: principal.user.clone(),
            role: principal.role,
            organisation: principal.organisation.clone(),
            csrf_token: match &principal.credential {
                Credential::Session { csrf, .. } => Some(csrf.clone()),
                Credential::ApiToken { .. } => None,
            },
            token: None,
            expires_at: None,
        }
    }
}

/// `POST /api/v1/auth/login`: a session as a cookie for the dashboard and as a token in the
/// answer for scripts.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response> {
    let session = state
        .authenticator()
        .sign_in(body.username.trim(), &body.password)
        .await?;
    tracing::info!(user = %session.principal.user, "signed in");
    state
        .audit(
            &session.principal.user,
            "auth.signed_in",
            serde_json::json!({ "with": "password" }),
        )
        .await?;
    let mut me = Me::of(&session.principal);
    me.token = Some(session.token.clone());
    me.expires_at = crate::events::rfc3339_ms(session.expires_at_ms);
    let cookie = session_cookie_header(&state, &headers, &session.token);
    let mut response = Json(me).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// The `Set-Cookie` value carrying a new session to the dashboard (password and GitHub
/// sign-in alike).
pub(crate) fn session_cookie_header(state: &AppState, headers: &HeaderMap, token: &str) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        cap_identity::SESSION_LIFETIME.whole_seconds(),
        secure_attribute(state, headers),
    )
}

/// `POST /api/v1/auth/logout`: ends the session and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Extension(principal): axum::Extension<Principal>,
) -> Result<Response> {
    state.authenticator().sign_out(&principal).await?;
    let cookie = format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure_attribute(&state, &headers)
    );
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// `GET /api/v1/auth/me`.
pub async fn me(axum::Extension(principal): axum::Extension<Principal>) -> Json<Me> {
    Json(Me::of(&principal))
}

/// `; Secure` unless the gateway serves plain HTTP on loopback (the embedded default), where
/// browsers would otherwise not send the cookie back.
pub(crate) fn secure_attribute(state: &AppState, headers: &HeaderMap) -> &'static str {
    let behind_tls = headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    if behind_tls || state.secure_cookies() {
        "; Secure"
    } else {
        ""
    }
}
