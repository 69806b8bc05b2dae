//! Sessions on disk: `<root>/<id>/{session.json, source, workspace/}`, where `source` links to
//! the shared read-only checkout of [`crate::checkout`] and `workspace` is the session's own
//! copy of its tree.
//!
//! A session is found by its directory alone, so a restarted service serves the sessions it
//! made before. A session is built in a staging directory and renamed into place when
//! complete, and renamed away before it is removed (in the background: the id is unusable as
//! soon as the rename is done): a half-made or half-removed session is never visible under
//! its id, and a restart sweeps what a crash left half-made or half-removed.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::checkout::Checkouts;
use crate::disk::Disk;
use crate::{Error, Result, image};

/// Name of the metadata file in a session directory.
const META_FILE: &str = "session.json";
/// Prefix of directories holding a session (or checkout) being made.
pub(crate) const STAGING_PREFIX: &str = ".staging-";
/// Prefix of directories holding a session being removed.
const TRASH_PREFIX: &str = ".trash-";

/// What is recorded about a session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SessionMeta {
    pub(crate) id: Uuid,
    pub(crate) image: String,
    pub(crate) repo_url: String,
    pub(crate) commit_sha: String,
    pub(crate) created_at_ms: u64,
}

/// A session's directories.
#[derive(Debug, Clone)]
pub(crate) struct SessionDirs {
    /// The checkout, `.git` included (a link to the shared one); mounted read-only at `/repo`.
    pub(crate) source: PathBuf,
    /// The writable copy; mounted at `/workspace`.
    pub(crate) workspace: PathBuf,
}

impl SessionDirs {
    fn new(dir: &Path) -> Self {
        Self {
            source: dir.join("source"),
            workspace: dir.join("workspace"),
        }
    }
}

/// Parses a session id as a caller gave it.
pub(crate) fn parse_id(id: &str) -> Result<Uuid> {
    Uuid::try_parse(id).map_err(|_| Error::InvalidSessionId { id: id.to_owned() })
}

/// Finds the session `id` under `root`.
pub(crate) fn lookup(root: &Path, id: &str) -> Result<(SessionMeta, SessionDirs)> {
    let id = parse_id(id)?;
    let dir = root.join(id.to_string());
    let meta_path = dir.join(META_FILE);
    let text = match fs::read(&meta_path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::SessionNotFound { id });
        }
        Err(source) => {
            return Err(Error::Io {
                action: "read",
                path: meta_path,
                source,
            });
        }
    };
    let meta: SessionMeta = serde_json::from_slice(&text).map_err(|source| Error::Metadata {
        path: meta_path,
        source,
    })?;
    Ok((meta, SessionDirs::new(&dir)))
}

/// Checks a repository URL before it reaches git.
pub fn validate_repo_url(url: &str) -> Result<()> {
    let invalid = |reason| Error::InvalidRepoUrl {
        url: url.to_owned(),
        reason,
    };
    if url.trim().is_empty() {
        return Err(invalid("is empty"));
    }
    if url.len() > 4096 {
        return Err(invalid("is longer than 4096 bytes"));
    }
    if url.starts_with('-') {
        return Err(invalid("must not start with `-`"));
    }
    if url.chars().any(char::is_control) {
        return Err(invalid("contains control characters"));
    }
    if url.contains("::") {
        return Err(invalid(
            "transport helpers (`ext::`, `<helper>::`) are not allowed",
        ));
    }
    Ok(())
}

/// Checks and normalises a commit sha (hexadecimal, 7 to 64 digits).
pub fn validate_commit_sha(sha: &str) -> Result<String> {
    let valid = (7..=64).contains(&sha.len()) && sha.chars().all(|c| c.is_ascii_hexdigit());
    if !valid {
        return Err(Error::InvalidCommitSha {
            sha: sha.to_owned(),
        });
    }
    Ok(sha.to_ascii_lowercase())
}

/// Makes a new session under `root` of `commit_sha` of `repo_url`, from the checkout cache.
pub(crate) async fn create(
    root: &Path,
    checkouts: &Checkouts,
    disk: &Disk,
    repo_url: &str,
    commit_sha: &str,
    requested_image: &str,
) -> Result<SessionMeta> {
    validate_repo_url(repo_url)?;
    let sha = validate_commit_sha(commit_sha)?;
    if !requested_image.is_empty() {
        // Fail before the clone; the image is resolved again once the tree is there.
        image::resolve_image(requested_image, root)?;
    }
    let id = Uuid::new_v4();
    let staging = root.join(format!("{STAGING_PREFIX}{id}"));
    fs::create_dir(&staging).map_err(Error::io("create", &staging))?;
    let made = populate(
        &staging,
        checkouts,
        disk,
        id,
        repo_url,
        &sha,
        requested_image,
    )
    .await;
    let meta = match made {
        Ok(meta) => meta,
        Err(error) => {
            release_volume(disk, &staging).await;
            remove_tree_blocking(staging).await;
            return Err(error);
        }
    };
    let dir = root.join(id.to_string());
    if let Err(source) = fs::rename(&staging, &dir) {
        release_volume(disk, &staging).await;
        remove_tree_blocking(staging).await;
        return Err(Error::Io {
            action: "publish session",
            path: dir,
            source,
        });
    }
    tracing::info!(session = %id, repo_url, commit = %meta.commit_sha, image = %meta.image, "session created");
    Ok(meta)
}

