use pretty_assertions::assert_eq;

use super::*;
use crate::ForgeConfig;

async fn forge(dir: &Path) -> Forge {
    Forge::open(ForgeConfig {
        root: dir.join("forge"),
        database_url: cap_storage::sqlite_url(&dir.join("github.db")),
        public_url: String::new(),
    })
    .await
    .unwrap()
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(output.status.success(), "git {args:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn file(path: &str, content: &str, executable: bool) -> ImportFile {
    ImportFile {
        path: path.into(),
        content: content.into(),
        executable,
    }
}

#[tokio::test]
async fn imports_files_with_their_modes_and_message_then_again_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let forge = forge(dir.path()).await;
    let files = vec![
        file("run.sh", "#!/bin/sh\n", true),
        file("src/app.py", "x = 1\n", false),
    ];
    let created = forge
        .import_files("acme/app", "trunk", "First commit", files.clone())
        .await
        .unwrap();
    let Imported::Created(repository) = created else {
        panic!("{created:?}");
    };
    assert_eq!(repository.default_branch, "trunk");
    let bare = forge.repository_path("acme/app").unwrap();
    assert_eq!(
        git(&bare, &["ls-tree", "-r", "trunk"])
            .lines()
            .map(|line| line.split_whitespace().next().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["100755", "100644"]
    );
    assert_eq!(git(&bare, &["log", "--format=%s", "trunk"]), "First commit");
    assert_eq!(git(&bare, &["show", "trunk:src/app.py"]), "x = 1");

    // The same files again, in another order and with another message: nothing changes.
    let again = forge
        .import_files(
            "acme/app",
            "trunk",
            "Import acme/app",
            files.into_iter().rev().collect(),
        )
        .await
        .unwrap();
    assert_eq!(again, Imported::Unchanged(repository.clone()));
    // Other files, or another default branch: refused.
    for (branch, files) in [
        ("trunk", vec![file("run.sh", "#!/bin/sh\n", false)]),
        (
            "main",
            vec![
                file("run.sh", "#!/bin/sh\n", true),
                file("src/app.py", "x = 1\n", false),
            ],
        ),
    ] {
        let error = forge
            .import_files("acme/app", branch, "m", files)
            .await
            .unwrap_err();
        assert!(matches!(error, Error::RepositoryExists(_)), "{error}");
    }
    assert_eq!(forge.get_repository("acme/app").await.unwrap(), repository);
    // No scratch directory is left in the forge's root.
    let names: Vec<_> = std::fs::read_dir(forge.root())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["acme"]);
}

#[tokio::test]
async fn refuses_bad_input_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let forge = forge(dir.path()).await;
    let one = || vec![file("a.txt", "a", false)];
    let cases: Vec<(&str, &str, &str, Vec<ImportFile>, &str)> = vec![
        ("nope", "main", "m", one(), "invalid repository id"),
        ("a/b", "bad..branch", "m", one(), "invalid branch name"),
        ("a/b", "main", " ", one(), "invalid commit message"),
        ("a/b", "main", "m", Vec::new(), "invalid files"),
        (
            "a/b",
            "main",
            "m",
            vec![file("../x", "", false)],
            "invalid path \"../x\"",
        ),
        (
            "a/b",
            "main",
            "m",
            vec![file(".git/config", "", false)],
            "invalid path",
        ),
        (
            "a/b",
            "main",
            "m",
            vec![file("x", "1", false), file("x", "2", false)],
            "more than once",
        ),
        (
            "a/b",
            "main",
            "m",
            vec![file("x", "1", false), file("x/y", "2", false)],
            "listed as a file",
        ),
    ];
    for (id, branch, message, files, expected) in cases {
        let error = forge
            .import_files(id, branch, message, files)
            .await
            .unwrap_err();
        assert!(error.to_string().contains(expected), "{error}");
    }
    assert!(!forge.repository_path("a/b").unwrap().exists());
}
