//! The one hardened way the host runs git.
//!
//! Repositories are untrusted content; nothing they contain may run on the host. Every git
//! process started through [`Git`] gets:
//!
//! - no hooks (`core.hooksPath=/dev/null`) and no fsmonitor (`core.fsmonitor=false`), which
//!   the repository's own configuration cannot switch back on (command-line configuration
//!   wins over every file);
//! - no system or global configuration (`GIT_CONFIG_NOSYSTEM`, `GIT_CONFIG_GLOBAL=/dev/null`),
//!   so filter, diff and merge drivers, credential helpers and aliases of the host's users are
//!   not defined; no system or global attributes (`GIT_ATTR_NOSYSTEM`,
//!   `core.attributesFile=/dev/null`); no credential helper (`credential.helper=`); no GPG
//!   signing; no replace objects; no pager and no terminal prompt;
//! - no transport unless the caller names it with [`Git::allow_protocols`]
//!   (`protocol.allow=never` plus `GIT_ALLOW_PROTOCOL`, which also binds the subprocesses git
//!   starts, and `ext::` never);
//! - a cleared environment (only `PATH` and the variables above, plus what the caller sets
//!   with [`Git::env`], which cannot override the hardening), no standard input unless given,
//!   and no terminal;
//! - a timeout ([`DEFAULT_TIMEOUT`] unless [`Git::timeout`] says otherwise) after which git
//!   and everything it started (its own process group) is killed; dropping the future kills
//!   them too.
//!
//! The first argument must be a git subcommand: global options (`-c`, `--exec-path`, ...)
//! are this crate's alone, so a caller cannot undo the hardening by accident.
//!
//! What this crate cannot switch off is what the repository's own `config` or
//! `info/attributes` define: callers only run it on repositories the host made itself, and
//! use plumbing (`hash-object --no-filters`, `diff --no-ext-diff --no-textconv`) where a tree's
//! `.gitattributes` could name a driver.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// How long one git command may take unless [`Git::timeout`] says otherwise: long enough for
/// a clone of a large repository.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// `PATH` when the host has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Configuration overrides passed to every git process, before the protocol switches.
const HARDENING: &[&str] = &[
    // No hooks: even `update-ref` runs `reference-transaction`, `checkout` `post-checkout`.
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    // No attribute files from a home directory (filters, diff and merge drivers).
    "core.attributesFile=/dev/null",
    // An empty value clears the list of helpers: no credential helper runs.
    "credential.helper=",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "advice.detachedHead=false",
    // No transport by default; `Git::allow_protocols` names the ones a caller needs.
    "protocol.allow=never",
    // Runs an arbitrary command as a transport; never, whatever a caller allows.
    "protocol.ext.allow=never",
];

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line is not `<subcommand> [args...]`.
    #[error("invalid git command line {command:?}: {reason}")]
    InvalidCommand {
        /// The command line after `git`.
        command: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// git could not be started, or its output not read.
    #[error("cannot run `git {command}`")]
    Spawn {
        /// The command line after `git` (hardening left out).
        command: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// git exited with a non-zero status ([`Git::run`], [`Output::error`]).
    #[error("`git {command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line after `git` (hardening left out).
        command: String,
        /// The exit status.
        status: String,
        /// What git wrote to stderr, trimmed.
        stderr: String,
    },
    /// git ran longer than its timeout and was killed with everything it started.
    #[error("`git {command}` timed out after {after:?} and was killed")]
    TimedOut {
        /// The command line after `git` (hardening left out).
        command: String,
        /// The timeout.
        after: Duration,
    },
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// A transport git may be allowed to use (see [`Git::allow_protocols`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Local paths and `file://` URLs.
    File,
    /// `git://`, the unauthenticated git daemon.
    Git,
    /// `http://`.
    Http,
    /// `https://`.
    Https,
    /// `ssh://` and `host:path`.
    Ssh,
}

impl Protocol {
    /// Every plain transport: what a clone of a URL a user gave needs.
    pub const ALL: [Protocol; 5] = [
        Protocol::File,
        Protocol::Git,
        Protocol::Http,
        Protocol::Https,
        Protocol::Ssh,
    ];

    /// git's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::File => "file",
            Protocol::Git => "git",
            Protocol::Http => "http",
            Protocol::Https => "https",
            Protocol::Ssh => "ssh",
        }
    }
}

/// A hardened git command under construction.
#[derive(Debug, Clone)]
pub struct Git {
    git_dir: Option<PathBuf>,
    current_dir: Option<PathBuf>,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
    protocols: Vec<Protocol>,
    timeout: Duration,
    http_header: Option<SecretHeader>,
}

