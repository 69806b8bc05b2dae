//! Running commands inside bubblewrap.
//!
//! Each command gets fresh namespaces of every kind (no network: the network namespace has
//! only its own loopback), no capabilities, the host's system directories read-only, the
//! checkout read-only at `/repo`, the workspace writable at `/workspace`, a private `/tmp`,
//! and a clean environment. bubblewrap's own init is PID 1 of the command's PID namespace, so
//! when it dies the kernel kills everything the command left behind.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustix::process::{Pid, PidfdFlags, Signal};
use tokio::io::AsyncReadExt;
use tokio::process::Child;
use tokio::sync::{mpsc, watch};

use crate::cgroup::{Group, LimitHit, Limits};
use crate::launcher::{Launcher, Launchers};
use crate::{Error, Result};

/// `PATH` inside the sandbox.
const SANDBOX_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long the readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for a killed sandbox to be gone before giving up on it.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// How often the workspace's size is checked against the disk limit.
const DISK_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Read size for the command's output; a chunk is at most this large.
const CHUNK_BYTES: usize = 32 * 1024;

/// Top-level host directories bound read-only (or recreated as the same symlink).
const SYSTEM_DIRS: [&str; 6] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Entries of `/etc` the sandbox sees: name resolution, the dynamic linker, certificates,
/// Debian's alternatives (`/usr/bin/*` symlinks point there), time zone, Debian Maven's
/// launcher configuration and logging (`/usr/share/maven/{bin/m2.conf,conf}` point there).
/// Nothing else of the host's configuration (no shadow files, no credentials, not Maven's
/// `settings.xml`, which may hold repository passwords) is visible.
const ETC_ENTRIES: [&str; 16] = [
    "passwd",
    "group",
    "hosts",
    "nsswitch.conf",
    "host.conf",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "ssl",
    "ca-certificates",
    "alternatives",
    "localtime",
    "timezone",
    "mime.types",
    "maven/m2.conf",
    "maven/logging",
];

/// Prefixes of `/etc` entries that language runtimes read (e.g. Debian's `python3.11/`).
const ETC_PREFIXES: [&str; 2] = ["python", "java"];

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    /// Run by `/bin/sh -c`.
    pub command: String,
    /// Working directory relative to `/workspace`; empty means `/workspace`.
    pub cwd: String,
    /// Hard timeout; `None` means the sandbox default.
    pub timeout: Option<Duration>,
    /// Extra environment variables; names must match `[A-Z_][A-Z0-9_]*`.
    pub env: BTreeMap<String, String>,
}

/// One event of a running command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    /// Bytes the command wrote to stdout.
    Stdout(Bytes),
    /// Bytes the command wrote to stderr.
    Stderr(Bytes),
    /// The command ended; always the last event.
    Exit(ExitInfo),
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInfo {
    /// The exit code; -1 when killed by a signal or the timeout.
    pub exit_code: i32,
    /// The timeout killed it.
    pub timed_out: bool,
    /// From start to exit.
    pub duration: Duration,
    /// Output beyond the cap was dropped.
    pub output_truncated: bool,
    /// The resource limits the command ran into (each also noted on its stderr).
    pub limits_hit: Vec<LimitHit>,
}

/// The events of a running command, ending with [`ExecEvent::Exit`]. Dropping the stream
/// kills the command.
#[derive(Debug)]
pub struct ExecStream {
    rx: mpsc::UnboundedReceiver<ExecEvent>,
}

impl futures::Stream for ExecStream {
    type Item = ExecEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ExecEvent>> {
        self.rx.poll_recv(cx)
    }
}

