//! Importing a repository from files held in memory (the GitHub service's `ImportRepository`),
//! on top of [`import_directory`]: the same walk, the same plumbing, the same atomic rename;
//! and idempotent, so a caller may import the same files on every start.

use std::collections::BTreeSet;
use std::path::Path;

use crate::repos::{commit_tree, resolve, update_ref};
use crate::{Error, Forge, Repository, Result, import_directory, repository_path, validate};

/// One file of [`Forge::import_files`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportFile {
    /// Path in the repository: relative, `/`-separated, nothing under `.git`.
    pub path: String,
    /// The content, stored byte for byte.
    pub content: Vec<u8>,
    /// Mode `100755` instead of `100644`.
    pub executable: bool,
}

/// What [`Forge::import_files`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imported {
    /// The repository did not exist and now does.
    Created(Repository),
    /// The repository already existed with exactly these files on this default branch; it is
    /// left as it was.
    Unchanged(Repository),
}

impl Imported {
    /// The repository, however it came to be.
    pub fn repository(&self) -> &Repository {
        match self {
            Imported::Created(repository) | Imported::Unchanged(repository) => repository,
        }
    }
}

/// The message [`import_directory`] gives the first commit.
fn default_message(repository_id: &str) -> String {
    format!("Import {repository_id}")
}

impl Forge {
    /// Creates the bare repository `repository_id` whose first commit on `default_branch`,
    /// with `message`, holds `files`.
    ///
    /// When the repository exists already and its `default_branch` (which must be its default
    /// branch) holds exactly `files`, nothing changes and the answer is
    /// [`Imported::Unchanged`]; with other files, or another default branch, the import fails
    /// with [`Error::RepositoryExists`]. The commit message and history do not count: the same
    /// files are the same repository.
    pub async fn import_files(
        &self,
        repository_id: &str,
        default_branch: &str,
        message: &str,
        files: Vec<ImportFile>,
    ) -> Result<Imported> {
        let target = self.repository_path(repository_id)?;
        validate::branch(default_branch)?;
        validate::text("commit message", message)?;
        check_files(&files)?;

        let tree = tempfile::Builder::new()
            .prefix("cap-forge-import-")
            .tempdir()
            .map_err(|source| Error::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        write_files(tree.path(), &files)?;
        // Built under a scratch root inside the forge's own, so the final rename stays on one
        // filesystem; dropping `scratch` removes whatever a failure left.
        let scratch = tempfile::Builder::new()
            .prefix(".import-")
            .tempdir_in(self.root())
            .map_err(|source| Error::Io {
                path: self.root().to_owned(),
                source,
            })?;
        let mut commit =
            import_directory(scratch.path(), repository_id, tree.path(), default_branch).await?;
        let staging = repository_path(scratch.path(), repository_id)?;
        let new_tree = tree_of(&staging, &commit).await?;

        if target.exists() {
            return self
                .unchanged(repository_id, default_branch, &target, &new_tree)
                .await;
        }
        if message.trim_end_matches('\n') != default_message(repository_id) {
            let rewritten = commit_tree(&staging, &new_tree, &[], message).await?;
            let reference = format!("refs/heads/{default_branch}");
            update_ref(&staging, &reference, &rewritten, &commit).await?;
            commit = rewritten;
        }
        let parent = target.parent().unwrap_or(self.root()).to_owned();
        std::fs::create_dir_all(&parent).map_err(|source| Error::Io {
            path: parent.clone(),
            source,
        })?;
        if let Err(source) = std::fs::rename(&staging, &target) {
            // Another import won the race: same answer as if it had come first.
            if target.exists() {
                return self
                    .unchanged(repository_id, default_branch, &target, &new_tree)
                    .await;
            }
            return Err(Error::Io {
                path: target,
                source,
            });
        }
        tracing::info!(%repository_id, files = files.len(), %commit, "imported repository from files");
        Ok(Imported::Created(self.get_repository(repository_id).await?))
    }

    /// [`Imported::Unchanged`] when the existing repository's `default_branch` is its default
    /// branch and holds `tree`; [`Error::RepositoryExists`] otherwise.
    async fn unchanged(
        &self,
        repository_id: &str,
        default_branch: &str,
        target: &Path,
        tree: &str,
    ) -> Result<Imported> {
        let existing = self.get_repository(repository_id).await?;
        let exists = || Error::RepositoryExists(repository_id.to_owned());
        if existing.default_branch != default_branch {
            return Err(exists());
        }
        let head = format!("refs/heads/{default_branch}^{{tree}}");
        match resolve(target, &head).await? {
            Some(current) if current == tree => Ok(Imported::Unchanged(existing)),
            _ => Err(exists()),
        }
    }
}

/// The tree of `commit`.
async fn tree_of(dir: &Path, commit: &str) -> Result<String> {
    resolve(dir, &format!("{commit}^{{tree}}"))
        .await?
        .ok_or_else(|| Error::GitOutput {
            command: format!("rev-parse {commit}^{{tree}}"),
            output: String::new(),
        })
}

/// At least one file; every path valid, listed once, and never both a file and a directory.
fn check_files(files: &[ImportFile]) -> Result<()> {
    if files.is_empty() {
        return Err(Error::InvalidArgument {
            field: "files",
            reason: "an import needs at least one file".into(),
        });
    }
    let mut paths = BTreeSet::new();
    for file in files {
        validate::path(&file.path)?;
        if !paths.insert(file.path.as_str()) {
            return Err(Error::InvalidPath {
                path: file.path.clone(),
                reason: "listed more than once".into(),
            });
        }
    }
    for path in &paths {
        let mut end = 0;
        while let Some(slash) = path[end..].find('/') {
            let parent = &path[..end + slash];
            if paths.contains(parent) {
                return Err(Error::InvalidPath {
                    path: (*path).to_owned(),
                    reason: format!("{parent:?} is listed as a file, not a directory"),
                });
            }
            end += slash + 1;
        }
    }
    Ok(())
}

/// Writes `files` (already checked) under `root`.
fn write_files(root: &Path, files: &[ImportFile]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for file in files {
        let path = root.join(&file.path);
        let io_err = |source| Error::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err)?;
        }
        std::fs::write(&path, &file.content).map_err(io_err)?;
        let mode = if file.executable { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(io_err)?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "import_tests.rs"]
mod tests;
