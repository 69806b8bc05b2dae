//! The session's tree on the host, both ways. Out: the commit's checkout, from the local
//! backend's cache of checkouts made by its hardened git (nothing the repository contains
//! runs on the host), packed by the `tar` crate (no `.git`, symlinks kept as symlinks) for
//! `tar -x` in the Pod. Back: the Pod's workspace as a tar, unpacked into a private copy on
//! the host with every entry checked, where the local backend's search and diff run on it.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use cap_sandbox::Checkouts;

use crate::{Error, Result};

/// A commit's checkout, linked from a directory removed on drop (the cache keeps the tree).
#[derive(Debug)]
pub(crate) struct Checkout {
    dir: tempfile::TempDir,
    /// The full sha of the commit.
    pub(crate) commit_sha: String,
}

impl Checkout {
    /// The checked-out tree (its `.git` included).
    pub(crate) fn tree(&self) -> PathBuf {
        self.dir.path().join("source")
    }
}

/// A private directory under `scratch`, removed on drop.
pub(crate) fn private_dir(scratch: &Path, prefix: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(scratch)
        .map_err(|source| Error::Io {
            action: "create a private directory in",
            path: scratch.to_owned(),
            source,
        })
}

/// The checkout of `sha` (already validated) of `url`, from `checkouts` (cloned when not
/// cached); linked under `scratch`, where the cache counts it as in use.
pub(crate) async fn checkout(
    checkouts: &Checkouts,
    scratch: &Path,
    url: &str,
    sha: &str,
) -> Result<Checkout> {
    let dir = private_dir(scratch, "cap-kube-checkout-")?;
    let commit_sha = checkouts.link(url, sha, &dir.path().join("source")).await?;
    Ok(Checkout { dir, commit_sha })
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

/// Unpacks `archive` (a Pod's workspace, made by `tar -c -C /workspace .`) into `dest`, an
/// empty private directory, writing at most `max_bytes` of file content. Entries with an
/// absolute path, a `..` or a path through a symlink are refused; devices and FIFOs are
/// skipped (the local backend's search and diff ignore them too); modes are not kept.
pub(crate) fn unpack(archive: impl Read, dest: &Path, max_bytes: u64) -> Result<()> {
    let mut archive = tar::Archive::new(archive);
    archive.set_preserve_permissions(false);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(false);
    let broken = |source| Error::Io {
        action: "read the workspace archive into",
        path: dest.to_owned(),
        source,
    };
    let mut written = 0u64;
    for entry in archive.entries().map_err(broken)? {
        let mut entry = entry.map_err(broken)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let refuse = |reason| Error::UnsafeArchive {
            entry: name.clone(),
            reason,
        };
        let path = entry.path().map_err(broken)?.into_owned();
        let mut inside = dest.to_owned();
        for component in path.components() {
            match component {
                Component::CurDir => {}
                Component::Normal(part) => {
                    // Each parent must be a real directory of the copy, never a symlink.
                    if inside != dest && inside.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
                        return Err(refuse("goes through a symlink or a file"));
                    }
                    inside.push(part);
                }
                Component::ParentDir => return Err(refuse("contains `..`")),
                Component::RootDir | Component::Prefix(_) => {
                    return Err(refuse("is an absolute path"));
                }
            }
        }
        let kind = entry.header().entry_type();
        if !(kind.is_file()
            || kind.is_dir()
            || kind.is_symlink()
            || kind.is_hard_link()
            || kind.is_gnu_sparse())
        {
            continue;
        }
        if inside == dest {
            continue;
        }
        if kind.is_hard_link() {
            let target = entry.link_name().map_err(broken)?.unwrap_or_default();
            if target
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
            {
                return Err(refuse("is a hard link out of the workspace"));
            }
        }
        written = written.saturating_add(entry.size());
        if written > max_bytes {
            return Err(Error::WorkspaceTooLarge { max_bytes });
        }
        // `unpack_in` checks again that the entry lands inside `dest`.
        if !entry.unpack_in(dest).map_err(broken)? {
            return Err(refuse("would land outside the workspace"));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "checkout_tests.rs"]
mod tests;
