use super::*;
use pretty_assertions::assert_eq;

const DIFF: &str = "diff --git a/src/app.py b/src/app.py
index 1111111..2222222 100644
--- a/src/app.py
+++ b/src/app.py
@@ -1,3 +1,4 @@
 import os
-x = 1
+x = 2
+y = 3
 
@@ -10,2 +11,3 @@ def f():
 a
+b
 c
diff --git a/old.txt b/old.txt
deleted file mode 100644
--- a/old.txt
+++ /dev/null
@@ -1 +0,0 @@
-gone
diff --git \"a/with space.txt\" \"b/with space.txt\"
new file mode 100644
--- /dev/null
+++ \"b/with space.txt\"
@@ -0,0 +1 @@
+-- looks like a header but is an added line
\\ No newline at end of file
";

#[test]
fn added_lines_carry_their_new_line_numbers() {
    let files = parse_diff(DIFF).unwrap();
    assert_eq!(
        files,
        vec![
            DiffFile {
                path: "src/app.py".to_owned(),
                text: "x = 2\ny = 3\nb\n".to_owned(),
                new_lines: vec![2, 3, 12],
            },
            DiffFile {
                path: "with space.txt".to_owned(),
                text: "-- looks like a header but is an added line\n".to_owned(),
                new_lines: vec![1],
            },
        ]
    );
}

#[test]
fn malformed_diffs_name_the_line() {
    let bad_header = "--- a/x\n+++ b/x\n@@ -1 +one @@\n+a\n";
    let error = parse_diff(bad_header).unwrap_err().to_string();
    assert_eq!(
        error,
        "malformed diff at line 3: a hunk header must read @@ -a,b +c,d @@"
    );
    let truncated = "--- a/x\n+++ b/x\n@@ -1,2 +1,3 @@\n a\n+b\n";
    let error = parse_diff(truncated).unwrap_err().to_string();
    assert!(error.contains("ends inside a hunk"), "{error}");
    let garbage = "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n a\nzzz\n";
    let error = parse_diff(garbage).unwrap_err().to_string();
    assert!(error.starts_with("malformed diff at line 5"), "{error}");
}

#[test]
fn diffs_are_told_from_other_files() {
    assert!(looks_like_diff(DIFF));
    assert!(looks_like_diff("--- a\n+++ b\n"));
    assert!(!looks_like_diff("fn main() {}\n"));
    assert!(!looks_like_diff("--- # a YAML document\npassword: x\n"));
}
