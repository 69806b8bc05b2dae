//! The allow-list: paths whose findings are expected (test fixtures), known-public values and
//! fingerprints, and rules turned off.
//!
//! It is a JSON file, by default `.cap/secrets-allow.json` at the root of the scanned tree:
//!
//! ```json
//! {
//!   "paths": ["tests/fixtures/**", "docs/**/*.md"],
//!   "fingerprints": ["3f9a1c0d2e4b5a6f"],
//!   "values": ["a-value-published-on-purpose"],
//!   "rules": ["jwt"]
//! }
//! ```
//!
//! `paths` are globs matched against the file's path relative to the scanned root (forward
//! slashes; `**` crosses directories). `fingerprints` are the 16 hex digits a finding
//! reports. `values` are known-public values in clear (an emulator's published key); they are
//! kept only as fingerprints once loaded. `rules` are rule ids never reported. Every key is
//! optional; an unknown key is an error, so a misspelt entry does not silently allow nothing.
//!
//! There is deliberately no inline "allow this line" comment: the code being scanned may be
//! written by the model the scan guards against, and it must not be able to waive its own
//! findings. For the same reason a caller gating a change should load the allow-list from the
//! base revision, not from the change.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::finding::fingerprint;
use crate::rules::rules;
use crate::{Error, Result};

/// Where a tree's allow-list lives, relative to its root.
pub const ALLOW_LIST_PATH: &str = ".cap/secrets-allow.json";

/// The allow-list file's shape.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct AllowListFile {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    fingerprints: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    values: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    rules: Vec<String>,
}

/// Paths, fingerprints and rules whose findings are not reported.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    globs: Vec<Glob>,
    paths: Option<GlobSet>,
    fingerprints: HashSet<String>,
    rules: HashSet<String>,
}

impl AllowList {
    /// An empty allow-list: everything found is reported.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads an allow-list file (see the module docs for its shape).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Reads `<root>/.cap/secrets-allow.json` if it exists, else an empty allow-list.
    pub fn load_for_tree(root: &Path) -> Result<Self> {
        let path = root.join(ALLOW_LIST_PATH);
        if path.is_file() {
            Self::load(&path)
        } else {
            Ok(Self::new())
        }
    }

    /// Parses allow-list JSON; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        let invalid = |reason: String| Error::AllowList {
            path: PathBuf::from(origin),
            reason,
        };
        let file: AllowListFile =
            serde_json::from_str(text).map_err(|error| invalid(error.to_string()))?;
        let mut list = Self::new();
        for glob in &file.paths {
            list = list
                .allow_path(glob)
                .map_err(|reason| invalid(format!("path glob {glob:?}: {reason}")))?;
        }
        for entry in &file.fingerprints {
            let entry = entry.to_ascii_lowercase();
            if entry.len() != 16 || !entry.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(format!(
                    "fingerprint {entry:?} is not the 16 hex digits a finding reports"
                )));
            }
            list.fingerprints.insert(entry);
        }
        for value in &file.values {
            if value.is_empty() {
                return Err(invalid("an empty string in \"values\"".to_owned()));
            }
            list.fingerprints.insert(fingerprint(value));
        }
        for rule in &file.rules {
            if !rules().iter().any(|known| known.id == rule) {
                return Err(invalid(format!("no rule has the id {rule:?}")));
            }
            list.rules.insert(rule.clone());
        }
        Ok(list)
    }

    /// Adds a path glob; the error says why the glob is invalid.
    pub fn allow_path(mut self, glob: &str) -> std::result::Result<Self, String> {
        let parsed = Glob::new(glob).map_err(|error| error.kind().to_string())?;
        self.globs.push(parsed);
        // A GlobSet cannot be extended, so it is rebuilt from the globs kept beside it.
        let mut builder = GlobSetBuilder::new();
        for glob in &self.globs {
            builder.add(glob.clone());
        }
        self.paths = Some(builder.build().map_err(|error| error.to_string())?);
        Ok(self)
    }

    /// Adds a fingerprint (as a finding reports it).
    pub fn allow_fingerprint(mut self, fingerprint: &str) -> Self {
        self.fingerprints.insert(fingerprint.to_ascii_lowercase());
        self
    }

    /// The list as allow-list JSON that [`AllowList::parse`] reads back to the same list, with
    /// no value in clear (`values` are kept as their fingerprints): for keeping the list a
    /// change is gated by, as it was before the change, beside the change's state.
    pub fn to_json(&self) -> String {
        let mut fingerprints: Vec<String> = self.fingerprints.iter().cloned().collect();
        fingerprints.sort();
        let mut rules: Vec<String> = self.rules.iter().cloned().collect();
        rules.sort();
        let file = AllowListFile {
            paths: self
                .globs
                .iter()
                .map(|glob| glob.glob().to_owned())
                .collect(),
            fingerprints,
            values: Vec::new(),
            rules,
        };
        // A struct of strings always serialises.
        serde_json::to_string(&file).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Whether the list allows nothing.
    pub fn is_empty(&self) -> bool {
        self.globs.is_empty() && self.fingerprints.is_empty() && self.rules.is_empty()
    }

    /// Whether findings in `file` (relative, forward slashes) are all allowed.
    pub fn allows_path(&self, file: &str) -> bool {
        self.paths
            .as_ref()
            .is_some_and(|paths| !file.is_empty() && paths.is_match(file))
    }

    /// Whether a finding of `rule_id` with `fingerprint` in `file` is allowed.
    pub fn allows(&self, file: &str, rule_id: &str, fingerprint: &str) -> bool {
        self.rules.contains(rule_id)
            || self.fingerprints.contains(fingerprint)
            || self.allows_path(file)
    }
}

#[cfg(test)]
#[path = "allow_tests.rs"]
mod tests;
