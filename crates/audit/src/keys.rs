//! The checkpoints' Ed25519 signing key: generated on first use and kept as a PKCS#8 file
//! (mode 0600) in a directory the caller names (the supervisor's data dir), with the public key
//! beside it, so `cap audit verify` finds it there.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The private key's file name in the key directory (PKCS#8 v2, DER).
pub const PRIVATE_KEY_FILE: &str = "audit-signing-key.pk8";
/// The public key's file name in the key directory (the raw 32 bytes, base64, one line).
pub const PUBLIC_KEY_FILE: &str = "audit-signing-key.pub";

/// A public key checkpoints are checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    bytes: Vec<u8>,
}

impl PublicKey {
    /// The key from its raw 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != 32 {
            return Err(Error::Key(format!(
                "an Ed25519 public key is 32 bytes, not {}",
                bytes.len()
            )));
        }
        Ok(Self {
            bytes: bytes.to_vec(),
        })
    }

    /// The key as [`PUBLIC_KEY_FILE`] holds it (base64 of the raw bytes).
    pub fn from_base64(text: &str) -> Result<Self> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|error| Error::Key(format!("public key is not base64: {error}")))?;
        Self::from_bytes(&bytes)
    }

    /// Reads the public key file at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::KeyFile {
            path: path.to_owned(),
            source,
        })?;
        Self::from_base64(&text).map_err(|error| Error::Key(format!("{}: {error}", path.display())))
    }

    /// The public key in `dir` ([`PUBLIC_KEY_FILE`]).
    pub fn read_from_dir(dir: &Path) -> Result<Self> {
        Self::read(&dir.join(PUBLIC_KEY_FILE))
    }

    /// Base64 of the raw bytes.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.bytes)
    }

    /// The first 16 bytes of SHA-256 of the raw key, in hex: what a checkpoint names its key by.
    pub fn fingerprint(&self) -> String {
        crate::hash::hex(&Sha256::digest(&self.bytes)[..16])
    }

    /// Whether `signature` is this key's over `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.bytes)
            .verify(message, signature)
            .is_ok()
    }
}

/// The signing key.
pub struct Signer {
    pair: Ed25519KeyPair,
    public: PublicKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("fingerprint", &self.public.fingerprint())
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// The key kept in `dir`, generated (and written there, the private key with mode 0600)
    /// when there is none yet.
    pub fn load_or_create(dir: &Path) -> Result<Self> {
        let private = dir.join(PRIVATE_KEY_FILE);
        let pkcs8 = match std::fs::read(&private) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                create_key(dir, &private)?
            }
            Err(source) => {
                return Err(Error::KeyFile {
                    path: private,
                    source,
                });
            }
        };
        let signer = Self::from_pkcs8(&pkcs8)
            .map_err(|error| Error::Key(format!("{}: {error}", private.display())))?;
        let public_path = dir.join(PUBLIC_KEY_FILE);
        if !public_path.exists() {
            write_file(&public_path, signer.public.to_base64().as_bytes(), 0o644)?;
        }
        Ok(signer)
    }

    /// A key from its PKCS#8 document.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|error| Error::Key(format!("not an Ed25519 PKCS#8 key: {error}")))?;
        let public = PublicKey::from_bytes(pair.public_key().as_ref())?;
        Ok(Self { pair, public })
    }

    /// A new key held only in memory (tests, or a caller keeping it elsewhere).
    pub fn generate() -> Result<(Self, Vec<u8>)> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| Error::Key("could not generate an Ed25519 key".into()))?;
        let bytes = pkcs8.as_ref().to_vec();
        Ok((Self::from_pkcs8(&bytes)?, bytes))
    }

    /// Its public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The signature over `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }
}

fn create_key(dir: &Path, private: &PathBuf) -> Result<Vec<u8>> {
    std::fs::create_dir_all(dir).map_err(|source| Error::KeyFile {
        path: dir.to_owned(),
        source,
    })?;
    let (_, pkcs8) = Signer::generate()?;
    match write_file(private, &pkcs8, 0o600) {
        Ok(()) => {
            tracing::info!(path = %private.display(), "created the audit log's signing key");
            Ok(pkcs8)
        }
        // Another process created it first: use that one.
        Err(Error::KeyFile { source, .. })
            if source.kind() == std::io::ErrorKind::AlreadyExists =>
        {
            std::fs::read(private).map_err(|source| Error::KeyFile {
                path: private.clone(),
                source,
            })
        }
        Err(error) => Err(error),
    }
}

/// Writes a new file with `mode` (never replacing one): the key is created with its
/// permissions, not narrowed after.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let key_file = |source| Error::KeyFile {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(key_file)?;
    file.write_all(bytes).map_err(key_file)?;
    file.sync_all().map_err(key_file)
}
