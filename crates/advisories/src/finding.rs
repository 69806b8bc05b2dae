//! Findings: what the checks say about each new or changed dependency.

use serde::{Deserialize, Serialize};

use crate::Ecosystem;
use crate::licence::{LicenceSnapshot, Policy, evaluate_expression};
use crate::manifest::Dependency;
use crate::osv::lowest_admitted;
use crate::snapshot::Snapshot;

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// The version is affected by a known advisory.
    Advisory,
    /// The licence is not allowed by the repository's policy.
    Licence,
    /// The licence is not known (not in the licence snapshot nor the workspace): reported,
    /// not a violation.
    UnknownLicence,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What it is about.
    pub kind: FindingKind,
    /// The package's ecosystem.
    pub ecosystem: Ecosystem,
    /// The package.
    pub name: String,
    /// The version or requirement as the manifest writes it.
    pub version: String,
    /// The version checked: the one written, or the lowest the requirement admits.
    pub checked_version: String,
    /// Whether `checked_version` is the lowest a range admits rather than an exact version.
    pub lowest_of_range: bool,
    /// The manifest and line declaring it.
    pub manifest: String,
    /// Its line.
    pub line: usize,
    /// The advisory's id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub advisory_id: String,
    /// The advisory's other ids (CVE).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The advisory's summary.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
    /// The first version the advisory says is fixed above the checked one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_version: Option<String>,
    /// The advisory's severity as it gives it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub severity: String,
    /// The licence (SPDX expression) when known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub licence: String,
    /// The policy a licence finding breaks.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub policy: String,
}

impl Finding {
    fn new(kind: FindingKind, dep: &Dependency) -> Self {
        Self {
            kind,
            ecosystem: dep.ecosystem,
            name: dep.name.clone(),
            version: dep.spec.clone(),
            checked_version: String::new(),
            lowest_of_range: false,
            manifest: dep.manifest.clone(),
            line: dep.line,
            advisory_id: String::new(),
            aliases: Vec::new(),
            summary: String::new(),
            fixed_version: None,
            severity: String::new(),
            licence: String::new(),
            policy: String::new(),
        }
    }

    /// Whether it stops the change for a human (a known vulnerability or a licence the
    /// policy refuses; an unknown licence does not).
    pub fn is_violation(&self) -> bool {
        match self.kind {
            FindingKind::Advisory | FindingKind::Licence => true,
            FindingKind::UnknownLicence => false,
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = format!("{}:{}", self.manifest, self.line);
        let version = if self.version.is_empty() {
            "(any version)"
        } else {
            &self.version
        };
        match self.kind {
            FindingKind::Advisory => {
                write!(f, "{at}: {} {} {version}", self.ecosystem, self.name)?;
                if self.lowest_of_range {
                    write!(
                        f,
                        " (checked at {}, the lowest it admits)",
                        self.checked_version
                    )?;
                }
                write!(f, " is affected by {}", self.advisory_id)?;
                if !self.aliases.is_empty() {
                    write!(f, " ({})", self.aliases.join(", "))?;
                }
                if !self.severity.is_empty() {
                    write!(f, " [{}]", self.severity)?;
                }
                if !self.summary.is_empty() {
                    write!(f, ": {}", self.summary)?;
                }
                match &self.fixed_version {
                    Some(fixed) => write!(f, "; fixed in {fixed}"),
                    None => write!(f, "; no fixed version known"),
                }
            }
            FindingKind::Licence => write!(
                f,
                "{at}: {} {} {version} is licensed {}, which the repository's licence policy \
                 does not allow ({})",
                self.ecosystem, self.name, self.licence, self.policy
            ),
            FindingKind::UnknownLicence => write!(
                f,
                "{at}: {} {} {version}: licence unknown (not in the licence snapshot or the \
                 workspace), not checked against the policy",
                self.ecosystem, self.name
            ),
        }
    }
}

/// The findings of one check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Findings {
    /// The dependencies checked (new or changed).
    pub checked: usize,
    /// Dependencies whose requirement has no lowest version (`*`, a tag, a URL): not
    /// matched against advisories.
    pub unresolved: Vec<String>,
    /// Whether advisories were checked (false: no snapshot).
    pub advisories_checked: bool,
    /// Every finding.
    pub findings: Vec<Finding>,
}