async fn populate(
    staging: &Path,
    checkouts: &Checkouts,
    disk: &Disk,
    id: Uuid,
    repo_url: &str,
    sha: &str,
    requested_image: &str,
) -> Result<SessionMeta> {
    let dirs = SessionDirs::new(staging);
    let full_sha = checkouts.link(repo_url, sha, &dirs.source).await?;
    match disk {
        // The workspace is the filesystem's directory, reached through a link.
        Disk::Loop(volumes) => {
            let on_volume = volumes.take().await?;
            if let Err(source) = std::os::unix::fs::symlink(&on_volume, &dirs.workspace) {
                let volumes = std::sync::Arc::clone(volumes);
                let _ =
                    tokio::task::spawn_blocking(move || volumes.release_taken(&on_volume)).await;
                return Err(Error::Io {
                    action: "create link",
                    path: dirs.workspace,
                    source,
                });
            }
        }
        Disk::Poll => {
            fs::create_dir(&dirs.workspace).map_err(Error::io("create", &dirs.workspace))?
        }
    }
    let (source, workspace) = (dirs.source.clone(), dirs.workspace.clone());
    tokio::task::spawn_blocking(move || copy_tree(&source, &workspace, /*top*/ true))
        .await
        .map_err(Error::Task)??;
    let image = image::resolve_image(requested_image, &dirs.workspace)?;
    let meta = SessionMeta {
        id,
        image,
        repo_url: repo_url.to_owned(),
        commit_sha: full_sha,
        created_at_ms: now_ms(),
    };
    let meta_path = staging.join(META_FILE);
    let json = serde_json::to_vec_pretty(&meta).map_err(|source| Error::Metadata {
        path: meta_path.clone(),
        source,
    })?;
    fs::write(&meta_path, json).map_err(Error::io("write", &meta_path))?;
    Ok(meta)
}

/// Copies the checkout `from` into the existing directory `to`, without `.git`, keeping
/// symlinks as symlinks and the executable bit.
fn copy_tree(from: &Path, to: &Path, top: bool) -> Result<()> {
    for entry in fs::read_dir(from).map_err(Error::io("list", from))? {
        let entry = entry.map_err(Error::io("list", from))?;
        let name = entry.file_name();
        if top && name == ".git" {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        let kind = entry.file_type().map_err(Error::io("stat", &src))?;
        if kind.is_dir() {
            fs::create_dir(&dst).map_err(Error::io("create", &dst))?;
            copy_tree(&src, &dst, false)?;
        } else if kind.is_symlink() {
            let target = fs::read_link(&src).map_err(Error::io("read link", &src))?;
            std::os::unix::fs::symlink(&target, &dst).map_err(Error::io("create link", &dst))?;
        } else if kind.is_file() {
            // `fs::copy` carries the permission bits over.
            fs::copy(&src, &dst).map_err(Error::io("copy", &src))?;
        }
    }
    Ok(())
}

/// Makes the session `id` under `root` unusable at once and removes it in the background.
pub(crate) fn destroy(root: &Path, id: &str, disk: &Disk) -> Result<Uuid> {
    let id = parse_id(id)?;
    let dir = root.join(id.to_string());
    if !dir.join(META_FILE).exists() {
        return Err(Error::SessionNotFound { id });
    }
    let trash = root.join(format!("{TRASH_PREFIX}{id}-{}", Uuid::new_v4().simple()));
    match fs::rename(&dir, &trash) {
        Ok(()) => {}
        // Another destroy won the race.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::SessionNotFound { id });
        }
        Err(source) => {
            return Err(Error::Io {
                action: "remove",
                path: dir,
                source,
            });
        }
    }
    // The caller does not wait for the files to go; a crash before they are gone leaves a
    // `.trash-` directory (and a filesystem no session links to) that the next start sweeps.
    let volumes = match disk {
        Disk::Loop(volumes) => Some(std::sync::Arc::clone(volumes)),
        Disk::Poll => None,
    };
    tokio::task::spawn_blocking(move || {
        if let Some(volumes) = volumes {
            volumes.release(&SessionDirs::new(&trash).workspace);
        }
        if let Err(error) = remove_tree(&trash) {
            tracing::warn!(session = %id, error = %error.chain(), "cannot remove a destroyed session");
        }
    });
    tracing::info!(session = %id, "session destroyed");
    Ok(id)
}

/// Removes leftovers of interrupted creations and removals (best effort, at startup).
pub(crate) fn sweep(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if (name.starts_with(STAGING_PREFIX) || name.starts_with(TRASH_PREFIX))
            && let Err(error) = remove_tree(&entry.path())
        {
            tracing::warn!(error = %error.chain(), "cannot remove leftover");
        }
    }
}

/// Releases the filesystem of a session that was not made after all.
async fn release_volume(disk: &Disk, staging: &Path) {
    if let Disk::Loop(volumes) = disk {
        let (volumes, link) = (
            std::sync::Arc::clone(volumes),
            SessionDirs::new(staging).workspace,
        );
        let _ = tokio::task::spawn_blocking(move || volumes.release(&link)).await;
    }
}

/// Removes a tree on a blocking thread, logging what cannot be removed.
pub(crate) async fn remove_tree_blocking(path: PathBuf) {
    let removed = tokio::task::spawn_blocking(move || remove_tree(&path)).await;
    match removed {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(error = %error.chain(), "cannot clean up"),
        Err(error) => tracing::warn!(%error, "cannot clean up"),
    }
}

/// Removes a directory tree, making directories writable first when a sandboxed command left
/// some read-only.
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    if fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    make_dirs_writable(path);
    fs::remove_dir_all(path).map_err(Error::io("remove", path))
}

fn make_dirs_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let mode = meta.permissions().mode();
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o700));
    if let Ok(entries) = fs::read_dir(path) {
        for entry in entries.flatten() {
            make_dirs_writable(&entry.path());
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
