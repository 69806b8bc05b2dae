//! Sign-in with GitHub, the gateway's side of what it keeps: the link from a GitHub account
//! to a platform user, the OAuth `state` of sign-ins in flight, and the OAuth access token of
//! each session GitHub opened, sealed with a key from the data directory.
//!
//! A GitHub account is linked by its numeric id, never by its login: logins can be renamed and
//! the old name then taken by someone else. A new account is named `gh-<login>` (lowercase),
//! or `gh-<login>-<id>` when that name is taken, so a GitHub sign-in never takes over a local
//! account that happens to have the same name.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use cap_storage::now_ms;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sqlx::Row as _;

use crate::store::token_digest;
use crate::{Error, IdentityStore, Result, Role, User, check_user_name};

/// The file (in the gateway's data directory) holding the key that seals OAuth tokens.
pub const TOKEN_KEY_FILE: &str = "github-token-key";
/// Prefix of the names of accounts GitHub sign-in creates.
pub const GITHUB_USER_PREFIX: &str = "gh-";
/// How long a finished sign-in's state is remembered as used or expired (to name why a late
/// or replayed callback is refused) before it is deleted.
const STATE_MEMORY_MS: i64 = 86_400_000;

/// A GitHub account as GitHub's `/user` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHubAccount {
    /// GitHub's numeric account id (stable across renames).
    pub id: i64,
    /// The login (may change).
    pub login: String,
}

/// What checking a sign-in's `state` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthState {
    /// Issued here, unused and in time: now marked used.
    Fresh,
    /// Never issued by this gateway.
    Unknown,
    /// Used already, at this time (ms since the epoch).
    Used(i64),
    /// Expired at this time (ms since the epoch).
    Expired(i64),
}

/// Seals and opens OAuth access tokens (AES-256-GCM), each bound to its session id so a
/// sealed token copied onto another session's row does not open.
///
/// The key lives in the data directory next to the session keys, never in the database: a
/// copy of the database alone reveals no token.
#[derive(Clone)]
pub struct TokenVault {
    key: Arc<LessSafeKey>,
}

impl std::fmt::Debug for TokenVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenVault(..)")
    }
}

