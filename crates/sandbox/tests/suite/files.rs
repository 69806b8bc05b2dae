use cap_sandbox::{DirEntry, Error, ErrorKind, FileChange};
use pretty_assertions::assert_eq;

use super::support::{fixture, run, spec};

fn write(path: &str, content: &str) -> FileChange {
    FileChange {
        path: path.to_owned(),
        content: Some(content.as_bytes().to_vec()),
    }
}

fn delete(path: &str) -> FileChange {
    FileChange {
        path: path.to_owned(),
        content: None,
    }
}

/// Every file under the workspace with its content, for "nothing changed" checks.
fn snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            let rel = entry
                .path()
                .strip_prefix(dir)
                .unwrap()
                .display()
                .to_string();
            if kind.is_dir() {
                pending.push(entry.path());
                out.push((rel, Vec::new()));
            } else if kind.is_symlink() {
                out.push((
                    rel,
                    std::fs::read_link(entry.path())
                        .unwrap()
                        .display()
                        .to_string()
                        .into_bytes(),
                ));
            } else {
                out.push((rel, std::fs::read(entry.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn read_file_reads_and_refuses_escapes() {
    let fx = fixture().await;
    let id = fx.session().await;
    assert_eq!(
        fx.sandbox.read_file(&id, "src/app.py").await.unwrap()[..14],
        *b"def add(a, b):"
    );
    // A symlink inside the workspace is fine.
    assert_eq!(
        fx.sandbox.read_file(&id, "app_link").await.unwrap()[..14],
        *b"def add(a, b):"
    );
    for path in [
        "../etc/passwd",
        "/etc/passwd",
        ".git/config",
        "src/../../x",
        "escape",
        "escape_dir/passwd",
        "",
    ] {
        let error = fx.sandbox.read_file(&id, path).await.unwrap_err();
        assert!(
            matches!(error, Error::InvalidPath { .. }),
            "{path}: {error}"
        );
        assert!(
            error.to_string().contains(&format!("{path:?}")) || path.is_empty(),
            "{error}"
        );
    }
    let error = fx.sandbox.read_file(&id, "missing.txt").await.unwrap_err();
    assert!(matches!(error, Error::PathNotFound { .. }), "{error}");
    assert_eq!(error.kind(), ErrorKind::NotFound);
    let error = fx.sandbox.read_file(&id, "src").await.unwrap_err();
    assert!(matches!(error, Error::WrongFileType { .. }), "{error}");
}

#[tokio::test]
async fn a_git_dir_made_inside_the_sandbox_stays_out_of_reach() {
    let fx = fixture().await;
    let id = fx.session().await;
    let ran = run(
        &fx.sandbox,
        &id,
        spec("mkdir -p .git/hooks && echo x > .git/config && ln -s .git gitlink"),
    )
    .await;
    assert_eq!(ran.exit.exit_code, 0, "{}", ran.stderr);
    for path in [".git/config", "gitlink/config"] {
        let error = fx.sandbox.read_file(&id, path).await.unwrap_err();
        assert!(
            matches!(error, Error::InvalidPath { .. }),
            "{path}: {error}"
        );
    }
    let error = fx
        .sandbox
        .write_files(&id, vec![write("gitlink/hooks/pre-commit", "#!/bin/sh\n")])
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidPath { .. }), "{error}");
    let error = fx
        .sandbox
        .write_files(&id, vec![write(".git/hooks/pre-commit", "#!/bin/sh\n")])
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidPath { .. }), "{error}");
    assert!(
        !fx.root()
            .join(&id)
            .join("workspace/.git/hooks/pre-commit")
            .exists()
    );
}

