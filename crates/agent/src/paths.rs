//! Paths the model gives: relative to the workspace root, never escaping it.
//!
//! The sandbox checks again (symlinks included); checking here too gives the model a clear
//! message before anything is staged.

/// Normalizes `path` to `/`-separated components without `.`; `""` is the root (allowed only
/// when `allow_root`). The error is a message for the model.
pub(crate) fn normalize(path: &str, allow_root: bool) -> Result<String, String> {
    let invalid = |reason: &str| Err(format!("invalid path {path:?}: {reason}"));
    if path.contains('\0') {
        return invalid("contains a NUL byte");
    }
    let trimmed = path.trim();
    if trimmed.starts_with('/') {
        return invalid(
            "absolute paths are not allowed; give a path relative to the workspace root",
        );
    }
    let mut parts = Vec::new();
    for part in trimmed.split('/') {
        match part {
            "" | "." => {}
            ".." => return invalid("`..` is not allowed; paths must stay inside the workspace"),
            ".git" => return invalid("the `.git` directory is off limits"),
            other => parts.push(other),
        }
    }
    if parts.is_empty() && !allow_root {
        return invalid("a file path is required, not the workspace root");
    }
    Ok(parts.join("/"))
}

/// Whether `path` is `dir` itself or lies below it (`dir` normalized, `""` = root).
pub(crate) fn is_within(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The parent directory of a normalized path (`""` for a top-level entry).
pub(crate) fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(parent, _)| parent)
}

#[cfg(test)]
#[path = "paths_tests.rs"]
mod tests;
