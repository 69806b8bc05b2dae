//! Resource limits through control groups: one group per command, holding bubblewrap and
//! everything the command forks, with CPU, memory and process-count limits; it tells whether
//! a limit was hit, signals the whole tree, and is removed when the command ends.
//!
//! Both hierarchies are supported: v1 (a directory per controller under the cgroup root,
//! `memory/`, `pids/`, `cpu/` or `cpu,cpuacct/`) and v2 (one unified tree with
//! `cgroup.controllers`). Groups live under `<controller>/cap-sandbox/<instance>/<exec id>`,
//! where the instance names the session root and the service process
//! (`<root key>-<pid>-<random>`): a service that starts removes the groups that services no
//! longer running left (a crash, or a test process that exited mid-command), killing whatever
//! still runs in them, and never touches those of a live process.

use std::fs;
use std::path::{Path, PathBuf};

use rustix::process::{Pid, Signal};

use crate::{Error, Result};

/// The directory, under each hierarchy, that holds the sandbox's groups.
const PARENT: &str = "cap-sandbox";
/// The CFS period the CPU quota is expressed against.
const CPU_PERIOD_US: u64 = 100_000;

/// Resource limits of one command (and everything it starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// CPU time per wall-clock time, in thousandths of a CPU (2000 = two CPUs).
    pub cpu_millis: u32,
    /// Memory (anonymous, page cache and `/tmp`, which is memory too) in bytes.
    pub memory_bytes: u64,
    /// Processes and threads alive at once.
    pub max_processes: u32,
    /// Disk: the largest file a command may write (`RLIMIT_FSIZE`), the size of `/tmp`, and
    /// the size of the workspace (see [`crate::DiskLimit`]).
    pub disk_bytes: u64,
}

impl Default for Limits {
    /// Two CPUs, 4 GiB of memory, 1024 processes, 10 GiB of disk.
    fn default() -> Self {
        Self {
            cpu_millis: 2000,
            memory_bytes: 4 << 30,
            max_processes: 1024,
            disk_bytes: 10 << 30,
        }
    }
}

/// A limit a command ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitHit {
    /// The memory limit: the kernel killed a process of the command.
    Memory,
    /// The process-count limit: a `fork` or `clone` was refused.
    Processes,
    /// The disk limit: the workspace outgrew it and the command was killed.
    Disk,
}

/// The hierarchy the host offers.
#[derive(Debug, Clone)]
pub(crate) enum Hierarchy {
    /// One parent directory per controller.
    V1 {
        memory: PathBuf,
        pids: PathBuf,
        cpu: PathBuf,
    },
    /// The unified tree's parent directory.
    V2 { parent: PathBuf },
}

/// The name of an instance directory: `<root key>-<pid>-<random>`.
fn instance_name(root_key: &str) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{root_key}-{}-{}", std::process::id(), &random[..8])
}

/// Whether `name` is an instance (`<root key>-<pid>-<random>`) whose process is gone.
fn is_stale_instance(name: &str) -> bool {
    let mut parts = name.splitn(3, '-');
    let (Some(root_key), Some(pid), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    root_key.len() == 32
        && root_key.chars().all(|c| c.is_ascii_hexdigit())
        && pid != std::process::id()
        && !Path::new("/proc").join(pid.to_string()).exists()
}

/// Removes the stale instances under `top` (one controller's `cap-sandbox`), killing what
/// still runs in their groups. Best effort: what cannot be removed is logged.
fn sweep_stale(top: &Path, v2: bool) {
    let Ok(entries) = fs::read_dir(top) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_stale_instance(&name) {
            continue;
        }
        let instance = entry.path();
        for group in fs::read_dir(&instance).into_iter().flatten().flatten() {
            if group.file_type().is_ok_and(|kind| kind.is_dir()) {
                let group = Group {
                    dirs: vec![group.path()],
                    v2,
                };
                group.kill_all();
                group.remove();
            }
        }
        match fs::remove_dir(&instance) {
            Ok(()) => {
                tracing::info!(instance = %instance.display(), "removed the cgroups of a crashed sandbox service")
            }
            Err(error) => {
                tracing::warn!(instance = %instance.display(), %error, "cannot remove stale sandbox cgroups")
            }
        }
    }
}

fn unavailable(root: &Path, reason: impl Into<String>) -> Error {
    Error::CgroupsUnavailable {
        root: root.to_owned(),
        reason: reason.into(),
    }
}

fn write(path: &Path, value: &str) -> std::io::Result<()> {
    fs::write(path, value)
}