#[tokio::test]
async fn write_files_creates_modifies_and_deletes() {
    let fx = fixture().await;
    let id = fx.session().await;
    let written = fx
        .sandbox
        .write_files(
            &id,
            vec![
                write("pkg/sub/mod.py", "X = 1\n"),
                write("README.md", "# New\n"),
                write("run.sh", "#!/bin/sh\necho changed\n"),
                delete("data.bin"),
                delete("escape"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(written, 5);
    let ws = fx.root().join(&id).join("workspace");
    assert_eq!(
        std::fs::read_to_string(ws.join("pkg/sub/mod.py")).unwrap(),
        "X = 1\n"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("README.md")).unwrap(),
        "# New\n"
    );
    assert!(!ws.join("data.bin").exists());
    // The symlink itself was removed, not its target.
    assert!(ws.join("escape").symlink_metadata().is_err());
    assert!(std::path::Path::new("/etc/passwd").exists());
    // A modified file keeps its mode.
    let ran = run(&fx.sandbox, &id, spec("./run.sh")).await;
    assert_eq!(ran.stdout, "changed\n", "{}", ran.stderr);
    // No temporary or backup files are left.
    let leftovers: Vec<_> = snapshot(&ws)
        .into_iter()
        .filter(|(path, _)| path.contains(".cap-"))
        .collect();
    assert_eq!(leftovers, Vec::new());
}

#[tokio::test]
async fn write_files_is_all_or_nothing() {
    let fx = fixture().await;
    let id = fx.session().await;
    let ws = fx.root().join(&id).join("workspace");
    let before = snapshot(&ws);
    let bad_sets: Vec<(Vec<FileChange>, ErrorKind)> = vec![
        // Refused by validation before anything is touched.
        (
            vec![write("new.txt", "x"), write("../outside.txt", "x")],
            ErrorKind::InvalidArgument,
        ),
        (
            vec![write("new.txt", "x"), write("/tmp/abs.txt", "x")],
            ErrorKind::InvalidArgument,
        ),
        (
            vec![
                write("new.txt", "x"),
                write(".git/hooks/post-checkout", "x"),
            ],
            ErrorKind::InvalidArgument,
        ),
        (
            vec![write("new.txt", "x"), write("new.txt", "y")],
            ErrorKind::InvalidArgument,
        ),
        // Refused while preparing, after earlier files were staged and directories made.
        (
            vec![
                write("README.md", "changed"),
                write("deep/er/new.txt", "x"),
                write("escape_dir/evil", "x"),
            ],
            ErrorKind::InvalidArgument,
        ),
        (
            vec![write("README.md", "changed"), write("escape", "x")],
            ErrorKind::InvalidArgument,
        ),
        (
            vec![write("README.md", "changed"), write("README.md/child", "x")],
            ErrorKind::InvalidArgument,
        ),
        (
            vec![write("README.md", "changed"), write("src", "x")],
            ErrorKind::InvalidArgument,
        ),
        (
            vec![delete("README.md"), delete("missing.txt")],
            ErrorKind::NotFound,
        ),
        (
            vec![write("a.txt", "x"), delete("src")],
            ErrorKind::InvalidArgument,
        ),
        (
            vec![write("a.txt", "x"), delete("nodir/x.txt")],
            ErrorKind::NotFound,
        ),
    ];
    for (changes, kind) in bad_sets {
        let described = changes
            .iter()
            .map(|c| c.path.clone())
            .collect::<Vec<_>>()
            .join(", ");
        let error = fx.sandbox.write_files(&id, changes).await.unwrap_err();
        assert_eq!(error.kind(), kind, "{described}: {error}");
        assert_eq!(
            snapshot(&ws),
            before,
            "workspace changed by the refused set {described}"
        );
    }
    let error = fx
        .sandbox
        .write_files(&id, vec![delete("nodir/x.txt")])
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "\"nodir/x.txt\" does not exist in the workspace"
    );
    assert!(!std::path::Path::new("/tmp/abs.txt").exists());
    assert!(!std::path::Path::new("/etc/evil").exists());
}

#[tokio::test]
async fn list_directory_lists_without_git_and_caps() {
    let fx = fixture().await;
    let id = fx.session().await;
    let top = fx.sandbox.list_directory(&id, "", false).await.unwrap();
    let paths: Vec<_> = top.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            ".gitignore",
            "README.md",
            "app_link",
            "data.bin",
            "escape",
            "escape_dir",
            "requirements.txt",
            "run.sh",
            "src",
            "test_app.py"
        ]
    );
    assert!(!top.truncated);
    assert_eq!(
        top.entries[1],
        DirEntry {
            path: "README.md".into(),
            is_dir: false,
            size: 24
        }
    );
    assert_eq!(
        top.entries[8],
        DirEntry {
            path: "src".into(),
            is_dir: true,
            size: 0
        }
    );

    let src = fx.sandbox.list_directory(&id, "src", true).await.unwrap();
    let paths: Vec<_> = src.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["src/__init__.py", "src/app.py"]);

    let error = fx
        .sandbox
        .list_directory(&id, "README.md", false)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::WrongFileType { .. }), "{error}");
    for path in ["escape_dir", "..", ".git", "/"] {
        let error = fx
            .sandbox
            .list_directory(&id, path, true)
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::InvalidPath { .. }),
            "{path}: {error}"
        );
    }
    let error = fx
        .sandbox
        .list_directory(&id, "nope", false)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::PathNotFound { .. }), "{error}");

    let ran = run(
        &fx.sandbox,
        &id,
        spec("mkdir -p many .git && for i in $(seq 1 5100); do : > many/f$i; done"),
    )
    .await;
    assert_eq!(ran.exit.exit_code, 0, "{}", ran.stderr);
    let all = fx.sandbox.list_directory(&id, ".", true).await.unwrap();
    assert!(all.truncated);
    assert_eq!(all.entries.len(), cap_sandbox::MAX_LIST_ENTRIES);
    assert!(
        all.entries
            .iter()
            .all(|e| !e.path.starts_with(".git/") && e.path != ".git")
    );
}

