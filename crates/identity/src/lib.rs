//! Who may do what (PRD FR-001, SR-003, SR-004): the gateway's users, sessions, API tokens,
//! roles, repository allow-list and per-user limits.
//!
//! - Local accounts keep an Argon2id hash of their password ([`password`]).
//! - A sign-in opens a session: a row the gateway can revoke and a JWT (HS256) naming it, valid
//!   24 hours, signed with the newest of the keys kept in the gateway's data directory
//!   ([`keys`]); older keys still verify until the tokens they signed expire.
//! - API tokens for scripts and CI are random, shown once and stored as a SHA-256 digest.
//! - GitHub sign-in links a GitHub account (by id) to a user; its OAuth token is kept sealed
//!   for the session's life only ([`TokenVault`]).
//! - [`Authenticator`] turns a presented credential into a [`Principal`], or says exactly why
//!   it cannot.
//!
//! The gateway owns these tables (migrations 4001 and up); no other service reads them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod auth;
mod github;
pub mod keys;
mod limits;
pub mod password;
mod store;

pub use auth::{Authenticator, Credential, Principal, SessionToken};
pub use github::{GITHUB_USER_PREFIX, GitHubAccount, OAuthState, TOKEN_KEY_FILE, TokenVault};
pub use limits::RateLimits;
pub use store::{
    AllowedRepository, ApiToken, DEFAULT_DAILY_PULL_REQUESTS, DEFAULT_ORGANISATION,
    INITIAL_PASSWORD_FILE, IdentityStore, IssuedToken, User,
};
/// A token's or session's lifetime.
pub use time::Duration as Lifetime;

/// The migrations of the gateway's tables (versions 4001 and up).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Longest session: a sign-in lasts a day (PRD).
pub const SESSION_LIFETIME: time::Duration = time::Duration::hours(24);

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SQL store failed.
    #[error("identity store: {0}")]
    Sql(#[from] sqlx::Error),
    /// The store could not be opened.
    #[error(transparent)]
    Storage(#[from] cap_storage::Error),
    /// Reading or writing a key or password file failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A value given to the store is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// A user of that name exists already.
    #[error("a user named {0:?} exists already")]
    UserExists(String),
    /// No such user.
    #[error("no user named {0:?}")]
    UnknownUser(String),
    /// No such API token.
    #[error("no API token {0:?}")]
    UnknownToken(String),
    /// A credential was refused: the message says why (shown to the caller as 401).
    #[error("{0}")]
    Unauthenticated(String),
    /// Hashing or signing failed.
    #[error("{0}")]
    Crypto(String),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What a person may do. Ordered: each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads tasks, events and pull requests.
    Viewer,
    /// Also submits, interrupts, resumes, steers and reviews.
    Developer,
    /// Also manages users, tokens, the allow-list, quarantined workspaces and the audit log.
    Admin,
}

impl Role {
    /// Every role, least first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Developer, Role::Admin];

    /// The role's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Developer => "developer",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may do what `required` may.
    pub fn allows(self, required: Role) -> bool {
        self >= required
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text.to_ascii_lowercase().as_str() {
            "viewer" => Ok(Role::Viewer),
            "developer" => Ok(Role::Developer),
            "admin" => Ok(Role::Admin),
            _ => Err(Error::Invalid(format!(
                "unknown role {text:?}: expected admin, developer or viewer"
            ))),
        }
    }
}

/// Checks a user name: 1 to 64 characters of letters, digits, `.`, `_` and `-`, starting with
/// a letter or digit (it appears in audit records, reviews and gRPC metadata).
pub fn check_user_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid user name {name:?}: use 1 to 64 letters, digits, '.', '_' or '-', starting \
             with a letter or digit"
        )))
    }
}

/// Parses a lifetime such as `30d`, `12h`, `45m` or `90s`.
pub fn parse_lifetime(text: &str) -> Result<time::Duration> {
    let invalid = || {
        Error::Invalid(format!(
            "invalid lifetime {text:?}: expected a number and a unit, e.g. 30d, 12h, 45m"
        ))
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(invalid)?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().map_err(|_| invalid())?;
    if number <= 0 || number > 3650 * 86_400 {
        return Err(invalid());
    }
    let duration = match unit {
        "d" => time::Duration::days(number),
        "h" => time::Duration::hours(number),
        "m" => time::Duration::minutes(number),
        "s" => time::Duration::seconds(number),
        _ => return Err(invalid()),
    };
    if duration > time::Duration::days(3650) {
        return Err(invalid());
    }
    Ok(duration)
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
