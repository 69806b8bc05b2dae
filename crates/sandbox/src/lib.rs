//! Workspaces and isolated command execution: the local bubblewrap backend.
//!
//! A session is a checkout of one commit of a repository, made by hardened host-side git once
//! per (repository, commit) and shared read-only by the sessions of that commit
//! (`<root>/.cache`, linked as `<root>/<id>/source`, mounted read-only at `/repo`), and a
//! writable copy of its tree without `.git` (`<root>/<id>/workspace`, mounted at
//! `/workspace`). Commands run inside
//! bubblewrap as an unprivileged user in fresh namespaces, under a seccomp filter
//! ([`denied_syscalls`]), in a cgroup with CPU, memory and process limits ([`Limits`]), with
//! file-size, `/tmp` and workspace-size limits, and a hard timeout (SIGTERM, then SIGKILL of
//! the whole tree). There is no network, unless an [`EgressConfig`] lets an allow-list of
//! registries through the sandbox's own [`EgressProxy`]. Files are read and written from the
//! host with every path confined to the workspace by the kernel (`openat2`
//! `RESOLVE_BENEATH`).
//!
//! ```no_run
//! # async fn demo() -> cap_sandbox::Result<()> {
//! use cap_sandbox::{ExecSpec, Sandbox, SandboxConfig};
//! let sandbox = Sandbox::new(SandboxConfig::new("/var/lib/cap/sandbox")).await?;
//! let session = sandbox.create_session("/srv/forge/demo.git", "0123abc", "").await?;
//! let id = session.session_id.to_string();
//! let events = sandbox.exec(&id, ExecSpec { command: "pytest -q".into(), ..Default::default() }).await?;
//! # let _ = events; Ok(()) }
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::fs::OFlags;
use tokio::sync::watch;
use uuid::Uuid;

mod cgroup;
mod changes;
mod checkout;
mod disk;
mod egress;
mod error;
mod exec;
mod image;
mod launcher;
mod paths;
mod search;
mod seccomp;
mod session;
mod workspace;

pub use cgroup::{LimitHit, Limits};
pub use disk::DiskLimit;
pub use egress::{EgressPolicy, EgressProxy, Refusal, RefusalReason, is_public};
pub use error::{Error, ErrorKind, Result};
pub use exec::{ExecEvent, ExecSpec, ExecStream, ExitInfo};
pub use image::{BASE_IMAGE, KNOWN_IMAGES, detect_image, resolve_image};
pub use seccomp::denied_syscalls;
// The engines the Kubernetes backend runs on the host, on checkouts and on copies of a Pod's
// workspace, so that both backends behave alike.
pub use changes::changes as workspace_changes;
pub use checkout::Checkouts;
pub use search::search as search_workspace;
pub use session::{validate_commit_sha, validate_repo_url};
pub use workspace::Workspace;

use paths::RelPath;

/// The largest file `read_file` returns (gRPC messages are limited to a few MiB by default).
pub const MAX_READ_BYTES: u64 = 3 * 1024 * 1024;
/// The most entries `list_directory` returns.
pub const MAX_LIST_ENTRIES: usize = 5000;
/// The most matches `search_files` returns.
pub const MAX_SEARCH_MATCHES: usize = 1000;

/// How the sandbox runs.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Directory the sessions live under (created if missing).
    pub root: PathBuf,
    /// The bubblewrap binary.
    pub bwrap: PathBuf,
    /// Timeout of a command that names none.
    pub default_timeout: Duration,
    /// Largest timeout a command may ask for.
    pub max_timeout: Duration,
    /// Output (stdout and stderr together) kept per command; the rest is dropped.
    pub output_cap_bytes: usize,
    /// CPU, memory, process and disk limits of each command.
    pub limits: Limits,
    /// The cgroup root (`/sys/fs/cgroup`, v1 or v2) the limits are enforced through;
    /// `None` runs without CPU, memory and process limits (for hosts where the service is
    /// not root; the disk limit still holds).
    pub cgroup_root: Option<PathBuf>,
    /// On a timeout, how long the command has between SIGTERM and SIGKILL.
    pub term_grace: Duration,
    /// The way out to package registries; `None` (the default) is no network at all.
    pub egress: Option<EgressConfig>,
    /// Sandbox launchers kept ready (each already in its cgroup), so a command starts
    /// without waiting for a shell and a cgroup join; 0 makes each when needed.
    pub warm_launchers: usize,
    /// How the disk limit is enforced: each workspace on its own filesystem (hard), or its
    /// size polled (soft).
    pub disk_limit: DiskLimit,
    /// Workspace filesystems kept ready in loop mode (at least one).
    pub warm_volumes: usize,
}

/// Egress through the sandbox's proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressConfig {
    /// What may pass.
    pub policy: EgressPolicy,
    /// The `cap-sandbox-relay` binary, run inside each sandbox in front of the command.
    pub relay: PathBuf,
}