/// The bubblewrap arguments every sandbox shares: namespaces and system directories.
///
/// Each one is a decision (the attack suite in `tests/suite/attacks.rs` checks them):
/// - `--unshare-all` plus `--unshare-user`: new user, PID, IPC, UTS, cgroup and network
///   namespaces; the network namespace has only its own loopback, so nothing is reachable.
///   The user namespace is explicit so a service running as root is not root inside.
/// - `--uid`/`--gid 65534`: the command runs as `nobody`, not as (capability-less) root.
/// - `--disable-userns`: no nested user namespace (the seccomp filter refuses it again).
/// - `--cap-drop ALL`: no capability is left, not even inside the new user namespace.
/// - `--die-with-parent`: the sandbox dies with the service; `--new-session`: no controlling
///   terminal to inject keystrokes into (`TIOCSTI`, also refused by seccomp).
/// - `--seccomp 3`: the filter of [`crate::seccomp`], read from fd 3; bubblewrap sets
///   `no_new_privs` before loading it, so no setuid binary regains privileges.
/// - Only `/usr`, the system library directories and an allow-list of `/etc` entries are
///   visible, read-only; a fresh `/proc` of the new PID namespace, a minimal `/dev`, and a
///   private `/tmp` capped at the disk limit. `/sys`, `/home`, `/root`, `/var` and the
///   session root are not there at all.
pub(crate) fn base_args(limits: &Limits) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--unshare-all",
        "--unshare-user",
        "--uid",
        "65534",
        "--gid",
        "65534",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--seccomp",
        "3",
        "--hostname",
        "sandbox",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    for dir in SYSTEM_DIRS {
        let host = Path::new("/").join(dir);
        let Ok(meta) = host.symlink_metadata() else {
            continue;
        };
        if meta.is_symlink() {
            if let Ok(target) = std::fs::read_link(&host) {
                args.extend([
                    "--symlink".into(),
                    target.into_os_string(),
                    host.into_os_string(),
                ]);
            }
        } else if meta.is_dir() {
            args.extend([
                "--ro-bind".into(),
                host.clone().into_os_string(),
                host.into_os_string(),
            ]);
        }
    }
    args.extend(["--dir".into(), "/etc".into()]);
    let mut etc: Vec<String> = ETC_ENTRIES.iter().map(|name| (*name).to_owned()).collect();
    if let Ok(entries) = std::fs::read_dir("/etc") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if ETC_PREFIXES.iter().any(|prefix| name.starts_with(prefix)) {
                etc.push(name);
            }
        }
    }
    for name in etc {
        let path = Path::new("/etc").join(name);
        args.extend([
            "--ro-bind-try".into(),
            path.clone().into_os_string(),
            path.into_os_string(),
        ]);
    }
    args.extend(
        ["--proc", "/proc", "--dev", "/dev", "--size"]
            .into_iter()
            .map(OsString::from),
    );
    args.extend([
        limits.disk_bytes.to_string().into(),
        "--tmpfs".into(),
        "/tmp".into(),
    ]);
    args
}

/// Runs `/bin/sh -c true` in a sandbox like the real ones, to find out at startup whether
/// bubblewrap works on this host.
pub(crate) async fn probe(bwrap: &Path, launchers: &Launchers) -> Result<()> {
    let unavailable = |reason: String| Error::BubblewrapUnavailable {
        bwrap: bwrap.to_owned(),
        reason,
    };
    if !bwrap.exists() {
        return Err(unavailable(
            "not found (install bubblewrap, e.g. `apt-get install bubblewrap`)".into(),
        ));
    }
    let command: Vec<OsString> = ["--", "/bin/sh", "-c", "true"].map(OsString::from).into();
    let started = match launchers.fresh().await {
        Ok(launcher) => launcher.start(&command).await,
        Err(error) => Err(error),
    };
    let (child, group) = match started {
        Ok(started) => started,
        Err(error) => return Err(unavailable(format!("cannot be started: {}", error.chain()))),
    };
    let output = tokio::time::timeout(PROBE_TIMEOUT, child.wait_with_output()).await;
    if let Some(group) = group {
        let _ = tokio::task::spawn_blocking(move || {
            group.kill_all();
            group.remove();
        })
        .await;
    }
    let output = match output {
        Ok(Ok(output)) => output,
        Ok(Err(error)) => return Err(unavailable(format!("cannot be waited for: {error}"))),
        Err(_) => {
            return Err(unavailable(format!(
                "a trivial sandbox did not finish within {PROBE_TIMEOUT:?}"
            )));
        }
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        let reason = if stderr.is_empty() {
            format!("a trivial sandbox exited with {}", output.status)
        } else {
            stderr
        };
        return Err(unavailable(reason));
    }
    Ok(())
}