impl TokenVault {
    /// The vault with the key in `dir`, creating the key (mode 0600) on first use.
    pub fn load_or_create(dir: &Path) -> Result<Self> {
        let path = dir.join(TOKEN_KEY_FILE);
        let engine = base64::engine::general_purpose::STANDARD;
        let key = match std::fs::read_to_string(&path) {
            Ok(text) => engine.decode(text.trim()).map_err(|_| {
                Error::Invalid(format!("{} does not hold a base64 key", path.display()))
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let key = crate::keys::random::<32>()?;
                crate::keys::write_private(dir, TOKEN_KEY_FILE, engine.encode(key).as_bytes())?;
                key.to_vec()
            }
            Err(source) => {
                return Err(Error::Io {
                    what: format!("reading {}", path.display()),
                    source,
                });
            }
        };
        let key = UnboundKey::new(&AES_256_GCM, &key).map_err(|_| {
            Error::Invalid(format!("{} does not hold a 32-byte key", path.display()))
        })?;
        Ok(Self {
            key: Arc::new(LessSafeKey::new(key)),
        })
    }

    /// `token` sealed for `session_id`: base64 of nonce, ciphertext and tag.
    pub fn seal(&self, session_id: &str, token: &str) -> Result<String> {
        let nonce = crate::keys::random::<NONCE_LEN>()?;
        let mut sealed = token.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(session_id.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| Error::Crypto("sealing an OAuth token failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(base64::engine::general_purpose::STANDARD.encode(out))
    }

    /// The token sealed for `session_id`; fails on another key, session or altered bytes.
    pub fn open(&self, session_id: &str, sealed: &str) -> Result<String> {
        let refused = || {
            Error::Crypto(
                "a stored OAuth token does not open with this gateway's key (the key file was \
                 replaced, or the row altered)"
                    .into(),
            )
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|_| refused())?;
        if bytes.len() < NONCE_LEN {
            return Err(refused());
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| refused())?;
        let mut rest = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(session_id.as_bytes()), &mut rest)
            .map_err(|_| refused())?;
        String::from_utf8(plain.to_vec()).map_err(|_| refused())
    }
}

impl IdentityStore {
    /// The platform user linked to the GitHub account, made on its first sign-in with `role`
    /// in `organisation`. The link follows the account id, so a renamed login signs in as the
    /// same user (its login is updated).
    pub async fn github_user(
        &self,
        account: &GitHubAccount,
        role: Role,
        organisation: &str,
    ) -> Result<User> {
        let login = account.login.to_ascii_lowercase();
        check_user_name(&format!("{GITHUB_USER_PREFIX}{login}")).map_err(|_| {
            Error::Invalid(format!(
                "the GitHub login {:?} is not a usable name",
                account.login
            ))
        })?;
        if let Some(name) = self.linked_user(account.id).await? {
            return self.signed_in_again(&name, account).await;
        }
        for name in [
            format!("{GITHUB_USER_PREFIX}{login}"),
            format!("{GITHUB_USER_PREFIX}{login}-{}", account.id),
        ] {
            match self.add_user(&name, role, None, organisation).await {
                Ok(_) => {}
                // A local account or another GitHub account has that name: never take it over.
                Err(Error::UserExists(_)) => continue,
                Err(error) => return Err(error),
            }
            let now = now_ms();
            let linked = sqlx::query(
                "INSERT INTO identity_github_accounts (github_id, user_name, login, \
                 linked_at_ms, signed_in_at_ms) VALUES ($1, $2, $3, $4, $4) \
                 ON CONFLICT (github_id) DO NOTHING",
            )
            .bind(account.id)
            .bind(&name)
            .bind(&account.login)
            .bind(now)
            .execute(&self.pool)
            .await?;
            if linked.rows_affected() == 0 {
                // Another replica linked this account at the same moment: use its user and
                // drop the one made here, which nothing refers to yet.
                sqlx::query("DELETE FROM identity_users WHERE name = $1")
                    .bind(&name)
                    .execute(&self.pool)
                    .await?;
                let name = self.linked_user(account.id).await?.ok_or_else(|| {
                    Error::Invalid(format!("GitHub account {} vanished", account.id))
                })?;
                return self.signed_in_again(&name, account).await;
            }
            return self.signed_in_again(&name, account).await;
        }
        Err(Error::Invalid(format!(
            "the names {GITHUB_USER_PREFIX}{login} and {GITHUB_USER_PREFIX}{login}-{} are both \
             taken by other accounts: an Admin renames one",
            account.id
        )))
    }

    async fn linked_user(&self, github_id: i64) -> Result<Option<String>> {
        let row =
            sqlx::query("SELECT user_name FROM identity_github_accounts WHERE github_id = $1")
                .bind(github_id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|row| row.try_get(0).map_err(Error::from))
            .transpose()
    }

    async fn signed_in_again(&self, name: &str, account: &GitHubAccount) -> Result<User> {
        sqlx::query(
            "UPDATE identity_github_accounts SET login = $1, signed_in_at_ms = $2 \
             WHERE github_id = $3",
        )
        .bind(&account.login)
        .bind(now_ms())
        .bind(account.id)
        .execute(&self.pool)
        .await?;
        sqlx::query("UPDATE identity_users SET github_login = $1 WHERE name = $2")
            .bind(&account.login)
            .bind(name)
            .execute(&self.pool)
            .await?;
        let user = self.user(name).await?.ok_or_else(|| {
            Error::Unauthenticated(format!(
                "the account linked to GitHub user {:?} no longer exists",
                account.login
            ))
        })?;
        if user.disabled {
            return Err(Error::Unauthenticated(format!(
                "the account {name:?} is disabled: ask an Admin"
            )));
        }
        Ok(user)
    }

    /// The GitHub account linked to the user `name`, if it signs in through GitHub.
    pub async fn github_account_of(&self, name: &str) -> Result<Option<GitHubAccount>> {
        let row = sqlx::query(
            "SELECT github_id, login FROM identity_github_accounts WHERE user_name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(GitHubAccount {
                id: row.try_get(0)?,
                login: row.try_get(1)?,
            })
        })
        .transpose()
    }

    /// Records a sign-in's `state`, valid until `expires_at_ms`; forgets states finished
    /// long ago.
    pub async fn issue_oauth_state(&self, state: &str, expires_at_ms: i64) -> Result<()> {
        let now = now_ms();
        sqlx::query("DELETE FROM identity_oauth_states WHERE expires_at_ms < $1")
            .bind(now - STATE_MEMORY_MS)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO identity_oauth_states (state_hash, created_at_ms, expires_at_ms, \
             used_at_ms) VALUES ($1, $2, $3, NULL)",
        )
        .bind(token_digest(state))
        .bind(now)
        .bind(expires_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Checks a returning `state` and marks it used: one callback wins, even across
    /// replicas, since the mark is a single conditional update.
    pub async fn use_oauth_state(&self, state: &str) -> Result<OAuthState> {
        let now = now_ms();
        let digest = token_digest(state);
        let taken = sqlx::query(
            "UPDATE identity_oauth_states SET used_at_ms = $1 WHERE state_hash = $2 \
             AND used_at_ms IS NULL AND expires_at_ms > $1",
        )
        .bind(now)
        .bind(&digest)
        .execute(&self.pool)
        .await?;
        if taken.rows_affected() == 1 {
            return Ok(OAuthState::Fresh);
        }
        let row = sqlx::query(
            "SELECT used_at_ms, expires_at_ms FROM identity_oauth_states WHERE state_hash = $1",
        )
        .bind(&digest)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(OAuthState::Unknown);
        };
        Ok(match row.try_get::<Option<i64>, _>(0)? {
            Some(used_at_ms) => OAuthState::Used(used_at_ms),
            None => OAuthState::Expired(row.try_get(1)?),
        })
    }

    /// Keeps a session's sealed OAuth token until the session ends (sign-out, revocation,
    /// expiry at `expires_at_ms`); drops the tokens of sessions already expired.
    pub async fn keep_github_token(
        &self,
        session_id: &str,
        github_id: i64,
        sealed: &str,
        expires_at_ms: i64,
    ) -> Result<()> {
        sqlx::query("DELETE FROM identity_github_tokens WHERE expires_at_ms <= $1")
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO identity_github_tokens (session_id, github_id, sealed_token, \
             expires_at_ms) VALUES ($1, $2, $3, $4) ON CONFLICT (session_id) \
             DO UPDATE SET github_id = $2, sealed_token = $3, expires_at_ms = $4",
        )
        .bind(session_id)
        .bind(github_id)
        .bind(sealed)
        .bind(expires_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The sealed OAuth token of a live session, if GitHub opened it.
    pub async fn github_token(&self, session_id: &str) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT sealed_token FROM identity_github_tokens WHERE session_id = $1 \
             AND expires_at_ms > $2",
        )
        .bind(session_id)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| row.try_get(0).map_err(Error::from))
            .transpose()
    }
}

#[cfg(test)]
#[path = "github_tests.rs"]
mod tests;
