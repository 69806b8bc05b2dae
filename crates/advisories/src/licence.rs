//! Licences: the operator's policy per repository, a licence snapshot imported offline and
//! SPDX expressions evaluated against the policy (`MIT OR GPL-3.0` passes a GPL ban, one
//! choice being allowed; `MIT AND GPL-3.0` does not).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::snapshot::{now, write_atomically};
use crate::{Ecosystem, Error, Result};

/// The licence snapshot's file name inside the snapshot directory.
pub const LICENCES_FILE: &str = "licences.json";

/// Allowed and denied SPDX licence ids for one repository. Patterns may hold `*` (any run
/// of characters) and are matched without regard to case. A licence is allowed when it
/// matches no `deny` pattern and, if `allow` is not empty, matches an `allow` pattern.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Denied ids or patterns (`GPL-*`, `AGPL-*`).
    pub deny: Vec<String>,
    /// When not empty, the only ids or patterns allowed.
    pub allow: Vec<String>,
}

/// The operator's policy file (`<data>/policy/licences.toml`): a default and entries per
/// repository id that replace it for that repository.
///
/// ```toml
/// [default]
/// deny = ["GPL-*", "AGPL-*"]
///
/// [repositories."acme/open-tool"]
/// deny = []
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyFile {
    /// The policy of repositories without their own entry.
    pub default: Policy,
    /// Policies by repository id (`owner/name`).
    pub repositories: BTreeMap<String, Policy>,
}

impl PolicyFile {
    /// Reads the policy file at `path`; no file is no policy (every licence allowed).
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&path.display().to_string(), &text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(error) => Err(Error::io("read the licence policy", path)(error)),
        }
    }

    /// Parses a policy file's text (`name` is where it came from, for errors).
    pub fn parse(name: &str, text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|error| Error::Format {
            path: name.to_owned(),
            message: format!("not a licence policy: {error}"),
        })
    }

    /// The policy of `repository_id`.
    pub fn for_repository(&self, repository_id: &str) -> &Policy {
        self.repositories
            .get(repository_id)
            .unwrap_or(&self.default)
    }
}

impl Policy {
    /// Whether the policy restricts anything.
    pub fn is_empty(&self) -> bool {
        self.deny.is_empty() && self.allow.is_empty()
    }

    /// Whether one licence id is allowed.
    pub fn allows_id(&self, id: &str) -> bool {
        let id = id.trim_end_matches('+');
        !self.deny.iter().any(|pattern| wildcard(pattern, id))
            && (self.allow.is_empty() || self.allow.iter().any(|pattern| wildcard(pattern, id)))
    }

    /// One line saying what the policy is, for findings.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.deny.is_empty() {
            parts.push(format!("denied: {}", self.deny.join(", ")));
        }
        if !self.allow.is_empty() {
            parts.push(format!("allowed only: {}", self.allow.join(", ")));
        }
        parts.join("; ")
    }
}

/// `pattern` (with `*` wildcards) matches all of `text`, case ignored.
fn wildcard(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.to_ascii_lowercase(), text.to_ascii_lowercase());
    let pieces: Vec<&str> = pattern.split('*').collect();
    if pieces.len() == 1 {
        return pattern == text;
    }
    let mut rest = text.as_str();
    for (index, piece) in pieces.iter().enumerate() {
        if index == 0 {
            let Some(after) = rest.strip_prefix(piece) else {
                return false;
            };
            rest = after;
        } else if index == pieces.len() - 1 {
            return rest.ends_with(piece);
        } else {
            let Some(at) = rest.find(piece) else {
                return false;
            };
            rest = &rest[at + piece.len()..];
        }
    }
    true
}

/// Whether the SPDX `expression` is acceptable under `policy`: `OR` needs one side
/// allowed, `AND` both, `WITH` an exception is judged by its licence. `Err` names what is
/// wrong with an expression that does not parse.
pub fn evaluate_expression(expression: &str, policy: &Policy) -> std::result::Result<bool, String> {
    let spaced = expression.replace('(', " ( ").replace(')', " ) ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    if tokens.is_empty() {
        return Err("empty licence expression".into());
    }
    let mut at = 0;
    let value = or_expression(&tokens, &mut at, policy)?;
    if at != tokens.len() {
        return Err(format!(
            "unexpected {:?} in licence expression {expression:?}",
            tokens[at]
        ));
    }
    Ok(value)
}

fn or_expression(
    tokens: &[&str],
    at: &mut usize,
    policy: &Policy,
) -> std::result::Result<bool, String> {
    let mut value = and_expression(tokens, at, policy)?;
    while tokens
        .get(*at)
        .is_some_and(|t| t.eq_ignore_ascii_case("OR"))
    {
        *at += 1;
        let right = and_expression(tokens, at, policy)?;
        value = value || right;
    }
    Ok(value)
}

fn and_expression(
    tokens: &[&str],
    at: &mut usize,
    policy: &Policy,
) -> std::result::Result<bool, String> {
    let mut value = primary(tokens, at, policy)?;
    while tokens
        .get(*at)
        .is_some_and(|t| t.eq_ignore_ascii_case("AND"))
    {
        *at += 1;
        let right = primary(tokens, at, policy)?;
        value = value && right;
    }
    Ok(value)
}

