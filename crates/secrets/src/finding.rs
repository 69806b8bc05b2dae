//! A finding and the redacted form of a secret.

use std::fmt;
use std::ops::Range;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Hex digits of the SHA-256 digest kept as a secret's fingerprint (64 bits: enough to tell
/// secrets apart and to allow-list one, too few to be a useful index of the secret).
const FINGERPRINT_HEX_DIGITS: usize = 16;
/// At most this many leading characters of a secret are shown.
const SHOWN_PREFIX_CHARS: usize = 4;

/// The fingerprint of a secret: the first 16 hex digits of the SHA-256 of its bytes. The same
/// secret gets the same fingerprint in every file, rule and run, which is what an allow-list
/// entry names.
pub fn fingerprint(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut hex = String::with_capacity(FINGERPRINT_HEX_DIGITS);
    for byte in digest.iter().take(FINGERPRINT_HEX_DIGITS / 2) {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// The redacted form of a secret: its first characters (four at most, and never more than a
/// quarter of it, so a short password keeps most of its letters hidden), an ellipsis, and its
/// [`fingerprint`]; e.g. `ghp_…3f9a1c0d2e4b5a6f`.
pub fn redacted_form(secret: &str) -> String {
    let chars = secret.chars().count();
    let shown = SHOWN_PREFIX_CHARS.min(chars / 4);
    let prefix: String = secret.chars().take(shown).collect();
    format!("{prefix}…{}", fingerprint(secret))
}

/// One detected secret. It holds the secret only in redacted form, so its `Debug`, `Display`
/// and serialised forms are safe to print, log and store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule that matched, e.g. `github-pat`.
    pub rule_id: &'static str,
    /// What the rule detects, e.g. `GitHub personal access token`.
    pub description: &'static str,
    /// The file, relative to the scanned root (forward slashes), or the new file's path in a
    /// diff; empty for a bare text.
    pub file: String,
    /// 1-based line (in a diff: the line in the new file).
    pub line: usize,
    /// 1-based column, in characters (Unicode scalar values).
    pub column: usize,
    /// The secret's redacted form (see [`redacted_form`]).
    pub redacted: String,
    /// The secret's fingerprint (see [`fingerprint`]).
    pub fingerprint: String,
    /// Byte range of the secret (or of the whole block, for a private key) in the text that
    /// was scanned; in a diff, in the file's added lines joined. Used by redaction.
    #[serde(skip)]
    pub(crate) span: Range<usize>,
}

impl Finding {
    /// The byte range the secret occupies in the scanned text (for a diff, in the added lines
    /// of its file joined by newlines).
    pub fn byte_range(&self) -> Range<usize> {
        self.span.clone()
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = if self.file.is_empty() {
            "<text>"
        } else {
            &self.file
        };
        write!(
            f,
            "{file}:{}:{}: {} ({}): {}",
            self.line, self.column, self.description, self.rule_id, self.redacted
        )
    }
}

#[cfg(test)]
#[path = "finding_tests.rs"]
mod tests;
