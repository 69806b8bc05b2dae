#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn gpl_denied() -> Policy {
    Policy {
        deny: vec!["GPL-*".into(), "AGPL-*".into()],
        allow: vec![],
    }
}

#[test]
fn spdx_or_needs_one_and_needs_all() {
    let policy = gpl_denied();
    let eval = |expression| evaluate_expression(expression, &policy).unwrap();
    assert!(eval("MIT"));
    assert!(eval("MIT OR GPL-3.0"));
    assert!(!eval("MIT AND GPL-3.0"));
    assert!(!eval("GPL-3.0-only"));
    assert!(!eval("AGPL-3.0-or-later"));
    assert!(eval("LGPL-2.1-only"), "GPL-* does not reach LGPL");
    assert!(eval("(MIT AND Apache-2.0) OR GPL-2.0"));
    assert!(!eval("MIT AND (GPL-2.0 OR AGPL-3.0)"));
    assert!(!eval("GPL-2.0-only WITH Classpath-exception-2.0"));
    assert!(eval("Apache-2.0 WITH LLVM-exception"));
    assert!(evaluate_expression("MIT AND", &policy).is_err());
    assert!(evaluate_expression("(MIT", &policy).is_err());
    let allow = Policy {
        deny: vec![],
        allow: vec!["MIT".into(), "Apache-*".into()],
    };
    assert!(evaluate_expression("Apache-2.0", &allow).unwrap());
    assert!(!evaluate_expression("BSD-3-Clause", &allow).unwrap());
}

#[test]
fn the_policy_file_has_a_default_and_repositories() {
    let file = PolicyFile::parse(
        "licences.toml",
        "[default]\ndeny = [\"GPL-*\"]\n\n[repositories.\"acme/open\"]\ndeny = []\n",
    )
    .unwrap();
    assert_eq!(
        file.for_repository("acme/closed"),
        &Policy {
            deny: vec!["GPL-*".into()],
            allow: vec![]
        }
    );
    assert!(file.for_repository("acme/open").is_empty());
    let error = PolicyFile::parse("licences.toml", "[default]\nforbid = []\n").unwrap_err();
    assert!(
        error
            .to_string()
            .contains("licences.toml: not a licence policy"),
        "{error}"
    );
}

#[test]
fn licences_import_from_lines_or_json() {
    let dir = tempfile::tempdir().unwrap();
    let lines = dir.path().join("licences.txt");
    std::fs::write(
        &lines,
        "# ecosystem name expression\nPyPI Some_Pkg GPL-3.0-only\nnpm left-pad MIT OR Apache-2.0\n",
    )
    .unwrap();
    assert_eq!(import_licences(&lines, dir.path()).unwrap(), 2);
    let json = dir.path().join("licences.json.in");
    std::fs::write(
        &json,
        r#"[{"ecosystem": "Go", "name": "golang.org/x/text", "license": "BSD-3-Clause"}]"#,
    )
    .unwrap();
    assert_eq!(import_licences(&json, dir.path()).unwrap(), 1);
    let snapshot = LicenceSnapshot::load(dir.path()).unwrap();
    assert_eq!(
        snapshot.get(Ecosystem::PyPi, "some-pkg"),
        Some("GPL-3.0-only")
    );
    assert_eq!(
        snapshot.get(Ecosystem::Npm, "left-pad"),
        Some("MIT OR Apache-2.0")
    );
    assert_eq!(
        snapshot.get(Ecosystem::Go, "golang.org/x/text"),
        Some("BSD-3-Clause")
    );
    std::fs::write(&lines, "cargo serde MIT\n").unwrap();
    let error = import_licences(&lines, dir.path()).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("licences.txt:1: unknown ecosystem"),
        "{error}"
    );
    assert_eq!(
        licence_from_package_json(r#"{"license": "ISC"}"#).as_deref(),
        Some("ISC")
    );
    assert_eq!(
        licence_from_package_json(r#"{"license": {"type": "MIT"}}"#).as_deref(),
        Some("MIT")
    );
}
