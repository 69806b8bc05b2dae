use pretty_assertions::assert_eq;

use super::*;
use crate::memory::MemoryWorkspace;

fn ws() -> MemoryWorkspace {
    MemoryWorkspace::with_files([("a.txt", "one\ntwo\nthree\n"), ("src/b.py", "x = 1\n")])
}

async fn message(ws: &MemoryWorkspace, overlay: &Overlay, diff: &str) -> String {
    match plan(overlay, ws, diff).await {
        Err(ToolError::Message(message) | ToolError::Refused(message)) => message,
        other => panic!("expected a message, got {other:?}"),
    }
}

#[tokio::test]
async fn plain_unified_diff_without_prefixes() {
    let ws = ws();
    let edits = plan(
        &Overlay::default(),
        &ws,
        "--- a.txt\n+++ a.txt\n@@ -2 +2 @@\n-two\n+2\n",
    )
    .await
    .unwrap();
    assert_eq!(
        edits,
        vec![FileEdit {
            path: "a.txt".into(),
            before: Some("one\ntwo\nthree\n".into()),
            after: Some("one\n2\nthree\n".into())
        }]
    );
}

#[tokio::test]
async fn git_diff_with_rename_and_sequential_patches() {
    let ws = ws();
    let diff = "\
diff --git a/a.txt b/a.txt
--- a/a.txt
+++ b/a.txt
@@ -1,3 +1,3 @@
-one
+1
 two
 three
diff --git a/src/b.py b/src/c.py
similarity index 50%
rename from src/b.py
rename to src/c.py
--- a/src/b.py
+++ b/src/c.py
@@ -1 +1 @@
-x = 1
+x = 2
";
    let edits = plan(&Overlay::default(), &ws, diff).await.unwrap();
    let summary: Vec<(&str, Option<&str>)> = edits
        .iter()
        .map(|e| (e.path.as_str(), e.after.as_deref()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("a.txt", Some("1\ntwo\nthree\n")),
            ("src/b.py", None),
            ("src/c.py", Some("x = 2\n"))
        ]
    );
}

#[tokio::test]
async fn hunks_see_staged_edits() {
    let ws = ws();
    let mut overlay = Overlay::default();
    overlay.stage("a.txt", Some("ONE\ntwo\nthree\n".into()), true);
    let msg = message(
        &ws,
        &overlay,
        "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-one\n+1\n",
    )
    .await;
    assert!(msg.starts_with("error applying hunk #1 of a.txt"), "{msg}");
    let edits = plan(
        &overlay,
        &ws,
        "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-ONE\n+1\n",
    )
    .await
    .unwrap();
    assert_eq!(edits[0].after.as_deref(), Some("1\ntwo\nthree\n"));
}

#[tokio::test]
async fn refusals_name_what_is_wrong() {
    let ws = ws();
    let overlay = Overlay::default();
    let cases = [
        ("", "diff_text is empty"),
        ("just some text\n", "no valid patches found"),
        (
            "--- a/a.txt\n+++ b/a.txt\n@@ -1,5 +1,5 @@\n-one\n+1\n",
            "cannot parse the diff",
        ),
        (
            "--- /dev/null\n+++ b/a.txt\n@@ -0,0 +1 @@\n+new\n",
            "the diff creates a.txt, which already exists",
        ),
        (
            "--- a/nope.txt\n+++ b/nope.txt\n@@ -1 +1 @@\n-a\n+b\n",
            "the diff modifies nope.txt, which does not exist",
        ),
        (
            "--- a/nope.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-a\n",
            "the diff deletes nope.txt, which does not exist",
        ),
        (
            "--- a/a.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-zzz\n",
            "error applying hunk #1 of a.txt",
        ),
        (
            "--- /dev/null\n+++ b/../evil\n@@ -0,0 +1 @@\n+x\n",
            "invalid path \"../evil\"",
        ),
        (
            "--- /dev/null\n+++ b/.git/hooks/pre-commit\n@@ -0,0 +1 @@\n+x\n",
            "`.git`",
        ),
    ];
    for (diff, expected) in cases {
        let msg = message(&ws, &overlay, diff).await;
        assert!(msg.contains(expected), "{diff:?}: {msg}");
    }
}

#[tokio::test]
async fn binary_files_are_refused() {
    let ws = ws();
    ws.insert_bytes("img.bin", &[0xff, 0xfe, 0x00]);
    let msg = message(
        &ws,
        &Overlay::default(),
        "--- a/img.bin\n+++ b/img.bin\n@@ -1 +1 @@\n-a\n+b\n",
    )
    .await;
    assert_eq!(
        msg,
        "img.bin is a binary file (3 bytes); a diff cannot change it"
    );
}
