//! Host-side git never runs what a repository controls: hooks, filters, fsmonitor, external
//! diff drivers. Each trap is first shown to fire under a plain git, then the forge's whole
//! flow (branch, commit, pull request, diff, review, merge) must leave no marker.

use std::path::Path;
use std::process::Command;

use anyhow::ensure;
use cap_forge::{FileChange, PullRequestState, ReviewAction};
use pretty_assertions::assert_eq;

use super::support::{Db, forge, git, sample_repo};

const HOOKS: &[&str] = &[
    "pre-receive",
    "post-update",
    "reference-transaction",
    "post-commit",
    "pre-commit",
    "commit-msg",
    "post-merge",
    "post-index-change",
];

/// Arms `bare` with hooks and config that each append a line to `marker` when run.
fn arm_traps(bare: &Path, marker: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let script = |name: &str| format!("#!/bin/sh\necho {name} >> '{}'\ncat\n", marker.display());
    let hooks = bare.join("hooks");
    std::fs::create_dir_all(&hooks)?;
    for hook in HOOKS {
        std::fs::write(hooks.join(hook), script(hook))?;
        std::fs::set_permissions(hooks.join(hook), std::fs::Permissions::from_mode(0o755))?;
    }
    let tool = bare.join("trap.sh");
    std::fs::write(&tool, script("tool"))?;
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755))?;
    let tool = tool.display().to_string();
    std::fs::create_dir_all(bare.join("info"))?;
    std::fs::write(
        bare.join("info/attributes"),
        "* filter=evil diff=evil merge=evil\n",
    )?;
    let config = bare.join("config").display().to_string();
    for (key, value) in [
        ("filter.evil.clean", tool.as_str()),
        ("filter.evil.smudge", tool.as_str()),
        ("filter.evil.required", "true"),
        ("diff.external", tool.as_str()),
        ("diff.evil.textconv", tool.as_str()),
        ("merge.evil.driver", tool.as_str()),
        ("core.fsmonitor", tool.as_str()),
    ] {
        let status = Command::new("git")
            .args(["config", "--file", &config, key, value])
            .status()?;
        ensure!(status.success(), "git config {key}");
    }
    Ok(())
}

/// A plain git, as a careless host would run it: the repository's hooks and config apply.
fn plain_git(bare: &Path, args: &[&str], stdin: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut child = Command::new("git")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .arg("--git-dir")
        .arg(bare)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin)?;
    }
    child.wait()?;
    Ok(())
}

fn take_marker(marker: &Path) -> anyhow::Result<String> {
    let fired = std::fs::read_to_string(marker).unwrap_or_default();
    if marker.exists() {
        std::fs::remove_file(marker)?;
    }
    Ok(fired)
}

#[tokio::test]
async fn nothing_the_repository_controls_runs() -> anyhow::Result<()> {
    let fx = forge(Db::Sqlite).await?;
    let id = sample_repo(&fx).await?;
    let repo = fx.forge.get_repository(&id).await?;
    let bare = Path::new(&repo.clone_url).to_owned();
    let marker = fx.dir.path().join("marker");

    // The tree itself asks for the filter too, as a hostile repository would.
    fx.forge.create_branch(&id, "attrs", "").await?;
    fx.forge
        .commit_changes(
            &id,
            "attrs",
            "attributes",
            vec![FileChange::write(
                ".gitattributes",
                "* filter=evil diff=evil merge=evil\n",
            )],
        )
        .await?;
    arm_traps(&bare, &marker)?;

    // Controls: the traps are live for a plain git.
    plain_git(
        &bare,
        &["update-ref", "refs/heads/control", &repo.head_sha],
        b"",
    )?;
    assert!(
        take_marker(&marker)?.contains("reference-transaction"),
        "hook trap is live"
    );
    plain_git(
        &bare,
        &["hash-object", "-w", "--stdin", "--path=a.txt"],
        b"x",
    )?;
    assert!(
        take_marker(&marker)?.contains("tool"),
        "filter trap is live"
    );
    plain_git(&bare, &["diff", &repo.head_sha, "attrs"], b"")?;
    assert!(take_marker(&marker)?.contains("tool"), "diff trap is live");

    // The forge's whole flow.
    let content: &[u8] = b"line one\r\nline two\n\0binary\xff tail without newline";
    fx.forge.create_branch(&id, "work", "").await?;
    let commit = fx
        .forge
        .commit_changes(
            &id,
            "work",
            "hostile repository",
            vec![
                FileChange::write("a.txt", content),
                FileChange::write("README.md", "hello\r\nchanged\r\n"),
            ],
        )
        .await?;
    let pr = fx
        .forge
        .open_pull_request(&id, "work", "main", "t", "", "")
        .await?;
    assert!(pr.diff.contains("README.md"), "{}", pr.diff);
    fx.forge
        .review(&pr.pull_request_id, ReviewAction::Approve, "bob", vec![])
        .await?;
    // main moved on (the attributes branch), so this merge writes a merge commit.
    let attrs = fx
        .forge
        .open_pull_request(&id, "attrs", "main", "attrs", "", "")
        .await?;
    fx.forge
        .review(&attrs.pull_request_id, ReviewAction::Approve, "bob", vec![])
        .await?;
    fx.forge.merge(&attrs.pull_request_id).await?;
    let merged = fx.forge.merge(&pr.pull_request_id).await?;
    assert_eq!(merged.state, PullRequestState::Merged);
    fx.forge.get_pull_request(&pr.pull_request_id).await?;

    assert_eq!(take_marker(&marker)?, "", "nothing fired");
    let path = bare.to_string_lossy();
    assert_eq!(
        git(&path, &["cat-file", "blob", &format!("{commit}:a.txt")])?,
        content,
        "stored verbatim"
    );
    assert_eq!(
        git(&path, &["cat-file", "blob", "main:a.txt"])?,
        content,
        "merged verbatim"
    );
    assert_eq!(
        git(&path, &["cat-file", "blob", "main:README.md"])?,
        b"hello\r\nchanged\r\n"
    );
    Ok(())
}
