//! OSV records (the fields the checks use) and whether a version is affected.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::{Ecosystem, version};

/// An OSV advisory, reduced to what the checks use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advisory {
    /// Its id (`GHSA-...`, `PYSEC-...`).
    pub id: String,
    /// Other ids of the same advisory (CVE ids).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// One line about it.
    #[serde(default)]
    pub summary: String,
    /// When it was last changed (RFC 3339), to keep the newer of two copies.
    #[serde(default)]
    pub modified: String,
    /// When it was withdrawn, if it was: a withdrawn advisory affects nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<String>,
    /// The packages and versions it affects.
    #[serde(default)]
    pub affected: Vec<Affected>,
    /// How bad it is: `database_specific.severity` (GitHub's LOW..CRITICAL) or the first
    /// `severity[].score` (a CVSS vector).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub severity: String,
}

/// One affected package of an advisory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Affected {
    /// OSV's ecosystem name (`PyPI`, `npm`, `Go`, `Maven`; others are kept but never match).
    pub ecosystem: String,
    /// The package's name as the ecosystem spells it.
    pub name: String,
    /// Affected version ranges.
    #[serde(default)]
    pub ranges: Vec<Range>,
    /// Affected versions listed one by one.
    #[serde(default)]
    pub versions: Vec<String>,
}

/// A range of affected versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Range {
    /// `SEMVER`, `ECOSYSTEM` or `GIT` (commits: not comparable with versions, never matched).
    #[serde(rename = "type")]
    pub kind: String,
    /// Where affected versions begin and end.
    #[serde(default)]
    pub events: Vec<Event>,
}

/// One event of a range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// Affected from this version on (`0`: from the first).
    Introduced(String),
    /// Fixed in this version.
    Fixed(String),
    /// Affected up to and including this version.
    LastAffected(String),
    /// Ends a range without saying it was fixed.
    Limit(String),
}

impl Event {
    fn version(&self) -> &str {
        match self {
            Self::Introduced(v) | Self::Fixed(v) | Self::LastAffected(v) | Self::Limit(v) => v,
        }
    }
}

/// The OSV JSON shape, as published (`affected[].package`, `severity[]`, ...).
#[derive(Debug, Deserialize)]
pub(crate) struct OsvRecord {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    details: String,
    #[serde(default)]
    modified: String,
    #[serde(default)]
    withdrawn: Option<String>,
    #[serde(default)]
    affected: Vec<OsvAffected>,
    #[serde(default)]
    severity: Vec<OsvSeverity>,
    #[serde(default)]
    database_specific: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct OsvAffected {
    package: Option<OsvPackage>,
    #[serde(default)]
    ranges: Vec<OsvRange>,
    #[serde(default)]
    versions: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct OsvPackage {
    ecosystem: String,
    name: String,
}

#[derive(Debug, Deserialize)]
struct OsvRange {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    events: Vec<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Deserialize)]
struct OsvSeverity {
    #[serde(default)]
    score: String,
}

impl OsvRecord {
    pub(crate) fn into_advisory(self) -> Advisory {
        let severity = self
            .database_specific
            .as_ref()
            .and_then(|specific| specific.get("severity"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .or_else(|| self.severity.first().map(|s| s.score.clone()))
            .unwrap_or_default();
        let summary = if self.summary.trim().is_empty() {
            self.details
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()
        } else {
            self.summary.trim().to_owned()
        };
        Advisory {
            id: self.id,
            aliases: self.aliases,
            summary,
            modified: self.modified,
            withdrawn: self.withdrawn,
            severity,
            affected: self
                .affected
                .into_iter()
                .filter_map(|affected| {
                    let package = affected.package?;
                    Some(Affected {
                        ecosystem: package.ecosystem,
                        name: package.name,
                        versions: affected.versions,
                        ranges: affected
                            .ranges
                            .into_iter()
                            .map(|range| Range {
                                kind: range.kind,
                                events: range
                                    .events
                                    .into_iter()
                                    .filter_map(|event| {
                                        let (key, value) = event.into_iter().next()?;
                                        let value = value.as_str()?.to_owned();
                                        match key.as_str() {
                                            "introduced" => Some(Event::Introduced(value)),
                                            "fixed" => Some(Event::Fixed(value)),
                                            "last_affected" => Some(Event::LastAffected(value)),
                                            "limit" => Some(Event::Limit(value)),
                                            _ => None,
                                        }
                                    })
                                    .collect(),
                            })
                            .collect(),
                    })
                })
                .collect(),
        }
    }
}

/// What an advisory says about one version of a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hit {
    /// The first fixed version above it, when the advisory names one.
    pub(crate) fixed: Option<String>,
}

impl Affected {
    /// The ecosystem, when it is one the checks know.
    pub(crate) fn known_ecosystem(&self) -> Option<Ecosystem> {
        // `PyPI`, and also `Maven:https://...`-style variants are not the main registry.
        Ecosystem::from_name(&self.ecosystem)
    }

