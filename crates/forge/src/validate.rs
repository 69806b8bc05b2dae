//! Checks on everything callers name: repository ids, branch names, file paths, commit ids.

use crate::{Error, Result};

/// Longest repository id part, branch name and path accepted.
const MAX_PART: usize = 100;
const MAX_BRANCH: usize = 255;
const MAX_PATH: usize = 4096;

/// Splits `owner/name`, each part of `[A-Za-z0-9._-]`, neither `.` nor containing `..`.
pub(crate) fn repository_id(id: &str) -> Result<(&str, &str)> {
    let invalid = |reason| Error::InvalidRepositoryId {
        id: id.to_owned(),
        reason,
    };
    let (owner, name) = id
        .split_once('/')
        .ok_or_else(|| invalid("expected owner/name"))?;
    for part in [owner, name] {
        if part.is_empty() {
            return Err(invalid("owner and name must not be empty"));
        }
        if part.len() > MAX_PART {
            return Err(invalid("owner and name are at most 100 characters"));
        }
        if !part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(invalid("owner and name may hold only A-Z a-z 0-9 . _ -"));
        }
        if part == "." || part.contains("..") {
            return Err(invalid("owner and name must not be `.` or contain `..`"));
        }
    }
    Ok((owner, name))
}

/// Checks a branch name by the rules of `git check-ref-format --branch`.
pub(crate) fn branch(name: &str) -> Result<()> {
    let invalid = |reason| {
        Err(Error::InvalidBranch {
            branch: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("must not be empty");
    }
    if name.len() > MAX_BRANCH {
        return invalid("must be at most 255 bytes");
    }
    if name.starts_with('-') {
        return invalid("must not start with `-`");
    }
    if name == "@" || name == "HEAD" {
        return invalid("`@` and `HEAD` are reserved");
    }
    if name.contains("..") {
        return invalid("must not contain `..`");
    }
    if name.contains("@{") {
        return invalid("must not contain `@{`");
    }
    if let Some(c) = name.chars().find(|c| {
        c.is_ascii_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\')
    }) {
        return Err(Error::InvalidBranch {
            branch: name.to_owned(),
            reason: match c {
                ' ' => "must not contain spaces",
                c if c.is_ascii_control() => "must not contain control characters",
                _ => "must not contain any of ~ ^ : ? * [ \\",
            },
        });
    }
    if name.ends_with('.') {
        return invalid("must not end with `.`");
    }
    for component in name.split('/') {
        if component.is_empty() {
            return invalid("must not start or end with `/` or contain `//`");
        }
        if component.starts_with('.') {
            return invalid("no `/`-separated part may start with `.`");
        }
        if component.ends_with(".lock") {
            return invalid("no `/`-separated part may end with `.lock`");
        }
    }
    Ok(())
}

/// Checks a file path from a caller: relative, `/`-separated, no `.`/`..`/empty parts, nothing
/// under `.git`, no control characters.
pub(crate) fn path(path: &str) -> Result<()> {
    let invalid = |reason: &str| {
        Err(Error::InvalidPath {
            path: path.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if path.is_empty() {
        return invalid("must not be empty");
    }
    if path.len() > MAX_PATH {
        return invalid("must be at most 4096 bytes");
    }
    if path.starts_with('/') {
        return invalid("must be relative to the repository root");
    }
    if path.chars().any(|c| c.is_control()) {
        return invalid("must not contain control characters");
    }
    if path.contains('\\') {
        return invalid("must use `/` as the separator");
    }
    for component in path.split('/') {
        match component {
            "" => return invalid("must not end with `/` or contain `//`"),
            "." | ".." => return invalid("must not contain `.` or `..` parts"),
            c if c.eq_ignore_ascii_case(".git") => return invalid("must not be inside `.git`"),
            _ => {}
        }
    }
    Ok(())
}

/// Checks that `sha` looks like a (possibly abbreviated) object name.
pub(crate) fn sha(sha: &str) -> Result<()> {
    if (4..=64).contains(&sha.len()) && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(Error::InvalidSha {
            sha: sha.to_owned(),
        })
    }
}

/// Checks that a free-text argument is not blank and holds no NUL byte.
pub(crate) fn text(field: &'static str, value: &str) -> Result<()> {
    let reason = if value.trim().is_empty() {
        "must not be empty"
    } else if value.contains('\0') {
        "must not contain NUL bytes"
    } else {
        return Ok(());
    };
    Err(Error::InvalidArgument {
        field,
        reason: reason.to_owned(),
    })
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
