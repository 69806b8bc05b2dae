//! File access to a session's workspace on the host.
//!
//! Every path is opened relative to a directory descriptor of the workspace root with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`: the kernel refuses any resolution
//! (`..`, absolute or relative symlinks) that would leave the workspace, atomically, so a
//! sandboxed command racing symlink swaps against the service cannot redirect a read or a
//! write outside. Directory walks (listing, search, changes) go by path for the names, which
//! can at worst reveal names; file contents are always read through `openat2`.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::paths::{RelPath, is_git_dir};
use crate::{DirEntry, Error, Result};

/// A file's content as the change detection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A regular file and its bytes.
    File(Vec<u8>),
    /// A symbolic link and its target (what git stores as the blob).
    Symlink(Vec<u8>),
}

/// An open workspace root.
pub struct Workspace {
    /// Canonical host path of the root.
    root: PathBuf,
    dir: OwnedFd,
}

/// How often an `openat2` that failed with `EAGAIN` (a concurrent rename) is retried.
const EAGAIN_RETRIES: usize = 8;

impl Workspace {
    /// Opens the workspace at `root` (a directory the sandbox itself created).
    pub fn open(root: &Path) -> Result<Self> {
        let root = root
            .canonicalize()
            .map_err(Error::io("resolve workspace", root))?;
        let dir = rustix::fs::open(
            &root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| Error::Io {
            action: "open workspace",
            path: root.clone(),
            source: errno.into(),
        })?;
        Ok(Self { root, dir })
    }