impl Hierarchy {
    /// Finds the hierarchy under `root` (usually `/sys/fs/cgroup`), removes the groups that
    /// services no longer running left, and makes the parent directories of this instance
    /// (named after its session root, `root_key`); fails with the cause when groups cannot be made (not
    /// root, read-only).
    pub(crate) fn detect(root: &Path, root_key: &str) -> Result<Self> {
        let instance = instance_name(root_key);
        if root.join("cgroup.controllers").exists() {
            let controllers = fs::read_to_string(root.join("cgroup.controllers"))
                .map_err(|error| unavailable(root, format!("cannot read controllers: {error}")))?;
            for needed in ["cpu", "memory", "pids"] {
                if !controllers.split_whitespace().any(|c| c == needed) {
                    return Err(unavailable(
                        root,
                        format!("the {needed} controller is not available"),
                    ));
                }
            }
            let enable = |dir: &Path| {
                for controller in ["+cpu", "+memory", "+pids"] {
                    write(&dir.join("cgroup.subtree_control"), controller).map_err(|error| {
                        unavailable(
                            root,
                            format!("cannot enable {controller} in {}: {error}", dir.display()),
                        )
                    })?;
                }
                Ok::<(), Error>(())
            };
            enable(root)?;
            let top = root.join(PARENT);
            fs::create_dir_all(&top).map_err(|error| {
                unavailable(root, format!("cannot create {}: {error}", top.display()))
            })?;
            enable(&top)?;
            sweep_stale(&top, /*v2*/ true);
            let parent = top.join(&instance);
            fs::create_dir(&parent).map_err(|error| {
                unavailable(root, format!("cannot create {}: {error}", parent.display()))
            })?;
            enable(&parent)?;
            return Ok(Hierarchy::V2 { parent });
        }
        let controller = |names: &[&str]| {
            let dir = names
                .iter()
                .map(|name| root.join(name))
                .find(|dir| dir.join("cgroup.procs").exists())
                .ok_or_else(|| {
                    unavailable(
                        root,
                        format!(
                            "no cgroup v2 tree and no v1 {} controller",
                            names.first().copied().unwrap_or_default()
                        ),
                    )
                })?;
            let top = dir.join(PARENT);
            fs::create_dir_all(&top).map_err(|error| {
                unavailable(root, format!("cannot create {}: {error}", top.display()))
            })?;
            sweep_stale(&top, /*v2*/ false);
            let parent = top.join(&instance);
            fs::create_dir(&parent).map_err(|error| {
                unavailable(root, format!("cannot create {}: {error}", parent.display()))
            })?;
            Ok::<PathBuf, Error>(parent)
        };
        Ok(Hierarchy::V1 {
            memory: controller(&["memory"])?,
            pids: controller(&["pids"])?,
            cpu: controller(&["cpu", "cpu,cpuacct", "cpuacct,cpu"])?,
        })
    }

    /// Removes this instance's parent directories (once its groups are gone). Best effort.
    pub(crate) fn remove_instance(&self) {
        let parents = match self {
            Hierarchy::V1 { memory, pids, cpu } => vec![pids, memory, cpu],
            Hierarchy::V2 { parent } => vec![parent],
        };
        for parent in parents {
            if let Err(error) = fs::remove_dir(parent) {
                tracing::debug!(parent = %parent.display(), %error, "cannot remove the sandbox's cgroup parent");
            }
        }
    }

    /// Makes the group `name` with `limits`.
    pub(crate) fn create(&self, name: &str, limits: &Limits) -> Result<Group> {
        let quota = u64::from(limits.cpu_millis) * CPU_PERIOD_US / 1000;
        let (dirs, settings): (Vec<PathBuf>, Vec<(PathBuf, String)>) = match self {
            Hierarchy::V1 { memory, pids, cpu } => {
                let (memory, pids, cpu) = (memory.join(name), pids.join(name), cpu.join(name));
                let settings = vec![
                    (
                        memory.join("memory.limit_in_bytes"),
                        limits.memory_bytes.to_string(),
                    ),
                    (pids.join("pids.max"), limits.max_processes.to_string()),
                    (cpu.join("cpu.cfs_period_us"), CPU_PERIOD_US.to_string()),
                    (cpu.join("cpu.cfs_quota_us"), quota.to_string()),
                ];
                // The pids group first: it is the one whose members are listed and signalled.
                (vec![pids, memory, cpu], settings)
            }
            Hierarchy::V2 { parent } => {
                let dir = parent.join(name);
                let settings = vec![
                    (dir.join("memory.max"), limits.memory_bytes.to_string()),
                    // No swap: memory beyond the limit is not pushed out to disk instead.
                    (dir.join("memory.swap.max"), "0".to_owned()),
                    (dir.join("pids.max"), limits.max_processes.to_string()),
                    (dir.join("cpu.max"), format!("{quota} {CPU_PERIOD_US}")),
                ];
                (vec![dir], settings)
            }
        };
        let group = Group {
            dirs: Vec::new(),
            v2: matches!(self, Hierarchy::V2 { .. }),
        };
        let mut group = group;
        for dir in dirs {
            if let Err(source) = fs::create_dir(&dir) {
                group.remove();
                return Err(Error::Io {
                    action: "create cgroup",
                    path: dir,
                    source,
                });
            }
            group.dirs.push(dir);
        }
        for (file, value) in settings {
            match write(&file, &value) {
                Ok(()) => {}
                // Swap accounting is optional in the kernel.
                Err(error)
                    if error.kind() == std::io::ErrorKind::NotFound
                        && file.ends_with("memory.swap.max") => {}
                Err(source) => {
                    group.remove();
                    return Err(Error::Io {
                        action: "set cgroup limit",
                        path: file,
                        source,
                    });
                }
            }
        }
        Ok(group)
    }
}

