//! Host-side git, hardened: no hooks, no fsmonitor, no system or global configuration, no
//! prompts, only plain transports. The repository's content is untrusted; nothing it contains
//! is ever run on the host.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::process::Command;

use crate::{Error, Result};

/// How long one git command may take before it is killed (a clone of a large repository).
const GIT_TIMEOUT: Duration = Duration::from_secs(600);

/// Transports git may use; everything else (`ext::`, remote helpers) is refused by git too.
const ALLOWED_PROTOCOLS: &str = "file:git:http:https:ssh";

/// Runs `git <args>` in `cwd` (when given) with the hardening above.
pub(crate) async fn run<I, S>(cwd: Option<&Path>, args: I) -> Result<Output>
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
    let spawn_err = |source| Error::Spawn {
        program: "git".to_owned(),
        source,
    };
    let child = command.spawn().map_err(spawn_err)?;
    match tokio::time::timeout(GIT_TIMEOUT, child.wait_with_output()).await {
        Ok(output) => output.map_err(spawn_err),
        Err(_) => Err(Error::Git {
            action: "run",
            detail: format!("timed out after {GIT_TIMEOUT:?}"),
        }),
    }
}

/// The last few lines of git's stderr, for an error message.
pub(crate) fn detail(output: &Output) -> String {
    let text = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let tail = lines[lines.len().saturating_sub(3)..].join("; ");
    if tail.is_empty() {
        format!("exited with {}", output.status)
    } else {
        tail
    }
}
