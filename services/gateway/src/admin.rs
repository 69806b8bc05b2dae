//! Admin routes: users, API tokens and the repository allow-list of the Admin's organisation.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cap_identity::{AllowedRepository, ApiToken, Principal, Role, User};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::input::{ApiJson, JsonBody, PathParam, QueryParams};
use crate::state::AppState;

/// Answer of `GET /api/v1/users`.
#[derive(Debug, Serialize)]
pub struct UserList {
    /// By name.
    pub users: Vec<User>,
}

/// `GET /api/v1/users`.
pub async fn users(State(state): State<AppState>) -> Result<Json<UserList>> {
    let users = state.authenticator().store().users().await?;
    Ok(Json(UserList { users }))
}

/// Body of `POST /api/v1/users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    /// The user's name.
    pub name: String,
    /// Their role.
    pub role: Role,
    /// Their password; a random one is made and answered once when absent.
    #[serde(default)]
    pub password: Option<String>,
}

impl JsonBody for NewUserBody {
    const OBJECTS: &'static [&'static str] = &[""];
}

/// Answer of `POST /api/v1/users`.
#[derive(Debug, Serialize)]
pub struct NewUser {
    /// The account.
    pub user: User,
    /// The generated password, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// `POST /api/v1/users`: a local account in the Admin's organisation.
pub async fn add_user(
    State(state): State<AppState>,
    Extension(admin): Extension<Principal>,
    ApiJson(body): ApiJson<NewUserBody>,
) -> Result<(StatusCode, Json<NewUser>)> {
    let generated = match &body.password {
        Some(_) => None,
        None => Some(cap_identity::password::generate()?),
    };
    let password = body.password.as_deref().or(generated.as_deref());
    let user = state
        .authenticator()
        .store()
        .add_user(&body.name, body.role, password, &admin.organisation)
        .await?;
    tracing::info!(admin = %admin.user, user = %user.name, role = %user.role, "user added");
    state
        .audit(
            &admin.user,
            "user.added",
            serde_json::json!({ "user": user.name, "role": user.role }),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(NewUser {
            user,
            password: generated,
        }),
    ))
}

/// Body of `PATCH /api/v1/users/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChangeBody {
    /// A new role.
    #[serde(default)]
    pub role: Option<Role>,
    /// Disable (sign out everywhere) or re-enable.
    #[serde(default)]
    pub disabled: Option<bool>,
}

impl JsonBody for UserChangeBody {
    const OBJECTS: &'static [&'static str] = &[""];
}

/// `PATCH /api/v1/users/{name}`: role or disabled; takes effect on the user's next request.
pub async fn change_user(
    State(state): State<AppState>,
    Extension(admin): Extension<Principal>,
    PathParam(name): PathParam,
    ApiJson(body): ApiJson<UserChangeBody>,
) -> Result<Json<User>> {
    let store = state.authenticator().store();
    if name == admin.user
        && (body.disabled == Some(true) || body.role.is_some_and(|r| r < Role::Admin))
    {
        return Err(Error::Forbidden(
            "an Admin cannot disable or demote themselves (another Admin can)".into(),
        ));
    }
    if let Some(role) = body.role {
        store.set_role(&name, role).await?;
    }
    if let Some(disabled) = body.disabled {
        store.set_disabled(&name, disabled).await?;
        if disabled {
            store.revoke_sessions_of(&name).await?;
        }
    }
    let user = store
        .user(&name)
        .await?
        .ok_or_else(|| cap_identity::Error::UnknownUser(name.clone()))?;
    tracing::info!(admin = %admin.user, user = %user.name, role = %user.role, disabled = user.disabled, "user changed");
    state
        .audit(
            &admin.user,
            "user.changed",
            serde_json::json!({
                "user": user.name, "role": user.role, "disabled": user.disabled,
            }),
        )
        .await?;
    Ok(Json(user))
}

/// Body of `POST /api/v1/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTokenBody {
    /// Whose token.
    pub user: String,
    /// The role it acts with (at most the user's).
    pub role: Role,
    /// Lifetime, e.g. `30d`.
    pub expires: String,
    /// What it is for.
    #[serde(default)]
    pub label: Option<String>,
}

impl JsonBody for NewTokenBody {
    const OBJECTS: &'static [&'static str] = &[""];
}

/// Answer of `POST /api/v1/tokens`.
#[derive(Debug, Serialize)]
pub struct NewToken {
    /// The record.
    #[serde(flatten)]
    pub record: ApiToken,
    /// The bearer secret, shown this once.
    pub token: String,
}

