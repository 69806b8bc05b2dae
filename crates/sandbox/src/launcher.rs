//! Launchers: the host-side processes bubblewrap is started through, made ahead of need.
//!
//! A launcher is a fixed bash script (nothing of the repository's) that closes every
//! descriptor the service inherited (bubblewrap passes open descriptors on to the command, and
//! a service started by a supervisor or a test harness may hold pipes it never marked
//! close-on-exec), puts itself into its command's cgroups (so bubblewrap and everything it
//! forks are counted from the first instruction), caps file sizes and core dumps, and then
//! waits on its stdin for the part of bubblewrap's command line that differs per command.
//! Once that arrives it execs bubblewrap with the seccomp program on fd 3 and `/dev/null` as
//! stdin. bash, because `sh` (dash) cannot name descriptors above 9.
//!
//! Starting the shell and joining the cgroups take milliseconds (more on a busy host), so they
//! are done ahead of time: [`Launchers`] keeps a few launchers ready, each in its own fresh
//! group with the configured limits, and refills in the background
//! after each take. A launcher serves one command; its group is removed with it.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, Command};

use crate::cgroup::{Group, Hierarchy, Limits};
use crate::{Error, Result};

/// The launcher. Arguments: `<cgroup files to join...> -- <max file size in KiB> <seccomp
/// program file> <bwrap> <base args...>`; then on stdin the number of further arguments and
/// the arguments, each ended by a NUL byte. A launcher whose stdin ends early exits with 125
/// without starting anything.
const LAUNCHER: &str = r#"for fd in /proc/self/fd/*; do n=${fd##*/}; case $n in 0|1|2) ;; *) { exec {n}>&-; } 2>/dev/null ;; esac; done
while [ "$1" != -- ]; do echo 0 > "$1" || exit 125; shift; done; shift
ulimit -f "$1" && ulimit -c 0 || exit 125; shift
seccomp=$1; shift
IFS= read -r -d '' count || exit 125
case $count in ''|*[!0-9]*) exit 125 ;; esac
extra=()
while [ ${#extra[@]} -lt "$count" ]; do IFS= read -r -d '' arg || exit 125; extra+=("$arg"); done
exec "$@" "${extra[@]}" 3<"$seccomp" </dev/null"#;

/// The launcher's interpreter.
const LAUNCHER_SHELL: &str = "/bin/bash";

/// What every launcher of one sandbox shares.
#[derive(Debug)]
pub(crate) struct LaunchSpec {
    /// The bubblewrap binary.
    pub(crate) bwrap: PathBuf,
    /// The bubblewrap arguments every command shares.
    pub(crate) base: Vec<OsString>,
    /// The seccomp program, written once, read-only, outside every sandbox's view.
    pub(crate) seccomp_file: PathBuf,
    /// Where each command's cgroup is made; `None` when limits are not enforced.
    pub(crate) cgroups: Option<Hierarchy>,
    /// The limits of every command.
    pub(crate) limits: Limits,
}

/// A launcher waiting for its command. Dropped unused, it is killed and its group removed.
#[derive(Debug)]
pub(crate) struct Launcher {
    parts: Option<Parts>,
}

#[derive(Debug)]
struct Parts {
    child: Child,
    stdin: ChildStdin,
    group: Option<Group>,
}

impl Launcher {
    /// Starts a launcher (in a new group when limits are enforced).
    pub(crate) async fn spawn(spec: &Arc<LaunchSpec>) -> Result<Self> {
        let spec = Arc::clone(spec);
        // Off the async threads: making a group and forking a shell both block.
        tokio::task::spawn_blocking(move || Self::spawn_blocking(&spec))
            .await
            .map_err(Error::Task)?
    }

    fn spawn_blocking(spec: &LaunchSpec) -> Result<Self> {
        let group = match &spec.cgroups {
            Some(cgroups) => Some(cgroups.create(&uuid::Uuid::new_v4().to_string(), &spec.limits)?),
            None => None,
        };
        let mut command = Command::new(LAUNCHER_SHELL);
        command.env_clear().args([
            "--noprofile",
            "--norc",
            "-c",
            LAUNCHER,
            "cap-sandbox-launch",
        ]);
        if let Some(group) = &group {
            command.args(group.join_files());
        }
        command
            .arg("--")
            // bash counts `ulimit -f` in KiB.
            .arg(spec.limits.disk_bytes.div_ceil(1024).to_string())
            .arg(&spec.seccomp_file)
            .arg(&spec.bwrap)
            .args(&spec.base)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout can kill bubblewrap and all it forked.
            .process_group(0)
            .kill_on_drop(true);
        let spawned = command.spawn().and_then(|mut child| {
            let stdin = child
                .stdin
                .take()
                .ok_or_else(|| std::io::Error::other("the launcher has no stdin"))?;
            Ok((child, stdin))
        });
        match spawned {
            Ok((child, stdin)) => Ok(Self {
                parts: Some(Parts {
                    child,
                    stdin,
                    group,
                }),
            }),
            Err(source) => {
                if let Some(group) = group {
                    group.remove();
                }
                Err(Error::Spawn {
                    program: LAUNCHER_SHELL.to_owned(),
                    source,
                })
            }
        }
    }

    /// Whether the launcher is still waiting (not killed, nor exited early).
    fn is_waiting(&mut self) -> bool {
        self.parts
            .as_mut()
            .is_some_and(|parts| matches!(parts.child.try_wait(), Ok(None)))
    }

    /// Hands the launcher the rest of bubblewrap's command line; it starts the sandbox.
    pub(crate) async fn start(mut self, extra: &[OsString]) -> Result<(Child, Option<Group>)> {
        let mut payload = Vec::with_capacity(4096);
        payload.extend_from_slice(extra.len().to_string().as_bytes());
        payload.push(0);
        for arg in extra {
            payload.extend_from_slice(arg.as_bytes());
            payload.push(0);
        }
        let failed = |source| Error::Spawn {
            program: LAUNCHER_SHELL.to_owned(),
            source,
        };
        let Some(parts) = self.parts.as_mut() else {
            return Err(failed(std::io::Error::other("the launcher was used")));
        };
        parts.stdin.write_all(&payload).await.map_err(failed)?;
        let Some(parts) = self.parts.take() else {
            return Err(failed(std::io::Error::other("the launcher was used")));
        };
        // Closing stdin ends the arguments.
        drop(parts.stdin);
        Ok((parts.child, parts.group))
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        let Some(mut parts) = self.parts.take() else {
            return;
        };
        let _ = parts.child.start_kill();
        if let Some(group) = parts.group.take() {
            // Synchronous (a few milliseconds): a launcher is dropped unused only when the
            // sandbox goes away or the launcher died, and its group must not outlive it.
            group.kill_all();
            group.remove();
        }
    }
}

/// A few launchers kept ready, refilled in the background.
#[derive(Debug)]
pub(crate) struct Launchers {
    spec: Arc<LaunchSpec>,
    /// How many to keep ready; 0 makes each launcher when needed.
    size: usize,
    pool: Mutex<Pool>,
}

#[derive(Debug, Default)]
struct Pool {
    ready: Vec<Launcher>,
    /// Launchers being made.
    filling: usize,
}

impl Launchers {
    /// A pool of `size` launchers of `spec`, empty until [`Launchers::refill`].
    pub(crate) fn new(spec: LaunchSpec, size: usize) -> Arc<Self> {
        Arc::new(Self {
            spec: Arc::new(spec),
            size,
            pool: Mutex::default(),
        })
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Pool> {
        // The pool stays consistent whatever panicked while holding it.
        self.pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A launcher: a ready one when there is one, else a new one.
    pub(crate) async fn take(self: &Arc<Self>) -> Result<Launcher> {
        let ready = loop {
            let popped = self.pool().ready.pop();
            match popped {
                // A launcher that died waiting (killed from outside) is dropped, not used.
                Some(mut launcher) => {
                    if launcher.is_waiting() {
                        break Some(launcher);
                    }
                }
                None => break None,
            }
        };
        self.refill();
        match ready {
            Some(launcher) => Ok(launcher),
            None => Launcher::spawn(&self.spec).await,
        }
    }

    /// A launcher made now, outside the pool (the readiness probe).
    pub(crate) async fn fresh(&self) -> Result<Launcher> {
        Launcher::spawn(&self.spec).await
    }

    /// Makes launchers in the background until `size` are ready or being made.
    pub(crate) fn refill(self: &Arc<Self>) {
        let missing = {
            let mut pool = self.pool();
            let missing = self.size.saturating_sub(pool.ready.len() + pool.filling);
            pool.filling += missing;
            missing
        };
        if missing == 0 {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.pool().filling -= missing;
            return;
        };
        let launchers = Arc::clone(self);
        runtime.spawn(async move {
            // One after another: refilling never takes more than one core from the commands.
            for _ in 0..missing {
                let made = Launcher::spawn(&launchers.spec).await;
                let mut pool = launchers.pool();
                pool.filling -= 1;
                match made {
                    Ok(launcher) => pool.ready.push(launcher),
                    Err(error) => {
                        tracing::warn!(error = %error.chain(), "cannot prepare a sandbox launcher");
                    }
                }
            }
        });
    }
}

impl Drop for Launchers {
    fn drop(&mut self) {
        // Each unused launcher is killed and its group removed; then the instance's parent
        // groups go (unless a command still runs, whose group is removed when it ends).
        self.pool().ready.clear();
        if let Some(cgroups) = &self.spec.cgroups {
            cgroups.remove_instance();
        }
    }
}

#[cfg(test)]
#[path = "launcher_tests.rs"]
mod tests;
