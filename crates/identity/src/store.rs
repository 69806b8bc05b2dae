//! The gateway's tables: users, sessions, API tokens, organisations, the repository
//! allow-list and the submissions the daily limit counts.

use std::path::Path;

use base64::Engine as _;
use cap_storage::{AnyPool, now_ms};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::{Error, Result, Role, check_user_name, password};

/// The organisation local accounts belong to unless told otherwise.
pub const DEFAULT_ORGANISATION: &str = "default";
/// Pull requests a user may have opened in a day unless the organisation sets another limit.
pub const DEFAULT_DAILY_PULL_REQUESTS: i64 = 10;
/// Prefix of API tokens, so secret scanners and people recognise them.
const TOKEN_PREFIX: &str = "cap_";
/// Name of the file holding the first Admin's password until it is read.
pub const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Unique name.
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// Their organisation (allow-list, limits).
    pub organisation: String,
    /// Their GitHub login, for accounts made by GitHub sign-in.
    pub github_login: Option<String>,
    /// Milliseconds since the epoch.
    pub created_at_ms: i64,
    /// Disabled users cannot sign in, and their sessions and tokens stop working.
    pub disabled: bool,
}

/// An API token as listed (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    /// The token's id (to revoke it).
    pub id: String,
    /// Whose token it is.
    pub user: String,
    /// The role it acts with (at most the user's).
    pub role: Role,
    /// What it is for.
    pub label: String,
    /// Milliseconds since the epoch.
    pub created_at_ms: i64,
    /// Milliseconds since the epoch.
    pub expires_at_ms: i64,
    /// When it was revoked, if it was.
    pub revoked_at_ms: Option<i64>,
}

/// A newly created token: the secret is shown once and not kept.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The stored record.
    pub token: ApiToken,
    /// The bearer secret.
    pub secret: String,
}

/// One entry of an organisation's repository allow-list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AllowedRepository {
    /// The organisation.
    pub organisation: String,
    /// A repository id or a glob (`demo/*`, `*`).
    pub pattern: String,
    /// Whether the author of a task may approve its pull request (four-eyes otherwise).
    pub allow_self_approval: bool,
}

/// The gateway's identity tables.
#[derive(Debug, Clone)]
pub struct IdentityStore {
    pub(crate) pool: AnyPool,
}

impl IdentityStore {
    /// Opens (and migrates) the store at `url` (`sqlite://...` or `postgres://...`).
    pub async fn open(url: &str) -> Result<Self> {
        Ok(Self {
            pool: cap_storage::open(url, &crate::MIGRATOR).await?,
        })
    }

    /// Creates the first Admin when there is no user yet: `admin` with a random password,
    /// written to `dir/initial-admin-password` (mode 0600) for the operator to read once.
    /// Returns the password when it made the account.
    pub async fn ensure_first_admin(&self, dir: &Path) -> Result<Option<String>> {
        let count: i64 = sqlx::query("SELECT COUNT(*) FROM identity_users")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        if count > 0 {
            return Ok(None);
        }
        let secret = password::generate()?;
        match self
            .add_user("admin", Role::Admin, Some(&secret), DEFAULT_ORGANISATION)
            .await
        {
            Ok(_) => {}
            // Another gateway replica made it first.
            Err(Error::UserExists(_)) => return Ok(None),
            Err(error) => return Err(error),
        }
        crate::keys::write_private(dir, INITIAL_PASSWORD_FILE, format!("{secret}\n").as_bytes())?;
        tracing::info!(
            file = %dir.join(INITIAL_PASSWORD_FILE).display(),
            "first Admin `admin` created; its one-time password is in the file"
        );
        Ok(Some(secret))
    }

