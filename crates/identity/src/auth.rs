//! Credentials in, a [`Principal`] out: sign-in with a password, session tokens, API tokens.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use cap_storage::now_ms;

use crate::keys::SessionKeys;
use crate::store::is_api_token;
use crate::{Error, IdentityStore, Result, Role, SESSION_LIFETIME};

/// How a request proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A session from a sign-in (bearer or cookie).
    Session {
        /// The session's id.
        session_id: String,
        /// What cookie-authenticated state changes must echo.
        csrf: String,
    },
    /// An API token.
    ApiToken {
        /// The token's id.
        token_id: String,
    },
}

/// Who is acting, with what rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's name.
    pub user: String,
    /// The role this request acts with.
    pub role: Role,
    /// The user's organisation.
    pub organisation: String,
    /// How it was proved.
    pub credential: Credential,
}

/// A new session.
#[derive(Debug, Clone)]
pub struct SessionToken {
    /// The signed token (bearer or cookie value).
    pub token: String,
    /// Milliseconds since the epoch.
    pub expires_at_ms: i64,
    /// Who signed in.
    pub principal: Principal,
}

/// Checks credentials against the store and the session keys.
#[derive(Debug, Clone)]
pub struct Authenticator {
    store: IdentityStore,
    keys: Arc<RwLock<SessionKeys>>,
    key_dir: PathBuf,
}

impl Authenticator {
    /// An authenticator over `store`, with the session keys in `key_dir` (created if absent).
    pub fn new(store: IdentityStore, key_dir: &Path) -> Result<Self> {
        Ok(Self {
            store,
            keys: Arc::new(RwLock::new(SessionKeys::load_or_create(key_dir)?)),
            key_dir: key_dir.to_owned(),
        })
    }

    /// The store.
    pub fn store(&self) -> &IdentityStore {
        &self.store
    }

    /// Where the session keys (and the first Admin's password file) are kept.
    pub fn key_dir(&self) -> &Path {
        &self.key_dir
    }

    fn keys(&self) -> SessionKeys {
        match self.keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the key file again: `cap auth rotate-key` may have added a key.
    fn reload_keys(&self) -> Result<SessionKeys> {
        let keys = SessionKeys::load_or_create(&self.key_dir)?;
        match self.keys.write() {
            Ok(mut held) => *held = keys.clone(),
            Err(poisoned) => *poisoned.into_inner() = keys.clone(),
        }
        Ok(keys)
    }

    /// Signs `name` in with `password`, opening a session.
    pub async fn sign_in(&self, name: &str, password: &str) -> Result<SessionToken> {
        let user = self.store.check_password(name, password).await?;
        self.open_session(&user.name, user.role, &user.organisation)
            .await
    }

    /// Opens a session for a user already identified (password or GitHub sign-in).
    pub async fn open_session(
        &self,
        user: &str,
        role: Role,
        organisation: &str,
    ) -> Result<SessionToken> {
        let now_s = now_ms() / 1000;
        let expires_at_ms = (now_s + SESSION_LIFETIME.whole_seconds()) * 1000;
        let session_id = self.store.open_session(user, expires_at_ms).await?;
        let claims = SessionKeys::claims(user, role, &session_id, now_s)?;
        // The newest key signs, even one a rotation added while the gateway ran.
        let token = self.reload_keys()?.sign(&claims)?;
        Ok(SessionToken {
            token,
            expires_at_ms,
            principal: Principal {
                user: user.to_owned(),
                role,
                organisation: organisation.to_owned(),
                credential: Credential::Session {
                    session_id,
                    csrf: claims.csrf,
                },
            },
        })
    }

    /// Who `credential` (a session token or an API token) is, or why it is refused.
    pub async fn authenticate(&self, credential: &str) -> Result<Principal> {
        if is_api_token(credential) {
            return self.authenticate_token(credential).await;
        }
        let mut keys = self.keys();
        // Only a key id not yet known sends the gateway back to the key file: a rotation may
        // have added it. Malformed, expired or altered tokens cost no file read.
        if keys.lacks_key_of(credential) {
            keys = self.reload_keys()?;
        }
        let claims = keys.verify(credential)?;
        if !self.store.session_active(&claims.sid).await? {
            return Err(Error::Unauthenticated(
                "the session was signed out or revoked: sign in again".into(),
            ));
        }
        // The role is the user's current one: a demotion takes effect at once.
        let user = self.active_user(&claims.sub).await?;
        Ok(Principal {
            user: user.name,
            role: user.role,
            organisation: user.organisation,
            credential: Credential::Session {
                session_id: claims.sid,
                csrf: claims.csrf,
            },
        })
    }

    async fn authenticate_token(&self, secret: &str) -> Result<Principal> {
        let token = self.store.token_by_secret(secret).await?.ok_or_else(|| {
            Error::Unauthenticated("the API token is not known (mistyped or deleted)".into())
        })?;
        if let Some(at) = token.revoked_at_ms {
            return Err(Error::Unauthenticated(format!(
                "the API token {} was revoked at {}",
                token.id,
                rfc3339(at)
            )));
        }
        if token.expires_at_ms <= now_ms() {
            return Err(Error::Unauthenticated(format!(
                "the API token {} expired at {}",
                token.id,
                rfc3339(token.expires_at_ms)
            )));
        }
        let user = self.active_user(&token.user).await?;
        Ok(Principal {
            role: token.role.min(user.role),
            user: user.name,
            organisation: user.organisation,
            credential: Credential::ApiToken { token_id: token.id },
        })
    }

    async fn active_user(&self, name: &str) -> Result<crate::User> {
        let user =
            self.store.user(name).await?.ok_or_else(|| {
                Error::Unauthenticated(format!("the user {name:?} no longer exists"))
            })?;
        if user.disabled {
            return Err(Error::Unauthenticated(format!(
                "the account {name:?} is disabled: ask an Admin"
            )));
        }
        Ok(user)
    }

    /// Ends the principal's session (API tokens are revoked, not signed out).
    pub async fn sign_out(&self, principal: &Principal) -> Result<()> {
        match &principal.credential {
            Credential::Session { session_id, .. } => self.store.revoke_session(session_id).await,
            Credential::ApiToken { .. } => Err(Error::Invalid(
                "an API token has no session to sign out of: revoke the token instead".into(),
            )),
        }
    }
}

/// `ms` as RFC 3339, for messages.
pub(crate) fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