    /// Whether `version` of this package is affected, and where it is fixed.
    pub(crate) fn affects(&self, ecosystem: Ecosystem, version: &str) -> Option<Hit> {
        let cmp = |a: &str, b: &str| version::compare(ecosystem, a, b);
        let listed = self
            .versions
            .iter()
            .any(|listed| cmp(listed, version) == Some(Ordering::Equal) || listed == version);
        for range in &self.ranges {
            if range.kind == "GIT" {
                continue;
            }
            let mut events: Vec<&Event> = range.events.iter().collect();
            let order = |a: &str, b: &str| match (a, b) {
                ("0", "0") => Ordering::Equal,
                ("0", _) => Ordering::Less,
                (_, "0") => Ordering::Greater,
                _ => cmp(a, b).unwrap_or(Ordering::Equal),
            };
            events.sort_by(|a, b| order(a.version(), b.version()));
            let mut affected = false;
            for event in &events {
                let at = order(event.version(), version);
                match event {
                    Event::Introduced(_) if at != Ordering::Greater => affected = true,
                    Event::Fixed(_) | Event::Limit(_) if at != Ordering::Greater => {
                        affected = false
                    }
                    Event::LastAffected(_) if at == Ordering::Less => affected = false,
                    _ => {}
                }
            }
            if affected {
                let fixed = events.iter().find_map(|event| match event {
                    Event::Fixed(fixed) if order(fixed, version) == Ordering::Greater => {
                        Some(fixed.clone())
                    }
                    _ => None,
                });
                return Some(Hit { fixed });
            }
        }
        listed.then_some(Hit { fixed: None })
    }
}

/// The version a manifest's requirement is checked at: the one it names exactly
/// (`==1.2.3`, `1.2.3`, `v1.2.3`, `[1.2.3]`), or the lowest one a range admits (`^1.2.0`,
/// `~=1.4`, `>=2,<3`, `[1.0,2.0)`), with `true` when it was exact. `None` when the
/// requirement has no lower bound (`*`, `<3`, a tag, a URL, a path).
pub fn lowest_admitted(ecosystem: Ecosystem, spec: &str) -> Option<(String, bool)> {
    let spec = spec.trim();
    if spec.is_empty() {
        return None;
    }
    let is_version = |v: &str| version::compare(ecosystem, v, v).is_some();
    match ecosystem {
        Ecosystem::Maven => {
            if let Some(inner) = spec.strip_prefix('[').or_else(|| spec.strip_prefix('(')) {
                let low = inner.split(',').next()?.trim().trim_end_matches([']', ')']);
                let exact = !inner.contains(',');
                return (!low.is_empty()).then(|| (low.to_owned(), exact && spec.starts_with('[')));
            }
            (!spec.contains("${")).then(|| (spec.to_owned(), true))
        }
        Ecosystem::Go => {
            let version = spec.trim_start_matches('v');
            is_version(version).then(|| (version.to_owned(), true))
        }
        Ecosystem::PyPi | Ecosystem::Npm => {
            let mut lowest: Option<(String, bool)> = None;
            // npm alternatives (`^1 || ^2`): the lowest of their lowest.
            for alternative in spec.split("||") {
                let alternative = alternative.trim();
                let found = lowest_of_alternative(ecosystem, alternative);
                if let Some((low, exact)) = found {
                    let lower = match &lowest {
                        None => true,
                        Some((current, _)) => {
                            version::compare(ecosystem, &low, current) == Some(Ordering::Less)
                        }
                    };
                    if lower {
                        lowest = Some((low, exact && !spec.contains("||")));
                    }
                }
            }
            lowest
        }
    }
}

fn lowest_of_alternative(ecosystem: Ecosystem, spec: &str) -> Option<(String, bool)> {
    let is_version = |v: &str| version::compare(ecosystem, v, v).is_some();
    if let Some((low, _)) = spec.split_once(" - ") {
        let low = wildcard_floor(low.trim());
        return is_version(&low).then_some((low, false));
    }
    let parts: Vec<&str> = spec
        .split([',', ' '])
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect();
    let mut lowest = None;
    for part in &parts {
        let operator_len = part
            .find(|c: char| c.is_ascii_alphanumeric())
            .unwrap_or(part.len());
        let (operator, version) = part.split_at(operator_len);
        if version.trim_matches(['x', 'X', '*', '.']).is_empty() {
            continue;
        }
        let exact = matches!(operator, "" | "=" | "==" | "===") && parts.len() == 1;
        let version = match operator {
            "" | "=" | "==" | "===" | ">=" | ">" | "^" | "~" | "~=" | "~>" => {
                wildcard_floor(version)
            }
            // Upper bounds and exclusions say nothing of the lowest.
            _ => continue,
        };
        if !is_version(&version) {
            continue;
        }
        let exact = exact && !version.contains('*') && !part.contains(['x', 'X', '*']);
        // PyPI `==1.4.*`, npm `1.2.x` or a partial npm version (`1.2` admits 1.2.0 and up).
        let exact = exact
            && !(ecosystem == Ecosystem::Npm
                && version.split('.').count() < 3
                && operator.is_empty());
        lowest = Some((version, exact));
    }
    lowest
}

/// `1.2.x`, `1.2.*`, `1.*` as their lowest version (`1.2.0`, `1.0`).
fn wildcard_floor(version: &str) -> String {
    let version = version.trim().trim_start_matches('v');
    let parts: Vec<&str> = version
        .split('.')
        .map(|part| {
            if matches!(part, "x" | "X" | "*") {
                "0"
            } else {
                part
            }
        })
        .collect();
    parts.join(".")
}

#[cfg(test)]
#[path = "osv_tests.rs"]
mod tests;
