use pretty_assertions::assert_eq;

use super::*;
use crate::memory::MemoryWorkspace;

fn ws() -> MemoryWorkspace {
    MemoryWorkspace::with_files([
        ("a.txt", "alpha\n"),
        ("src/lib.py", "def f():\n    return 1\n"),
        ("src/util/x.py", "X = 1\n"),
    ])
}

fn paths(listing: &Listing) -> Vec<String> {
    listing
        .entries
        .iter()
        .map(|e| {
            if e.is_dir {
                format!("{}/", e.path)
            } else {
                e.path.clone()
            }
        })
        .collect()
}

#[tokio::test]
async fn reads_and_listings_see_staged_edits() {
    let ws = ws();
    let mut overlay = Overlay::default();
    overlay.stage("a.txt", None, true);
    overlay.stage("src/new/deep.py", Some("NEW = 1\n".into()), false);
    overlay.stage("src/lib.py", Some("def f():\n    return 2\n".into()), true);
    assert_eq!(
        overlay.read(&ws, "a.txt").await.unwrap(),
        FileState::Missing
    );
    assert_eq!(
        overlay.read(&ws, "src/util/x.py").await.unwrap(),
        FileState::Text("X = 1\n".into())
    );
    assert_eq!(overlay.read(&ws, "nope").await.unwrap(), FileState::Missing);

    assert_eq!(
        paths(&overlay.list(&ws, "", false).await.unwrap()),
        vec!["src/"]
    );
    assert_eq!(
        paths(&overlay.list(&ws, "src", false).await.unwrap()),
        vec!["src/lib.py", "src/new/", "src/util/"]
    );
    assert_eq!(
        paths(&overlay.list(&ws, "", true).await.unwrap()),
        vec![
            "src/",
            "src/lib.py",
            "src/new/",
            "src/new/deep.py",
            "src/util/",
            "src/util/x.py"
        ]
    );
    // A directory only the overlay has.
    assert_eq!(
        paths(&overlay.list(&ws, "src/new", false).await.unwrap()),
        vec!["src/new/deep.py"]
    );
    let err = overlay.list(&ws, "missing", false).await.unwrap_err();
    assert!(err.is_not_found());
    let sizes: Vec<u64> = overlay
        .list(&ws, "src", false)
        .await
        .unwrap()
        .entries
        .iter()
        .map(|e| e.size)
        .collect();
    assert_eq!(sizes[0], 22);
}

#[tokio::test]
async fn search_merges_workspace_and_staged_matches() {
    let ws = ws();
    let mut overlay = Overlay::default();
    overlay.stage("src/lib.py", Some("def f():\n    return 2\n".into()), true);
    overlay.stage("src/new.py", Some("def g():\n    return 1\n".into()), false);
    let regex = regex::Regex::new("return|X").unwrap();
    let result = overlay.search(&ws, "return|X", &regex, None).await.unwrap();
    let hits: Vec<String> = result
        .hits
        .iter()
        .map(|h| format!("{}:{}:{}", h.path, h.line_number, h.line))
        .collect();
    assert_eq!(
        hits,
        vec![
            "src/lib.py:2:    return 2",
            "src/new.py:2:    return 1",
            "src/util/x.py:1:X = 1"
        ]
    );

    let matcher = glob_matcher("src/*.py").unwrap();
    let result = overlay
        .search(&ws, "return|X", &regex, Some(("src/*.py", &matcher)))
        .await
        .unwrap();
    let found: Vec<&str> = result.hits.iter().map(|h| h.path.as_str()).collect();
    assert_eq!(found, vec!["src/lib.py", "src/new.py"]);

    let matcher = glob_matcher("x.py").unwrap();
    let result = overlay
        .search(
            &ws,
            "X",
            &regex::Regex::new("X").unwrap(),
            Some(("x.py", &matcher)),
        )
        .await
        .unwrap();
    assert_eq!(result.hits.len(), 1);
}

#[tokio::test]
async fn flush_writes_once_and_tracks_changes() {
    let ws = ws();
    let mut overlay = Overlay::default();
    overlay.stage("tmp.txt", Some("t".into()), false);
    overlay.stage("tmp.txt", None, true); // created then deleted: nothing to write
    overlay.stage("a.txt", Some("beta\n".into()), true);
    overlay.stage("src/util/x.py", None, true);
    assert!(overlay.is_dirty());
    assert_eq!(overlay.flush(&ws).await.unwrap(), 2);
    assert!(!overlay.is_dirty());
    assert_eq!(overlay.flush(&ws).await.unwrap(), 0);
    assert_eq!(ws.log(), vec!["write_files a.txt,src/util/x.py"]);
    assert_eq!(ws.file("a.txt").unwrap(), "beta\n");
    assert_eq!(ws.paths(), vec!["a.txt", "src/lib.py"]);
    // After the flush the file exists in the workspace: deleting it now is a real delete.
    overlay.stage("new.txt", Some("n".into()), false);
    overlay.flush(&ws).await.unwrap();
    overlay.stage("new.txt", None, true);
    overlay.flush(&ws).await.unwrap();
    assert_eq!(ws.file("new.txt"), None);
    assert_eq!(
        overlay.files_changed(),
        vec![
            ChangedFile {
                path: "a.txt".into(),
                change: Change::Modified,
                sha256: Some(cap_sandbox_client::content_digest(b"beta\n")),
            },
            ChangedFile {
                path: "src/util/x.py".into(),
                change: Change::Deleted,
                sha256: None,
            },
        ]
    );
}

#[tokio::test]
async fn a_refused_flush_keeps_the_edits_staged() {
    let ws = ws();
    let mut overlay = Overlay::default();
    overlay.stage("a.txt", Some("beta\n".into()), true);
    ws.go_down(0, tonic::Status::invalid_argument("refused"));
    let err = overlay.flush(&ws).await.unwrap_err();
    assert!(!err.is_fatal());
    assert!(overlay.is_dirty());
    assert_eq!(ws.file("a.txt").unwrap(), "alpha\n");
}

#[test]
fn globs_follow_gitignore_rules() {
    let m = glob_matcher("*.py").unwrap();
    assert!(glob_matches(&m, "a/b/c.py"));
    assert!(!glob_matches(&m, "a/b/c.pyc"));
    let m = glob_matcher("src/*.py").unwrap();
    assert!(glob_matches(&m, "src/a.py"));
    assert!(!glob_matches(&m, "src/x/a.py"));
    let m = glob_matcher("src/**/*.py").unwrap();
    assert!(glob_matches(&m, "src/x/a.py"));
    assert!(glob_matcher("a[").is_err());
}
