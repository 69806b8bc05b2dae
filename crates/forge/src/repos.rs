//! Repositories, branches and commits: git plumbing on bare repositories, never a checkout.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::{BOT_EMAIL, BOT_NAME, Error, FileChange, Forge, Repository, Result, validate};
use cap_git::Git;

const REGULAR: &str = "100644";
const EXECUTABLE: &str = "100755";
const SYMLINK: &str = "120000";
const GITLINK: &str = "160000";

/// One file found by [`walk`] for an import.
#[derive(Debug)]
struct ImportEntry {
    /// Path in the repository.
    path: String,
    /// Path on disk.
    source: PathBuf,
    kind: ImportKind,
}

#[derive(Debug)]
enum ImportKind {
    File { executable: bool },
    Symlink { target: Vec<u8> },
}

/// Creates the bare repository `repository_id` under the forge's `root` whose first commit on
/// `default_branch` holds the files of `dir` (any `.git` inside `dir` is skipped); returns the
/// commit. Needs no store, so the launcher can seed the sample repository before the GitHub
/// service starts.
pub async fn import_directory(
    root: &Path,
    repository_id: &str,
    dir: &Path,
    default_branch: &str,
) -> Result<String> {
    let target = crate::repository_path(root, repository_id)?;
    validate::branch(default_branch)?;
    if !dir.is_dir() {
        return Err(Error::InvalidArgument {
            field: "directory",
            reason: format!("{} is not a directory", dir.display()),
        });
    }
    if target.exists() {
        return Err(Error::RepositoryExists(repository_id.to_owned()));
    }
    let parent = target.parent().unwrap_or(root).to_owned();
    tokio::fs::create_dir_all(&parent)
        .await
        .map_err(|source| Error::Io {
            path: parent.clone(),
            source,
        })?;
    // Built in a scratch directory and renamed into place, so a failed import leaves
    // nothing behind and readers never see half a repository.
    let scratch = tempfile::Builder::new()
        .prefix(".import-")
        .tempdir_in(&parent)
        .map_err(|source| Error::Io {
            path: parent.clone(),
            source,
        })?;
    let staging = scratch.path().join("repo.git");
    Git::new()
        .args(["init", "--quiet", "--bare", "--template="])
        .arg_pair("--initial-branch", default_branch)
        .args([staging.as_os_str()])
        .run()
        .await?;

    let root = dir.to_owned();
    let entries = tokio::task::spawn_blocking(move || walk(&root))
        .await
        .map_err(|error| Error::Io {
            path: dir.to_owned(),
            source: std::io::Error::other(error),
        })??;

    let index = scratch.path().join("index");
    let mut index_info = Vec::new();
    let files: Vec<(&ImportEntry, &'static str)> = entries
        .iter()
        .filter_map(|entry| match entry.kind {
            ImportKind::File { executable } => {
                Some((entry, if executable { EXECUTABLE } else { REGULAR }))
            }
            ImportKind::Symlink { .. } => None,
        })
        .collect();
    let shas = hash_paths(&staging, files.iter().map(|(e, _)| e.source.as_path())).await?;
    for ((entry, mode), sha) in files.iter().zip(&shas) {
        push_index_info(&mut index_info, mode, sha, &entry.path);
    }
    for entry in &entries {
        if let ImportKind::Symlink { target } = &entry.kind {
            let sha = Git::with_git_dir(&staging)
                .args(["hash-object", "-w", "--no-filters", "--stdin"])
                .stdin(target.clone())
                .text()
                .await?;
            push_index_info(&mut index_info, SYMLINK, &sha, &entry.path);
        }
    }
    Git::with_git_dir(&staging)
        .env("GIT_INDEX_FILE", &index)
        .args(["update-index", "--add", "-z", "--index-info"])
        .stdin(index_info)
        .run()
        .await?;
    let tree = Git::with_git_dir(&staging)
        .env("GIT_INDEX_FILE", &index)
        .args(["write-tree"])
        .text()
        .await?;
    let commit = commit_tree(&staging, &tree, &[], &format!("Import {repository_id}\n")).await?;
    Git::with_git_dir(&staging)
        .args([
            "update-ref",
            &format!("refs/heads/{default_branch}"),
            &commit,
            "",
        ])
        .run()
        .await?;
    tokio::fs::rename(&staging, &target)
        .await
        .map_err(|source| {
            if target.exists() {
                Error::RepositoryExists(repository_id.to_owned())
            } else {
                Error::Io {
                    path: target.clone(),
                    source,
                }
            }
        })?;
    tracing::info!(%repository_id, files = entries.len(), %commit, "imported repository");
    Ok(commit)
}

impl Forge {
    /// Creates the bare repository `repository_id` whose first commit on `default_branch` holds
    /// the files of `dir` (any `.git` inside `dir` is skipped). Used by the demo and tests.
    pub async fn import_directory(
        &self,
        repository_id: &str,
        dir: &Path,
        default_branch: &str,
    ) -> Result<Repository> {
        import_directory(&self.root, repository_id, dir, default_branch).await?;
        self.get_repository(repository_id).await
    }

    /// The repository `repository_id`.
    pub async fn get_repository(&self, repository_id: &str) -> Result<Repository> {
        let dir = self.existing_repository(repository_id)?;
        let head = Git::with_git_dir(&dir)
            .args(["symbolic-ref", "--quiet", "HEAD"])
            .text()
            .await?;
        let default_branch = head
            .strip_prefix("refs/heads/")
            .ok_or_else(|| Error::GitOutput {
                command: "symbolic-ref HEAD".into(),
                output: head.clone(),
            })?
            .to_owned();
        let head_sha = resolve(&dir, &format!("{head}^{{commit}}"))
            .await?
            .unwrap_or_default();
        Ok(Repository {
            repository_id: repository_id.to_owned(),
            clone_url: dir.to_string_lossy().into_owned(),
            default_branch,
            head_sha,
        })
    }

    /// The head commit of `branch`.
    pub async fn branch_head(&self, repository_id: &str, branch: &str) -> Result<String> {
        let dir = self.existing_repository(repository_id)?;
        validate::branch(branch)?;
        branch_head(&dir, repository_id, branch).await
    }

    /// Creates `branch` at `from_sha` (the default branch's head when `from_sha` is empty) and
    /// returns the commit it points at.
    pub async fn create_branch(
        &self,
        repository_id: &str,
        branch: &str,
        from_sha: &str,
    ) -> Result<String> {
        let dir = self.existing_repository(repository_id)?;
        validate::branch(branch)?;
        let start = if from_sha.is_empty() {
            let repository = self.get_repository(repository_id).await?;
            branch_head(&dir, repository_id, &repository.default_branch).await?
        } else {
            validate::sha(from_sha)?;
            resolve(&dir, &format!("{from_sha}^{{commit}}"))
                .await?
                .ok_or_else(|| Error::CommitNotFound {
                    repository_id: repository_id.to_owned(),
                    sha: from_sha.to_owned(),
                })?
        };
        let reference = format!("refs/heads/{branch}");
        let exists = || Error::BranchExists {
            repository_id: repository_id.to_owned(),
            branch: branch.to_owned(),
        };
        if resolve(&dir, &reference).await?.is_some() {
            return Err(exists());
        }
        // The empty old value makes git refuse if the branch appeared in the meantime.
        let output = Git::with_git_dir(&dir)
            .args(["update-ref", &reference, &start, ""])
            .output()
            .await?;
        if !output.success() {
            if resolve(&dir, &reference).await?.is_some() {
                return Err(exists());
            }
            // E.g. `a/b` while a branch `a` exists: git's message says so.
            return Err(output.error().into());
        }
        tracing::info!(%repository_id, %branch, %start, "created branch");
        Ok(start)
    }

    /// Commits `changes` on top of `branch` as the bot and moves the branch there
    /// (compare-and-swap: a concurrent writer makes this fail with [`Error::RefMoved`]).
    /// Returns the new commit. Asked again for the commit the branch already ends with (the
    /// same message, nothing left to change), returns that one instead of refusing.
    ///
    /// Contents are stored byte for byte (no filters, no line-ending conversion); a modified
    /// file keeps its mode, a new file is `100644`.
    pub async fn commit_changes(
        &self,
        repository_id: &str,
        branch: &str,
        message: &str,
        changes: Vec<FileChange>,
    ) -> Result<String> {
        let dir = self.existing_repository(repository_id)?;
        commit_on_branch(&dir, repository_id, branch, message, changes).await
    }

    /// The bare directory of an existing repository.
    pub(crate) fn existing_repository(&self, repository_id: &str) -> Result<PathBuf> {
        let dir = self.repository_path(repository_id)?;
        if dir.join("HEAD").is_file() {
            Ok(dir)
        } else {
            Err(Error::RepositoryNotFound(repository_id.to_owned()))
        }
    }
}

/// [`Forge::commit_changes`] on the bare repository at `dir`, which the host made itself (the
/// forge's own, or the GitHub forge's local copy of a remote one): the same plumbing, so both
/// forges write commits alike.
pub(crate) async fn commit_on_branch(
    dir: &Path,
    repository_id: &str,
    branch: &str,
    message: &str,
    changes: Vec<FileChange>,
) -> Result<String> {
    validate::branch(branch)?;
    validate::text("commit message", message)?;
    if changes.is_empty() {
        return Err(Error::EmptyChangeSet);
    }
    let mut seen = HashSet::new();
    for change in &changes {
        validate::path(&change.path)?;
        if !seen.insert(change.path.as_str()) {
            return Err(Error::InvalidPath {
                path: change.path.clone(),
                reason: "listed more than once in the change set".into(),
            });
        }
    }
    let reference = format!("refs/heads/{branch}");
    let old = branch_head(dir, repository_id, branch).await?;
    let old_tree = Git::with_git_dir(dir)
        .args(["rev-parse", &format!("{old}^{{tree}}")])
        .text()
        .await?;

    let scratch = tempfile::Builder::new()
        .prefix("cap-forge-")
        .tempdir()
        .map_err(|source| Error::Io {
            path: std::env::temp_dir(),
            source,
        })?;
    let index = scratch.path().join("index");
    Git::with_git_dir(dir)
        .env("GIT_INDEX_FILE", &index)
        .args(["read-tree", &old])
        .run()
        .await?;
    let listing = Git::with_git_dir(dir)
        .env("GIT_INDEX_FILE", &index)
        .args(["ls-files", "--stage", "-z"])
        .run()
        .await?;
    let mut entries = parse_stage_listing(&listing.stdout)?;

    // Deletions first, so that a change set may replace a file by a directory.
    let mut index_info = Vec::new();
    for change in changes.iter().filter(|c| c.content.is_none()) {
        if entries.remove(&change.path).is_none() {
            if has_entries_under(&entries, &change.path) {
                return Err(Error::InvalidPath {
                    path: change.path.clone(),
                    reason: "is a directory; delete its files one by one".into(),
                });
            }
            return Err(Error::PathNotFound {
                branch: branch.to_owned(),
                path: change.path.clone(),
            });
        }
        push_index_info(&mut index_info, "0", &zero_oid(&old), &change.path);
    }
    let mut blobs = Vec::new();
    let mut modes = Vec::new();
    for (i, change) in changes.iter().enumerate() {
        let Some(content) = &change.content else {
            continue;
        };
        let mode = match entries.get(&change.path).map(String::as_str) {
            None => REGULAR,
            Some(REGULAR) => REGULAR,
            Some(EXECUTABLE) => EXECUTABLE,
            Some(SYMLINK) => {
                return Err(Error::InvalidPath {
                    path: change.path.clone(),
                    reason: "is a symbolic link on the branch; only regular files are written"
                        .into(),
                });
            }
            Some(GITLINK) => {
                return Err(Error::InvalidPath {
                    path: change.path.clone(),
                    reason: "is a submodule on the branch".into(),
                });
            }
            Some(other) => {
                return Err(Error::InvalidPath {
                    path: change.path.clone(),
                    reason: format!("has unsupported mode {other} on the branch"),
                });
            }
        };
        check_no_file_directory_clash(&entries, &change.path)?;
        entries.insert(change.path.clone(), mode.to_owned());
        let blob = scratch.path().join(format!("blob-{i}"));
        tokio::fs::write(&blob, content)
            .await
            .map_err(|source| Error::Io {
                path: blob.clone(),
                source,
            })?;
        blobs.push((change, blob));
        modes.push(mode);
    }
    let shas = hash_paths(dir, blobs.iter().map(|(_, blob)| blob.as_path())).await?;
    for (((change, _), mode), sha) in blobs.iter().zip(&modes).zip(&shas) {
        push_index_info(&mut index_info, mode, sha, &change.path);
    }
    Git::with_git_dir(dir)
        .env("GIT_INDEX_FILE", &index)
        .args(["update-index", "--add", "-z", "--index-info"])
        .stdin(index_info)
        .run()
        .await?;
    let tree = Git::with_git_dir(dir)
        .env("GIT_INDEX_FILE", &index)
        .args(["write-tree"])
        .text()
        .await?;
    if tree == old_tree {
        // The same commit asked for again (its caller died, or lost the answer, after the
        // branch moved): the branch already holds it, so it is the answer. Found by the
        // chaos tests: a supervisor killed before recording its commit failed on resume.
        let head_message = Git::with_git_dir(dir)
            .args(["log", "-1", "--format=%B", &old])
            .text()
            .await?;
        if head_message.trim_end() == message.trim_end() {
            tracing::info!(%repository_id, %branch, commit = %old, "change set already committed");
            return Ok(old);
        }
        return Err(Error::NoChanges(format!(
            "the change set leaves branch {branch:?} as it is"
        )));
    }
    let commit = commit_tree(dir, &tree, &[&old], message).await?;
    update_ref(dir, &reference, &commit, &old).await?;
    tracing::info!(%repository_id, %branch, %commit, files = changes.len(), "committed changes");
    Ok(commit)
}

/// Resolves `rev` to an object name, `None` when it names nothing.
pub(crate) async fn resolve(dir: &Path, rev: &str) -> Result<Option<String>> {
    let output = Git::with_git_dir(dir)
        .args(["rev-parse", "--verify", "--quiet", rev])
        .output()
        .await?;
    match output.code() {
        Some(0) => Ok(Some(output.text())),
        Some(1) if output.stdout.is_empty() => Ok(None),
        _ => Err(output.error().into()),
    }
}

/// The head commit of `branch` (already validated).
pub(crate) async fn branch_head(dir: &Path, repository_id: &str, branch: &str) -> Result<String> {
    resolve(dir, &format!("refs/heads/{branch}^{{commit}}"))
        .await?
        .ok_or_else(|| Error::BranchNotFound {
            repository_id: repository_id.to_owned(),
            branch: branch.to_owned(),
        })
}

/// Writes a commit of `tree` with `parents` as the bot.
pub(crate) async fn commit_tree(
    dir: &Path,
    tree: &str,
    parents: &[&str],
    message: &str,
) -> Result<String> {
    let mut args = vec!["commit-tree".to_owned(), tree.to_owned()];
    for parent in parents {
        args.push("-p".to_owned());
        args.push((*parent).to_owned());
    }
    Git::with_git_dir(dir)
        .env("GIT_AUTHOR_NAME", BOT_NAME)
        .env("GIT_AUTHOR_EMAIL", BOT_EMAIL)
        .env("GIT_COMMITTER_NAME", BOT_NAME)
        .env("GIT_COMMITTER_EMAIL", BOT_EMAIL)
        .args(args)
        .stdin(if message.ends_with('\n') {
            message.into()
        } else {
            format!("{message}\n").into()
        })
        .text()
        .await
        .map_err(Error::from)
}

/// Moves `reference` from `old` to `new`, failing with [`Error::RefMoved`] if it no longer
/// points at `old`.
pub(crate) async fn update_ref(dir: &Path, reference: &str, new: &str, old: &str) -> Result<()> {
    let output = Git::with_git_dir(dir)
        .args(["update-ref", reference, new, old])
        .output()
        .await?;
    if output.success() {
        return Ok(());
    }
    match resolve(dir, reference).await? {
        Some(current) if current == old => Err(output.error().into()),
        _ => Err(Error::RefMoved {
            reference: reference.to_owned(),
        }),
    }
}

/// Whether `ancestor` is an ancestor of (or equal to) `descendant`.
pub(crate) async fn is_ancestor(dir: &Path, ancestor: &str, descendant: &str) -> Result<bool> {
    let output = Git::with_git_dir(dir)
        .args(["merge-base", "--is-ancestor", ancestor, descendant])
        .output()
        .await?;
    match output.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(output.error().into()),
    }
}

