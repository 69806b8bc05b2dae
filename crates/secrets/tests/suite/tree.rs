//! Walking a tree: hidden files in, `.git` and binary files out, paths relative.

use cap_secrets::{ScanLimits, Scanner};

use super::support::{Gen, p};

#[test]
fn trees_skip_git_binaries_and_large_files() {
    let mut g = Gen::new(41);
    let token = p(&["gl", "pat-"]) + &g.b64url(20);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join(".git/objects")).unwrap();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join(".git/config"), format!("url = {token}\n")).unwrap();
    let mut binary = vec![0u8, 1, 2];
    binary.extend(token.as_bytes());
    std::fs::write(root.join("src/blob.bin"), binary).unwrap();
    std::fs::write(root.join(".env"), format!("CI_TOKEN={token}\n")).unwrap();
    std::fs::write(
        root.join("src/big.txt"),
        format!("{}\n{token}\n", "a".repeat(2000)),
    )
    .unwrap();
    std::os::unix::fs::symlink(root.join(".env"), root.join("link.env")).unwrap();

    let limits = ScanLimits {
        max_file_bytes: 1000,
    };
    let report = Scanner::new().unwrap().scan_path(root, limits).unwrap();
    let found: Vec<(&str, usize)> = report
        .findings
        .iter()
        .map(|f| (f.file.as_str(), f.line))
        .collect();
    assert_eq!(found, [(".env", 1)]);
    let mut skipped: Vec<(&str, &str)> = report
        .skipped
        .iter()
        .map(|s| (s.path.as_str(), s.reason.as_str()))
        .collect();
    skipped.sort();
    assert_eq!(
        skipped,
        [
            ("src/big.txt", "larger than 1000 bytes"),
            ("src/blob.bin", "binary")
        ]
    );
    assert_eq!(report.files_scanned, 1);
}

#[test]
fn a_missing_path_is_an_error_naming_it() {
    let error = Scanner::new()
        .unwrap()
        .scan_path(std::path::Path::new("/no/such/tree"), ScanLimits::default())
        .unwrap_err();
    assert_eq!(error.to_string(), "cannot read /no/such/tree");
}

#[test]
fn a_diff_file_and_a_plain_file_are_told_apart() {
    let mut g = Gen::new(43);
    let token = p(&["np", "m_"]) + &g.alnum(36);
    let dir = tempfile::tempdir().unwrap();
    let diff = dir.path().join("change.patch");
    std::fs::write(
        &diff,
        format!("diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n keep\n-{token}\n+gone\n"),
    )
    .unwrap();
    let scanner = Scanner::new().unwrap();
    // Only a removed line holds the token: the diff is clean.
    assert!(
        scanner
            .scan_path(&diff, ScanLimits::default())
            .unwrap()
            .is_clean()
    );
    let plain = dir.path().join("notes.txt");
    std::fs::write(&plain, format!("keep\n{token}\n")).unwrap();
    let report = scanner.scan_path(&plain, ScanLimits::default()).unwrap();
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].line, 2);
}