/// `POST /api/v1/tokens`.
pub async fn create_token(
    State(state): State<AppState>,
    Extension(admin): Extension<Principal>,
    ApiJson(body): ApiJson<NewTokenBody>,
) -> Result<(StatusCode, Json<NewToken>)> {
    let lifetime = cap_identity::parse_lifetime(&body.expires)?;
    let issued = state
        .authenticator()
        .store()
        .create_token(
            &body.user,
            body.role,
            body.label.as_deref().unwrap_or(""),
            lifetime,
        )
        .await?;
    tracing::info!(admin = %admin.user, user = %issued.token.user, token = %issued.token.id, "API token created");
    state
        .audit(
            &admin.user,
            "token.created",
            serde_json::json!({
                "token_id": issued.token.id, "user": issued.token.user, "role": issued.token.role,
            }),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(NewToken {
            record: issued.token,
            token: issued.secret,
        }),
    ))
}

/// Answer of `GET /api/v1/tokens`.
#[derive(Debug, Serialize)]
pub struct TokenList {
    /// Oldest first; never the secrets.
    pub tokens: Vec<ApiToken>,
}

/// `GET /api/v1/tokens?user=NAME`.
pub async fn tokens(State(state): State<AppState>, query: QueryParams) -> Result<Json<TokenList>> {
    query.only(&["user"])?;
    let tokens = state
        .authenticator()
        .store()
        .tokens(query.get("user"))
        .await?;
    Ok(Json(TokenList { tokens }))
}

/// `DELETE /api/v1/tokens/{id}`: revokes the token at once.
pub async fn revoke_token(
    State(state): State<AppState>,
    Extension(admin): Extension<Principal>,
    PathParam(id): PathParam,
) -> Result<Json<ApiToken>> {
    let token = state.authenticator().store().revoke_token(&id).await?;
    tracing::info!(admin = %admin.user, token = %token.id, "API token revoked");
    state
        .audit(
            &admin.user,
            "token.revoked",
            serde_json::json!({ "token_id": token.id, "user": token.user }),
        )
        .await?;
    Ok(Json(token))
}

/// Answer of `GET /api/v1/allow-list`.
#[derive(Debug, Serialize)]
pub struct AllowList {
    /// The Admin's organisation's entries.
    pub repositories: Vec<AllowedRepository>,
}

/// `GET /api/v1/allow-list`.
pub async fn allow_list(
    State(state): State<AppState>,
    Extension(admin): Extension<Principal>,
) -> Result<Json<AllowList>> {
    let repositories = state
        .authenticator()
        .store()
        .allowed_repositories(&admin.organisation)
        .await?;
    Ok(Json(AllowList { repositories }))
}

/// Body of `POST /api/v1/allow-list`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowBody {
    /// A repository id or a glob.
    pub pattern: String,
    /// Whether a task's author may approve its pull request.
    #[serde(default)]
    pub allow_self_approval: bool,
}

impl JsonBody for AllowBody {
    const OBJECTS: &'static [&'static str] = &[""];
}

/// `POST /api/v1/allow-list`: adds or updates an entry.
pub async fn allow(
    State(state): State<AppState>,
    Extension(admin): Extension<Principal>,
    ApiJson(body): ApiJson<AllowBody>,
) -> Result<Json<AllowList>> {
    let store = state.authenticator().store();
    store
        .allow_repository(&AllowedRepository {
            organisation: admin.organisation.clone(),
            pattern: body.pattern.clone(),
            allow_self_approval: body.allow_self_approval,
        })
        .await?;
    state
        .audit(
            &admin.user,
            "allow_list.added",
            serde_json::json!({
                "organisation": admin.organisation,
                "pattern": body.pattern,
                "allow_self_approval": body.allow_self_approval,
            }),
        )
        .await?;
    let repositories = store.allowed_repositories(&admin.organisation).await?;
    Ok(Json(AllowList { repositories }))
}

/// `DELETE /api/v1/allow-list?pattern=P`.
pub async fn disallow(
    State(state): State<AppState>,
    Extension(admin): Extension<Principal>,
    query: QueryParams,
) -> Result<Json<AllowList>> {
    query.only(&["pattern"])?;
    let pattern = query.get("pattern").unwrap_or_default();
    let store = state.authenticator().store();
    if !store
        .disallow_repository(&admin.organisation, pattern)
        .await?
    {
        return Err(Error::Invalid {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: format!("no allow-list entry {pattern:?}"),
            field: Some("pattern".into()),
        });
    }
    state
        .audit(
            &admin.user,
            "allow_list.removed",
            serde_json::json!({ "organisation": admin.organisation, "pattern": pattern }),
        )
        .await?;
    let repositories = store.allowed_repositories(&admin.organisation).await?;
    Ok(Json(AllowList { repositories }))
}