/// Stores the files at `paths` as blobs, byte for byte, and returns their object names in order.
async fn hash_paths<'a>(dir: &Path, paths: impl Iterator<Item = &'a Path>) -> Result<Vec<String>> {
    let mut input = Vec::new();
    let mut count = 0;
    for path in paths {
        let bytes = path.as_os_str().as_encoded_bytes();
        if bytes.contains(&b'\n') {
            return Err(Error::InvalidPath {
                path: path.to_string_lossy().into_owned(),
                reason: "file names with newlines cannot be imported".into(),
            });
        }
        input.extend_from_slice(bytes);
        input.push(b'\n');
        count += 1;
    }
    if count == 0 {
        return Ok(Vec::new());
    }
    let output = Git::with_git_dir(dir)
        .args(["hash-object", "-w", "--no-filters", "--stdin-paths"])
        .stdin(input)
        .run()
        .await?;
    let text = output.text();
    let shas: Vec<String> = text.lines().map(str::to_owned).collect();
    if shas.len() != count {
        return Err(Error::GitOutput {
            command: output.command,
            output: text,
        });
    }
    Ok(shas)
}

/// The all-zero object name of the same length as `like`.
fn zero_oid(like: &str) -> String {
    "0".repeat(like.len())
}

fn push_index_info(buffer: &mut Vec<u8>, mode: &str, sha: &str, path: &str) {
    buffer.extend_from_slice(format!("{mode} {sha}\t{path}").as_bytes());
    buffer.push(0);
}