/// One command's group (a directory per v1 controller, one for v2).
#[derive(Debug)]
pub(crate) struct Group {
    dirs: Vec<PathBuf>,
    v2: bool,
}

impl Group {
    /// The files a process writes `0` to, to join the group itself.
    ///
    /// On v1, `tasks`: moving one thread (the single-threaded launcher) skips the global
    /// lock that moving a whole process through `cgroup.procs` takes, whose RCU grace period
    /// costs milliseconds and stalls every `fork` and `exit` on the host meanwhile. On v2,
    /// where `tasks` does not exist, `cgroup.procs`.
    pub(crate) fn join_files(&self) -> Vec<PathBuf> {
        let file = if self.v2 { "cgroup.procs" } else { "tasks" };
        self.dirs.iter().map(|dir| dir.join(file)).collect()
    }

    /// The processes in the group now.
    pub(crate) fn members(&self) -> Vec<i32> {
        let Some(dir) = self.dirs.first() else {
            return Vec::new();
        };
        fs::read_to_string(dir.join("cgroup.procs"))
            .map(|text| {
                text.split_whitespace()
                    .filter_map(|pid| pid.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sends `signal` to every member but `except`.
    ///
    /// XXX: a member may exit and its pid be reused between the listing and the signal; the
    /// window is microseconds wide and pids are handed out in order, so this is accepted for
    /// SIGTERM. The final kill goes through the PID namespace's init and `cgroup.kill`.
    pub(crate) fn signal_all(&self, signal: Signal, except: &[i32]) {
        for pid in self.members() {
            if except.contains(&pid) {
                continue;
            }
            if let Some(pid) = Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, signal);
            }
        }
    }

    /// Kills every member, until the group is empty (bounded). Blocking.
    pub(crate) fn kill_all(&self) {
        if self.v2
            && let Some(dir) = self.dirs.first()
            && write(&dir.join("cgroup.kill"), "1").is_ok()
        {
            return;
        }
        for _ in 0..100 {
            let members = self.members();
            if members.is_empty() {
                return;
            }
            self.signal_all(Signal::KILL, &[]);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        tracing::warn!(group = ?self.dirs.first(), "processes survive in the sandbox's cgroup");
    }

    /// The limits the group ran into.
    pub(crate) fn limit_hits(&self) -> Vec<LimitHit> {
        let counter = |file: &str, key: &str| -> u64 {
            self.dirs
                .iter()
                .filter_map(|dir| fs::read_to_string(dir.join(file)).ok())
                .flat_map(|text| {
                    text.lines()
                        .filter_map(|line| {
                            let (name, value) = line.split_once(' ')?;
                            (name == key).then(|| value.trim().parse::<u64>().ok())?
                        })
                        .collect::<Vec<_>>()
                })
                .sum()
        };
        let mut hits = Vec::new();
        let oom_file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        if counter(oom_file, "oom_kill") > 0 {
            hits.push(LimitHit::Memory);
        }
        if counter("pids.events", "max") > 0 {
            hits.push(LimitHit::Processes);
        }
        hits
    }

    /// Removes the group's directories (members gone first). Blocking, best effort.
    pub(crate) fn remove(&self) {
        for dir in &self.dirs {
            // A group empties asynchronously after its last member is reaped.
            let mut removed = false;
            for _ in 0..50 {
                match fs::remove_dir(dir) {
                    Ok(()) => {
                        removed = true;
                        break;
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                        removed = true;
                        break;
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(2)),
                }
            }
            if !removed {
                tracing::warn!(dir = %dir.display(), "cannot remove the sandbox's cgroup");
            }
        }
    }
}

#[cfg(test)]
#[path = "cgroup_tests.rs"]
mod tests;
