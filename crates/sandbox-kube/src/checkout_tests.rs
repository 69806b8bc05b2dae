use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use pretty_assertions::assert_eq;

use cap_sandbox::Checkouts;

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
    let checkouts = Checkouts::open(&scratch).unwrap();
    let checkout = checkout(&checkouts, &scratch, url, &sha[..12])
        .await
        .unwrap();
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

    // The link goes with the value; the cache keeps the tree for the next session.
    let tree = checkout.tree();
    drop(checkout);
    assert!(tree.symlink_metadata().is_err());
    let again = super::checkout(&checkouts, &scratch, url, &sha)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(again.tree().join("src/app.py")).unwrap(),
        "print('hi')\n"
    );
    assert!(!marker.exists());
}

#[tokio::test]
async fn clone_and_commit_failures_are_told_apart_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let checkouts = Checkouts::open(dir.path()).unwrap();
    let missing = dir.path().join("nope.git");
    let error = checkout(&checkouts, dir.path(), missing.to_str().unwrap(), "abcdef1")
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Local(cap_sandbox::Error::Clone { .. })),
        "{error}"
    );

    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    run_git(&repo, &["init", "--quiet"]);
    run_git(&repo, &["commit", "--quiet", "--allow-empty", "-m", "x"]);
    let error = checkout(&checkouts, dir.path(), repo.to_str().unwrap(), "abcdef1")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Local(cap_sandbox::Error::CommitNotFound { .. })
        ),
        "{error}"
    );
    // Nothing is left but the repository and the (empty) cache.
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, [".cache", "repo"]);
    assert_eq!(
        std::fs::read_dir(dir.path().join(".cache"))
            .unwrap()
            .count(),
        0
    );
}

/// One archive entry: path, kind, link target or content.
type RawEntry<'a> = (&'a str, tar::EntryType, &'a [u8]);

/// A tar of `entries`, names written raw so that hostile ones (`..`, absolute) are kept as a
/// hostile pod would send them.
fn raw_tar(entries: &[RawEntry<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(*kind);
        header.set_mode(0o644);
        if kind.is_symlink() || kind.is_hard_link() {
            header.as_old_mut().linkname[..data.len()].copy_from_slice(data);
            header.set_size(0);
            header.set_cksum();
            builder.append(&header, std::io::empty()).unwrap();
        } else {
            header.set_size(data.len() as u64);
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
    }
    builder.into_inner().unwrap()
}

#[test]
fn unpack_refuses_entries_that_would_land_outside() {
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let outside_link = outside.to_str().unwrap().as_bytes().to_vec();
    let cases: [(&[RawEntry<'_>], &str, &str); 5] = [
        (
            &[("../escape", Regular, b"x")],
            "../escape",
            "contains `..`",
        ),
        (
            &[("./a/../../escape", Regular, b"x")],
            "./a/../../escape",
            "contains `..`",
        ),
        (
            &[("/tmp/escape", Regular, b"x")],
            "/tmp/escape",
            "is an absolute path",
        ),
        (
            &[
                ("link", Symlink, &outside_link),
                ("link/escape", Regular, b"x"),
            ],
            "link/escape",
            "goes through a symlink or a file",
        ),
        (
            &[("stolen", Link, b"/etc/passwd")],
            "stolen",
            "is a hard link out of the workspace",
        ),
    ];
    for (index, (entries, entry, reason)) in cases.into_iter().enumerate() {
        let dest = dir.path().join(format!("copy{index}"));
        std::fs::create_dir(&dest).unwrap();
        let error = unpack(raw_tar(entries).as_slice(), &dest, 1 << 20).unwrap_err();
        assert!(
            matches!(&error, Error::UnsafeArchive { entry: e, reason: r } if e == entry && r == &reason),
            "{entry}: {error}"
        );
        assert!(error.to_string().contains(entry), "{error}");
    }
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert!(!dir.path().join("escape").exists());

    // Directories, files, symlinks (kept, never followed) and hard links inside are fine;
    // FIFOs and devices are skipped.
    let dest = dir.path().join("fine");
    std::fs::create_dir(&dest).unwrap();
    let tar = raw_tar(&[
        ("./", Directory, b""),
        ("./src/", Directory, b""),
        ("./src/a.py", Regular, b"print(1)\n"),
        ("./src/b.py", Link, b"./src/a.py"),
        ("./passwd", Symlink, b"/etc/passwd"),
        ("./pipe", tar::EntryType::Fifo, b""),
        ("./tty", tar::EntryType::Char, b""),
    ]);
    unpack(tar.as_slice(), &dest, 1 << 20).unwrap();
    assert_eq!(std::fs::read(dest.join("src/b.py")).unwrap(), b"print(1)\n");
    assert_eq!(
        std::fs::read_link(dest.join("passwd")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert!(dest.join("pipe").symlink_metadata().is_err());
    assert!(dest.join("tty").symlink_metadata().is_err());
}

#[test]
fn unpack_refuses_more_content_than_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let big = vec![b'x'; 4096];
    let tar = raw_tar(&[
        ("a", tar::EntryType::Regular, &big),
        ("b", tar::EntryType::Regular, &big),
    ]);
    let error = unpack(tar.as_slice(), dir.path(), 6000).unwrap_err();
    assert!(
        matches!(error, Error::WorkspaceTooLarge { max_bytes: 6000 }),
        "{error}"
    );
    assert!(!dir.path().join("b").exists());
}
