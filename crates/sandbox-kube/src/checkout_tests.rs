use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use pretty_assertions::assert_eq;

use super::*;

fn run_git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .args(["-c", "user.name=T", "-c", "user.email=t@example.com"])
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "git {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn urls_and_shas_are_checked_before_git() {
    for (url, reason) in [
        ("", "is empty"),
        ("--upload-pack=touch /tmp/x", "must not start with `-`"),
        (
            "ext::sh -c touch% /tmp/x",
            "transport helpers (`ext::`, `<helper>::`) are not allowed",
        ),
        ("/repo\n.git", "contains control characters"),
    ] {
        let error = validate_repo_url(url).unwrap_err();
        assert!(
            matches!(&error, Error::InvalidRepoUrl { reason: got, .. } if *got == reason),
            "{url:?}: {error}"
        );
    }
    assert_eq!(validate_commit_sha("ABCDEF1").unwrap(), "abcdef1");
    for sha in ["abc", "main", "abcdefg", &"a".repeat(65)] {
        assert!(matches!(
            validate_commit_sha(sha),
            Err(Error::InvalidCommitSha { .. })
        ));
    }
}

#[tokio::test]
async fn the_checkout_runs_nothing_the_repository_controls_and_packs_without_git() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    run_git(&repo, &["init", "--quiet"]);
    std::fs::create_dir(repo.join("src")).unwrap();
    std::fs::write(repo.join("src/app.py"), "print('hi')\n").unwrap();
    std::fs::write(repo.join("run.sh"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(repo.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", repo.join("escape")).unwrap();
    // A filter the repository asks for: it would run on checkout if git honoured it.
    let marker = dir.path().join("filter-ran");
    std::fs::write(repo.join(".gitattributes"), "*.py filter=evil\n").unwrap();
    run_git(&repo, &["add", "."]);
    run_git(&repo, &["commit", "--quiet", "-m", "init"]);
    let sha = run_git(&repo, &["rev-parse", "HEAD"]);
    // The bare copy a forge would hold, with a hook and a filter driver in its own config.
    let bare = dir.path().join("repo.git");
    run_git(
        dir.path(),
        &["clone", "--quiet", "--bare", "repo", "repo.git"],
    );
    let hook = bare.join("hooks/post-checkout");
    std::fs::write(&hook, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    run_git(
        &bare,
        &[
            "config",
            "filter.evil.smudge",
            &format!("touch {}; cat", marker.display()),
        ],
    );

    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let url = bare.to_str().unwrap();
    let checkout = checkout(&scratch, url, &sha[..12]).await.unwrap();
    assert_eq!(checkout.commit_sha, sha);
    assert!(
        !marker.exists(),
        "a hook or filter of the repository ran on the host"
    );
    assert_eq!(
        std::fs::read_to_string(checkout.tree().join("src/app.py")).unwrap(),
        "print('hi')\n"
    );

    let mut tar = Vec::new();
    pack(&checkout.tree(), &mut tar).unwrap();
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut entries: Vec<(String, tar::EntryType, u32, Option<String>)> = archive
        .entries()
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let header = entry.header();
            (
                entry.path().unwrap().to_string_lossy().into_owned(),
                header.entry_type(),
                header.mode().unwrap(),
                entry
                    .link_name()
                    .unwrap()
                    .map(|link| link.to_string_lossy().into_owned()),
            )
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        entries,
        [
            (
                ".gitattributes".into(),
                tar::EntryType::Regular,
                0o644,
                None
            ),
            (
                "escape".into(),
                tar::EntryType::Symlink,
                0o755,
                Some("/etc/passwd".into())
            ),
            ("run.sh".into(), tar::EntryType::Regular, 0o755, None),
            ("src/".into(), tar::EntryType::Directory, 0o755, None),
            ("src/app.py".into(), tar::EntryType::Regular, 0o644, None),
        ]
    );

    // The checkout directory goes with the value.
    let tree = checkout.tree();
    drop(checkout);
    assert!(!tree.exists());
}

#[tokio::test]
async fn clone_and_commit_failures_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.git");
    let error = checkout(dir.path(), missing.to_str().unwrap(), "abcdef1")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Clone { .. }), "{error}");

    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    run_git(&repo, &["init", "--quiet"]);
    run_git(&repo, &["commit", "--quiet", "--allow-empty", "-m", "x"]);
    let error = checkout(dir.path(), repo.to_str().unwrap(), "abcdef1")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::CommitNotFound { .. }), "{error}");
    // Nothing is left in the scratch directory.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
}