fn primary(tokens: &[&str], at: &mut usize, policy: &Policy) -> std::result::Result<bool, String> {
    let token = tokens.get(*at).ok_or("licence expression ends early")?;
    *at += 1;
    if *token == "(" {
        let value = or_expression(tokens, at, policy)?;
        if tokens.get(*at) != Some(&")") {
            return Err("unbalanced parenthesis in licence expression".into());
        }
        *at += 1;
        return Ok(value);
    }
    if matches!(
        token.to_ascii_uppercase().as_str(),
        "AND" | "OR" | "WITH" | ")"
    ) {
        return Err(format!("{token:?} where a licence id was expected"));
    }
    if tokens
        .get(*at)
        .is_some_and(|t| t.eq_ignore_ascii_case("WITH"))
    {
        *at += 1;
        tokens.get(*at).ok_or("WITH without an exception")?;
        *at += 1;
    }
    Ok(policy.allows_id(token))
}

/// Licences of packages, imported offline.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LicenceSnapshot {
    /// When it was last imported (RFC 3339).
    #[serde(default)]
    pub imported_at: String,
    /// `ecosystem/normalised name` -> SPDX expression.
    #[serde(default)]
    pub licences: BTreeMap<String, String>,
}

impl LicenceSnapshot {
    /// Loads the licence snapshot in `dir`; empty when there is none.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(LICENCES_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|error| Error::Format {
                path: path.display().to_string(),
                message: format!("not a licence snapshot ({error}); import it again"),
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(error) => Err(Error::io("read the licence snapshot", &path)(error)),
        }
    }

    fn key(ecosystem: Ecosystem, name: &str) -> String {
        format!("{}/{}", ecosystem.name(), ecosystem.normalise(name))
    }

    /// The licence of a package, if known.
    pub fn get(&self, ecosystem: Ecosystem, name: &str) -> Option<&str> {
        self.licences
            .get(&Self::key(ecosystem, name))
            .map(String::as_str)
    }
}

#[derive(Debug, Deserialize)]
struct LicenceEntry {
    ecosystem: String,
    name: String,
    license: String,
}

/// Imports licences from `file` into the snapshot in `dir`, merged over what it held (the
/// file's entry wins). Two formats: lines of `ECOSYSTEM NAME SPDX-EXPRESSION` (whitespace
/// separated, the expression the rest of the line; `#` starts a comment), or a JSON array
/// of `{"ecosystem", "name", "license"}`. Returns how many entries were read.
pub fn import_licences(file: &Path, dir: &Path) -> Result<usize> {
    let text = std::fs::read_to_string(file).map_err(Error::io("read", file))?;
    let name = file.display().to_string();
    let bad = |line: usize, message: String| Error::Format {
        path: if line == 0 {
            name.clone()
        } else {
            format!("{name}:{line}")
        },
        message,
    };
    let mut entries = Vec::new();
    if text.trim_start().starts_with('[') {
        let parsed: Vec<LicenceEntry> = serde_json::from_str(&text)
            .map_err(|error| bad(0, format!("not a licence list: {error}")))?;
        entries.extend(parsed.into_iter().map(|entry| (0, entry)));
    } else {
        for (index, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.splitn(3, char::is_whitespace);
            let (Some(ecosystem), Some(package), Some(license)) =
                (words.next(), words.next(), words.next())
            else {
                return Err(bad(
                    index + 1,
                    "expected ECOSYSTEM NAME SPDX-EXPRESSION".into(),
                ));
            };
            entries.push((
                index + 1,
                LicenceEntry {
                    ecosystem: ecosystem.to_owned(),
                    name: package.to_owned(),
                    license: license.trim().to_owned(),
                },
            ));
        }
    }
    std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    let mut snapshot = LicenceSnapshot::load(dir)?;
    let count = entries.len();
    for (line, entry) in entries {
        let ecosystem = Ecosystem::from_name(&entry.ecosystem).ok_or_else(|| {
            bad(
                line,
                format!(
                    "unknown ecosystem {:?} (npm, PyPI, Go, Maven)",
                    entry.ecosystem
                ),
            )
        })?;
        evaluate_expression(&entry.license, &Policy::default())
            .map_err(|message| bad(line, message))?;
        snapshot
            .licences
            .insert(LicenceSnapshot::key(ecosystem, &entry.name), entry.license);
    }
    snapshot.imported_at = now();
    let bytes = serde_json::to_vec(&snapshot).map_err(|error| bad(0, error.to_string()))?;
    write_atomically(&dir.join(LICENCES_FILE), &bytes)?;
    Ok(count)
}

/// The `license` a package's own `package.json` declares (a string, or the old
/// `{"type": ...}` object).
pub fn licence_from_package_json(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let license = value.get("license")?;
    license
        .as_str()
        .or_else(|| license.get("type")?.as_str())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}

#[cfg(test)]
#[path = "licence_tests.rs"]
mod tests;
