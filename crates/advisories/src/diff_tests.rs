#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const BEFORE: &str = "{\n  \"dependencies\": {\n    \"a\": \"1.0.0\"\n  }\n}\n";
const AFTER: &str =
    "{\n  \"dependencies\": {\n    \"a\": \"1.0.0\",\n    \"b\": \"2.0.0\"\n  }\n}\n";

fn diff_of(path: &str, before: &str, after: &str, context: usize) -> String {
    let mut options = diffy::DiffOptions::new();
    options.set_context_len(context);
    let patch = options.create_patch(before, after).to_string();
    patch
        .replacen(
            "--- original",
            &format!("diff --git a/{path} b/{path}\n--- a/{path}"),
            1,
        )
        .replacen("+++ modified", &format!("+++ b/{path}"), 1)
}

#[test]
fn before_is_the_diff_reversed_onto_after() {
    let diff = format!(
        "{}{}",
        diff_of("src/app.py", "x = 1\n", "x = 2\n", 3),
        diff_of("package.json", BEFORE, AFTER, 1)
    );
    let files = files_from_diff(&diff, &|path| {
        (path == "package.json").then(|| AFTER.to_owned())
    })
    .unwrap();
    assert_eq!(
        files,
        vec![ManifestFile {
            path: "package.json".into(),
            before: Some(BEFORE.into()),
            after: Some(AFTER.into()),
        }]
    );
}

#[test]
fn without_after_the_diff_lines_serve() {
    let diff =
        "--- /dev/null\n+++ b/requirements.txt\n@@ -0,0 +1,2 @@\n+flask==2.0\n+requests==2.0\n";
    let files = files_from_diff(diff, &|_| None).unwrap();
    assert_eq!(files[0].before, None);
    assert_eq!(
        files[0].after.as_deref(),
        Some("flask==2.0\nrequests==2.0\n")
    );
}

#[test]
fn a_tree_is_all_new() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("requirements.txt"), "flask==2.0\n").unwrap();
    std::fs::create_dir_all(dir.path().join("node_modules/x")).unwrap();
    std::fs::write(dir.path().join("node_modules/x/package.json"), "{}").unwrap();
    let files = files_from_tree(dir.path()).unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].path, "requirements.txt");
}
