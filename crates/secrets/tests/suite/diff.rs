//! Scanning a unified diff: only added lines count, at the new file's line numbers.

use cap_secrets::Scanner;

use super::support::{Gen, p};

#[test]
fn added_lines_are_scanned_at_their_new_line_numbers() {
    let mut g = Gen::new(11);
    let added = p(&["sk", "_live_"]) + &g.alnum(32);
    let removed = p(&["gh", "p_"]) + &g.alnum(36);
    let context = p(&["gh", "o_"]) + &g.alnum(36);
    let key = g.pem_lines(&p(&["RSA PRIV", "ATE KEY"]), 600);
    let mut diff = format!(
        "diff --git a/app/pay.py b/app/pay.py
index 1111111..2222222 100644
--- a/app/pay.py
+++ b/app/pay.py
@@ -10,4 +10,5 @@ import stripe
 # context {context}
-OLD = \"{removed}\"
+stripe.api_key = \"{added}\"
+print(1)
 x = 1
 y = 2
diff --git a/keys/new.pem b/keys/new.pem
new file mode 100644
--- /dev/null
+++ b/keys/new.pem
@@ -0,0 +1,{} @@
",
        key.len()
    );
    for line in &key {
        diff.push('+');
        diff.push_str(line);
        diff.push('\n');
    }
    let report = Scanner::new().unwrap().scan_diff(&diff).unwrap();
    let found: Vec<(&str, &str, usize, usize)> = report
        .findings
        .iter()
        .map(|f| (f.rule_id, f.file.as_str(), f.line, f.column))
        .collect();
    assert_eq!(
        found,
        [
            ("stripe-secret-key", "app/pay.py", 11, 19),
            ("private-key", "keys/new.pem", 1, 1)
        ]
    );
    assert_eq!(report.files_scanned, 2);
}

#[test]
fn a_clean_diff_has_no_findings_and_a_broken_one_is_an_error() {
    let scanner = Scanner::new().unwrap();
    let clean = "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a = 1\n+a = 2\n";
    assert!(scanner.scan_diff(clean).unwrap().is_clean());
    let error = scanner
        .scan_diff("--- a/x\n+++ b/x\n@@ nonsense @@\n")
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "malformed diff at line 3: a hunk header must read @@ -a,b +c,d @@"
    );
}
