//! The one way this crate runs git: hardened, with clear errors.
//!
//! Every command gets `-c core.hooksPath=/dev/null -c core.fsmonitor=false` (and a few more
//! switches below), a cleared environment with the system and global configuration ignored and
//! prompts disabled, and no terminal. Callers use plumbing that never checks files out, so
//! filters and attributes of the repository's tree are never consulted either.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::{Error, Result};

/// Configuration overrides passed to every git process.
const HARDENING: &[&str] = &[
    // No hooks: `update-ref` alone runs `reference-transaction`.
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    // No attribute files from the user's home (filters, diff and merge drivers).
    "-c",
    "core.attributesFile=/dev/null",
    "-c",
    "commit.gpgSign=false",
    // The forge only works on local repositories: no transport may be used, not even file://.
    "-c",
    "protocol.allow=never",
];

/// A git command under construction; see [`git`].
#[derive(Debug)]
pub(crate) struct Git {
    git_dir: Option<OsString>,
    args: Vec<OsString>,
    envs: Vec<(&'static str, OsString)>,
    stdin: Option<Vec<u8>>,
}

/// What a finished git process left behind.
#[derive(Debug)]
pub(crate) struct Output {
    /// Whether it exited with status 0.
    pub success: bool,
    /// The exit code, if it exited normally.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
    /// The command line, for errors.
    pub command: String,
    status: String,
}

impl Output {
    /// The error this output stands for.
    pub fn error(&self) -> Error {
        Error::Git {
            command: self.command.clone(),
            status: self.status.clone(),
            stderr: String::from_utf8_lossy(&self.stderr).trim().to_owned(),
        }
    }

    /// Standard output as text without the trailing newline.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout)
            .trim_end_matches('\n')
            .to_owned()
    }
}

/// A hardened git command on the repository at `git_dir` (or outside any repository, for
/// `init`).
pub(crate) fn git(git_dir: Option<&Path>) -> Git {
    Git {
        git_dir: git_dir.map(|dir| dir.as_os_str().to_owned()),
        args: Vec::new(),
        envs: Vec::new(),
        stdin: None,
    }
}

impl Git {
    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    /// Adds `--flag=value` as one argument, so a value can never be taken for another flag.
    pub fn arg_pair(self, flag: &str, value: &str) -> Self {
        let mut arg = OsString::from(flag);
        arg.push("=");
        arg.push(value);
        self.args([arg])
    }

    /// Sets an environment variable for this command (e.g. `GIT_INDEX_FILE`).
    pub fn env(mut self, key: &'static str, value: impl AsRef<OsStr>) -> Self {
        self.envs.push((key, value.as_ref().to_owned()));
        self
    }

    /// Feeds `input` on standard input.
    pub fn stdin(mut self, input: Vec<u8>) -> Self {
        self.stdin = Some(input);
        self
    }

    fn command_line(&self) -> String {
        self.args
            .iter()
            .map(|arg| arg.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs the command and returns its output whatever the exit status.
    pub async fn output(self) -> Result<Output> {
        let command = self.command_line();
        let mut cmd = Command::new("git");
        cmd.env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("LC_ALL", "C")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_ATTR_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_NO_REPLACE_OBJECTS", "1")
            .env("GIT_PAGER", "cat")
            .envs(self.envs.iter().map(|(key, value)| (*key, value)))
            .arg("--no-pager")
            .args(HARDENING);
        if let Some(dir) = &self.git_dir {
            let mut flag = OsString::from("--git-dir=");
            flag.push(dir);
            cmd.arg(flag);
        }
        cmd.args(&self.args)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let spawn_err = |source| Error::Spawn {
            command: command.clone(),
            source,
        };
        let mut child = cmd.spawn().map_err(spawn_err)?;
        // Written from a task so that a large input cannot deadlock against a full stdout pipe.
        let writer = match (child.stdin.take(), self.stdin) {
            (Some(mut pipe), Some(input)) => Some(tokio::spawn(async move {
                let written = pipe.write_all(&input).await;
                drop(pipe);
                written
            })),
            _ => None,
        };
        let output = child.wait_with_output().await.map_err(spawn_err)?;
        if let Some(writer) = writer {
            // A git that exits early closes the pipe; its exit status tells the story then.
            if let Ok(Err(error)) = writer.await {
                tracing::debug!(%error, %command, "git closed its standard input early");
            }
        }
        let status = output.status.to_string();
        Ok(Output {
            success: output.status.success(),
            code: output.status.code(),
            stdout: output.stdout,
            stderr: output.stderr,
            command,
            status,
        })
    }

    /// Runs the command; a non-zero exit is an [`Error::Git`] naming the command and its stderr.
    pub async fn run(self) -> Result<Output> {
        let output = self.output().await?;
        if output.success {
            Ok(output)
        } else {
            Err(output.error())
        }
    }

    /// Runs the command and returns its standard output as text, trailing newline removed.
    pub async fn text(self) -> Result<String> {
        Ok(self.run().await?.text())
    }
}
