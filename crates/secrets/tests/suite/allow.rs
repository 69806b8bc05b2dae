//! The allow-list in a scan: paths, fingerprints and values.

use cap_secrets::{AllowList, ScanLimits, Scanner};

use super::support::{Gen, p};

#[test]
fn allowed_paths_and_fingerprints_are_not_reported() {
    let mut g = Gen::new(31);
    let fixture_token = p(&["gh", "p_"]) + &g.alnum(36);
    let public_value = p(&["sk", "_test_"]) + &g.alnum(24);
    let real = p(&["np", "m_"]) + &g.alnum(36);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("tests/fixtures")).unwrap();
    std::fs::create_dir_all(root.join(".cap")).unwrap();
    std::fs::write(
        root.join("tests/fixtures/token.txt"),
        format!("{fixture_token}\n"),
    )
    .unwrap();
    std::fs::write(
        root.join("demo.js"),
        format!("const key = '{public_value}';\n"),
    )
    .unwrap();
    std::fs::write(root.join("deploy.sh"), format!("NPM={real}\n")).unwrap();

    // Without an allow-list all three are found.
    let scanner = Scanner::new().unwrap();
    assert_eq!(
        scanner
            .scan_dir(root, ScanLimits::default())
            .unwrap()
            .findings
            .len(),
        3
    );

    let fixture_fingerprint = cap_secrets::fingerprint(&fixture_token);
    std::fs::write(
        root.join(".cap/secrets-allow.json"),
        serde_json::json!({"paths": ["tests/fixtures/**"], "values": [public_value]}).to_string(),
    )
    .unwrap();
    let scanner = Scanner::with_allow_list(AllowList::load_for_tree(root).unwrap()).unwrap();
    let report = scanner.scan_dir(root, ScanLimits::default()).unwrap();
    let files: Vec<&str> = report.findings.iter().map(|f| f.file.as_str()).collect();
    assert_eq!(files, ["deploy.sh"]);

    // A fingerprint allows the value wherever it is.
    std::fs::write(root.join("copy.txt"), format!("{fixture_token}\n")).unwrap();
    let list = AllowList::load_for_tree(root)
        .unwrap()
        .allow_fingerprint(&fixture_fingerprint);
    let report = Scanner::with_allow_list(list)
        .unwrap()
        .scan_dir(root, ScanLimits::default())
        .unwrap();
    let files: Vec<&str> = report.findings.iter().map(|f| f.file.as_str()).collect();
    assert_eq!(files, ["deploy.sh"]);
}
