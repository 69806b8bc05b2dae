#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

use crate::snapshot::tests::record;

fn dep(ecosystem: Ecosystem, name: &str, spec: &str) -> Dependency {
    Dependency {
        ecosystem,
        name: name.into(),
        spec: spec.into(),
        manifest: "requirements.txt".into(),
        line: 3,
    }
}

fn checker() -> (tempfile::TempDir, Checker) {
    let source = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        source.path().join("a.json"),
        record(
            "TEST-2026-0001",
            "PyPI",
            "requests",
            "2.32.0",
            "2026-01-01T00:00:00Z",
        ),
    )
    .unwrap();
    crate::import(source.path(), data.path()).unwrap();
    let checker = Checker {
        advisories: Snapshot::load(data.path()).unwrap(),
        licences: LicenceSnapshot::default(),
        policy: Policy::default(),
    };
    (data, checker)
}

#[test]
fn an_affected_version_is_a_finding_naming_the_fix() {
    let (_data, checker) = checker();
    let findings = checker.check(
        &[
            dep(Ecosystem::PyPi, "requests", "==2.31.0"),
            dep(Ecosystem::PyPi, "requests", ">=2.20,<3"),
            dep(Ecosystem::PyPi, "requests", "==2.32.0"),
            dep(Ecosystem::PyPi, "requests", "<3"),
        ],
        &|_| None,
    );
    assert_eq!(findings.findings.len(), 2);
    assert!(findings.has_violations());
    assert_eq!(
        findings.findings[0].to_string(),
        "requirements.txt:3: PyPI requests ==2.31.0 is affected by TEST-2026-0001 \
         (CVE-TEST-TEST-2026-0001) [HIGH]: requests mishandles input; fixed in 2.32.0"
    );
    assert!(findings.findings[1].lowest_of_range);
    assert!(
        findings.findings[1]
            .to_string()
            .contains("(checked at 2.20, the lowest it admits)")
    );
    assert_eq!(findings.unresolved.len(), 1);
}

#[test]
fn licences_from_the_snapshot_or_the_workspace() {
    let (_data, mut checker) = checker();
    checker.policy = Policy {
        deny: vec!["GPL-*".into()],
        allow: vec![],
    };
    checker
        .licences
        .licences
        .insert("npm/copyleft".into(), "GPL-3.0-only".into());
    let deps = [
        dep(Ecosystem::Npm, "copyleft", "1.0.0"),
        dep(Ecosystem::Npm, "dual", "1.0.0"),
        dep(Ecosystem::Npm, "mystery", "1.0.0"),
    ];
    let findings = checker.check(&deps, &|dep| {
        (dep.name == "dual").then(|| "MIT OR GPL-3.0".to_owned())
    });
    let kinds: Vec<FindingKind> = findings.findings.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        vec![FindingKind::Licence, FindingKind::UnknownLicence]
    );
    assert!(
        findings.findings[0]
            .to_string()
            .contains("licensed GPL-3.0-only")
    );
    assert!(!findings.findings[1].is_violation());
    assert_eq!(
        workspace_manifest(&Dependency {
            manifest: "web/package.json".into(),
            ..deps[0].clone()
        })
        .as_deref(),
        Some("web/node_modules/copyleft/package.json")
    );
}
