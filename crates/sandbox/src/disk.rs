//! The disk limit of a session's workspace.
//!
//! Loop mode (the service is root and loop devices are usable): each workspace lives on its
//! own ext4 filesystem of exactly the configured size, in a sparse image under
//! `<root>/.volumes/`, loop-mounted `nosuid,nodev`; a writer gets `ENOSPC` at the limit, at
//! once, however many files it writes. The session's `workspace` is a symbolic link to the
//! filesystem's `ws` directory. Making a filesystem (mkfs + mount, tens of milliseconds) is
//! kept off the creation path by a small pool of ready ones made in the background. A
//! destroyed session's filesystem is, in the background, emptied and put back in the pool
//! when the pool is short and it is then exactly as fresh as a new one, else unmounted
//! (which detaches its loop device) and its image deleted.
//!
//! Poll mode (otherwise, or asked for): the workspace is a plain directory whose size is
//! polled while a command runs, and the command killed once over; a fast writer overshoots
//! between two polls, so the limit is soft.
//!
//! Only util-linux and e2fsprogs binaries at fixed paths run here, with fixed arguments; the
//! images and mount points are named by the sandbox, never by the repository.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};

use crate::{Error, Result};

/// Directory of the images and mount points, under the session root.
const VOLUMES_DIR: &str = ".volumes";
/// The workspace directory inside each filesystem (its root also holds `lost+found`).
const WORKSPACE_DIR: &str = "ws";
/// Image file name suffix; the mount point is the same name without it.
const IMAGE_SUFFIX: &str = ".img";
/// Where the binaries are looked for, in order.
const MKFS: [&str; 2] = ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"];
const MOUNT: [&str; 2] = ["/usr/bin/mount", "/bin/mount"];
const UMOUNT: [&str; 2] = ["/usr/bin/umount", "/bin/umount"];
const LOSETUP: [&str; 2] = ["/usr/sbin/losetup", "/sbin/losetup"];
/// A workspace with less free space than this after a command is reported as full.
const FULL_MARGIN_BYTES: u64 = 64 * 1024;

/// How the disk limit is enforced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DiskLimit {
    /// Loop filesystems when usable (root, `/dev/loop-control`, `mkfs.ext4`), else polling.
    #[default]
    Auto,
    /// Loop filesystems; the sandbox refuses to start when they are not usable.
    Loop,
    /// Polling the workspace's size (soft: a fast writer overshoots between polls).
    Poll,
}

impl FromStr for DiskLimit {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "auto" => Ok(Self::Auto),
            "loop" => Ok(Self::Loop),
            "poll" => Ok(Self::Poll),
            other => Err(Error::InvalidConfig(format!(
                "unknown disk limit mode {other:?}: expected auto, loop or poll"
            ))),
        }
    }
}

/// The binaries loop mode runs.
#[derive(Debug, Clone)]
struct Tools {
    mkfs: PathBuf,
    mount: PathBuf,
    umount: PathBuf,
    losetup: PathBuf,
}

impl Tools {
    fn find() -> std::result::Result<Self, String> {
        let find = |candidates: [&str; 2]| {
            candidates
                .iter()
                .map(PathBuf::from)
                .find(|path| path.is_file())
                .ok_or_else(|| format!("{} not found", candidates[0]))
        };
        Ok(Self {
            mkfs: find(MKFS)?,
            mount: find(MOUNT)?,
            umount: find(UMOUNT)?,
            losetup: find(LOSETUP)?,
        })
    }
}

/// Runs a tool with a clean environment; its stderr becomes the error. Blocks.
fn run(program: &Path, args: &[&std::ffi::OsStr]) -> Result<()> {
    let output = Command::new(program)
        .env_clear()
        .env("PATH", TOOL_PATH)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(spawn_error(program))?;
    check(program, &output)
}

/// [`run`] for async code: the process is waited for without holding a worker thread.
async fn run_async(program: &Path, args: &[&std::ffi::OsStr]) -> Result<()> {
    let output = tokio::process::Command::new(program)
        .env_clear()
        .env("PATH", TOOL_PATH)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(spawn_error(program))?;
    check(program, &output)
}

/// `PATH` of the tools (they are named by absolute path; this is for what they run).
const TOOL_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

fn spawn_error(program: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let program = program.display().to_string();
    move |source| Error::Spawn { program, source }
}

fn check(program: &Path, output: &std::process::Output) -> Result<()> {
    if output.status.success() {
        return Ok(());
    }
    Err(Error::Volume {
        program: program.display().to_string(),
        detail: format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    })
}

