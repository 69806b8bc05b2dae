//! `cap scan`: exit codes, formats, and no secret in any output.

use std::path::Path;
use std::process::{Command, Output};

/// A token built at run time, so the repository holds none.
fn token() -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut state = 7u64;
    let body: String = (0..36)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            char::from(alphabet[(state >> 33) as usize % alphabet.len()])
        })
        .collect();
    ["gh", "p_"].concat() + &body
}

fn cap_scan(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cap"))
        .arg("scan")
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "off")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[test]
fn a_tree_with_a_secret_exits_1_in_every_format_and_never_prints_it() {
    let secret = token();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(
        dir.path().join("src/app.py"),
        format!("import os\nTOKEN = \"{secret}\"\n"),
    )
    .unwrap();
    for format in ["text", "json", "sarif"] {
        let output = cap_scan(&[".", "--format", format], dir.path());
        assert_eq!(
            output.status.code(),
            Some(1),
            "{format}: {}",
            stderr(&output)
        );
        let out = stdout(&output);
        assert!(!out.contains(&secret), "{format} printed the secret");
        assert!(!stderr(&output).contains(&secret));
        assert!(out.contains("ghp_…"), "{format}: {out}");
        match format {
            "text" => assert!(
                out.starts_with("src/app.py:2:10: GitHub personal access token"),
                "{out}"
            ),
            "json" => {
                let json: serde_json::Value = serde_json::from_str(&out).unwrap();
                assert_eq!(json["findings"][0]["line"], 2);
            }
            _ => {
                let sarif: serde_json::Value = serde_json::from_str(&out).unwrap();
                assert_eq!(sarif["version"], "2.1.0");
                assert_eq!(sarif["runs"][0]["results"][0]["ruleId"], "github-pat");
            }
        }
    }
}

#[test]
fn a_clean_tree_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.rs"),
        "fn main() { let max_tokens = 4096; }\n",
    )
    .unwrap();
    let output = cap_scan(&["."], dir.path());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains("0 finding(s) in 1 file(s)"));
}

#[test]
fn a_diff_reports_the_new_files_line_and_an_allow_list_waives_it() {
    let secret = token();
    let dir = tempfile::tempdir().unwrap();
    let diff = format!(
        "diff --git a/conf.env b/conf.env\n--- a/conf.env\n+++ b/conf.env\n@@ -40,2 +40,3 @@\n A=1\n+GITHUB={secret}\n B=2\n"
    );
    std::fs::write(dir.path().join("change.diff"), diff).unwrap();
    let output = cap_scan(&["change.diff", "--format", "json"], dir.path());
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(json["findings"][0]["file"], "conf.env");
    assert_eq!(json["findings"][0]["line"], 41);
    let fingerprint = json["findings"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();

    let allow = dir.path().join("allow.json");
    std::fs::write(&allow, format!("{{\"fingerprints\": [\"{fingerprint}\"]}}")).unwrap();
    let output = cap_scan(&["change.diff", "--allow-list", "allow.json"], dir.path());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn errors_exit_2_with_a_message_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let output = cap_scan(&["no-such-dir"], dir.path());
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "cap scan: scanning no-such-dir: cannot read no-such-dir: No such file or directory (os error 2)\n"
    );

    std::fs::write(
        dir.path().join("bad.diff"),
        "--- a/x\n+++ b/x\n@@ -1 +x @@\n",
    )
    .unwrap();
    let output = cap_scan(&["bad.diff"], dir.path());
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("malformed diff at line 3"),
        "{}",
        stderr(&output)
    );

    std::fs::create_dir(dir.path().join(".cap")).unwrap();
    std::fs::write(
        dir.path().join(".cap/secrets-allow.json"),
        "{\"rules\": [\"nope\"]}",
    )
    .unwrap();
    let output = cap_scan(&["."], dir.path());
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no rule has the id \"nope\""),
        "{}",
        stderr(&output)
    );

    let output = cap_scan(&[".", "--format", "xml"], dir.path());
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("invalid value 'xml'"),
        "{}",
        stderr(&output)
    );
}
