use cap_sandbox::FileChange;
use pretty_assertions::assert_eq;

use super::support::{fixture, run, spec};

#[tokio::test]
async fn get_changes_reports_created_modified_and_deleted_with_a_diff() {
    let fx = fixture().await;
    let id = fx.session().await;
    let unchanged = fx.sandbox.get_changes(&id).await.unwrap();
    assert_eq!(unchanged, cap_sandbox::Changes::default());

    fx.sandbox
        .write_files(
            &id,
            vec![
                FileChange {
                    path: "src/app.py".into(),
                    content: Some(
                        b"def add(a, b):\n    return b + a\n\n\ndef sub(a, b):\n    return a - b\n"
                            .to_vec(),
                    ),
                },
                FileChange {
                    path: "docs/guide.md".into(),
                    content: Some(b"Guide\n".to_vec()),
                },
                FileChange {
                    path: "README.md".into(),
                    content: None,
                },
                FileChange {
                    path: "data.bin".into(),
                    content: Some(vec![0, 9, 9]),
                },
                FileChange {
                    path: "debug.log".into(),
                    content: Some(b"ignored by .gitignore\n".to_vec()),
                },
            ],
        )
        .await
        .unwrap();
    // Running the tests leaves a cache behind that its own .gitignore hides.
    let ran = run(&fx.sandbox, &id, spec("python3 -m pytest -q")).await;
    assert_eq!(ran.exit.exit_code, 0, "{}", ran.stdout);

    let changes = fx.sandbox.get_changes(&id).await.unwrap();
    let summary: Vec<(&str, Option<&[u8]>)> = changes
        .changes
        .iter()
        .map(|c| (c.path.as_str(), c.content.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            ("README.md", None),
            ("data.bin", Some(&[0u8, 9, 9][..])),
            ("docs/guide.md", Some(&b"Guide\n"[..])),
            (
                "src/app.py",
                Some(
                    &b"def add(a, b):\n    return b + a\n\n\ndef sub(a, b):\n    return a - b\n"[..]
                )
            ),
        ]
    );
    let expected_diff = "\
diff --git a/README.md b/README.md
deleted file mode 100644
--- a/README.md
+++ /dev/null
@@ -1,3 +0,0 @@
-# Demo
-
-A tiny project.
diff --git a/data.bin b/data.bin
Binary files a/data.bin and b/data.bin differ
diff --git a/docs/guide.md b/docs/guide.md
new file mode 100644
--- /dev/null
+++ b/docs/guide.md
@@ -0,0 +1 @@
+Guide
diff --git a/src/app.py b/src/app.py
--- a/src/app.py
+++ b/src/app.py
@@ -1,5 +1,5 @@
 def add(a, b):
-    return a + b
+    return b + a
 
 
 def sub(a, b):
";
    assert_eq!(changes.diff, expected_diff);
}

#[tokio::test]
async fn changes_made_by_commands_and_symlinks_count_too() {
    let fx = fixture().await;
    let id = fx.session().await;
    let ran = run(
        &fx.sandbox,
        &id,
        spec("echo new > made.txt && rm app_link && ln -s README.md app_link && rm escape"),
    )
    .await;
    assert_eq!(ran.exit.exit_code, 0, "{}", ran.stderr);
    let changes = fx.sandbox.get_changes(&id).await.unwrap();
    let summary: Vec<(&str, Option<&[u8]>)> = changes
        .changes
        .iter()
        .map(|c| (c.path.as_str(), c.content.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            ("app_link", Some(&b"README.md"[..])),
            ("escape", None),
            ("made.txt", Some(&b"new\n"[..]))
        ]
    );
    assert!(
        changes
            .diff
            .contains("diff --git a/escape b/escape\ndeleted file mode 120000\n"),
        "{}",
        changes.diff
    );
}
