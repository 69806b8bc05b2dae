//! Verified checkouts, one per (repository, commit), shared read-only by the sessions made
//! from them: `<root>/.cache/<repository key>-<full sha>/source`.
//!
//! A checkout is made by hardened host-side git in a staging directory and renamed into place
//! only once complete, so an entry that exists is a whole checkout of that commit. Sessions
//! link to it as their `source` (mounted read-only at `/repo`; the service never writes to
//! it), so creating a session for a commit already seen costs a copy of the tree instead of a
//! clone. The key includes a hash of the repository URL: two repositories holding the same
//! commit never share a `.git` (its refs and objects are the repository's own). Entries no
//! session links to are evicted beyond [`CAPACITY`], least recently used first.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::session::{STAGING_PREFIX, remove_tree, remove_tree_blocking};
use cap_git::{Git, Protocol};

use crate::{Error, Result};

/// Directory, under the session root, of the cache.
pub(crate) const CACHE_DIR: &str = ".cache";
/// Unused checkouts kept; beyond this the least recently used are removed.
const CAPACITY: usize = 16;

/// The checkout cache of one session root.
#[derive(Debug)]
pub struct Checkouts {
    dir: PathBuf,
    /// Serialises linking a session to an entry with evicting entries, so an entry is never
    /// removed between being found and being linked.
    lock: Mutex<()>,
}