/// An HTTP header that carries a credential. Kept out of `Debug`, the command line and every
/// message: only git's environment sees it.
#[derive(Clone)]
struct SecretHeader(String);

impl std::fmt::Debug for SecretHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHeader(<redacted>)")
    }
}

impl Default for Git {
    fn default() -> Self {
        Self::new()
    }
}

impl Git {
    /// A command outside any named repository (`init`, `clone`), with no transport allowed
    /// and the [`DEFAULT_TIMEOUT`].
    pub fn new() -> Self {
        Self {
            git_dir: None,
            current_dir: None,
            args: Vec::new(),
            envs: Vec::new(),
            stdin: None,
            protocols: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            http_header: None,
        }
    }

    /// A command on the repository at `git_dir` (`--git-dir`; a bare repository or a `.git`).
    pub fn with_git_dir(git_dir: impl AsRef<Path>) -> Self {
        Self::new().git_dir(git_dir)
    }

    /// Names the repository (`--git-dir`).
    pub fn git_dir(mut self, git_dir: impl AsRef<Path>) -> Self {
        self.git_dir = Some(git_dir.as_ref().to_owned());
        self
    }

    /// Runs git in `dir` (e.g. a work tree).
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.current_dir = Some(dir.as_ref().to_owned());
        self
    }

    /// Adds arguments; the first one must be the subcommand.
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
    pub fn arg_pair(self, flag: &str, value: impl AsRef<OsStr>) -> Self {
        let mut arg = OsString::from(flag);
        arg.push("=");
        arg.push(value);
        self.args([arg])
    }

    /// Sets an environment variable (e.g. `GIT_INDEX_FILE`, `GIT_AUTHOR_NAME`). The
    /// hardening's own variables are set after these and win.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Feeds `input` on standard input (else it is `/dev/null`).
    pub fn stdin(mut self, input: Vec<u8>) -> Self {
        self.stdin = Some(input);
        self
    }

    /// Lets git use these transports (none by default). Each caller says which it needs and
    /// why; `ext::` and remote helpers stay refused whatever is given.
    pub fn allow_protocols(mut self, protocols: &[Protocol]) -> Self {
        for protocol in protocols {
            if !self.protocols.contains(protocol) {
                self.protocols.push(*protocol);
            }
        }
        self
    }

    /// Sends `header` (`Name: value`, e.g. an `Authorization` carrying a token) with every
    /// HTTP request of this one command, and follows no redirect (so the header never reaches
    /// another host). It goes through git's environment (`GIT_CONFIG_COUNT`), never the command
    /// line (which other users can read) nor a configuration file on disk, and is left out of
    /// `Debug` and every message.
    pub fn http_header(mut self, header: impl Into<String>) -> Self {
        self.http_header = Some(SecretHeader(header.into()));
        self
    }

    /// Kills git (and what it started) after `timeout` instead of [`DEFAULT_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The command line after `git`, for messages (hardening left out).
    pub fn command_line(&self) -> String {
        self.args
            .iter()
            .map(|arg| arg.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The process to start, hardening included.
    fn command(&self) -> Command {
        let mut cmd = Command::new("git");
        let allowed = self
            .protocols
            .iter()
            .map(|protocol| protocol.name())
            .collect::<Vec<_>>()
            .join(":");
        cmd.env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into()),
            )
            .envs(self.envs.iter().map(|(key, value)| (key, value)))
            .env("LC_ALL", "C")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_ATTR_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_NO_REPLACE_OBJECTS", "1")
            .env("GIT_PAGER", "cat")
            // Binds every git process this one starts (and overrides their configuration);
            // empty allows nothing.
            .env("GIT_ALLOW_PROTOCOL", allowed)
            .arg("--no-pager");
        match &self.http_header {
            Some(SecretHeader(header)) => {
                cmd.env("GIT_CONFIG_COUNT", "2")
                    .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                    .env("GIT_CONFIG_VALUE_0", header)
                    .env("GIT_CONFIG_KEY_1", "http.followRedirects")
                    .env("GIT_CONFIG_VALUE_1", "false");
            }
            // A caller's `env` cannot slip configuration in this way.
            None => {
                cmd.env_remove("GIT_CONFIG_COUNT");
            }
        }
        for setting in HARDENING {
            cmd.arg("-c").arg(setting);
        }
        for protocol in &self.protocols {
            cmd.arg("-c")
                .arg(format!("protocol.{}.allow=always", protocol.name()));
        }
        if let Some(dir) = &self.git_dir {
            let mut flag = OsString::from("--git-dir=");
            flag.push(dir);
            cmd.arg(flag);
        }
        if let Some(dir) = &self.current_dir {
            cmd.current_dir(dir);
        }
        cmd.args(&self.args)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that a timeout kills what it started too.
            .process_group(0)
            .kill_on_drop(true);
        cmd
    }

    /// Runs the command and returns its output whatever the exit status.
    pub async fn output(self) -> Result<Output> {
        let command = self.command_line();
        match self.args.first() {
            None => {
                return Err(Error::InvalidCommand {
                    command,
                    reason: "no subcommand",
                });
            }
            Some(first) if first.as_encoded_bytes().starts_with(b"-") => {
                return Err(Error::InvalidCommand {
                    command,
                    reason: "the first argument must be a subcommand, not an option",
                });
            }
            Some(_) => {}
        }
        let spawn_err = |source| Error::Spawn {
            command: command.clone(),
            source,
        };
        let mut child = self.command().spawn().map_err(spawn_err)?;
        // Armed until git has been reaped: then its process group may be gone and its id reused.
        let mut group = GroupGuard(
            child
                .id()
                .and_then(|pid| i32::try_from(pid).ok())
                .and_then(Pid::from_raw),
        );
        // Written from a task so that a large input cannot deadlock against a full stdout pipe.
        let writer = match (child.stdin.take(), self.stdin) {
            (Some(mut pipe), Some(input)) => Some(AbortOnDrop(tokio::spawn(async move {
                let written = pipe.write_all(&input).await;
                drop(pipe);
                written
            }))),
            _ => None,
        };
        let wait = child.wait_with_output();
        tokio::pin!(wait);
        let output = tokio::select! {
            output = &mut wait => {
                group.0 = None;
                output.map_err(spawn_err)?
            }
            () = tokio::time::sleep(self.timeout) => {
                // Killed while `wait` still holds git unreaped, so the group id is still
                // git's; `kill_on_drop` then kills git itself.
                drop(group);
                tracing::warn!(%command, timeout = ?self.timeout, "git timed out; killed");
                return Err(Error::TimedOut {
                    command,
                    after: self.timeout,
                });
            }
        };
        if let Some(mut writer) = writer {
            // A git that exits early closes the pipe; its exit status tells the story then.
            if let Ok(Err(error)) = (&mut writer.0).await {
                tracing::debug!(%error, %command, "git closed its standard input early");
            }
        }
        Ok(Output {
            status: output.status,
            stdout: output.stdout,
            stderr: output.stderr,
            command,
        })
    }

    /// Runs the command; a non-zero exit is an [`Error::Failed`] naming the command and its
    /// stderr.
    pub async fn run(self) -> Result<Output> {
        let output = self.output().await?;
        if output.success() {
            Ok(output)
        } else {
            Err(output.error())
        }
    }

    /// Runs the command and returns its standard output as text, trailing newlines removed.
    pub async fn text(self) -> Result<String> {
        Ok(self.run().await?.text())
    }
}

