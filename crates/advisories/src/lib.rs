//! Dependencies a change adds or changes, checked before they are committed: against an OSV
//! advisory snapshot the operator imports offline (`cap advisories import`) and against the
//! operator's licence policy for the repository (never the repository's own word, which is
//! untrusted), with licences from a licence snapshot imported the same way or the
//! dependency's own manifest in the workspace.
//!
//! A manifest range (`^1.2.0`, `~=1.4`, `>=2,<3`) is checked at the lowest version it admits,
//! and the finding says so: the install may pick a later, fixed one, or not.

mod diff;
mod finding;
mod licence;
mod manifest;
mod osv;
mod snapshot;
mod version;

use serde::{Deserialize, Serialize};

pub use diff::{files_from_diff, files_from_tree};
pub use finding::{Checker, Finding, FindingKind, Findings, workspace_manifest};
pub use licence::{
    LICENCES_FILE, LicenceSnapshot, Policy, PolicyFile, evaluate_expression, import_licences,
    licence_from_package_json,
};
pub use manifest::{Dependency, ManifestFile, changed_dependencies, is_manifest};
pub use osv::{Advisory, Affected, Event, Range, lowest_admitted};
pub use snapshot::{ImportSummary, SNAPSHOT_FILE, Snapshot, import};
pub use version::{Pep440, compare};

/// An ecosystem, named as OSV names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Ecosystem {
    /// npm (package.json).
    #[serde(rename = "npm")]
    Npm,
    /// PyPI (requirements, pyproject.toml).
    #[serde(rename = "PyPI")]
    PyPi,
    /// Go modules (go.mod).
    #[serde(rename = "Go")]
    Go,
    /// Maven (pom.xml), names as `group:artifact`.
    #[serde(rename = "Maven")]
    Maven,
}

impl Ecosystem {
    /// OSV's name of the ecosystem.
    pub fn name(self) -> &'static str {
        match self {
            Self::Npm => "npm",
            Self::PyPi => "PyPI",
            Self::Go => "Go",
            Self::Maven => "Maven",
        }
    }

    /// The ecosystem OSV calls `name` (`PyPI`, `npm`, ...); case is ignored.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "npm" => Some(Self::Npm),
            "pypi" => Some(Self::PyPi),
            "go" => Some(Self::Go),
            "maven" => Some(Self::Maven),
            _ => None,
        }
    }

    /// A package name as OSV compares it: PyPI names PEP 503-normalised, the others as
    /// written.
    pub fn normalise(self, name: &str) -> String {
        match self {
            Self::PyPi => {
                let mut out = String::with_capacity(name.len());
                let mut dash = false;
                for c in name.trim().chars() {
                    if matches!(c, '-' | '_' | '.') {
                        dash = true;
                    } else {
                        if dash && !out.is_empty() {
                            out.push('-');
                        }
                        dash = false;
                        out.push(c.to_ascii_lowercase());
                    }
                }
                out
            }
            Self::Npm | Self::Go | Self::Maven => name.trim().to_owned(),
        }
    }
}

impl std::fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors of the dependency checks.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A manifest could not be read; the message says where and why.
    #[error("{path}: {message}")]
    Manifest {
        /// The manifest's path.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// An advisory record, a licence entry or the policy is not what its format says.
    #[error("{path}: {message}")]
    Format {
        /// The file (and entry) at fault.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A zip archive could not be read.
    #[error("zip archive {path}")]
    Zip {
        /// The archive.
        path: String,
        /// Why.
        #[source]
        source: zip::result::ZipError,
    },
    /// A unified diff could not be read.
    #[error("diff: {0}")]
    Diff(String),
}

impl Error {
    pub(crate) fn io(
        what: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.display().to_string();
        move |source| Self::Io { what, path, source }
    }
}

/// Result of the dependency checks.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