/// Parses `ls-files --stage -z` into path -> mode.
fn parse_stage_listing(stdout: &[u8]) -> Result<BTreeMap<String, String>> {
    let mut entries = BTreeMap::new();
    for record in stdout.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let record = String::from_utf8_lossy(record);
        let parsed = record.split_once('\t').and_then(|(meta, path)| {
            meta.split(' ')
                .next()
                .map(|mode| (mode.to_owned(), path.to_owned()))
        });
        let Some((mode, path)) = parsed else {
            return Err(Error::GitOutput {
                command: "ls-files --stage -z".into(),
                output: record.into_owned(),
            });
        };
        entries.insert(path, mode);
    }
    Ok(entries)
}

/// Whether any entry lies under directory `path`.
fn has_entries_under(entries: &BTreeMap<String, String>, path: &str) -> bool {
    let prefix = format!("{path}/");
    entries
        .range(prefix.clone()..)
        .next()
        .is_some_and(|(p, _)| p.starts_with(&prefix))
}

/// Refuses a file at `path` when `path` is a directory or one of its parents is a file: git
/// would otherwise silently drop the other side.
fn check_no_file_directory_clash(entries: &BTreeMap<String, String>, path: &str) -> Result<()> {
    if has_entries_under(entries, path) {
        return Err(Error::InvalidPath {
            path: path.to_owned(),
            reason: "is a directory on the branch".into(),
        });
    }
    let mut end = 0;
    while let Some(slash) = path[end..].find('/') {
        let parent = &path[..end + slash];
        if entries.contains_key(parent) {
            return Err(Error::InvalidPath {
                path: path.to_owned(),
                reason: format!("{parent:?} is a file on the branch, not a directory"),
            });
        }
        end += slash + 1;
    }
    Ok(())
}

