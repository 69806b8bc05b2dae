//! Edits staged in memory over the workspace.
//!
//! The file tools write here; reads, listings and searches see the staged state; [`flush`]
//! writes everything to the workspace with one atomic `WriteFiles` call.
//!
//! [`flush`]: Overlay::flush

use std::collections::{BTreeMap, BTreeSet};

use crate::paths::{is_within, parent};
use crate::workspace::{Entry, Listing, SearchHit, SearchResult, Workspace, WriteChange};
use crate::{Change, ChangedFile, Result};

/// A file as the tools see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileState {
    /// No such file.
    Missing,
    /// A text file.
    Text(String),
    /// A file that is not UTF-8 text, with its size.
    Binary(usize),
}

#[derive(Debug, Clone)]
struct Staged {
    /// The new content; `None` = deleted.
    content: Option<String>,
    /// Whether the file exists in the workspace (as of the last flush).
    in_workspace: bool,
}

/// Staged edits plus what the task changed so far.
#[derive(Debug, Default)]
pub(crate) struct Overlay {
    staged: BTreeMap<String, Staged>,
    /// Path -> whether it existed when the task first touched it.
    existed_at_start: BTreeMap<String, bool>,
    /// Path -> whether it exists now.
    exists_now: BTreeMap<String, bool>,
    /// Path -> digest of the content the tools last left in it (staged, or formatted).
    left: BTreeMap<String, String>,
}

impl Overlay {
    /// Reads `path` through the overlay.
    pub(crate) async fn read<W: Workspace>(&self, ws: &W, path: &str) -> Result<FileState> {
        if let Some(staged) = self.staged.get(path) {
            return Ok(match &staged.content {
                Some(text) => FileState::Text(text.clone()),
                None => FileState::Missing,
            });
        }
        match ws.read_file(path).await {
            Ok(bytes) => Ok(match String::from_utf8(bytes) {
                Ok(text) => FileState::Text(text),
                Err(error) => FileState::Binary(error.as_bytes().len()),
            }),
            Err(error) if error.is_not_found() => Ok(FileState::Missing),
            Err(error) => Err(error),
        }
    }

    /// Stages `content` (`None` = delete) for `path`, which exists now when `exists` (as
    /// read through the overlay just before).
    pub(crate) fn stage(&mut self, path: &str, content: Option<String>, exists: bool) {
        self.existed_at_start
            .entry(path.to_owned())
            .or_insert(exists);
        self.exists_now.insert(path.to_owned(), content.is_some());
        match &content {
            Some(text) => self.accept(path, text),
            None => {
                self.left.remove(path);
            }
        }
        match self.staged.get_mut(path) {
            Some(staged) => staged.content = content,
            None => {
                self.staged.insert(
                    path.to_owned(),
                    Staged {
                        content,
                        in_workspace: exists,
                    },
                );
            }
        }
    }

    /// Records `text` as what the tools left in `path` (a formatter's output is theirs).
    pub(crate) fn accept(&mut self, path: &str, text: &str) {
        self.left.insert(
            path.to_owned(),
            cap_sandbox_client::content_digest(text.as_bytes()),
        );
    }

    /// The staged files that will exist after the flush, with their content.
    pub(crate) fn staged_files(&self) -> Vec<(String, String)> {
        self.staged
            .iter()
            .filter_map(|(path, staged)| Some((path.clone(), staged.content.clone()?)))
            .collect()
    }

    /// Whether edits are waiting to be written.
    pub(crate) fn is_dirty(&self) -> bool {
        self.staged
            .values()
            .any(|staged| staged.content.is_some() || staged.in_workspace)
    }

    /// Writes the staged edits to the workspace (all or none) and clears them; returns how
    /// many files were written or deleted.
    pub(crate) async fn flush<W: Workspace>(&mut self, ws: &W) -> Result<usize> {
        let changes: Vec<WriteChange> = self
            .staged
            .iter()
            // Created then deleted before any flush: nothing to do in the workspace.
            .filter(|(_, staged)| staged.content.is_some() || staged.in_workspace)
            .map(|(path, staged)| WriteChange {
                path: path.clone(),
                content: staged.content.clone().map(String::into_bytes),
            })
            .collect();
        let count = changes.len();
        if count > 0 {
            ws.write_files(changes).await?;
            tracing::debug!(files = count, "staged edits written to the workspace");
        }
        self.staged.clear();
        Ok(count)
    }