    /// The canonical host path of the workspace root.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    fn host_path(&self, rel: &RelPath) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(rel.components());
        path
    }

    /// Opens `rel` beneath the root; errors name `rel` as the caller gave it.
    pub(crate) fn open_beneath(&self, rel: &RelPath, flags: OFlags) -> Result<OwnedFd> {
        let text = rel.as_string();
        let mut attempts = 0;
        loop {
            let opened = rustix::fs::openat2(
                &self.dir,
                text.as_str(),
                // openat2 refuses flags O_PATH does not take (NOCTTY among them).
                if flags.contains(OFlags::PATH) {
                    flags | OFlags::CLOEXEC
                } else {
                    flags | OFlags::CLOEXEC | OFlags::NOCTTY
                },
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
            );
            match opened {
                Ok(fd) => {
                    self.check_real_path(&fd, rel)?;
                    return Ok(fd);
                }
                Err(Errno::AGAIN) if attempts < EAGAIN_RETRIES => attempts += 1,
                Err(errno) => return Err(self.open_error(rel, errno)),
            }
        }
    }

    fn open_error(&self, rel: &RelPath, errno: Errno) -> Error {
        let path = rel.as_string();
        let invalid = |reason| Error::InvalidPath {
            path: path.clone(),
            reason,
        };
        match errno {
            Errno::NOENT => Error::PathNotFound { path },
            Errno::XDEV => invalid("resolves (through a symbolic link) outside the workspace"),
            Errno::LOOP => invalid("is or passes through a symbolic link that is not allowed here"),
            Errno::NOTDIR => invalid("a component of the path is not a directory"),
            Errno::ISDIR => Error::WrongFileType {
                path,
                expected: "a regular file",
            },
            errno => Error::Io {
                action: "open",
                path: self.host_path(rel),
                source: errno.into(),
            },
        }
    }

    /// Refuses a descriptor whose real location is under a `.git` directory (reached through
    /// a symlink whose name looked harmless).
    fn check_real_path(&self, fd: &OwnedFd, rel: &RelPath) -> Result<()> {
        let real = self.real_path(fd, rel)?;
        if real.iter().any(|component| is_git_dir(component)) {
            return Err(Error::InvalidPath {
                path: rel.as_string(),
                reason: "resolves into a `.git` directory",
            });
        }
        Ok(())
    }

    /// The components of `fd`'s location relative to the root.
    fn real_path(&self, fd: &OwnedFd, rel: &RelPath) -> Result<Vec<String>> {
        let link = proc_fd_path(fd);
        let real = std::fs::read_link(&link).map_err(Error::io("resolve", self.host_path(rel)))?;
        let inside = real
            .strip_prefix(&self.root)
            .map_err(|_| Error::InvalidPath {
                path: rel.as_string(),
                reason: "resolves outside the workspace",
            })?;
        Ok(inside
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect())
    }

    /// Where `fd` (opened from `rel`) really is, as a `/`-separated path below the root
    /// (empty for the root itself).
    pub(crate) fn relative_of(&self, fd: &OwnedFd, rel: &RelPath) -> Result<String> {
        Ok(self.real_path(fd, rel)?.join("/"))
    }

    /// Reads a regular file whole, refusing files larger than `limit` bytes.
    pub(crate) fn read_file(&self, rel: &RelPath, limit: u64) -> Result<Vec<u8>> {
        if rel.is_root() {
            return Err(Error::WrongFileType {
                path: rel.as_string(),
                expected: "a regular file",
            });
        }
        // NONBLOCK: opening a FIFO a sandboxed command left behind must not hang the service.
        let fd = self.open_beneath(rel, OFlags::RDONLY | OFlags::NONBLOCK)?;
        let mut file = File::from(fd);
        let host = self.host_path(rel);
        let meta = file.metadata().map_err(Error::io("stat", &host))?;
        if !meta.is_file() {
            return Err(Error::WrongFileType {
                path: rel.as_string(),
                expected: "a regular file",
            });
        }
        if meta.len() > limit {
            return Err(Error::FileTooLarge {
                path: rel.as_string(),
                size: meta.len(),
                limit,
            });
        }
        let mut content = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        (&mut file)
            .take(limit + 1)
            .read_to_end(&mut content)
            .map_err(Error::io("read", &host))?;
        if content.len() as u64 > limit {
            return Err(Error::FileTooLarge {
                path: rel.as_string(),
                size: content.len() as u64,
                limit,
            });
        }
        Ok(content)
    }

    /// Reads `rel` for change detection: `None` when it is absent or not a file or symlink.
    pub(crate) fn read_entry(&self, rel: &RelPath) -> Result<Option<Entry>> {
        let fd = match self.open_beneath(rel, OFlags::PATH | OFlags::NOFOLLOW) {
            Ok(fd) => fd,
            Err(Error::PathNotFound { .. }) => return Ok(None),
            // Beneath a file, through a link outside, into `.git`: not part of the tree.
            Err(Error::InvalidPath { .. }) => return Ok(None),
            Err(error) => return Err(error),
        };
        let host = self.host_path(rel);
        let stat = rustix::fs::fstat(&fd).map_err(|errno| Error::Io {
            action: "stat",
            path: host.clone(),
            source: errno.into(),
        })?;
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Symlink => {
                let target =
                    rustix::fs::readlinkat(&fd, "", Vec::new()).map_err(|errno| Error::Io {
                        action: "read link",
                        path: host.clone(),
                        source: errno.into(),
                    })?;
                Ok(Some(Entry::Symlink(target.into_bytes())))
            }
            FileType::RegularFile => {
                let fd =
                    self.open_beneath(rel, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK)?;
                let mut content = Vec::new();
                File::from(fd)
                    .read_to_end(&mut content)
                    .map_err(Error::io("read", &host))?;
                Ok(Some(Entry::File(content)))
            }
            _ => Ok(None),
        }
    }

    /// Lists the directory `rel`: its entries, or with `recursive` everything below it (not
    /// following symlinks, skipping `.git`), sorted by path, at most `cap` entries.
    pub(crate) fn list(
        &self,
        rel: &RelPath,
        recursive: bool,
        cap: usize,
    ) -> Result<(Vec<DirEntry>, bool)> {
        let mut entries = Vec::new();
        let mut pending = vec![rel.components().to_vec()];
        let mut truncated = false;
        let mut first = true;
        while let Some(dir) = pending.pop() {
            let dir_rel = RelPath::from_components(dir);
            let fd = match self.open_beneath(&dir_rel, OFlags::RDONLY | OFlags::DIRECTORY) {
                Ok(fd) => fd,
                Err(Error::InvalidPath {
                    reason: "a component of the path is not a directory",
                    ..
                }) if first => {
                    return Err(Error::WrongFileType {
                        path: rel.as_string(),
                        expected: "a directory",
                    });
                }
                // Gone or swapped for a link since it was listed: skip it.
                Err(_) if !first => continue,
                Err(error) => return Err(error),
            };
            first = false;
            let base = proc_fd_path(&fd);
            let reader =
                std::fs::read_dir(&base).map_err(Error::io("list", self.host_path(&dir_rel)))?;
            let mut children = Vec::new();
            for child in reader {
                let child = child.map_err(Error::io("list", self.host_path(&dir_rel)))?;
                let name = child.file_name().to_string_lossy().into_owned();
                if is_git_dir(&name) {
                    continue;
                }
                let Ok(meta) = child.metadata() else { continue };
                let mut components = dir_rel.components().to_vec();
                components.push(name);
                children.push((components, meta.is_dir(), meta.len()));
            }
            for (components, is_dir, size) in children {
                if entries.len() >= cap {
                    truncated = true;
                    break;
                }
                if is_dir && recursive {
                    pending.push(components.clone());
                }
                entries.push(DirEntry {
                    path: components.join("/"),
                    is_dir,
                    size: if is_dir { 0 } else { size },
                });
            }
            if truncated {
                break;
            }
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((entries, truncated))
    }

    /// Applies all `changes` (content, or `None` to delete) or none of them.
    pub(crate) fn write_files(&self, changes: Vec<(RelPath, Option<Vec<u8>>)>) -> Result<usize> {
        let mut txn = Transaction {
            ws: self,
            created_dirs: Vec::new(),
            planned: Vec::new(),
        };
        let count = changes.len();
        let result = txn.prepare(changes).and_then(|()| txn.commit());
        match result {
            Ok(()) => {
                txn.finish();
                Ok(count)
            }
            Err(error) => {
                txn.abort();
                Err(error)
            }
        }
    }
}