/// Checks the caller's part of an [`ExecSpec`]: command and environment.
pub(crate) fn validate(spec: &ExecSpec) -> Result<()> {
    if spec.command.trim().is_empty() {
        return Err(Error::InvalidCommand { reason: "is empty" });
    }
    if spec.command.contains('\0') {
        return Err(Error::InvalidCommand {
            reason: "contains a NUL byte",
        });
    }
    for (name, value) in &spec.env {
        let invalid = |reason| Error::InvalidEnv {
            name: name.clone(),
            reason,
        };
        let mut chars = name.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_uppercase() || c == '_');
        if !first_ok || !chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') {
            return Err(invalid("names must match [A-Z_][A-Z0-9_]*"));
        }
        if value.contains('\0') {
            return Err(invalid("the value contains a NUL byte"));
        }
    }
    Ok(())
}

/// Everything needed to start one command.
pub(crate) struct Launch<'a> {
    /// The launcher it starts through (holding its cgroup, removed when it ends).
    pub(crate) launcher: Launcher,
    pub(crate) source: PathBuf,
    pub(crate) workspace: PathBuf,
    /// Working directory below `/workspace`, already resolved.
    pub(crate) cwd: String,
    pub(crate) spec: ExecSpec,
    pub(crate) timeout: Duration,
    pub(crate) output_cap: usize,
    /// Becomes `true` when the session is destroyed.
    pub(crate) cancel: watch::Receiver<bool>,
    pub(crate) limits: &'a Limits,
    /// The workspace is a plain directory whose size is polled (else its own filesystem).
    pub(crate) poll_disk: bool,
    /// Between SIGTERM and SIGKILL on a timeout.
    pub(crate) term_grace: Duration,
    /// The egress proxy's socket and the relay, when egress is on.
    pub(crate) egress: Option<&'a EgressPaths>,
}

/// Host paths of the egress proxy's socket and of the relay binary.
#[derive(Debug, Clone)]
pub(crate) struct EgressPaths {
    pub(crate) socket: PathBuf,
    pub(crate) relay: PathBuf,
}

/// Where the relay and the proxy's socket appear inside a sandbox.
const RELAY_IN_SANDBOX: &str = "/.cap/relay";
const SOCKET_IN_SANDBOX: &str = "/.cap/egress.sock";

/// Starts the command and returns its events.
pub(crate) async fn spawn(launch: Launch<'_>) -> Result<ExecStream> {
    let chdir = if launch.cwd.is_empty() {
        "/workspace".to_owned()
    } else {
        format!("/workspace/{}", launch.cwd)
    };
    let mut args: Vec<OsString> = vec![
        "--ro-bind".into(),
        launch.source.clone().into(),
        "/repo".into(),
        "--bind".into(),
        launch.workspace.clone().into(),
        "/workspace".into(),
        "--chdir".into(),
        chdir.into(),
        "--clearenv".into(),
    ];
    let mut env = BTreeMap::from([
        ("PATH".to_owned(), SANDBOX_PATH.to_owned()),
        ("HOME".to_owned(), "/tmp".to_owned()),
        ("LANG".to_owned(), "C.UTF-8".to_owned()),
        // Bytecode caches would show up as created files in the workspace's changes.
        ("PYTHONDONTWRITEBYTECODE".to_owned(), "1".to_owned()),
    ]);
    if let Some(egress) = launch.egress {
        // Read-only: the socket can be connected to, not replaced or re-permissioned.
        args.extend([
            "--ro-bind".into(),
            egress.relay.clone().into(),
            RELAY_IN_SANDBOX.into(),
            "--ro-bind".into(),
            egress.socket.clone().into(),
            SOCKET_IN_SANDBOX.into(),
        ]);
        let proxy = format!("http://127.0.0.1:{}", crate::EGRESS_PROXY_PORT);
        for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
            env.insert(name.to_owned(), proxy.clone());
        }
    }
    env.extend(launch.spec.env.clone());
    for (name, value) in env {
        args.extend(["--setenv".into(), name.into(), value.into()]);
    }
    args.push("--".into());
    if launch.egress.is_some() {
        args.extend([
            RELAY_IN_SANDBOX.into(),
            SOCKET_IN_SANDBOX.into(),
            crate::EGRESS_PROXY_PORT.to_string().into(),
        ]);
    }
    args.extend([
        "/bin/sh".into(),
        "-c".into(),
        launch.spec.command.clone().into(),
    ]);
    let started = Instant::now();
    let (child, group) = launch.launcher.start(&args).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    let run = Run {
        tx,
        started,
        timeout: launch.timeout,
        cap: launch.output_cap,
        emitted: 0,
        truncated: false,
        group,
        workspace: launch.workspace.clone(),
        disk_exceeded: false,
        poll_disk: launch.poll_disk,
        limits: launch.limits.clone(),
        term_grace: launch.term_grace,
    };
    tokio::spawn(run.supervise(child, launch.cancel));
    Ok(ExecStream { rx })
}

