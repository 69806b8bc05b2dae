//! Passwords of local accounts: Argon2id with the crate's recommended parameters (OWASP's
//! minimum: 19 MiB, 2 passes), stored as PHC strings so parameters can be raised later.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;

use crate::{Error, Result};

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted (hashing cost grows with it).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// The PHC string of `password`, with a fresh random salt.
pub fn hash(password: &str) -> Result<String> {
    check(password)?;
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| Error::Crypto(format!("hashing a password: {error}")))
}

/// Whether `password` matches the PHC string `stored`.
pub fn verify(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Checks a new password's length.
pub fn check(password: &str) -> Result<()> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(Error::Invalid(format!(
            "the password is too short: at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(Error::Invalid(format!(
            "the password is too long: at most {MAX_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

/// A random password of 24 URL-safe characters (144 bits), for first admins and
/// `cap user add` without `--password-stdin`.
pub fn generate() -> Result<String> {
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::keys::random::<18>()?))
}

#[cfg(test)]
#[path = "password_tests.rs"]
mod tests;