    /// Files changed by the tools since the task started, sorted by path.
    pub(crate) fn files_changed(&self) -> Vec<ChangedFile> {
        self.existed_at_start
            .iter()
            .filter_map(|(path, &before)| {
                let now = self.exists_now.get(path).copied().unwrap_or(before);
                let change = match (before, now) {
                    (false, true) => Change::Created,
                    (true, true) => Change::Modified,
                    (true, false) => Change::Deleted,
                    (false, false) => return None,
                };
                let sha256 = if now {
                    self.left.get(path).cloned()
                } else {
                    None
                };
                Some(ChangedFile {
                    path: path.clone(),
                    change,
                    sha256,
                })
            })
            .collect()
    }

    /// Lists `dir` through the overlay. A directory that exists only in the overlay lists
    /// its staged files.
    pub(crate) async fn list<W: Workspace>(
        &self,
        ws: &W,
        dir: &str,
        recursive: bool,
    ) -> Result<Listing> {
        let staged_below: Vec<(&String, &Staged)> = self
            .staged
            .iter()
            .filter(|(path, staged)| {
                staged.content.is_some() && is_within(path, dir) && *path != dir
            })
            .collect();
        let mut listing = match ws.list_directory(dir, recursive).await {
            Ok(listing) => listing,
            Err(error) if error.is_not_found() && !staged_below.is_empty() => Listing::default(),
            Err(error) => return Err(error),
        };
        let mut entries: BTreeMap<String, Entry> = listing
            .entries
            .drain(..)
            .filter(|entry| {
                !matches!(
                    self.staged.get(&entry.path),
                    Some(Staged { content: None, .. })
                )
            })
            .map(|entry| (entry.path.clone(), entry))
            .collect();
        for (path, staged) in staged_below {
            let size = staged.content.as_ref().map_or(0, |text| text.len() as u64);
            // Directories between `dir` and the file.
            let mut ancestors = Vec::new();
            let mut up = parent(path);
            while up != dir && is_within(up, dir) && !up.is_empty() {
                ancestors.push(up.to_owned());
                up = parent(up);
            }
            if recursive {
                entries.insert(
                    path.clone(),
                    Entry {
                        path: path.clone(),
                        is_dir: false,
                        size,
                    },
                );
                for ancestor in ancestors {
                    entries.entry(ancestor.clone()).or_insert(Entry {
                        path: ancestor,
                        is_dir: true,
                        size: 0,
                    });
                }
            } else if let Some(top) = ancestors.pop() {
                entries.entry(top.clone()).or_insert(Entry {
                    path: top,
                    is_dir: true,
                    size: 0,
                });
            } else {
                entries.insert(
                    path.clone(),
                    Entry {
                        path: path.clone(),
                        is_dir: false,
                        size,
                    },
                );
            }
        }
        Ok(Listing {
            entries: entries.into_values().collect(),
            truncated: listing.truncated,
        })
    }

    /// Searches through the overlay: the workspace's matches outside staged files plus the
    /// staged files' own matches. `regex` and `glob` were checked by the caller.
    pub(crate) async fn search<W: Workspace>(
        &self,
        ws: &W,
        pattern: &str,
        regex: &regex::Regex,
        glob: Option<(&str, &globset::GlobMatcher)>,
    ) -> Result<SearchResult> {
        let result = ws.search_files(pattern, glob.map(|(text, _)| text)).await?;
        let staged: BTreeSet<&String> = self.staged.keys().collect();
        let mut hits: Vec<SearchHit> = result
            .hits
            .into_iter()
            .filter(|hit| !staged.contains(&hit.path))
            .collect();
        for (path, staged) in &self.staged {
            let Some(text) = &staged.content else {
                continue;
            };
            if let Some((_, matcher)) = glob
                && !glob_matches(matcher, path)
            {
                continue;
            }
            for (index, line) in text.lines().enumerate() {
                if regex.is_match(line) {
                    hits.push(SearchHit {
                        path: path.clone(),
                        line_number: u32::try_from(index + 1).unwrap_or(u32::MAX),
                        line: line.trim_end_matches('\r').to_owned(),
                    });
                }
            }
        }
        hits.sort();
        Ok(SearchResult {
            hits,
            truncated: result.truncated,
        })
    }
}

/// Builds a glob matcher with gitignore-like semantics: a glob without `/` matches file
/// names at any depth, one with `/` matches the path from the workspace root.
pub(crate) fn glob_matcher(
    glob: &str,
) -> std::result::Result<globset::GlobMatcher, globset::Error> {
    let anchored = glob.trim_start_matches('/');
    Ok(globset::GlobBuilder::new(anchored)
        .literal_separator(true)
        .build()?
        .compile_matcher())
}

fn glob_matches(matcher: &globset::GlobMatcher, path: &str) -> bool {
    if matcher.glob().glob().contains('/') {
        matcher.is_match(path)
    } else {
        matcher.is_match(path.rsplit('/').next().unwrap_or(path))
    }
}

#[cfg(test)]
#[path = "overlay_tests.rs"]
mod tests;