struct Run {
    // Unbounded, yet bounded in memory: at most `cap` bytes of output are ever queued.
    tx: mpsc::UnboundedSender<ExecEvent>,
    started: Instant,
    timeout: Duration,
    cap: usize,
    emitted: usize,
    truncated: bool,
    group: Option<Group>,
    /// Watched for the disk limit.
    workspace: PathBuf,
    /// The workspace outgrew the disk limit and the command was killed (poll mode).
    disk_exceeded: bool,
    /// The workspace's size is polled; otherwise it is its own filesystem, full at the limit.
    poll_disk: bool,
    limits: Limits,
    term_grace: Duration,
}

impl Run {
    async fn supervise(mut self, child: Child, cancel: watch::Receiver<bool>) {
        let exit = self.watch(child, cancel).await;
        // Whatever happened, nothing of the command may outlive it: kill what is left in
        // its cgroup (normally nothing: the PID namespace died with its init) and read which
        // limits it hit. The empty group is removed after the exit is reported.
        let (group, limits_hit) = match self.group.take() {
            Some(group) => tokio::task::spawn_blocking(move || {
                group.kill_all();
                let hits = group.limit_hits();
                (Some(group), hits)
            })
            .await
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "cannot clean up the sandbox's cgroup");
                (None, Vec::new())
            }),
            None => (None, Vec::new()),
        };
        if let Some(exit) = exit {
            let full = !self.poll_disk && {
                let workspace = self.workspace.clone();
                tokio::task::spawn_blocking(move || crate::disk::is_full(&workspace))
                    .await
                    .unwrap_or(false)
            };
            self.report(exit, limits_hit, full);
        }
        if let Some(group) = group {
            let _ = tokio::task::spawn_blocking(move || group.remove()).await;
        }
    }

    /// Sends the notes on the limits hit, then the exit.
    fn report(&self, mut exit: ExitInfo, mut limits_hit: Vec<LimitHit>, disk_full: bool) {
        if self.disk_exceeded || disk_full {
            limits_hit.push(LimitHit::Disk);
        }
        for hit in &limits_hit {
            let note = match hit {
                LimitHit::Memory => format!(
                    "sandbox: the memory limit ({} bytes) was reached; the kernel killed a process\n",
                    self.limits.memory_bytes
                ),
                LimitHit::Disk if self.disk_exceeded => format!(
                    "sandbox: the disk limit ({} bytes) was reached in /workspace; the command was killed\n",
                    self.limits.disk_bytes
                ),
                LimitHit::Disk => format!(
                    "sandbox: the disk limit ({} bytes) was reached in /workspace; writes failed with \"no space left on device\"\n",
                    self.limits.disk_bytes
                ),
                LimitHit::Processes => format!(
                    "sandbox: the process limit ({}) was reached; a fork was refused\n",
                    self.limits.max_processes
                ),
            };
            let _ = self.tx.send(ExecEvent::Stderr(Bytes::from(note)));
        }
        exit.limits_hit = limits_hit;
        let _ = self.tx.send(ExecEvent::Exit(exit));
    }

    /// Streams the output until the command is over; `None` when the caller went away.
    async fn watch(
        &mut self,
        mut child: Child,
        mut cancel: watch::Receiver<bool>,
    ) -> Option<ExitInfo> {
        let pid = child.id();
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let (mut out_buf, mut err_buf) = (vec![0u8; CHUNK_BYTES], vec![0u8; CHUNK_BYTES]);
        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        let mut status = None;
        let mut timed_out = false;
        // Set once the command has been asked to stop (SIGTERM): when to kill it.
        let mut terminating: Option<Pin<Box<tokio::time::Sleep>>> = None;
        // Set once the sandbox has been killed: how long to still wait for its pipes.
        let mut grace: Option<Pin<Box<tokio::time::Sleep>>> = None;
        let mut cancelled = *cancel.borrow();
        // The workspace is a host directory: its size is checked from outside, now and then.
        // The first check after one interval: a command that ends sooner pays nothing.
        let mut disk_tick = tokio::time::interval_at(
            tokio::time::Instant::now() + DISK_CHECK_INTERVAL,
            DISK_CHECK_INTERVAL,
        );
        disk_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if status.is_some() && stdout.is_none() && stderr.is_none() {
                break;
            }
            if cancelled && grace.is_none() {
                self.kill(pid, status.is_some()).await;
                grace = Some(Box::pin(tokio::time::sleep(KILL_GRACE)));
            }
            tokio::select! {
                read = read_some(&mut stdout, &mut out_buf) => match read {
                    Ok(0) | Err(_) => stdout = None,
                    Ok(n) => self.emit(&out_buf[..n], ExecEvent::Stdout),
                },
                read = read_some(&mut stderr, &mut err_buf) => match read {
                    Ok(0) | Err(_) => stderr = None,
                    Ok(n) => self.emit(&err_buf[..n], ExecEvent::Stderr),
                },
                exit = child.wait(), if status.is_none() => {
                    status = Some(exit);
                }
                () = &mut deadline, if grace.is_none() && terminating.is_none() => {
                    timed_out = true;
                    match (&self.group, status.is_some()) {
                        (Some(group), false) if !self.term_grace.is_zero() => {
                            tracing::info!(?pid, timeout = ?self.timeout, "command timed out; sending SIGTERM");
                            // Every process of the command but bubblewrap itself (whose death
                            // would kill the rest at once).
                            let except: Vec<i32> = pid.and_then(|pid| i32::try_from(pid).ok()).into_iter().collect();
                            group.signal_all(Signal::TERM, &except);
                            terminating = Some(Box::pin(tokio::time::sleep(self.term_grace)));
                        }
                        _ => {
                            tracing::info!(?pid, timeout = ?self.timeout, "command timed out; killing the sandbox");
                            self.kill(pid, status.is_some()).await;
                            grace = Some(Box::pin(tokio::time::sleep(KILL_GRACE)));
                        }
                    }
                }
                () = async { match terminating.as_mut() { Some(sleep) => sleep.await, None => std::future::pending().await } }, if grace.is_none() => {
                    tracing::info!(?pid, "command still running after SIGTERM; killing the sandbox");
                    self.kill(pid, status.is_some()).await;
                    grace = Some(Box::pin(tokio::time::sleep(KILL_GRACE)));
                }
                _ = disk_tick.tick(), if grace.is_none() && self.poll_disk => {
                    let workspace = self.workspace.clone();
                    let used = tokio::task::spawn_blocking(move || disk_usage(&workspace)).await.unwrap_or(0);
                    if used > self.limits.disk_bytes {
                        tracing::info!(?pid, used, limit = self.limits.disk_bytes, "workspace over the disk limit; killing the sandbox");
                        self.disk_exceeded = true;
                        self.kill(pid, status.is_some()).await;
                        grace = Some(Box::pin(tokio::time::sleep(KILL_GRACE)));
                    }
                }
                changed = cancel.changed(), if !cancelled => {
                    // A dropped sender (the sandbox itself going away) counts as a cancel.
                    cancelled = changed.is_err() || *cancel.borrow();
                }
                () = self.tx.closed() => {
                    tracing::debug!(?pid, "caller went away; killing the sandbox");
                    self.kill(pid, status.is_some()).await;
                    return None;
                }
                () = async { match grace.as_mut() { Some(sleep) => sleep.await, None => std::future::pending().await } } => {
                    tracing::warn!(?pid, "sandbox output still open after kill; giving up on it");
                    break;
                }
            }
        }
        let status = match status {
            Some(status) => status,
            None => child.wait().await,
        };
        let exit_code = match status {
            Ok(status) if !timed_out && !cancelled && !self.disk_exceeded => {
                status.code().unwrap_or(-1)
            }
            Ok(_) => -1,
            Err(error) => {
                tracing::error!(%error, "cannot wait for bubblewrap");
                -1
            }
        };
        Some(ExitInfo {
            exit_code,
            timed_out,
            duration: self.started.elapsed(),
            output_truncated: self.truncated,
            limits_hit: Vec::new(),
        })
    }

    /// Queues a chunk, keeping the total under the cap.
    fn emit(&mut self, chunk: &[u8], wrap: fn(Bytes) -> ExecEvent) {
        if self.truncated {
            return;
        }
        let room = self.cap - self.emitted;
        let kept = if chunk.len() > room {
            self.truncated = true;
            &chunk[..room]
        } else {
            chunk
        };
        if !kept.is_empty() {
            self.emitted += kept.len();
            let _ = self.tx.send(wrap(Bytes::copy_from_slice(kept)));
        }
    }

    /// Kills the sandbox: its init with SIGKILL (the kernel then kills the whole PID
    /// namespace) and, once the init is gone, bubblewrap's process group. The init goes
    /// first so that bubblewrap is still there to reap it (killed first, it would leave the
    /// init to whatever reaps orphans), and the wait means nothing of the command outlives
    /// this call.
    async fn kill(&self, pid: Option<u32>, reaped: bool) {
        // Once bubblewrap has been reaped its pid may belong to someone else; its init died
        // before it (bubblewrap waits for it).
        let Some(pid) = pid.filter(|_| !reaped) else {
            return;
        };
        let Some(raw) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
            return;
        };
        if let Some(init) = sandbox_init(raw) {
            match rustix::process::pidfd_send_signal(&init, Signal::KILL) {
                Ok(()) => wait_gone(init).await,
                Err(errno) => tracing::debug!(%errno, "cannot signal the sandbox init"),
            }
        }
        // bubblewrap is our unreaped child, so its pid (and group) cannot have been reused.
        if let Err(errno) = rustix::process::kill_process_group(raw, Signal::KILL) {
            tracing::debug!(%errno, "cannot signal bubblewrap's process group");
        }
    }
}