/// The disk limit in force.
#[derive(Debug)]
pub(crate) enum Disk {
    /// Each workspace on its own filesystem.
    Loop(Arc<Volumes>),
    /// Workspace size polled while commands run.
    Poll,
}

impl Disk {
    /// Picks the mode, sweeps what a crashed instance left, and (loop mode) makes the first
    /// filesystem now, so a host where loop devices do not work is found out at start.
    pub(crate) fn start(root: &Path, mode: DiskLimit, bytes: u64, warm: usize) -> Result<Self> {
        let tools = Tools::find();
        if let Ok(tools) = &tools {
            sweep(root, tools);
        }
        if mode == DiskLimit::Poll {
            tracing::warn!(
                bytes,
                "disk limit: soft (workspace size polled; a fast writer overshoots), as configured"
            );
            return Ok(Self::Poll);
        }
        let usable = tools.and_then(|tools| {
            if !rustix::process::geteuid().is_root() {
                return Err("the service is not root".to_owned());
            }
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/loop-control")
                .map_err(|error| format!("/dev/loop-control: {error}"))?;
            let volumes = Volumes::new(root, tools, bytes, warm.max(1))
                .map_err(|error| error.chain().to_string())?;
            let first = volumes.make().map_err(|error| error.chain().to_string())?;
            volumes.pool().ready.push(first);
            Ok(volumes)
        });
        match (usable, mode) {
            (Ok(volumes), _) => {
                tracing::info!(
                    bytes,
                    "disk limit: hard (each workspace on its own loop-mounted filesystem)"
                );
                Ok(Self::Loop(volumes))
            }
            (Err(reason), DiskLimit::Loop) => Err(Error::InvalidConfig(format!(
                "the loop disk limit is not usable on this host: {reason}"
            ))),
            (Err(reason), _) => {
                tracing::warn!(bytes, %reason, "disk limit: soft (workspace size polled; a fast writer overshoots): loop filesystems are not usable");
                Ok(Self::Poll)
            }
        }
    }

    /// Starts making the ready filesystems in the background (once the sandbox is up).
    pub(crate) fn refill(&self) {
        if let Self::Loop(volumes) = self {
            volumes.refill();
        }
    }

    /// Whether the workspace size must be polled while a command runs.
    pub(crate) fn polled(&self) -> bool {
        matches!(self, Self::Poll)
    }
}

/// Whether the filesystem holding `workspace` is (nearly) full: out of space or of inodes.
pub(crate) fn is_full(workspace: &Path) -> bool {
    rustix::fs::statvfs(workspace).is_ok_and(|stat| {
        stat.f_bavail.saturating_mul(stat.f_frsize) < FULL_MARGIN_BYTES || stat.f_favail == 0
    })
}

/// The filesystems of one sandbox instance.
#[derive(Debug)]
pub(crate) struct Volumes {
    maker: Maker,
    /// How many to keep ready.
    size: usize,
    pool: Mutex<Pool>,
    /// Mounted filesystems given to sessions by this instance.
    given: Mutex<HashSet<String>>,
    /// Serialises mounting a session's filesystem again: an image mounted twice is corrupted.
    /// An async lock: it is held while `mount` runs, which must not pin a worker thread.
    remount: tokio::sync::Mutex<()>,
    /// Filesystems being made in the background; dropping waits for them to be done.
    making: Arc<(Mutex<usize>, Condvar)>,
    weak: Weak<Volumes>,
}

/// What making and removing a filesystem takes (cloned into background work, which thus
/// does not keep a dropped sandbox's filesystems alive).
#[derive(Debug, Clone)]
struct Maker {
    /// `<root>/.volumes`.
    dir: PathBuf,
    tools: Tools,
    /// Size of each filesystem: the disk limit.
    bytes: u64,
    /// This instance's part of the names, registered in [`LIVE_INSTANCES`] while it lives.
    instance: String,
    /// Inodes in use on a new filesystem (with its empty `ws`): the same for every one.
    fresh_inodes: Arc<OnceLock<u64>>,
}

#[derive(Debug, Default)]
struct Pool {
    ready: Vec<String>,
    filling: usize,
}

