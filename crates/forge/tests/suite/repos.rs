//! Repositories, branches and commits on real bare repositories.

use cap_forge::{BOT_NAME, Error, FileChange};
use pretty_assertions::assert_eq;

use super::support::{Db, forge, git, git_text, sample_repo, sample_tree, unique_repo};

#[tokio::test]
async fn imports_a_directory_as_a_bare_repository() -> anyhow::Result<()> {
    let fx = forge(Db::Sqlite).await?;
    let tree = fx.dir.path().join("tree");
    sample_tree(&tree)?;
    let id = unique_repo();
    let repo = fx.forge.import_directory(&id, &tree, "trunk").await?;

    assert_eq!(repo.repository_id, id);
    assert_eq!(repo.default_branch, "trunk");
    assert_eq!(
        repo.clone_url,
        fx.forge.repository_path(&id)?.to_string_lossy()
    );
    assert!(repo.clone_url.starts_with('/') && repo.clone_url.ends_with("/demo.git"));
    assert_eq!(repo.head_sha.len(), 40);
    assert_eq!(fx.forge.get_repository(&id).await?, repo);

    let listing = git_text(
        &repo.clone_url,
        &["ls-tree", "-r", "--format=%(objectmode) %(path)", "trunk"],
    )?;
    assert_eq!(
        listing, "100644 README.md\n100644 data/blob.bin\n100755 run.sh\n100644 src/lib.rs",
        "files with modes, `.git` skipped"
    );
    assert_eq!(
        git(
            &repo.clone_url,
            &["cat-file", "blob", "trunk:data/blob.bin"]
        )?,
        [0u8, 159, 146, 150, 13, 10]
    );
    assert_eq!(
        git_text(
            &repo.clone_url,
            &["log", "-1", "--format=%an|%cn|%s", "trunk"]
        )?,
        format!("{BOT_NAME}|{BOT_NAME}|Import {id}")
    );
    // No sample hooks copied from git's templates.
    assert!(!std::path::Path::new(&repo.clone_url).join("hooks").exists());
    Ok(())
}

#[tokio::test]
async fn import_refuses_bad_input() -> anyhow::Result<()> {
    let fx = forge(Db::Sqlite).await?;
    let tree = fx.dir.path().join("tree");
    sample_tree(&tree)?;
    let id = unique_repo();
    fx.forge.import_directory(&id, &tree, "main").await?;

    let err = fx
        .forge
        .import_directory(&id, &tree, "main")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RepositoryExists(_)), "{err:?}");
    let err = fx
        .forge
        .import_directory(&unique_repo(), &tree.join("README.md"), "main")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                field: "directory",
                ..
            }
        ),
        "{err:?}"
    );
    let err = fx
        .forge
        .import_directory(&unique_repo(), &tree, "bad branch")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidBranch { .. }), "{err:?}");
    let err = fx
        .forge
        .import_directory("../evil", &tree, "main")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidRepositoryId { .. }), "{err:?}");
    // Nothing half-made is left behind by the failed imports.
    let owners: Vec<_> = std::fs::read_dir(fx.forge.root())?.collect::<Result<_, _>>()?;
    assert_eq!(owners.len(), 1);
    let children: Vec<_> = std::fs::read_dir(owners[0].path())?.collect::<Result<_, _>>()?;
    assert_eq!(
        children.len(),
        1,
        "only the imported repository: {children:?}"
    );
    Ok(())
}

#[tokio::test]
async fn get_repository_refuses_bad_and_unknown_ids() -> anyhow::Result<()> {
    let fx = forge(Db::Sqlite).await?;
    for bad in ["", "noslash", "a/b/c", "../x", "a/..", "a/b c", "/abs"] {
        let err = fx.forge.get_repository(bad).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidRepositoryId { .. }),
            "{bad:?}: {err:?}"
        );
    }
    let err = fx.forge.get_repository("nobody/nothing").await.unwrap_err();
    assert_eq!(err.to_string(), "repository nobody/nothing not found");
    Ok(())
}