/// Lists the files under `root` for an import, sorted, skipping `.git`.
fn walk(root: &Path) -> Result<Vec<ImportEntry>> {
    let mut entries = Vec::new();
    let mut stack = vec![(root.to_owned(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let io_err = |source| Error::Io {
            path: dir.clone(),
            source,
        };
        let mut children: Vec<_> = std::fs::read_dir(&dir)
            .map_err(io_err)?
            .collect::<std::io::Result<_>>()
            .map_err(io_err)?;
        children.sort_by_key(std::fs::DirEntry::file_name);
        for child in children {
            let name = child.file_name();
            let Some(name) = name.to_str() else {
                return Err(Error::InvalidPath {
                    path: child.path().to_string_lossy().into_owned(),
                    reason: "file names must be UTF-8".into(),
                });
            };
            if name == ".git" {
                continue;
            }
            let path = format!("{prefix}{name}");
            validate::path(&path)?;
            let source = child.path();
            let meta = std::fs::symlink_metadata(&source).map_err(|source_err| Error::Io {
                path: source.clone(),
                source: source_err,
            })?;
            let kind = if meta.is_dir() {
                stack.push((source, format!("{path}/")));
                continue;
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&source).map_err(|source_err| Error::Io {
                    path: source.clone(),
                    source: source_err,
                })?;
                ImportKind::Symlink {
                    target: target.into_os_string().into_encoded_bytes(),
                }
            } else if meta.is_file() {
                use std::os::unix::fs::PermissionsExt;
                ImportKind::File {
                    executable: meta.permissions().mode() & 0o111 != 0,
                }
            } else {
                tracing::warn!(path = %source.display(), "skipping special file during import");
                continue;
            };
            entries.push(ImportEntry { path, source, kind });
        }
    }
    Ok(entries)
}