/// The port the relay listens on inside a sandbox (`HTTPS_PROXY=http://127.0.0.1:3128`).
pub const EGRESS_PROXY_PORT: u16 = 3128;

impl SandboxConfig {
    /// The defaults (`/usr/bin/bwrap`, 15 min default and 1 h maximum timeout, 1 MiB of
    /// output, [`Limits::default`] enforced through `/sys/fs/cgroup`, 5 s between SIGTERM and
    /// SIGKILL, 2 warm launchers, the disk limit on loop filesystems when usable with 4 kept
    /// ready) with sessions under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            bwrap: PathBuf::from("/usr/bin/bwrap"),
            default_timeout: Duration::from_secs(15 * 60),
            max_timeout: Duration::from_secs(60 * 60),
            output_cap_bytes: 1024 * 1024,
            limits: Limits::default(),
            cgroup_root: Some(PathBuf::from("/sys/fs/cgroup")),
            term_grace: Duration::from_secs(5),
            egress: None,
            warm_launchers: 2,
            disk_limit: DiskLimit::Auto,
            warm_volumes: 4,
        }
    }
}

/// A session just created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Its id.
    pub session_id: Uuid,
    /// The image it was created for (given, or detected from the repository).
    pub image: String,
    /// The full sha of the commit checked out.
    pub commit_sha: String,
}

/// A file to write or delete, relative to the workspace root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// `/`-separated relative path.
    pub path: String,
    /// The complete new content; `None` deletes the file.
    pub content: Option<Vec<u8>>,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Path relative to the workspace root.
    pub path: String,
    /// A directory (symlinks are never directories here: they are not followed).
    pub is_dir: bool,
    /// Size in bytes (0 for directories).
    pub size: u64,
}

/// A directory listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// The entries, sorted by path.
    pub entries: Vec<DirEntry>,
    /// More entries existed than [`MAX_LIST_ENTRIES`].
    pub truncated: bool,
}

/// One line matching a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchMatch {
    /// Path relative to the workspace root.
    pub path: String,
    /// 1-based line number.
    pub line_number: u32,
    /// The line (cut to 500 characters).
    pub line: String,
}

/// The result of a search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchResult {
    /// Matches, by path then line.
    pub matches: Vec<SearchMatch>,
    /// More matches existed than [`MAX_SEARCH_MATCHES`].
    pub truncated: bool,
}

/// The workspace's changes against its checkout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Created, modified (content) and deleted (`None`) files, sorted by path.
    pub changes: Vec<FileChange>,
    /// Unified diff of all of them (`a/`, `b/` headers; binary files noted, not diffed).
    pub diff: String,
}