impl Volumes {
    fn new(root: &Path, tools: Tools, bytes: u64, size: usize) -> Result<Arc<Self>> {
        let dir = root.join(VOLUMES_DIR);
        fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
        let instance = uuid::Uuid::new_v4().simple().to_string();
        live_instances().insert(instance.clone());
        Ok(Arc::new_cyclic(|weak| Self {
            maker: Maker {
                dir,
                tools,
                bytes,
                instance,
                fresh_inodes: Arc::default(),
            },
            size,
            pool: Mutex::default(),
            given: Mutex::default(),
            remount: tokio::sync::Mutex::default(),
            making: Arc::default(),
            weak: weak.clone(),
        }))
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Pool> {
        // The pool stays consistent whatever panicked while holding it.
        self.pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn given(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.given
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes a filesystem now; returns its name. Blocks.
    fn make(&self) -> Result<String> {
        self.maker.make()
    }

    fn making(&self) -> std::sync::MutexGuard<'_, usize> {
        self.making
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Maker {
    fn image(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}{IMAGE_SUFFIX}"))
    }

    /// Makes, formats and mounts a new filesystem; returns its name. Blocks.
    fn make(&self) -> Result<String> {
        // The instance in the name: the sweep at start leaves a live instance's alone.
        let name = format!(
            "{}-{}-{}",
            std::process::id(),
            self.instance,
            uuid::Uuid::new_v4().simple()
        );
        let made = self.make_named(&name);
        if made.is_err() {
            self.remove(&name);
        }
        made.map(|()| name)
    }

    fn make_named(&self, name: &str) -> Result<()> {
        let image = self.image(name);
        let mount_point = self.dir.join(name);
        // Sparse: the host's disk is used only as the workspace is written.
        fs::File::create_new(&image)
            .and_then(|file| file.set_len(self.bytes))
            .map_err(Error::io("create", &image))?;
        // No journal and lazy tables: ephemeral, and formatting stays a few milliseconds.
        // No reserved blocks: the whole size is the workspace's.
        run(
            &self.tools.mkfs,
            &[
                "-q".as_ref(),
                "-F".as_ref(),
                "-m".as_ref(),
                "0".as_ref(),
                "-O".as_ref(),
                "^has_journal".as_ref(),
                "-E".as_ref(),
                "lazy_itable_init=1,lazy_journal_init=1,nodiscard".as_ref(),
                image.as_os_str(),
            ],
        )?;
        fs::create_dir(&mount_point).map_err(Error::io("create", &mount_point))?;
        self.mount(name)?;
        let ws = mount_point.join(WORKSPACE_DIR);
        fs::create_dir(&ws).map_err(Error::io("create", &ws))?;
        if let Some(used) = inodes_used(&mount_point) {
            let _ = self.fresh_inodes.set(used);
        }
        Ok(())
    }

    /// Empties a released filesystem's workspace; whether it is as fresh as a new one.
    fn wipe(&self, name: &str) -> bool {
        let mount_point = self.dir.join(name);
        let ws = mount_point.join(WORKSPACE_DIR);
        is_mount_point(&mount_point)
            && crate::session::remove_tree(&ws).is_ok()
            && fs::create_dir(&ws).is_ok()
            && self
                .fresh_inodes
                .get()
                .is_some_and(|fresh| inodes_used(&mount_point) == Some(*fresh))
    }

    fn mount(&self, name: &str) -> Result<()> {
        let (image, mount_point) = (self.image(name), self.dir.join(name));
        run(&self.tools.mount, &Self::mount_args(&image, &mount_point))
    }

    /// `mount`'s arguments for `image` at `mount_point`.
    fn mount_args<'a>(image: &'a Path, mount_point: &'a Path) -> [&'a std::ffi::OsStr; 6] {
        [
            "-t".as_ref(),
            "ext4".as_ref(),
            "-o".as_ref(),
            "loop,nosuid,nodev,noatime".as_ref(),
            image.as_os_str(),
            mount_point.as_os_str(),
        ]
    }

    /// Unmounts (which detaches the loop device) and deletes a filesystem. Blocks.
    fn remove(&self, name: &str) {
        remove_volume(&self.dir, &self.tools, name);
    }
}

impl Volumes {
    /// A ready filesystem's workspace directory, for a new session.
    pub(crate) async fn take(&self) -> Result<PathBuf> {
        let ready = self.pool().ready.pop();
        self.refill();
        let name = match ready {
            Some(name) => name,
            None => {
                let this = self.weak.upgrade().ok_or_else(|| {
                    Error::InvalidConfig("the sandbox is shutting down".to_owned())
                })?;
                tokio::task::spawn_blocking(move || this.make())
                    .await
                    .map_err(Error::Task)??
            }
        };
        self.given().insert(name.clone());
        Ok(self.maker.dir.join(name).join(WORKSPACE_DIR))
    }

    /// Makes filesystems in the background until `size` are ready or being made.
    fn refill(&self) {
        let missing = {
            let mut pool = self.pool();
            let missing = self.size.saturating_sub(pool.ready.len() + pool.filling);
            pool.filling += missing;
            missing
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.pool().filling -= missing;
            return;
        };
        for _ in 0..missing {
            let (maker, weak, making) = (
                self.maker.clone(),
                self.weak.clone(),
                Arc::clone(&self.making),
            );
            *self.making() += 1;
            runtime.spawn_blocking(move || {
                let made = maker.make();
                let this = weak.upgrade();
                match (&this, made) {
                    (Some(this), made) => {
                        let mut pool = this.pool();
                        pool.filling -= 1;
                        match made {
                            Ok(name) => pool.ready.push(name),
                            Err(error) => {
                                tracing::warn!(error = %error.chain(), "cannot prepare a workspace filesystem");
                            }
                        }
                    }
                    // The sandbox went meanwhile.
                    (None, Ok(name)) => maker.remove(&name),
                    (None, Err(_)) => {}
                }
                *making
                    .0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) -= 1;
                making.1.notify_all();
                // Last: when this was the last reference, dropping waits for `making` to reach 0.
                drop(this);
            });
        }
    }

    /// The filesystem name of a session's `workspace` link, when it points to one of ours.
    fn name_of(&self, workspace_link: &Path) -> Option<String> {
        self.name_of_target(&fs::read_link(workspace_link).ok()?)
    }

    fn name_of_target(&self, target: &Path) -> Option<String> {
        let mount_point = target.parent()?;
        (mount_point.parent()? == self.maker.dir && target.file_name()? == WORKSPACE_DIR)
            .then(|| mount_point.file_name()?.to_str().map(str::to_owned))
            .flatten()
    }

    /// Releases the filesystem a destroyed session's `workspace` link points to. Blocks.
    ///
    /// While the pool is short, the filesystem is emptied and made ready again instead: that
    /// takes a few milliseconds for a small workspace where a new one takes tens (mkfs and
    /// mount), so sessions made back to back do not outrun the pool. Only a filesystem that is
    /// exactly as fresh afterwards (as many inodes in use as a new one: nothing left, not
    /// even a file a dying command still holds open) is reused; the sandbox never sees
    /// anything of it but `ws`, which is made anew.
    pub(crate) fn release(&self, workspace_link: &Path) {
        if let Ok(target) = fs::read_link(workspace_link) {
            self.release_taken(&target);
        }
    }

    /// Releases a filesystem by its workspace directory, as [`Volumes::take`] gave it. Blocks.
    pub(crate) fn release_taken(&self, workspace: &Path) {
        let Some(name) = self.name_of_target(workspace) else {
            return;
        };
        self.given().remove(&name);
        let short = self.pool().ready.len() < self.size;
        if short && self.maker.wipe(&name) {
            self.pool().ready.push(name);
        } else {
            self.maker.remove(&name);
        }
    }

    /// The name of a session's filesystem when it is not mounted (after a restart), for
    /// [`Volumes::mount_again`]. Blocks (a `readlink` and two `stat`s).
    pub(crate) fn unmounted(&self, workspace_link: &Path) -> Option<String> {
        let name = self.name_of(workspace_link)?;
        (!is_mount_point(&self.maker.dir.join(&name))).then_some(name)
    }

    /// Mounts the filesystem `name` (from [`Volumes::unmounted`]) again, unless someone else
    /// did meanwhile. Does not block: `mount` runs as an async process, under an async lock.
    pub(crate) async fn mount_again(&self, name: String) -> Result<()> {
        let mount_point = self.maker.dir.join(&name);
        let _one_at_a_time = self.remount.lock().await;
        let check = mount_point.clone();
        let mounted = tokio::task::spawn_blocking(move || is_mount_point(&check))
            .await
            .map_err(Error::Task)?;
        if mounted {
            return Ok(());
        }
        tracing::info!(volume = %name, "mounting a session's workspace filesystem again");
        let image = self.maker.image(&name);
        run_async(
            &self.maker.tools.mount,
            &Maker::mount_args(&image, &mount_point),
        )
        .await?;
        self.given().insert(name);
        Ok(())
    }
}

impl Drop for Volumes {
    fn drop(&mut self) {
        // Filesystems still being made are removed by their makers, which cannot reach this
        // sandbox any more; wait for them, so that nothing of it is left mounted.
        let mut making = self.making();
        while *making > 0 {
            making = self
                .making
                .1
                .wait(making)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        drop(making);
        live_instances().remove(&self.maker.instance);
        // Ready filesystems go entirely; the sessions' are unmounted but kept (their images
        // stay, and are mounted again when the session is next used).
        for name in std::mem::take(&mut self.pool().ready) {
            self.maker.remove(&name);
        }
        for name in std::mem::take(&mut *self.given()) {
            let mount_point = self.maker.dir.join(&name);
            if let Err(error) = run(&self.maker.tools.umount, &[mount_point.as_os_str()]) {
                tracing::warn!(error = %error.chain(), "cannot unmount a workspace filesystem");
            }
        }
    }
}

/// Inodes in use on the filesystem holding `path`.
fn inodes_used(path: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(stat.f_files.saturating_sub(stat.f_ffree))
}

/// Whether `path` is the root of a mount (its device differs from its parent's).
fn is_mount_point(path: &Path) -> bool {
    let (Ok(meta), Some(Ok(parent))) = (fs::metadata(path), path.parent().map(fs::metadata)) else {
        return false;
    };
    meta.dev() != parent.dev()
}

fn remove_volume(dir: &Path, tools: &Tools, name: &str) {
    let (image, mount_point) = (dir.join(format!("{name}{IMAGE_SUFFIX}")), dir.join(name));
    if is_mount_point(&mount_point)
        && let Err(error) = run(&tools.umount, &[mount_point.as_os_str()])
    {
        tracing::warn!(error = %error.chain(), "cannot unmount a workspace filesystem");
        return;
    }
    // A loop device left attached without a mount (a crash between the two steps).
    detach_loops(tools, &image);
    for (path, removed) in [
        (&mount_point, fs::remove_dir(&mount_point)),
        (&image, fs::remove_file(&image)),
    ] {
        match removed {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot remove a workspace filesystem")
            }
        }
    }
}

/// Detaches the loop devices backed by `image`.
fn detach_loops(tools: &Tools, image: &Path) {
    if !image.exists() {
        return;
    }
    let Ok(output) = Command::new(&tools.losetup)
        .env_clear()
        .args(["--noheadings", "--output", "NAME", "--associated"])
        .arg(image)
        .stdin(Stdio::null())
        .output()
    else {
        return;
    };
    for device in String::from_utf8_lossy(&output.stdout).split_whitespace() {
        if device.starts_with("/dev/loop")
            && let Err(error) = run(&tools.losetup, &["--detach".as_ref(), device.as_ref()])
        {
            tracing::warn!(error = %error.chain(), "cannot detach a loop device");
        }
    }
}

/// The instances of this process (one per sandbox: tests run several at once).
static LIVE_INSTANCES: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn live_instances() -> std::sync::MutexGuard<'static, BTreeSet<String>> {
    LIVE_INSTANCES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether the instance that made the filesystem `name` (`<pid>-<instance>-<id>`) still runs:
/// another process that is alive, or a sandbox of this process (whose pid a crashed
/// instance in a container may have had too).
fn is_live(name: &str) -> bool {
    let mut parts = name.splitn(3, '-');
    let (Some(pid), Some(instance)) = (parts.next(), parts.next()) else {
        return false;
    };
    match pid.parse::<u32>() {
        Ok(pid) if pid == std::process::id() => live_instances().contains(instance),
        Ok(pid) => Path::new(&format!("/proc/{pid}")).exists(),
        Err(_) => false,
    }
}

/// Removes the filesystems a crashed instance left: those of dead instances that no session
/// links to (ready ones, half-made ones, those of sessions destroyed or half-made). Best
/// effort, at start, after the session sweep.
fn sweep(root: &Path, tools: &Tools) {
    let dir = root.join(VOLUMES_DIR);
    let Ok(entries) = fs::read_dir(&dir) else {
        return;
    };
    let linked: HashSet<PathBuf> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| fs::read_link(entry.path().join("workspace")).ok())
        .filter_map(|target| target.parent().map(Path::to_path_buf))
        .collect();
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_owned();
            Some(
                name.strip_suffix(IMAGE_SUFFIX)
                    .map_or(name.clone(), str::to_owned),
            )
        })
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        if is_live(&name) || linked.contains(&dir.join(&name)) {
            continue;
        }
        tracing::info!(volume = %name, "removing a workspace filesystem left by an earlier instance");
        remove_volume(&dir, tools, &name);
    }
}

#[cfg(test)]
#[path = "disk_tests.rs"]
mod tests;