#[tokio::test]
async fn creates_branches() -> anyhow::Result<()> {
    let fx = forge(Db::Sqlite).await?;
    let id = sample_repo(&fx).await?;
    let repo = fx.forge.get_repository(&id).await?;

    let head = fx
        .forge
        .create_branch(&id, "coding-assistant/1-fix", &repo.head_sha)
        .await?;
    assert_eq!(head, repo.head_sha);
    assert_eq!(
        fx.forge.branch_head(&id, "coding-assistant/1-fix").await?,
        repo.head_sha
    );
    // An abbreviated sha and an empty one (the default branch's head) work too.
    assert_eq!(
        fx.forge
            .create_branch(&id, "short", &repo.head_sha[..10])
            .await?,
        repo.head_sha
    );
    assert_eq!(
        fx.forge.create_branch(&id, "from-default", "").await?,
        repo.head_sha
    );

    let err = fx
        .forge
        .create_branch(&id, "short", &repo.head_sha)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("branch \"short\" already exists in {id}")
    );
    let err = fx
        .forge
        .create_branch(&id, "x", &"0".repeat(40))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CommitNotFound { .. }), "{err:?}");
    let err = fx
        .forge
        .create_branch(&id, "x", "HEAD~1")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidSha { .. }), "{err:?}");
    let err = fx.forge.create_branch(&id, "x", "--all").await.unwrap_err();
    assert!(matches!(err, Error::InvalidSha { .. }), "{err:?}");
    for bad in [
        "-x", "a..b", "a b", "x.lock", "a/", ".hidden", "a~1", "HEAD",
    ] {
        let err = fx
            .forge
            .create_branch(&id, bad, &repo.head_sha)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidBranch { .. }),
            "{bad:?}: {err:?}"
        );
    }
    let err = fx
        .forge
        .create_branch("nobody/nothing", "x", &repo.head_sha)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RepositoryNotFound(_)), "{err:?}");
    // `short/x` cannot live next to the branch `short`: git says so, nothing is created.
    let err = fx
        .forge
        .create_branch(&id, "short/x", &repo.head_sha)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Git { .. }), "{err:?}");
    assert!(
        err.to_string().contains("update-ref refs/heads/short/x"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn commits_adds_modifications_and_deletions() -> anyhow::Result<()> {
    let fx = forge(Db::Sqlite).await?;
    let id = sample_repo(&fx).await?;
    let repo = fx.forge.get_repository(&id).await?;
    fx.forge.create_branch(&id, "work", &repo.head_sha).await?;

    let commit = fx
        .forge
        .commit_changes(
            &id,
            "work",
            "Change things\n\nLonger body.",
            vec![
                FileChange::write("docs/new.md", "# New\n"),
                FileChange::write("run.sh", "#!/bin/sh\necho changed\n"),
                FileChange::delete("src/lib.rs"),
            ],
        )
        .await?;
    let dir = repo.clone_url.as_str();
    assert_eq!(fx.forge.branch_head(&id, "work").await?, commit);
    assert_eq!(
        git_text(dir, &["rev-parse", &format!("{commit}^")])?,
        repo.head_sha
    );
    assert_eq!(
        fx.forge.get_repository(&id).await?.head_sha,
        repo.head_sha,
        "main untouched"
    );
    assert_eq!(
        git_text(
            dir,
            &["ls-tree", "-r", "--format=%(objectmode) %(path)", &commit]
        )?,
        "100644 README.md\n100644 data/blob.bin\n100644 docs/new.md\n100755 run.sh",
        "added, kept the executable mode, deleted"
    );
    assert_eq!(
        git(dir, &["cat-file", "blob", &format!("{commit}:run.sh")])?,
        b"#!/bin/sh\necho changed\n"
    );
    assert_eq!(
        git_text(dir, &["log", "-1", "--format=%an <%ae>|%B", &commit])?,
        "coding-assistant[bot] <coding-assistant[bot]@users.noreply.localhost>|Change things\n\nLonger body."
    );

    // A file replaced by a directory in one change set.
    let second = fx
        .forge
        .commit_changes(
            &id,
            "work",
            "README becomes a directory",
            vec![
                FileChange::delete("README.md"),
                FileChange::write("README.md/index.md", "hi"),
            ],
        )
        .await?;
    assert_eq!(
        git_text(dir, &["rev-parse", &format!("{second}^")])?,
        commit
    );
    assert_eq!(
        git(
            dir,
            &["cat-file", "blob", &format!("{second}:README.md/index.md")]
        )?,
        b"hi"
    );
    Ok(())
}

#[tokio::test]
async fn commit_refuses_bad_change_sets() -> anyhow::Result<()> {
    let fx = forge(Db::Sqlite).await?;
    let id = sample_repo(&fx).await?;
    let head = fx.forge.get_repository(&id).await?.head_sha;
    fx.forge.create_branch(&id, "work", &head).await?;
    let commit = |changes: Vec<FileChange>| fx.forge.commit_changes(&id, "work", "msg", changes);

    let err = commit(vec![]).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "empty change set: a commit needs at least one file change"
    );
    for bad in [
        "../escape",
        "/etc/passwd",
        ".git/config",
        "a/.git/hooks/x",
        "a//b",
        "a/./b",
        "",
    ] {
        let err = commit(vec![FileChange::write(bad, "x")]).await.unwrap_err();
        assert!(matches!(err, Error::InvalidPath { .. }), "{bad:?}: {err:?}");
        let err = commit(vec![FileChange::delete(bad)]).await.unwrap_err();
        assert!(matches!(err, Error::InvalidPath { .. }), "{bad:?}: {err:?}");
    }
    let err = commit(vec![FileChange::write("a", "1"), FileChange::delete("a")])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("listed more than once"), "{err}");
    let err = commit(vec![FileChange::delete("missing.txt")])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot delete \"missing.txt\": no such file on branch \"work\""
    );
    let err = commit(vec![FileChange::delete("src")]).await.unwrap_err();
    assert!(err.to_string().contains("is a directory"), "{err}");
    let err = commit(vec![FileChange::write("src", "x")])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("is a directory on the branch"),
        "{err}"
    );
    let err = commit(vec![FileChange::write("README.md/x", "x")])
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("\"README.md\" is a file on the branch"),
        "{err}"
    );
    let err = commit(vec![
        FileChange::write("a/b", "x"),
        FileChange::write("a", "y"),
    ])
    .await
    .unwrap_err();
    assert!(matches!(err, Error::InvalidPath { .. }), "{err:?}");
    let err = commit(vec![FileChange::write("README.md", "hello\nold line\n")])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoChanges(_)), "{err:?}");

    let err = fx
        .forge
        .commit_changes(&id, "work", "  \n", vec![FileChange::write("a", "1")])
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "invalid commit message: must not be empty");
    let err = fx
        .forge
        .commit_changes(&id, "nope", "m", vec![FileChange::write("a", "1")])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BranchNotFound { .. }), "{err:?}");
    let err = fx
        .forge
        .commit_changes(&id, "bad..name", "m", vec![FileChange::write("a", "1")])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidBranch { .. }), "{err:?}");
    let err = fx
        .forge
        .commit_changes("x/y", "work", "m", vec![FileChange::write("a", "1")])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RepositoryNotFound(_)), "{err:?}");

    // None of the refused change sets moved the branch.
    assert_eq!(fx.forge.branch_head(&id, "work").await?, head);
    Ok(())
}