/// The local sandbox: sessions on disk, commands in bubblewrap. Cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    config: SandboxConfig,
    /// Canonical session root.
    root: PathBuf,
    /// The checkouts sessions are made from.
    checkouts: checkout::Checkouts,
    /// How the workspaces' disk limit is enforced.
    disk: disk::Disk,
    /// The launchers commands start through (their cgroups, seccomp and base arguments).
    launchers: Arc<launcher::Launchers>,
    /// The egress proxy, its socket and the relay, when egress is on.
    egress: Option<(EgressProxy, exec::EgressPaths)>,
    /// Per session, flipped to `true` when it is destroyed so running commands are killed.
    cancels: Mutex<HashMap<Uuid, watch::Sender<bool>>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Checks the configuration, prepares the session root and makes sure bubblewrap can
    /// build a sandbox on this host.
    pub async fn new(config: SandboxConfig) -> Result<Self> {
        if config.default_timeout.is_zero() || config.default_timeout > config.max_timeout {
            return Err(Error::InvalidConfig(format!(
                "the default timeout {:?} must be more than zero and at most the maximum {:?}",
                config.default_timeout, config.max_timeout
            )));
        }
        if config.output_cap_bytes == 0 {
            return Err(Error::InvalidConfig(
                "the output cap must be more than zero bytes".into(),
            ));
        }
        std::fs::create_dir_all(&config.root).map_err(Error::io("create", &config.root))?;
        let root = config
            .root
            .canonicalize()
            .map_err(Error::io("resolve", &config.root))?;
        let limits = &config.limits;
        if limits.cpu_millis == 0
            || limits.memory_bytes == 0
            || limits.max_processes == 0
            || limits.disk_bytes == 0
        {
            return Err(Error::InvalidConfig(format!(
                "every limit must be more than zero: {limits:?}"
            )));
        }
        session::sweep(&root);
        let disk = {
            let (root, mode, bytes, warm) = (
                root.clone(),
                config.disk_limit,
                limits.disk_bytes,
                config.warm_volumes,
            );
            blocking(move || disk::Disk::start(&root, mode, bytes, warm)).await?
        };
        let checkouts = checkout::Checkouts::open(&root)?;
        let base_args = exec::base_args(limits);
        let seccomp_file = seccomp::write_program(&root)?;
        let cgroups = match &config.cgroup_root {
            Some(cgroup_root) => Some(cgroup::Hierarchy::detect(
                cgroup_root,
                &checkout::key(root.as_os_str().as_encoded_bytes()),
            )?),
            None => {
                tracing::warn!(
                    "cgroups disabled: commands run without CPU, memory and process limits"
                );
                None
            }
        };
        // The readiness probe, before any launcher is kept ready: a sandbox exactly like the
        // real ones, in a cgroup like theirs.
        let spec = launcher::LaunchSpec {
            bwrap: config.bwrap.clone(),
            base: base_args,
            seccomp_file,
            cgroups,
            limits: limits.clone(),
        };
        let launchers = launcher::Launchers::new(spec, config.warm_launchers);
        exec::probe(&config.bwrap, &launchers).await?;
        launchers.refill();
        disk.refill();
        let egress = match &config.egress {
            Some(egress) => {
                if !egress.relay.is_file() {
                    return Err(Error::InvalidConfig(format!(
                        "the egress relay {} does not exist (it is built as `cap-sandbox-relay`)",
                        egress.relay.display()
                    )));
                }
                let socket = root.join(".egress.sock");
                let proxy = EgressProxy::start_unix(&socket, egress.policy.clone())?;
                Some((
                    proxy,
                    exec::EgressPaths {
                        socket,
                        relay: egress.relay.clone(),
                    },
                ))
            }
            None => None,
        };
        tracing::info!(root = %root.display(), bwrap = %config.bwrap.display(), "sandbox ready");
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                root,
                checkouts,
                disk,
                launchers,
                egress,
                cancels: Mutex::default(),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// The egress requests the proxy refused so far (none when egress is off).
    pub fn egress_refusals(&self) -> Vec<Refusal> {
        self.inner
            .egress
            .as_ref()
            .map(|(proxy, _)| proxy.refusals())
            .unwrap_or_default()
    }

    /// Clones `repo_url` (a git URL; a bare repository path for the local forge), checks out
    /// `commit_sha` and makes the workspace. An empty `image` is detected from the files.
    pub async fn create_session(
        &self,
        repo_url: &str,
        commit_sha: &str,
        image: &str,
    ) -> Result<SessionInfo> {
        let meta = session::create(
            &self.inner.root,
            &self.inner.checkouts,
            &self.inner.disk,
            repo_url,
            commit_sha,
            image,
        )
        .await?;
        Ok(SessionInfo {
            session_id: meta.id,
            image: meta.image,
            commit_sha: meta.commit_sha,
        })
    }

    /// Starts `spec.command` in the session's sandbox; the stream ends with its exit.
    pub async fn exec(&self, session_id: &str, spec: ExecSpec) -> Result<ExecStream> {
        let timeout = self.timeout(spec.timeout)?;
        exec::validate(&spec)?;
        let (meta, dirs) = self.lookup(session_id).await?;
        let cwd_rel = RelPath::parse(&spec.cwd, /*allow_root*/ true)?;
        let workspace = dirs.workspace.clone();
        // Resolve the working directory on the host (confined to the workspace) and hand
        // bubblewrap the resolved path.
        let cwd = blocking(move || {
            let ws = Workspace::open(&workspace)?;
            let fd = ws
                .open_beneath(&cwd_rel, OFlags::RDONLY | OFlags::DIRECTORY)
                .map_err(|error| match error {
                    Error::InvalidPath {
                        path,
                        reason: "a component of the path is not a directory",
                    } => Error::WrongFileType {
                        path,
                        expected: "a directory",
                    },
                    other => other,
                })?;
            ws.relative_of(&fd, &cwd_rel)
        })
        .await?;
        let cancel = self.cancel_receiver(meta.id);
        let launcher = self.inner.launchers.take().await?;
        tracing::info!(session = %meta.id, command = %spec.command, cwd = %cwd, ?timeout, "exec");
        exec::spawn(exec::Launch {
            launcher,
            source: dirs.source,
            workspace: dirs.workspace,
            cwd,
            spec,
            timeout,
            output_cap: self.inner.config.output_cap_bytes,
            cancel,
            limits: &self.inner.config.limits,
            poll_disk: self.inner.disk.polled(),
            term_grace: self.inner.config.term_grace,
            egress: self.inner.egress.as_ref().map(|(_, paths)| paths),
        })
        .await
    }

    /// Reads a file of the workspace (at most [`MAX_READ_BYTES`]).
    pub async fn read_file(&self, session_id: &str, path: &str) -> Result<Vec<u8>> {
        let rel = RelPath::parse(path, /*allow_root*/ false)?;
        let ws = self.workspace(session_id).await?;
        blocking(move || Workspace::open(&ws)?.read_file(&rel, MAX_READ_BYTES)).await
    }

    /// Writes and deletes files, all or none: every path is validated and every new content
    /// written to a temporary file before any file is replaced. Returns the number of changes.
    pub async fn write_files(&self, session_id: &str, changes: Vec<FileChange>) -> Result<usize> {
        let ws = self.workspace(session_id).await?;
        let parsed = changes
            .into_iter()
            .map(|change| {
                Ok((
                    RelPath::parse(&change.path, /*allow_root*/ false)?,
                    change.content,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        blocking(move || Workspace::open(&ws)?.write_files(parsed)).await
    }

    /// Lists a directory of the workspace (`""` or `.` is the root), recursively if asked.
    pub async fn list_directory(
        &self,
        session_id: &str,
        path: &str,
        recursive: bool,
    ) -> Result<Listing> {
        let rel = RelPath::parse(path, /*allow_root*/ true)?;
        let ws = self.workspace(session_id).await?;
        let (entries, truncated) =
            blocking(move || Workspace::open(&ws)?.list(&rel, recursive, MAX_LIST_ENTRIES)).await?;
        Ok(Listing { entries, truncated })
    }

    /// Searches the workspace's text files for the regular expression `pattern`, optionally
    /// only files matching `glob` (e.g. `*.py`); `.gitignore` is honoured.
    pub async fn search_files(
        &self,
        session_id: &str,
        pattern: &str,
        glob: Option<&str>,
    ) -> Result<SearchResult> {
        let ws = self.workspace(session_id).await?;
        let (pattern, glob) = (pattern.to_owned(), glob.map(str::to_owned));
        let (matches, truncated) = blocking(move || {
            search::search(
                &Workspace::open(&ws)?,
                &pattern,
                glob.as_deref(),
                MAX_SEARCH_MATCHES,
            )
        })
        .await?;
        Ok(SearchResult { matches, truncated })
    }

    /// The workspace's created, modified and deleted files against its checkout, with a diff.
    pub async fn get_changes(&self, session_id: &str) -> Result<Changes> {
        let (_, dirs) = self.lookup(session_id).await?;
        blocking(move || changes::changes(&dirs.source, &Workspace::open(&dirs.workspace)?)).await
    }

    /// Kills the session's running commands and removes it: unusable when this returns, its
    /// files removed in the background.
    pub async fn destroy_session(&self, session_id: &str) -> Result<()> {
        let id = session::parse_id(session_id)?;
        let sender = self.cancels().remove(&id);
        if let Some(sender) = sender {
            let _ = sender.send(true);
        }
        session::destroy(&self.inner.root, session_id, &self.inner.disk)?;
        Ok(())
    }

    fn timeout(&self, requested: Option<Duration>) -> Result<Duration> {
        let max = self.inner.config.max_timeout;
        match requested {
            None => Ok(self.inner.config.default_timeout),
            Some(timeout) if timeout.is_zero() || timeout > max => Err(Error::InvalidTimeout {
                requested: timeout,
                max,
            }),
            Some(timeout) => Ok(timeout),
        }
    }

    async fn workspace(&self, session_id: &str) -> Result<PathBuf> {
        Ok(self.lookup(session_id).await?.1.workspace)
    }

    /// Finds a session, its workspace filesystem mounted (again, after a restart).
    ///
    /// The metadata is read on a blocking thread; mounting again (rare: the first use after a
    /// restart) runs `mount` as an async process under an async lock, so no worker thread
    /// waits on a process or on a thread that does.
    async fn lookup(
        &self,
        session_id: &str,
    ) -> Result<(session::SessionMeta, session::SessionDirs)> {
        let (root, id) = (self.inner.root.clone(), session_id.to_owned());
        let volumes = match &self.inner.disk {
            disk::Disk::Loop(volumes) => Some(Arc::clone(volumes)),
            disk::Disk::Poll => None,
        };
        let (found, unmounted) = blocking(move || {
            let found = session::lookup(&root, &id)?;
            let unmounted = volumes.and_then(|volumes| volumes.unmounted(&found.1.workspace));
            Ok((found, unmounted))
        })
        .await?;
        if let (Some(name), disk::Disk::Loop(volumes)) = (unmounted, &self.inner.disk) {
            volumes.mount_again(name).await?;
        }
        Ok(found)
    }

    fn cancels(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, watch::Sender<bool>>> {
        // The map stays consistent whatever panicked while holding it.
        self.inner
            .cancels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cancel_receiver(&self, id: Uuid) -> watch::Receiver<bool> {
        self.cancels()
            .entry(id)
            .or_insert_with(|| watch::channel(false).0)
            .subscribe()
    }
}

/// Runs filesystem work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(Error::Task)?
}
