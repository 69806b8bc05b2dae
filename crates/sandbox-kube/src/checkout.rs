//! The session's tree: checked out on the host by a hardened git (no hooks, no fsmonitor, no
//! system or global configuration, hence no filter drivers, no prompts, plain transports
//! only), then packed by the `tar` crate (no `.git`, symlinks kept as symlinks) for `tar -x`
//! in the pod. Nothing the repository contains runs on the host.
//!
//! XXX: the git hardening repeats `cap_sandbox`'s private `git` module; once that crate
//! exports its checkout, this module should call it instead.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::process::Command;

use crate::{Error, Result};

/// How long one git command may take (a clone of a large repository).
const GIT_TIMEOUT: Duration = Duration::from_secs(600);

/// Transports git may use; `ext::` and remote helpers are refused.
const ALLOWED_PROTOCOLS: &str = "file:git:http:https:ssh";

/// A repository checked out at one commit, in a directory removed on drop.
#[derive(Debug)]
pub(crate) struct Checkout {
    dir: tempfile::TempDir,
    /// The full sha of the commit.
    pub(crate) commit_sha: String,
}

impl Checkout {
    /// The checked-out tree (its `.git` included).
    pub(crate) fn tree(&self) -> PathBuf {
        self.dir.path().join("tree")
    }
}

/// Checks a repository URL before it reaches git.
pub(crate) fn validate_repo_url(url: &str) -> Result<()> {
    let invalid = |reason| Error::InvalidRepoUrl {
        url: url.to_owned(),
        reason,
    };
    if url.trim().is_empty() {
        return Err(invalid("is empty"));
    }
    if url.len() > 4096 {
        return Err(invalid("is longer than 4096 bytes"));
    }
    if url.starts_with('-') {
        return Err(invalid("must not start with `-`"));
    }
    if url.chars().any(char::is_control) {
        return Err(invalid("contains control characters"));
    }
    if url.contains("::") {
        return Err(invalid(
            "transport helpers (`ext::`, `<helper>::`) are not allowed",
        ));
    }
    Ok(())
}

/// Checks and normalises a commit sha (hexadecimal, 7 to 64 digits).
pub(crate) fn validate_commit_sha(sha: &str) -> Result<String> {
    if (7..=64).contains(&sha.len()) && sha.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(sha.to_ascii_lowercase())
    } else {
        Err(Error::InvalidCommitSha {
            sha: sha.to_owned(),
        })
    }
}

/// Clones `url` under `scratch` and checks out `sha` (already validated).
pub(crate) async fn checkout(scratch: &Path, url: &str, sha: &str) -> Result<Checkout> {
    let dir = tempfile::Builder::new()
        .prefix("cap-kube-checkout-")
        .tempdir_in(scratch)
        .map_err(|source| Error::Io {
            action: "create a checkout directory in",
            path: scratch.to_owned(),
            source,
        })?;
    let tree = dir.path().join("tree");
    let clone = git(
        None,
        [
            "clone".as_ref(),
            "--no-checkout".as_ref(),
            "--no-hardlinks".as_ref(),
            "--quiet".as_ref(),
            "--".as_ref(),
            url.as_ref(),
            tree.as_os_str(),
        ],
    )
    .await?;
    if !clone.status.success() {
        return Err(Error::Clone {
            url: url.to_owned(),
            detail: detail(&clone),
        });
    }
    let spec = format!("{sha}^{{commit}}");
    let resolved = git(Some(&tree), ["rev-parse", "--verify", "--quiet", &spec]).await?;
    if !resolved.status.success() {
        return Err(Error::CommitNotFound {
            url: url.to_owned(),
            sha: sha.to_owned(),
        });
    }
    let commit_sha = String::from_utf8_lossy(&resolved.stdout).trim().to_owned();
    let checkout = git(
        Some(&tree),
        ["checkout", "--quiet", "--detach", commit_sha.as_str()],
    )
    .await?;
    if !checkout.status.success() {
        return Err(Error::Git {
            action: "checkout",
            detail: detail(&checkout),
        });
    }
    Ok(Checkout { dir, commit_sha })
}

async fn git<I, S>(cwd: Option<&Path>, args: I) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new("git");
    command
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
        )
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ALLOW_PROTOCOL", ALLOWED_PROTOCOLS)
        .env("LC_ALL", "C")
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.fsmonitor=false",
        ])
        .args([
            "-c",
            "protocol.ext.allow=never",
            "-c",
            "advice.detachedHead=false",
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    let child = command.spawn().map_err(|source| Error::Io {
        action: "run",
        path: PathBuf::from("git"),
        source,
    })?;
    match tokio::time::timeout(GIT_TIMEOUT, child.wait_with_output()).await {
        Ok(output) => output.map_err(|source| Error::Io {
            action: "run",
            path: PathBuf::from("git"),
            source,
        }),
        Err(_) => Err(Error::Git {
            action: "run",
            detail: format!("timed out after {GIT_TIMEOUT:?}"),
        }),
    }
}

/// The last lines of git's stderr, for an error message.
fn detail(output: &Output) -> String {
    let text = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    match lines[lines.len().saturating_sub(3)..].join("; ") {
        tail if tail.is_empty() => format!("git exited with {}", output.status),
        tail => tail,
    }
}

/// Writes `tree` as a tar to `out`: every entry but the top-level `.git`, symlinks as
/// symlinks (never followed), modes kept, owners and times normalised.
pub(crate) fn pack(tree: &Path, out: impl Write) -> std::io::Result<()> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Deterministic);
    let mut entries = std::fs::read_dir(tree)?
        .map(|entry| entry.map(|entry| entry.file_name()))
        .collect::<std::io::Result<Vec<_>>>()?;
    entries.sort();
    for name in entries.into_iter().filter(|name| name != ".git") {
        let path = tree.join(&name);
        if path.symlink_metadata()?.is_dir() {
            builder.append_dir_all(&name, &path)?;
        } else {
            builder.append_path_with_name(&path, &name)?;
        }
    }
    builder.into_inner()?.flush()
}

#[cfg(test)]
#[path = "checkout_tests.rs"]
mod tests;