/// A caller that died after the forge committed asks for the same commit again: it gets the
/// commit the branch already ends with, and the branch does not move.
#[tokio::test]
async fn the_same_commit_asked_again_is_the_commit_made() -> anyhow::Result<()> {
    let fx = forge(Db::Sqlite).await?;
    let id = sample_repo(&fx).await?;
    let head = fx.forge.get_repository(&id).await?.head_sha;
    fx.forge.create_branch(&id, "work", &head).await?;
    let change = || vec![FileChange::write("README.md", "fixed\n")];
    let message = "Fix the readme\n\nTask: t-1\n";
    let first = fx
        .forge
        .commit_changes(&id, "work", message, change())
        .await?;
    let again = fx
        .forge
        .commit_changes(&id, "work", message, change())
        .await?;
    assert_eq!(again, first);
    let dir = fx.forge.repository_path(&id)?;
    let work = git_text(&dir.to_string_lossy(), &["rev-parse", "work"])?;
    assert_eq!(work.trim(), first);
    // Another commit's message over the same tree still finds nothing to commit.
    let err = fx
        .forge
        .commit_changes(&id, "work", "Something else", change())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoChanges(_)), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn commit_does_not_write_through_symlinks() -> anyhow::Result<()> {
    let fx = forge(Db::Sqlite).await?;
    let tree = fx.dir.path().join("tree");
    sample_tree(&tree)?;
    std::os::unix::fs::symlink("/etc", tree.join("etc-link"))?;
    let id = unique_repo();
    let repo = fx.forge.import_directory(&id, &tree, "main").await?;
    assert_eq!(
        git_text(
            &repo.clone_url,
            &[
                "ls-tree",
                "--format=%(objectmode) %(path)",
                "main",
                "etc-link"
            ]
        )?,
        "120000 etc-link"
    );
    let commit = |changes| fx.forge.commit_changes(&id, "main", "m", changes);
    let err = commit(vec![FileChange::write("etc-link/passwd", "x")])
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("\"etc-link\" is a file on the branch"),
        "{err}"
    );
    let err = commit(vec![FileChange::write("etc-link", "/root")])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is a symbolic link"), "{err}");
    // Deleting the link is fine.
    commit(vec![FileChange::delete("etc-link")]).await?;
    Ok(())
}