/// Kills a git's process group when dropped while armed (a timeout, or the caller's future
/// dropped before git was reaped, so the group id cannot have been reused).
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take()
            && let Err(errno) = rustix::process::kill_process_group(pid, Signal::KILL)
        {
            tracing::debug!(%errno, "cannot signal git's process group");
        }
    }
}

/// Aborts the standard input writer if git is abandoned.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a finished git process left behind.
#[derive(Debug, Clone)]
pub struct Output {
    /// How it exited.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
    /// The command line after `git` (hardening left out), for errors.
    pub command: String,
}

impl Output {
    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The exit code, if it exited normally.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Standard output as text without the trailing newlines.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout)
            .trim_end_matches('\n')
            .to_owned()
    }

    /// The last `lines` non-blank lines of stderr, `; `-joined, or the exit status when
    /// stderr is blank: a short message for an error.
    pub fn stderr_tail(&self, lines: usize) -> String {
        let text = String::from_utf8_lossy(&self.stderr);
        let all: Vec<&str> = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .collect();
        let tail = all[all.len().saturating_sub(lines)..].join("; ");
        if tail.is_empty() {
            format!("exited with {}", self.status)
        } else {
            tail
        }
    }

    /// The [`Error::Failed`] this output stands for.
    pub fn error(&self) -> Error {
        Error::Failed {
            command: self.command.clone(),
            status: self.status.to_string(),
            stderr: String::from_utf8_lossy(&self.stderr).trim().to_owned(),
        }
    }
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
