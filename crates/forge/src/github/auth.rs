//! GitHub App authentication: the app's JWT (RS256, signed with the App's private key) and the
//! installation tokens it is exchanged for.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};

use crate::{Error, Result};

/// How far back an app JWT's `iat` is dated: GitHub's advice against clock drift.
const CLOCK_DRIFT: Duration = Duration::from_secs(60);
/// An app JWT's lifetime; GitHub refuses more than 10 minutes.
const APP_JWT_LIFETIME: Duration = Duration::from_secs(9 * 60);

/// The GitHub App's private key. Its `Debug` says nothing about the key.
pub struct AppKey {
    key_pair: RsaKeyPair,
}

impl std::fmt::Debug for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppKey(<redacted>)")
    }
}

impl AppKey {
    /// Reads the key GitHub generated for the App (a PEM file: `RSA PRIVATE KEY`, as GitHub
    /// hands it out, or `PRIVATE KEY`, PKCS#8).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_pem(&text).map_err(|reason| Error::GitHubKey {
            path: path.to_owned(),
            reason,
        })
    }

    /// Parses a PEM private key; the error says what is wrong, never what the key holds.
    pub fn from_pem(text: &str) -> std::result::Result<Self, String> {
        let (label, der) = pem_block(text)?;
        let key_pair = match label.as_str() {
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
            other => {
                return Err(format!(
                    "a PEM block `{other}` is not an RSA private key (expected `RSA PRIVATE KEY` \
                     or `PRIVATE KEY`)"
                ));
            }
        }
        .map_err(|rejected| format!("not a usable RSA private key: {rejected}"))?;
        Ok(Self { key_pair })
    }

    /// The app's JWT for `app_id` at `now`: `iat` a minute back, `exp` nine minutes on.
    pub(crate) fn app_jwt(&self, app_id: u64, now: SystemTime) -> Result<String> {
        let now = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| Error::InvalidArgument {
                field: "system clock",
                reason: "before 1970".into(),
            })?;
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "iat": now.saturating_sub(CLOCK_DRIFT).as_secs(),
            "exp": (now + APP_JWT_LIFETIME).as_secs(),
            "iss": app_id.to_string(),
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let message = format!("{header}.{claims}");
        let mut signature = vec![0; self.key_pair.public().modulus_len()];
        self.key_pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message.as_bytes(),
                &mut signature,
            )
            .map_err(|_| Error::GitHubKey {
                path: "<app key>".into(),
                reason: "RS256 signing failed".into(),
            })?;
        Ok(format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// The first PEM block of `text`: its label and its decoded body.
fn pem_block(text: &str) -> std::result::Result<(String, Vec<u8>), String> {
    let mut lines = text.lines().map(str::trim);
    let label = lines
        .by_ref()
        .find_map(|line| {
            line.strip_prefix("-----BEGIN ")
                .and_then(|rest| rest.strip_suffix("-----"))
        })
        .ok_or("no `-----BEGIN ...-----` line: not a PEM file")?
        .to_owned();
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    for line in lines.by_ref() {
        if line == end {
            let der = STANDARD
                .decode(body.as_bytes())
                .map_err(|_| "the PEM body is not base64".to_owned())?;
            return Ok((label, der));
        }
        if line.contains(':') {
            return Err("encrypted PEM keys are not supported; decrypt it first".into());
        }
        body.push_str(line);
    }
    Err(format!("no `{end}` line"))
}

/// An installation token and when GitHub lets it expire.
#[derive(Clone)]
pub(crate) struct InstallationToken {
    pub(crate) token: String,
    pub(crate) expires_at: SystemTime,
}

impl std::fmt::Debug for InstallationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallationToken")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Installation tokens by installation id, each used until `renew_before` its expiry.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    tokens: HashMap<u64, InstallationToken>,
}

impl TokenCache {
    /// The cached token of `installation` if it is still good for `renew_before` at `now`.
    pub(crate) fn fresh(
        &self,
        installation: u64,
        now: SystemTime,
        renew_before: Duration,
    ) -> Option<&InstallationToken> {
        self.tokens
            .get(&installation)
            .filter(|token| token.expires_at > now + renew_before)
    }

    /// Drops `token`, so that the next call gets a new one.
    pub(crate) fn forget(&mut self, token: &str) {
        self.tokens.retain(|_, cached| cached.token != token);
    }

    /// Keeps `token` for `installation`.
    pub(crate) fn insert(&mut self, installation: u64, token: InstallationToken) {
        self.tokens.insert(installation, token);
    }
}

/// Parses GitHub's `expires_at` (RFC 3339, e.g. `2016-07-11T22:14:10Z`).
pub(crate) fn parse_timestamp(value: &str) -> Option<SystemTime> {
    let at =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339).ok()?;
    let nanos = u64::try_from(at.unix_timestamp_nanos()).ok()?;
    Some(UNIX_EPOCH + Duration::from_nanos(nanos))
}

/// `value` (RFC 3339) as milliseconds since the epoch; 0 when absent or unreadable.
pub(crate) fn timestamp_ms(value: Option<&str>) -> i64 {
    value
        .and_then(parse_timestamp)
        .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
        .and_then(|since| i64::try_from(since.as_millis()).ok())
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