impl Findings {
    /// The findings that stop a change.
    pub fn violations(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|finding| finding.is_violation())
    }

    /// Whether any finding stops a change.
    pub fn has_violations(&self) -> bool {
        self.violations().next().is_some()
    }
}

/// What dependencies are checked against.
#[derive(Debug, Clone, Default)]
pub struct Checker {
    /// The advisory snapshot (`None`: none was imported, so advisories are not checked).
    pub advisories: Option<Snapshot>,
    /// Licences imported offline.
    pub licences: LicenceSnapshot,
    /// The repository's licence policy (empty: licences are not checked).
    pub policy: Policy,
}

impl Checker {
    /// Checks `dependencies`. `workspace_licence` gives the licence a dependency's own
    /// manifest in the workspace declares (`node_modules/NAME/package.json`), which is used
    /// when the licence snapshot does not know the package.
    pub fn check(
        &self,
        dependencies: &[Dependency],
        workspace_licence: &dyn Fn(&Dependency) -> Option<String>,
    ) -> Findings {
        let mut out = Findings {
            checked: dependencies.len(),
            advisories_checked: self.advisories.is_some(),
            ..Findings::default()
        };
        for dep in dependencies {
            if let Some(snapshot) = &self.advisories {
                match lowest_admitted(dep.ecosystem, &dep.spec) {
                    Some((version, exact)) => {
                        for hit in snapshot.affecting(dep.ecosystem, &dep.name, &version) {
                            let mut finding = Finding::new(FindingKind::Advisory, dep);
                            finding.checked_version = version.clone();
                            finding.lowest_of_range = !exact;
                            finding.advisory_id = hit.advisory.id.clone();
                            finding.aliases = hit.advisory.aliases.clone();
                            finding.summary = hit.advisory.summary.clone();
                            finding.severity = hit.advisory.severity.clone();
                            finding.fixed_version = hit.hit.fixed;
                            out.findings.push(finding);
                        }
                    }
                    None => out.unresolved.push(format!(
                        "{}:{}: {} {} {:?}",
                        dep.manifest, dep.line, dep.ecosystem, dep.name, dep.spec
                    )),
                }
            }
            if self.policy.is_empty() {
                continue;
            }
            let licence = self
                .licences
                .get(dep.ecosystem, &dep.name)
                .map(str::to_owned)
                .or_else(|| workspace_licence(dep));
            match licence {
                None => out
                    .findings
                    .push(Finding::new(FindingKind::UnknownLicence, dep)),
                Some(licence) => {
                    // An expression that does not parse cannot be cleared.
                    if evaluate_expression(&licence, &self.policy) != Ok(true) {
                        let mut finding = Finding::new(FindingKind::Licence, dep);
                        finding.licence = licence;
                        finding.policy = self.policy.describe();
                        out.findings.push(finding);
                    }
                }
            }
        }
        out
    }
}

/// Where a dependency's own manifest lies in a workspace, when the ecosystem installs
/// there (npm: `node_modules/NAME/package.json`).
pub fn workspace_manifest(dep: &Dependency) -> Option<String> {
    match dep.ecosystem {
        Ecosystem::Npm => {
            let dir = dep.manifest.rsplit_once('/').map_or("", |(dir, _)| dir);
            let prefix = if dir.is_empty() {
                String::new()
            } else {
                format!("{dir}/")
            };
            Some(format!("{prefix}node_modules/{}/package.json", dep.name))
        }
        Ecosystem::PyPi | Ecosystem::Go | Ecosystem::Maven => None,
    }
}

#[cfg(test)]
#[path = "finding_tests.rs"]
mod tests;
