//! Validation of the paths callers name inside a workspace.
//!
//! The syntactic rules are checked here; that symlinks do not resolve outside the workspace is
//! checked when the path is opened (see `workspace.rs`), by the kernel, so that a sandboxed
//! command swapping a directory for a symlink cannot win a race against the check.

use crate::{Error, Result};

/// The longest path accepted, in bytes.
const MAX_PATH_BYTES: usize = 4096;

/// A path relative to the workspace root: `/`-separated normal components, none of them `..`
/// or `.git`. No components at all means the root itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RelPath {
    components: Vec<String>,
}

impl RelPath {
    /// Validates `path` as given by a caller. `allow_root` admits the workspace root itself
    /// (spelled `""` or `.`).
    pub(crate) fn parse(path: &str, allow_root: bool) -> Result<Self> {
        let invalid = |reason| Error::InvalidPath {
            path: path.to_owned(),
            reason,
        };
        if path.len() > MAX_PATH_BYTES {
            return Err(invalid("longer than 4096 bytes"));
        }
        if path.contains('\0') {
            return Err(invalid("contains a NUL byte"));
        }
        if path.starts_with('/') {
            return Err(invalid(
                "absolute paths are not allowed; give a path relative to the workspace",
            ));
        }
        let mut components = Vec::new();
        for component in path.split('/') {
            match component {
                "" | "." => continue,
                ".." => return Err(invalid("`..` is not allowed")),
                name if is_git_dir(name) => {
                    return Err(invalid("`.git` and everything under it is not accessible"));
                }
                name => components.push(name.to_owned()),
            }
        }
        if components.is_empty() && !allow_root {
            return Err(invalid("names the workspace root, not a file"));
        }
        Ok(Self { components })
    }

    /// Builds a path from components already known to be valid (e.g. read from a directory).
    pub(crate) fn from_components(components: Vec<String>) -> Self {
        Self { components }
    }

    /// The components.
    pub(crate) fn components(&self) -> &[String] {
        &self.components
    }

    /// True for the workspace root.
    pub(crate) fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    /// The path as `a/b/c` (`.` for the root), the form used for the kernel and in answers.
    pub(crate) fn as_string(&self) -> String {
        if self.components.is_empty() {
            ".".to_owned()
        } else {
            self.components.join("/")
        }
    }

    /// The parent's components and the file name; `None` for the root.
    pub(crate) fn split_last(&self) -> Option<(&[String], &str)> {
        self.components
            .split_last()
            .map(|(name, parent)| (parent, name.as_str()))
    }
}

/// True for a `.git` component in any letter case (case-insensitive filesystems and git's
/// own protections treat `.GIT` as `.git`).
pub(crate) fn is_git_dir(name: &str) -> bool {
    name.eq_ignore_ascii_case(".git")
}

#[cfg(test)]
#[path = "paths_tests.rs"]
mod tests;
