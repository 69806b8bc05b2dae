//! `get_changes`: the workspace against the checkout it was copied from.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use similar::TextDiff;

use crate::paths::RelPath;
use crate::search::{relative, walker};
use crate::workspace::{Entry, Workspace};
use crate::{Changes, Error, FileChange, Result};

/// Lines of context around each change in the diff.
const CONTEXT_LINES: usize = 3;

/// Compares `ws` with the checkout at `source` (its `.git` excluded).
///
/// Files the workspace's `.gitignore` ignores count only if the checkout has them (as git
/// would: tracked files are never ignored). Symbolic links compare by target, as git stores
/// them.
pub fn changes(source: &Path, ws: &Workspace) -> Result<Changes> {
    let mut before = BTreeMap::new();
    read_source(source, source, &mut before)?;
    let mut paths: BTreeSet<String> = before.keys().cloned().collect();
    for entry in walker(ws.root()).build() {
        let Ok(entry) = entry else { continue };
        let kind = entry.file_type();
        if !kind.is_some_and(|kind| kind.is_file() || kind.is_symlink()) {
            continue;
        }
        if let Some(rel) = relative(ws.root(), entry.path()) {
            paths.insert(rel.as_string());
        }
    }
    let mut result = Changes::default();
    for path in paths {
        let rel = RelPath::from_components(path.split('/').map(str::to_owned).collect());
        let old = before.get(&path);
        let new = ws.read_entry(&rel)?;
        if old == new.as_ref() {
            continue;
        }
        result.diff.push_str(&render(&path, old, new.as_ref()));
        result.changes.push(FileChange {
            path,
            content: new.map(|entry| match entry {
                Entry::File(bytes) | Entry::Symlink(bytes) => bytes,
            }),
        });
    }
    Ok(result)
}

/// Reads the checkout's files and symlinks, keyed by `/`-separated path.
fn read_source(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let entry = entry.map_err(Error::io("list", dir))?;
        let path = entry.path();
        if dir == root && entry.file_name() == ".git" {
            continue;
        }
        let kind = entry.file_type().map_err(Error::io("stat", &path))?;
        let Some(rel) = relative(root, &path) else {
            continue;
        };
        if kind.is_dir() {
            read_source(root, &path, out)?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&path).map_err(Error::io("read link", &path))?;
            out.insert(
                rel.as_string(),
                Entry::Symlink(target.into_os_string().into_encoded_bytes()),
            );
        } else if kind.is_file() {
            let bytes = std::fs::read(&path).map_err(Error::io("read", &path))?;
            out.insert(rel.as_string(), Entry::File(bytes));
        }
    }
    Ok(())
}

fn bytes(entry: Option<&Entry>) -> &[u8] {
    match entry {
        Some(Entry::File(bytes) | Entry::Symlink(bytes)) => bytes,
        None => &[],
    }
}

fn mode(entry: &Entry) -> &'static str {
    match entry {
        Entry::File(_) => "100644",
        Entry::Symlink(_) => "120000",
    }
}

/// One file's part of the unified diff, with git-style headers.
pub(crate) fn render(path: &str, old: Option<&Entry>, new: Option<&Entry>) -> String {
    let mut out = format!("diff --git a/{path} b/{path}\n");
    match (old, new) {
        (None, Some(new)) => {
            let _ = writeln!(out, "new file mode {}", mode(new));
        }
        (Some(old), None) => {
            let _ = writeln!(out, "deleted file mode {}", mode(old));
        }
        _ => {}
    }
    let a = if old.is_some() {
        format!("a/{path}")
    } else {
        "/dev/null".to_owned()
    };
    let b = if new.is_some() {
        format!("b/{path}")
    } else {
        "/dev/null".to_owned()
    };
    let (old_bytes, new_bytes) = (bytes(old), bytes(new));
    match (text(old_bytes), text(new_bytes)) {
        (Some(old_text), Some(new_text)) => {
            let diff = TextDiff::from_lines(old_text, new_text);
            let _ = write!(
                out,
                "{}",
                diff.unified_diff()
                    .context_radius(CONTEXT_LINES)
                    .header(&a, &b)
            );
        }
        _ => {
            let _ = writeln!(out, "Binary files {a} and {b} differ");
        }
    }
    out
}

/// The bytes as text, or `None` when they look binary (a NUL byte or invalid UTF-8).
fn text(bytes: &[u8]) -> Option<&str> {
    if bytes.contains(&0) {
        return None;
    }
    std::str::from_utf8(bytes).ok()
}

#[cfg(test)]
#[path = "changes_tests.rs"]
mod tests;