    /// Adds a user; `password` is `None` for GitHub-only accounts.
    pub async fn add_user(
        &self,
        name: &str,
        role: Role,
        password: Option<&str>,
        organisation: &str,
    ) -> Result<User> {
        check_user_name(name)?;
        check_organisation(organisation)?;
        let hash = password.map(password::hash).transpose()?;
        let created_at_ms = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO identity_users (name, role, organisation, password_hash, github_login, \
             created_at_ms, disabled) VALUES ($1, $2, $3, $4, NULL, $5, 0) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(organisation)
        .bind(hash)
        .bind(created_at_ms)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(Error::UserExists(name.to_owned()));
        }
        self.ensure_organisation(organisation).await?;
        Ok(User {
            name: name.to_owned(),
            role,
            organisation: organisation.to_owned(),
            github_login: None,
            created_at_ms,
            disabled: false,
        })
    }

    /// Adds a password-less user of the default organisation unless one of that name exists
    /// (for accounts that act only through API tokens: scripts, the launcher, tests).
    pub async fn ensure_user(&self, name: &str, role: Role) -> Result<()> {
        match self.add_user(name, role, None, DEFAULT_ORGANISATION).await {
            Ok(_) | Err(Error::UserExists(_)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// The user of that name.
    pub async fn user(&self, name: &str) -> Result<Option<User>> {
        let row = sqlx::query(
            "SELECT name, role, organisation, github_login, created_at_ms, disabled \
             FROM identity_users WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(
            "SELECT name, role, organisation, github_login, created_at_ms, disabled \
             FROM identity_users ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Changes a user's role.
    pub async fn set_role(&self, name: &str, role: Role) -> Result<()> {
        self.update_user(
            name,
            sqlx::query("UPDATE identity_users SET role = $1 WHERE name = $2").bind(role.as_str()),
        )
        .await
    }

    /// Disables or re-enables a user; a disabled user's sessions and tokens stop working.
    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<()> {
        self.update_user(
            name,
            sqlx::query("UPDATE identity_users SET disabled = $1 WHERE name = $2")
                .bind(i64::from(disabled)),
        )
        .await
    }

    /// Replaces a user's password, and removes the first Admin's password file once it no
    /// longer holds the password.
    pub async fn set_password(&self, name: &str, new_password: &str, dir: &Path) -> Result<()> {
        let hash = password::hash(new_password)?;
        self.update_user(
            name,
            sqlx::query("UPDATE identity_users SET password_hash = $1 WHERE name = $2").bind(hash),
        )
        .await?;
        if name == "admin" {
            let _ = std::fs::remove_file(dir.join(INITIAL_PASSWORD_FILE));
        }
        Ok(())
    }

    async fn update_user<'a>(
        &self,
        name: &'a str,
        query: sqlx::query::Query<'a, sqlx::Any, sqlx::any::AnyArguments<'a>>,
    ) -> Result<()> {
        let updated = query.bind(name).execute(&self.pool).await?;
        if updated.rows_affected() == 0 {
            return Err(Error::UnknownUser(name.to_owned()));
        }
        Ok(())
    }

    /// The user whose password this is; the same refusal for an unknown user and a wrong
    /// password, so the answer does not tell which names exist.
    pub async fn check_password(&self, name: &str, given: &str) -> Result<User> {
        let refused = || Error::Unauthenticated("wrong user name or password".into());
        let row = sqlx::query("SELECT password_hash FROM identity_users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        let stored: Option<String> = match &row {
            Some(row) => row.try_get(0)?,
            None => None,
        };
        match stored {
            Some(stored) if password::verify(given, &stored) => {}
            Some(_) => return Err(refused()),
            None => {
                // The same work as a real check, so timing does not tell either.
                let _ = password::hash(&"x".repeat(password::MIN_PASSWORD_CHARS));
                return Err(refused());
            }
        }
        let user = self.user(name).await?.ok_or_else(refused)?;
        if user.disabled {
            return Err(Error::Unauthenticated(format!(
                "the account {name:?} is disabled: ask an Admin"
            )));
        }
        Ok(user)
    }

    /// Records a new session of `user` until `expires_at_ms`; returns its id.
    pub async fn open_session(&self, user: &str, expires_at_ms: i64) -> Result<String> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        sqlx::query(
            "INSERT INTO identity_sessions (id, user_name, created_at_ms, expires_at_ms, \
             revoked_at_ms) VALUES ($1, $2, $3, $4, NULL)",
        )
        .bind(&id)
        .bind(user)
        .bind(now_ms())
        .bind(expires_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// Whether the session is known and not revoked.
    pub async fn session_active(&self, id: &str) -> Result<bool> {
        let row = sqlx::query("SELECT revoked_at_ms FROM identity_sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => row.try_get::<Option<i64>, _>(0)?.is_none(),
            None => false,
        })
    }

    /// Revokes one session (sign-out) and drops its GitHub token, if it had one.
    pub async fn revoke_session(&self, id: &str) -> Result<()> {
        sqlx::query(
            "UPDATE identity_sessions SET revoked_at_ms = $1 WHERE id = $2 \
             AND revoked_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        sqlx::query("DELETE FROM identity_github_tokens WHERE session_id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Revokes every session of `user` (password change, account disabled) and drops their
    /// GitHub tokens.
    pub async fn revoke_sessions_of(&self, user: &str) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE identity_sessions SET revoked_at_ms = $1 WHERE user_name = $2 \
             AND revoked_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(user)
        .execute(&self.pool)
        .await?;
        sqlx::query(
            "DELETE FROM identity_github_tokens WHERE session_id IN \
             (SELECT id FROM identity_sessions WHERE user_name = $1)",
        )
        .bind(user)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Creates an API token for `user` acting as `role` (at most the user's own) for
    /// `lifetime`.
    pub async fn create_token(
        &self,
        user: &str,
        role: Role,
        label: &str,
        lifetime: time::Duration,
    ) -> Result<IssuedToken> {
        let owner = self
            .user(user)
            .await?
            .ok_or_else(|| Error::UnknownUser(user.to_owned()))?;
        if !owner.role.allows(role) {
            return Err(Error::Invalid(format!(
                "a token cannot have more rights than its user: {user} is {}, the token asks {role}",
                owner.role
            )));
        }
        if label.chars().count() > 200 || label.chars().any(char::is_control) {
            return Err(Error::Invalid(
                "the token's label must be one line of at most 200 characters".into(),
            ));
        }
        let secret = format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::keys::random::<30>()?)
        );
        let created_at_ms = now_ms();
        let token = ApiToken {
            id: uuid::Uuid::new_v4().simple().to_string(),
            user: user.to_owned(),
            role,
            label: label.to_owned(),
            created_at_ms,
            expires_at_ms: created_at_ms + lifetime.whole_milliseconds() as i64,
            revoked_at_ms: None,
        };
        sqlx::query(
            "INSERT INTO identity_api_tokens (id, user_name, role, label, token_hash, \
             created_at_ms, expires_at_ms, revoked_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
        )
        .bind(&token.id)
        .bind(&token.user)
        .bind(role.as_str())
        .bind(&token.label)
        .bind(token_digest(&secret))
        .bind(token.created_at_ms)
        .bind(token.expires_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(IssuedToken { token, secret })
    }

    /// The token record a bearer secret names, if any.
    pub async fn token_by_secret(&self, secret: &str) -> Result<Option<ApiToken>> {
        let row = sqlx::query(&format!("{TOKEN_COLUMNS} WHERE token_hash = $1"))
            .bind(token_digest(secret))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    /// The tokens of `user`, or of everyone.
    pub async fn tokens(&self, user: Option<&str>) -> Result<Vec<ApiToken>> {
        let rows = match user {
            Some(user) => {
                sqlx::query(&format!(
                    "{TOKEN_COLUMNS} WHERE user_name = $1 ORDER BY created_at_ms"
                ))
                .bind(user)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!("{TOKEN_COLUMNS} ORDER BY created_at_ms"))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes a token; revoking it twice is not an error.
    pub async fn revoke_token(&self, id: &str) -> Result<ApiToken> {
        sqlx::query(
            "UPDATE identity_api_tokens SET revoked_at_ms = $1 WHERE id = $2 \
             AND revoked_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        let row = sqlx::query(&format!("{TOKEN_COLUMNS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::UnknownToken(id.to_owned()))?;
        token_from_row(&row)
    }

    async fn ensure_organisation(&self, name: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO identity_organisations (name, daily_pull_requests) VALUES ($1, $2) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(DEFAULT_DAILY_PULL_REQUESTS)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Pull requests a day the organisation's users may each have opened.
    pub async fn daily_pull_requests(&self, organisation: &str) -> Result<i64> {
        let row =
            sqlx::query("SELECT daily_pull_requests FROM identity_organisations WHERE name = $1")
                .bind(organisation)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match row {
            Some(row) => row.try_get(0)?,
            None => DEFAULT_DAILY_PULL_REQUESTS,
        })
    }

    /// Sets the organisation's daily pull-request limit per user.
    pub async fn set_daily_pull_requests(&self, organisation: &str, limit: i64) -> Result<()> {
        check_organisation(organisation)?;
        if !(1..=100_000).contains(&limit) {
            return Err(Error::Invalid(format!(
                "the daily pull-request limit must be between 1 and 100000, got {limit}"
            )));
        }
        self.ensure_organisation(organisation).await?;
        sqlx::query("UPDATE identity_organisations SET daily_pull_requests = $1 WHERE name = $2")
            .bind(limit)
            .bind(organisation)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Adds (or updates) an allow-list entry.
    pub async fn allow_repository(&self, entry: &AllowedRepository) -> Result<()> {
        check_organisation(&entry.organisation)?;
        globset::Glob::new(&entry.pattern).map_err(|error| {
            Error::Invalid(format!(
                "invalid repository pattern {:?}: {error}",
                entry.pattern
            ))
        })?;
        if entry.pattern.is_empty() || entry.pattern.len() > 200 {
            return Err(Error::Invalid(
                "a repository pattern has 1 to 200 characters".into(),
            ));
        }
        self.ensure_organisation(&entry.organisation).await?;
        sqlx::query(
            "INSERT INTO identity_allowed_repositories (organisation, pattern, \
             allow_self_approval) VALUES ($1, $2, $3) ON CONFLICT (organisation, pattern) \
             DO UPDATE SET allow_self_approval = $3",
        )
        .bind(&entry.organisation)
        .bind(&entry.pattern)
        .bind(i64::from(entry.allow_self_approval))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes an allow-list entry; returns whether there was one.
    pub async fn disallow_repository(&self, organisation: &str, pattern: &str) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM identity_allowed_repositories WHERE organisation = $1 AND pattern = $2",
        )
        .bind(organisation)
        .bind(pattern)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The organisation's allow-list.
    pub async fn allowed_repositories(&self, organisation: &str) -> Result<Vec<AllowedRepository>> {
        let rows = sqlx::query(
            "SELECT organisation, pattern, allow_self_approval FROM \
             identity_allowed_repositories WHERE organisation = $1 ORDER BY pattern",
        )
        .bind(organisation)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AllowedRepository {
                    organisation: row.try_get(0)?,
                    pattern: row.try_get(1)?,
                    allow_self_approval: row.try_get::<i64, _>(2)? != 0,
                })
            })
            .collect()
    }

    /// The allow-list entries of `organisation` that match `repository_id`; none means the
    /// organisation's users may not target it.
    pub async fn repository_entries(
        &self,
        organisation: &str,
        repository_id: &str,
    ) -> Result<Vec<AllowedRepository>> {
        Ok(self
            .allowed_repositories(organisation)
            .await?
            .into_iter()
            .filter(|entry| {
                globset::GlobBuilder::new(&entry.pattern)
                    .literal_separator(false)
                    .build()
                    .is_ok_and(|glob| glob.compile_matcher().is_match(repository_id))
            })
            .collect())
    }

    /// `None` when `user` may submit a task now (each task opens at most one pull request);
    /// otherwise the organisation's daily limit and when the next submission is allowed.
    pub async fn submission_refused_until(
        &self,
        user: &str,
        organisation: &str,
        now_ms: i64,
    ) -> Result<Option<(i64, i64)>> {
        const DAY_MS: i64 = 86_400_000;
        let limit = self.daily_pull_requests(organisation).await?;
        let recent = self.submissions_since(user, now_ms - DAY_MS).await?;
        let excess = recent.len() as i64 - limit;
        if excess < 0 {
            return Ok(None);
        }
        // The window frees a place when the oldest submission in it turns a day old.
        let index = usize::try_from(excess).unwrap_or(0);
        Ok(Some((
            limit,
            recent.get(index).copied().unwrap_or(now_ms) + DAY_MS,
        )))
    }

    /// Records that `user` submitted `task_id` (what the daily limit counts).
    pub async fn record_submission(&self, user: &str, task_id: &str, at_ms: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO identity_submissions (task_id, user_name, submitted_at_ms) \
             VALUES ($1, $2, $3) ON CONFLICT (task_id) DO NOTHING",
        )
        .bind(task_id)
        .bind(user)
        .bind(at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// When `user` submitted tasks since `since_ms`, oldest first.
    pub async fn submissions_since(&self, user: &str, since_ms: i64) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT submitted_at_ms FROM identity_submissions WHERE user_name = $1 \
             AND submitted_at_ms > $2 ORDER BY submitted_at_ms",
        )
        .bind(user)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(Error::from))
            .collect()
    }
}

const TOKEN_COLUMNS: &str = "SELECT id, user_name, role, label, created_at_ms, expires_at_ms, \
                             revoked_at_ms FROM identity_api_tokens";

/// The stored digest of a token.
pub(crate) fn token_digest(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Whether a bearer credential has the API-token shape (otherwise it is a session token).
pub(crate) fn is_api_token(credential: &str) -> bool {
    credential.starts_with(TOKEN_PREFIX)
}

fn check_organisation(name: &str) -> Result<()> {
    check_user_name(name).map_err(|_| {
        Error::Invalid(format!(
            "invalid organisation {name:?}: use 1 to 64 letters, digits, '.', '_' or '-'"
        ))
    })
}

fn user_from_row(row: &AnyRow) -> Result<User> {
    Ok(User {
        name: row.try_get(0)?,
        role: row.try_get::<String, _>(1)?.parse()?,
        organisation: row.try_get(2)?,
        github_login: row.try_get(3)?,
        created_at_ms: row.try_get(4)?,
        disabled: row.try_get::<i64, _>(5)? != 0,
    })
}

fn token_from_row(row: &AnyRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: row.try_get(0)?,
        user: row.try_get(1)?,
        role: row.try_get::<String, _>(2)?.parse()?,
        label: row.try_get(3)?,
        created_at_ms: row.try_get(4)?,
        expires_at_ms: row.try_get(5)?,
        revoked_at_ms: row.try_get(6)?,
    })
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