/// A short, stable key for some bytes: the first 32 hex digits of their SHA-256.
pub(crate) fn key(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .take(16)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl Checkouts {
    /// Opens (and creates) the cache under `root`, removing half-made entries.
    pub fn open(root: &Path) -> Result<Self> {
        let dir = root.join(CACHE_DIR);
        fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
        crate::session::sweep(&dir);
        Ok(Self {
            dir,
            lock: Mutex::new(()),
        })
    }

    fn locked(&self) -> std::sync::MutexGuard<'_, ()> {
        // The guard protects no data, only ordering; a panic elsewhere cannot corrupt it.
        self.lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes `link` a symlink to the checkout of `sha` of `repo_url` (cloned when not cached)
    /// and returns the commit's full sha.
    pub async fn link(&self, repo_url: &str, sha: &str, link: &Path) -> Result<String> {
        let repo_key = key(repo_url.as_bytes());
        // Only a full sha names a commit for good; an abbreviated one is resolved by a clone.
        if matches!(sha.len(), 40 | 64) && self.try_link(&repo_key, sha, link)? {
            return Ok(sha.to_owned());
        }
        let staging = self
            .dir
            .join(format!("{STAGING_PREFIX}{}", Uuid::new_v4().simple()));
        let made = clone(repo_url, sha, &staging).await;
        let full_sha = match made {
            Ok(full_sha) => full_sha,
            Err(error) => {
                remove_tree_blocking(staging).await;
                return Err(error);
            }
        };
        let entry = self.dir.join(format!("{repo_key}-{full_sha}"));
        let published = match fs::rename(&staging, &entry) {
            Ok(()) => true,
            // Another session made the same checkout meanwhile: use that one.
            Err(_) if entry.is_dir() => {
                remove_tree_blocking(staging).await;
                false
            }
            Err(source) => {
                remove_tree_blocking(staging).await;
                return Err(Error::Io {
                    action: "publish checkout",
                    path: entry,
                    source,
                });
            }
        };
        if !self.try_link(&repo_key, &full_sha, link)? {
            return Err(Error::Io {
                action: "find checkout",
                path: entry,
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        // Linked first, so the new entry is in use and never its own eviction's victim.
        if published {
            self.evict();
        }
        Ok(full_sha)
    }

    /// Links `link` to the entry when it exists, marking it used; `false` when it does not.
    fn try_link(&self, repo_key: &str, full_sha: &str, link: &Path) -> Result<bool> {
        let entry = self.dir.join(format!("{repo_key}-{full_sha}"));
        let _guard = self.locked();
        if !entry.is_dir() {
            return Ok(false);
        }
        let source = entry.join("source");
        std::os::unix::fs::symlink(&source, link).map_err(Error::io("link checkout", link))?;
        // The directory's modification time is its last use, for eviction.
        if let Ok(dir) = fs::File::open(&entry) {
            let _ = dir.set_modified(SystemTime::now());
        }
        Ok(true)
    }

    /// Removes the least recently used entries that no session links to, until at most
    /// [`CAPACITY`] unused entries remain: renamed away at once, their files removed in the
    /// background. Best effort.
    fn evict(&self) {
        let _guard = self.locked();
        let in_use = self.dir.parent().map(linked_checkouts).unwrap_or_default();
        let mut unused: Vec<(SystemTime, PathBuf)> = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
            .filter(|entry| !in_use.contains(&entry.path().join("source")))
            .filter_map(|entry| Some((entry.metadata().ok()?.modified().ok()?, entry.path())))
            .collect();
        if unused.len() <= CAPACITY {
            return;
        }
        unused.sort();
        let excess = unused.len() - CAPACITY;
        for (_, entry) in unused.into_iter().take(excess) {
            // Renamed away first, so a half-removed entry is never found.
            let trash = self
                .dir
                .join(format!("{STAGING_PREFIX}{}", Uuid::new_v4().simple()));
            if fs::rename(&entry, &trash).is_ok() {
                tokio::task::spawn_blocking(move || {
                    if let Err(error) = remove_tree(&trash) {
                        tracing::warn!(error = %error.chain(), "cannot remove an evicted checkout");
                    }
                });
            }
        }
    }
}

/// The checkouts the sessions (and sessions being made) under `root` link to.
fn linked_checkouts(root: &Path) -> Vec<PathBuf> {
    fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| fs::read_link(entry.path().join("source")).ok())
        .collect()
}

/// Transports a checkout may clone over. The repository URL is the caller's: a local path
/// (the local forge's bare repositories, test fixtures) needs `file`, a hosted repository
/// `https`, `http`, `ssh` or `git`. `ext::` and remote helpers stay refused by cap-git.
const CLONE_PROTOCOLS: [Protocol; 5] = Protocol::ALL;

/// Lines of git's stderr an error message keeps.
const DETAIL_LINES: usize = 3;

/// Clones `repo_url` into `staging/source` and checks out `sha` there; returns its full sha.
async fn clone(repo_url: &str, sha: &str, staging: &Path) -> Result<String> {
    fs::create_dir(staging).map_err(Error::io("create", staging))?;
    let source = staging.join("source");
    let clone = Git::new()
        .allow_protocols(&CLONE_PROTOCOLS)
        .args([
            "clone",
            "--no-checkout",
            "--no-hardlinks",
            "--quiet",
            "--",
            repo_url,
        ])
        .args([&source])
        .output()
        .await
        .map_err(Error::GitProcess)?;
    if !clone.success() {
        return Err(Error::Clone {
            url: repo_url.to_owned(),
            detail: clone.stderr_tail(DETAIL_LINES),
        });
    }
    let spec = format!("{sha}^{{commit}}");
    // The clone is local from here on: no transport (a partial clone would fetch lazily).
    let resolved = Git::new()
        .current_dir(&source)
        .args(["rev-parse", "--verify", "--quiet", spec.as_str()])
        .output()
        .await
        .map_err(Error::GitProcess)?;
    if !resolved.success() {
        return Err(Error::CommitNotFound {
            url: repo_url.to_owned(),
            sha: sha.to_owned(),
        });
    }
    let full_sha = resolved.text().trim().to_owned();
    let checkout = Git::new()
        .current_dir(&source)
        .args(["checkout", "--quiet", "--detach", full_sha.as_str()])
        .output()
        .await
        .map_err(Error::GitProcess)?;
    if !checkout.success() {
        return Err(Error::Git {
            action: "checkout",
            detail: checkout.stderr_tail(DETAIL_LINES),
        });
    }
    Ok(full_sha)
}

#[cfg(test)]
#[path = "checkout_tests.rs"]
mod tests;
