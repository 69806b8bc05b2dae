//! The keys that sign session tokens, kept in the gateway's data directory
//! (`session-keys.json`, mode 0600) and generated on first start.
//!
//! Rotation adds a key and signs with it from then on; the keys it replaces still verify the
//! tokens they signed until those expire, so rotating signs nobody out. A key older than two
//! session lifetimes is dropped at the next rotation.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::SecureRandom as _;
use serde::{Deserialize, Serialize};

use crate::{Error, Result, Role, SESSION_LIFETIME};

/// The key file's name in the directory.
pub const KEY_FILE: &str = "session-keys.json";
/// The `iss` of every session token.
const ISSUER: &str = "cap-gateway";

/// `N` random bytes from the operating system.
pub fn random<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Crypto("the system random number generator failed".into()))?;
    Ok(bytes)
}

/// What a session token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: String,
    /// The user's role when the session opened (the current role is read again on use).
    pub role: Role,
    /// The session's id, to revoke it.
    pub sid: String,
    /// The value cookie-authenticated state changes must echo in `X-CSRF-Token`.
    pub csrf: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// Always `cap-gateway`.
    pub iss: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    /// Base64 of 32 random bytes.
    secret: String,
    created_at_ms: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeyFile {
    keys: Vec<StoredKey>,
}

/// The signing keys; the last one signs.
#[derive(Clone)]
pub struct SessionKeys {
    keys: Vec<(String, Vec<u8>, i64)>,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|(kid, _, _)| kid.as_str()).collect();
        f.debug_struct("SessionKeys").field("kids", &kids).finish()
    }
}

impl SessionKeys {
    /// The keys in `dir`, creating the directory and a first key when there are none.
    pub fn load_or_create(dir: &Path) -> Result<Self> {
        let path = dir.join(KEY_FILE);
        let mut file = read(&path)?;
        if file.keys.is_empty() {
            file.keys.push(new_key()?);
            write(dir, &file)?;
            tracing::info!(path = %path.display(), "session signing key created");
        }
        Self::from_file(file)
    }

    /// Adds a new signing key in `dir` and drops the ones too old to verify a live token.
    pub fn rotate(dir: &Path) -> Result<Self> {
        let mut file = read(&dir.join(KEY_FILE))?;
        let now = cap_storage::now_ms();
        let keep_after = now - 2 * SESSION_LIFETIME.whole_milliseconds() as i64;
        file.keys.retain(|key| key.created_at_ms > keep_after);
        file.keys.push(new_key()?);
        write(dir, &file)?;
        Self::from_file(file)
    }

    fn from_file(file: KeyFile) -> Result<Self> {
        let engine = base64::engine::general_purpose::STANDARD;
        let keys = file
            .keys
            .into_iter()
            .map(|key| {
                let secret = engine.decode(&key.secret).map_err(|_| {
                    Error::Invalid(format!("session key {} is not valid base64", key.kid))
                })?;
                Ok((key.kid, secret, key.created_at_ms))
            })
            .collect::<Result<Vec<_>>>()?;
        if keys.is_empty() {
            return Err(Error::Invalid("the session key file holds no key".into()));
        }
        Ok(Self { keys })
    }

    /// Whether `token` names a key id this set does not hold (one a rotation may have added
    /// since it was read).
    pub fn lacks_key_of(&self, token: &str) -> bool {
        jsonwebtoken::decode_header(token)
            .ok()
            .and_then(|header| header.kid)
            .is_some_and(|kid| !self.keys.iter().any(|(known, _, _)| *known == kid))
    }

    /// The id of the key that signs.
    pub fn current_kid(&self) -> &str {
        self.keys
            .last()
            .map(|(kid, _, _)| kid.as_str())
            .unwrap_or_default()
    }

    /// Signs `claims` with the current key.
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        let (kid, secret, _) = self
            .keys
            .last()
            .ok_or_else(|| Error::Crypto("no session key".into()))?;
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret))
            .map_err(|error| Error::Crypto(format!("signing a session token: {error}")))
    }

    /// Checks a token's signature, issuer and expiry, naming what is wrong.
    pub fn verify(&self, token: &str) -> Result<Claims> {
        let unauthenticated = |reason: &str| Error::Unauthenticated(reason.to_owned());
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| unauthenticated("the session token is malformed"))?;
        if header.alg != Algorithm::HS256 {
            return Err(unauthenticated(
                "the session token is not signed with HS256, the only algorithm accepted",
            ));
        }
        let kid = header.kid.unwrap_or_default();
        let (_, secret, _) = self
            .keys
            .iter()
            .find(|(known, _, _)| *known == kid)
            .ok_or_else(|| {
                unauthenticated(
                    "the session token was signed with a key this gateway does not have \
                     (rotated out, or from another installation): sign in again",
                )
            })?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret), &validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => {
                    unauthenticated("the session expired (sessions last 24 hours): sign in again")
                }
                ErrorKind::InvalidSignature => unauthenticated(
                    "the session token's signature does not match: it was altered or signed \
                     with another key",
                ),
                _ => unauthenticated("the session token is malformed"),
            })
    }

    /// Claims for a new session of `user`, valid [`SESSION_LIFETIME`] from now.
    pub fn claims(user: &str, role: Role, session_id: &str, now_s: i64) -> Result<Claims> {
        Ok(Claims {
            sub: user.to_owned(),
            role,
            sid: session_id.to_owned(),
            csrf: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random::<18>()?),
            iat: now_s,
            exp: now_s + SESSION_LIFETIME.whole_seconds(),
            iss: ISSUER.to_owned(),
        })
    }
}

fn new_key() -> Result<StoredKey> {
    Ok(StoredKey {
        kid: uuid::Uuid::new_v4().simple().to_string(),
        secret: base64::engine::general_purpose::STANDARD.encode(random::<32>()?),
        created_at_ms: cap_storage::now_ms(),
    })
}

fn read(path: &Path) -> Result<KeyFile> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| {
            Error::Invalid(format!(
                "{} is not a session key file: {error}",
                path.display()
            ))
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(KeyFile::default()),
        Err(source) => Err(Error::Io {
            what: format!("reading {}", path.display()),
            source,
        }),
    }
}

/// Writes the key file readable by its owner only, replacing the old one at once.
fn write(dir: &Path, file: &KeyFile) -> Result<()> {
    write_private(
        dir,
        KEY_FILE,
        &serde_json::to_vec_pretty(file).unwrap_or_default(),
    )
}

/// Writes `name` in `dir` with mode 0600 through a temporary file renamed over it.
pub(crate) fn write_private(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let io = |what: String| move |source| Error::Io { what, source };
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let path = dir.join(name);
    let temporary: PathBuf = dir.join(format!(".{name}.tmp"));
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(io(format!("creating {}", temporary.display())))?;
    out.write_all(bytes)
        .and_then(|()| out.sync_all())
        .map_err(io(format!("writing {}", temporary.display())))?;
    std::fs::rename(&temporary, &path).map_err(io(format!("replacing {}", path.display())))
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