#[tokio::test]
async fn search_files_honours_gitignore_globs_and_caps() {
    let fx = fixture().await;
    let id = fx.session().await;
    fx.sandbox
        .write_files(
            &id,
            vec![
                write("ignored.txt", "def add here\n"),
                write("notes.md", "nothing\ndef add(x)\n"),
            ],
        )
        .await
        .unwrap();
    let found = fx
        .sandbox
        .search_files(&id, r"def add\(", None)
        .await
        .unwrap();
    let hits: Vec<_> = found
        .matches
        .iter()
        .map(|m| (m.path.as_str(), m.line_number, m.line.as_str()))
        .collect();
    assert_eq!(
        hits,
        [
            ("notes.md", 2, "def add(x)"),
            ("src/app.py", 1, "def add(a, b):")
        ]
    );
    assert!(!found.truncated);

    let only_py = fx
        .sandbox
        .search_files(&id, "add", Some("*.py"))
        .await
        .unwrap();
    let paths: Vec<_> = only_py
        .matches
        .iter()
        .map(|m| (m.path.as_str(), m.line_number))
        .collect();
    assert_eq!(
        paths,
        [
            ("src/app.py", 1),
            ("test_app.py", 1),
            ("test_app.py", 4),
            ("test_app.py", 5)
        ]
    );

    let error = fx
        .sandbox
        .search_files(&id, "def (", None)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidPattern { .. }), "{error}");
    assert!(
        error.chain().contains("unclosed group"),
        "{}",
        error.chain()
    );
    let error = fx
        .sandbox
        .search_files(&id, "x", Some("src/["))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidGlob { .. }), "{error}");
    assert_eq!(error.kind(), ErrorKind::InvalidArgument);

    let many = "hit\n".repeat(cap_sandbox::MAX_SEARCH_MATCHES + 5);
    fx.sandbox
        .write_files(&id, vec![write("many.txt", &many)])
        .await
        .unwrap();
    let capped = fx.sandbox.search_files(&id, "^hit$", None).await.unwrap();
    assert!(capped.truncated);
    assert_eq!(capped.matches.len(), cap_sandbox::MAX_SEARCH_MATCHES);
}

#[tokio::test]
async fn special_files_made_by_commands_do_not_hang_or_escape() {
    let fx = fixture().await;
    let id = fx.session().await;
    let ran = run(
        &fx.sandbox,
        &id,
        spec("mkfifo pipe && ln -s loop loop && ln -s /workspace/README.md abs_link"),
    )
    .await;
    assert_eq!(ran.exit.exit_code, 0, "{}", ran.stderr);
    let error = fx.sandbox.read_file(&id, "pipe").await.unwrap_err();
    assert!(matches!(error, Error::WrongFileType { .. }), "{error}");
    let error = fx.sandbox.read_file(&id, "loop").await.unwrap_err();
    assert!(matches!(error, Error::InvalidPath { .. }), "{error}");
    // Absolute links mean the sandbox's view; on the host they would leave the workspace.
    let error = fx.sandbox.read_file(&id, "abs_link").await.unwrap_err();
    assert!(matches!(error, Error::InvalidPath { .. }), "{error}");
    // Searching and diffing step over them.
    fx.sandbox.search_files(&id, "x", None).await.unwrap();
    let changes = fx.sandbox.get_changes(&id).await.unwrap();
    let paths: Vec<_> = changes.changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["abs_link", "loop"]);
}