/// The bytes a directory tree takes on disk (allocated blocks, so sparse files count for
/// what they use). Symlinks are not followed; unreadable entries are skipped.
fn disk_usage(root: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            total = total.saturating_add(meta.blocks().saturating_mul(512));
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    total
}

async fn read_some(
    pipe: &mut Option<impl tokio::io::AsyncRead + Unpin>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match pipe {
        Some(pipe) => pipe.read(buf).await,
        None => std::future::pending().await,
    }
}

/// A pidfd for the sandbox's init: bubblewrap's only child.
fn sandbox_init(bwrap: Pid) -> Option<OwnedFd> {
    let raw = bwrap.as_raw_nonzero().get();
    let children = std::fs::read_to_string(format!("/proc/{raw}/task/{raw}/children")).ok()?;
    let child = children
        .split_whitespace()
        .next()?
        .parse::<i32>()
        .ok()
        .and_then(Pid::from_raw)?;
    let pidfd = rustix::process::pidfd_open(child, PidfdFlags::NONBLOCK).ok()?;
    // The pidfd pins the process; make sure it is still bubblewrap's child and not a process
    // that reused the pid after the init exited.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.as_raw_nonzero())).ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    let ppid: i32 = after_name.split_whitespace().nth(1)?.parse().ok()?;
    (ppid == raw).then_some(pidfd)
}

/// Waits until the process behind `pidfd` has exited (bounded by [`KILL_GRACE`]).
async fn wait_gone(pidfd: OwnedFd) {
    // A pidfd becomes readable when its process has exited; for a PID namespace's init that
    // is after every other process of the namespace is gone. Polled on a blocking thread:
    // this happens only after a kill, and keeps the crate free of `unsafe` fd registration.
    let waited = tokio::task::spawn_blocking(move || {
        let timeout = rustix::event::Timespec {
            tv_sec: i64::try_from(KILL_GRACE.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: 0,
        };
        let mut fds = [rustix::event::PollFd::new(
            &pidfd,
            rustix::event::PollFlags::IN,
        )];
        loop {
            match rustix::event::poll(&mut fds, Some(&timeout)) {
                Err(rustix::io::Errno::INTR) => continue,
                other => return other,
            }
        }
    })
    .await;
    match waited {
        Ok(Ok(0)) => tracing::warn!("sandbox init still alive after SIGKILL"),
        Ok(Ok(_)) => {}
        Ok(Err(errno)) => tracing::warn!(%errno, "cannot wait for the sandbox init"),
        Err(error) => tracing::warn!(%error, "cannot wait for the sandbox init"),
    }
}