/// `/proc/self/fd/N`: opening or listing it reaches exactly the file `fd` refers to.
fn proc_fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// One file of a write, prepared in its directory.
struct Planned {
    /// The path as the caller gave it (for errors).
    display: String,
    /// The directory holding the file.
    dir: OwnedFd,
    name: String,
    /// The new content, written to this temporary name in the same directory.
    tmp: Option<String>,
    /// The previous file, kept under this name until the write is committed.
    backup: Option<String>,
    /// Whether the file existed before.
    existed: bool,
    /// Whether the temporary file has replaced the file.
    installed: bool,
}

struct Transaction<'a> {
    ws: &'a Workspace,
    /// Directories made for new files, in creation order.
    created_dirs: Vec<(OwnedFd, String)>,
    planned: Vec<Planned>,
}

fn temp_name(kind: &str) -> String {
    format!(".cap-{kind}-{}", uuid::Uuid::new_v4().simple())
}

impl Transaction<'_> {
    fn prepare(&mut self, changes: Vec<(RelPath, Option<Vec<u8>>)>) -> Result<()> {
        let mut seen = std::collections::BTreeSet::new();
        for (rel, _) in &changes {
            if rel.is_root() {
                return Err(Error::InvalidPath {
                    path: rel.as_string(),
                    reason: "names the workspace root, not a file",
                });
            }
            if !seen.insert(rel.as_string()) {
                return Err(Error::InvalidPath {
                    path: rel.as_string(),
                    reason: "appears more than once in the change set",
                });
            }
        }
        for (rel, content) in changes {
            self.prepare_one(&rel, content)?;
        }
        Ok(())
    }

    fn prepare_one(&mut self, rel: &RelPath, content: Option<Vec<u8>>) -> Result<()> {
        let display = rel.as_string();
        let Some((parent, name)) = rel.split_last() else {
            return Err(Error::InvalidPath {
                path: display,
                reason: "names the workspace root, not a file",
            });
        };
        let dir = match &content {
            Some(_) => self.open_parent_creating(rel, parent)?,
            None => self
                .ws
                .open_beneath(
                    &RelPath::from_components(parent.to_vec()),
                    OFlags::RDONLY | OFlags::DIRECTORY,
                )
                .map_err(|error| match error {
                    // Name the file the caller wanted deleted, not its missing directory.
                    Error::PathNotFound { .. } => Error::PathNotFound {
                        path: display.clone(),
                    },
                    other => other,
                })?,
        };
        let host = self.ws.host_path(rel);
        let existing = match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Some(FileType::from_raw_mode(stat.st_mode)),
            Err(Errno::NOENT) => None,
            Err(errno) => {
                return Err(Error::Io {
                    action: "stat",
                    path: host,
                    source: errno.into(),
                });
            }
        };
        let mut planned = Planned {
            display: display.clone(),
            dir,
            name: name.to_owned(),
            tmp: None,
            backup: None,
            existed: existing.is_some(),
            installed: false,
        };
        match (existing, content) {
            (Some(FileType::Directory), _) => {
                return Err(Error::WrongFileType {
                    path: display,
                    expected: "a file (it is a directory)",
                });
            }
            (Some(FileType::Symlink), Some(_)) => {
                return Err(Error::InvalidPath {
                    path: display,
                    reason: "is a symbolic link; write the file it points to instead",
                });
            }
            (None, None) => return Err(Error::PathNotFound { path: display }),
            (_, None) => {}
            (existing, Some(bytes)) => {
                let mode = match existing {
                    Some(_) => rustix::fs::statat(&planned.dir, name, AtFlags::SYMLINK_NOFOLLOW)
                        .map(|stat| Mode::from_raw_mode(stat.st_mode) & Mode::from_raw_mode(0o777))
                        .unwrap_or(Mode::from_raw_mode(0o644)),
                    None => Mode::from_raw_mode(0o644),
                };
                let tmp = temp_name("tmp");
                let fd = rustix::fs::openat(
                    &planned.dir,
                    tmp.as_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    mode,
                )
                .map_err(|errno| Error::Io {
                    action: "create temporary file for",
                    path: host.clone(),
                    source: errno.into(),
                })?;
                planned.tmp = Some(tmp);
                // Registered before writing so that a failure below removes the temporary file.
                self.planned.push(planned);
                let mut file = File::from(fd);
                file.write_all(&bytes).map_err(Error::io("write", &host))?;
                // The umask may have narrowed the mode given to open.
                rustix::fs::fchmod(&file, mode).map_err(|errno| Error::Io {
                    action: "set mode of",
                    path: host.clone(),
                    source: errno.into(),
                })?;
                file.sync_all().map_err(Error::io("sync", &host))?;
                return Ok(());
            }
        }
        self.planned.push(planned);
        Ok(())
    }

    /// Opens the directory `parent` of `rel`, making the missing directories (remembered for
    /// rollback).
    fn open_parent_creating(&mut self, rel: &RelPath, parent: &[String]) -> Result<OwnedFd> {
        let mut dir = self.ws.open_beneath(
            &RelPath::from_components(Vec::new()),
            OFlags::RDONLY | OFlags::DIRECTORY,
        )?;
        for depth in 1..=parent.len() {
            let prefix = RelPath::from_components(parent[..depth].to_vec());
            match self
                .ws
                .open_beneath(&prefix, OFlags::RDONLY | OFlags::DIRECTORY)
            {
                Ok(fd) => dir = fd,
                Err(Error::PathNotFound { .. }) => {
                    let name = parent[depth - 1].as_str();
                    rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o755)).map_err(
                        |errno| Error::Io {
                            action: "create directory",
                            path: self.ws.host_path(&prefix),
                            source: errno.into(),
                        },
                    )?;
                    let parent_fd = dir
                        .try_clone()
                        .map_err(Error::io("open", self.ws.host_path(&prefix)))?;
                    self.created_dirs.push((parent_fd, name.to_owned()));
                    dir = self
                        .ws
                        .open_beneath(&prefix, OFlags::RDONLY | OFlags::DIRECTORY)?;
                }
                Err(Error::InvalidPath {
                    reason: "a component of the path is not a directory",
                    ..
                }) => {
                    return Err(Error::InvalidPath {
                        path: rel.as_string(),
                        reason: "a parent of the path is a file, not a directory",
                    });
                }
                Err(error) => return Err(error),
            }
        }
        Ok(dir)
    }

    fn commit(&mut self) -> Result<()> {
        for planned in &mut self.planned {
            let io = |action, errno: Errno| Error::Io {
                action,
                path: PathBuf::from(&planned.display),
                source: errno.into(),
            };
            if planned.existed {
                let backup = temp_name("bak");
                match &planned.tmp {
                    // Keep the old file reachable under a second name; the rename below then
                    // replaces it atomically.
                    Some(_) => rustix::fs::linkat(
                        &planned.dir,
                        planned.name.as_str(),
                        &planned.dir,
                        backup.as_str(),
                        AtFlags::empty(),
                    )
                    .map_err(|errno| io("back up", errno))?,
                    None => rustix::fs::renameat(
                        &planned.dir,
                        planned.name.as_str(),
                        &planned.dir,
                        backup.as_str(),
                    )
                    .map_err(|errno| io("delete", errno))?,
                }
                planned.backup = Some(backup);
            }
            if let Some(tmp) = &planned.tmp {
                rustix::fs::renameat(
                    &planned.dir,
                    tmp.as_str(),
                    &planned.dir,
                    planned.name.as_str(),
                )
                .map_err(|errno| io("replace", errno))?;
                planned.installed = true;
            }
        }
        Ok(())
    }

    /// After a successful commit: drop the backups.
    fn finish(self) {
        for planned in &self.planned {
            if let Some(backup) = &planned.backup
                && let Err(errno) =
                    rustix::fs::unlinkat(&planned.dir, backup.as_str(), AtFlags::empty())
            {
                tracing::warn!(path = %planned.display, %errno, "cannot remove backup after write");
            }
        }
    }

    /// After a failure: undo in reverse order, leaving the workspace as it was.
    fn abort(self) {
        for planned in self.planned.iter().rev() {
            let dir = &planned.dir;
            let name = planned.name.as_str();
            let undone = (|| -> rustix::io::Result<()> {
                match (&planned.backup, planned.installed) {
                    (Some(backup), _) => rustix::fs::renameat(dir, backup.as_str(), dir, name)?,
                    (None, true) => rustix::fs::unlinkat(dir, name, AtFlags::empty())?,
                    (None, false) => {}
                }
                if let (Some(tmp), false) = (&planned.tmp, planned.installed) {
                    match rustix::fs::unlinkat(dir, tmp.as_str(), AtFlags::empty()) {
                        Ok(()) | Err(Errno::NOENT) => {}
                        Err(errno) => return Err(errno),
                    }
                }
                Ok(())
            })();
            if let Err(errno) = undone {
                tracing::error!(path = %planned.display, %errno, "cannot roll back a failed write");
            }
        }
        for (dir, name) in self.created_dirs.iter().rev() {
            if let Err(errno) = rustix::fs::unlinkat(dir, name.as_str(), AtFlags::REMOVEDIR) {
                tracing::error!(%name, %errno, "cannot remove directory made by a failed write");
            }
        }
    }
}
