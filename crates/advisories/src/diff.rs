//! The manifests of a change with their content before and after: from a unified diff (the
//! "before" side rebuilt by applying the diff in reverse to the "after" content when it is
//! at hand, from the diff's own lines otherwise) or from a tree (everything new).

use std::path::Path;

use crate::manifest::{ManifestFile, is_manifest};
use crate::{Error, Result};

/// One file's part of a unified diff.
struct FilePatch {
    path: String,
    existed: bool,
    exists: bool,
    /// The `---`/`+++` headers and hunks only, as diffy reads them.
    text: String,
}

fn split(diff: &str) -> Vec<FilePatch> {
    let lines: Vec<&str> = diff.split_inclusive('\n').collect();
    let mut patches: Vec<FilePatch> = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let line = lines[index];
        let header = line.starts_with("--- ")
            && lines
                .get(index + 1)
                .is_some_and(|next| next.starts_with("+++ "));
        if header {
            let old = line[4..].trim_end();
            let new = lines[index + 1][4..].trim_end();
            let strip = |side: &str, prefix: &str| {
                let side = side.split('\t').next().unwrap_or(side);
                side.strip_prefix(prefix).unwrap_or(side).to_owned()
            };
            let path = if new == "/dev/null" {
                strip(old, "a/")
            } else {
                strip(new, "b/")
            };
            patches.push(FilePatch {
                path,
                existed: old != "/dev/null",
                exists: new != "/dev/null",
                text: format!("{line}{}", lines[index + 1]),
            });
            index += 2;
            continue;
        }
        if let Some(patch) = patches.last_mut()
            && (line.starts_with("@@")
                || line.starts_with(' ')
                || line.starts_with('+')
                || line.starts_with('-')
                || line.starts_with('\\')
                || line == "\n")
        {
            patch.text.push_str(line);
        }
        index += 1;
    }
    patches
}

/// The manifests a unified `diff` changes. `after_of(path)` gives a file's full content
/// after the change when it is known (the workspace, a checkout): the content before is
/// then the diff applied to it in reverse. Without it the file is rebuilt from the diff's
/// lines, which is whole for created and deleted files and enough for line-based manifests
/// (requirements, go.mod); a JSON, TOML or XML manifest shown only in part then fails to
/// parse, and the error says so.
pub fn files_from_diff(
    diff: &str,
    after_of: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<ManifestFile>> {
    let mut files = Vec::new();
    for patch in split(diff) {
        if !is_manifest(&patch.path) {
            continue;
        }
        let parsed = diffy::Patch::from_str(&patch.text)
            .map_err(|error| Error::Diff(format!("{}: {error}", patch.path)))?;
        let after = if patch.exists {
            after_of(&patch.path)
        } else {
            None
        };
        let before = match &after {
            Some(after) if patch.existed => diffy::apply(after, &parsed.reverse()).ok(),
            _ => None,
        };
        let (before, after) = match (before, after) {
            (Some(before), Some(after)) => (Some(before), Some(after)),
            (None, Some(after)) if !patch.existed => (None, Some(after)),
            _ => {
                // From the diff's own lines.
                let mut old = String::new();
                let mut new = String::new();
                for hunk in parsed.hunks() {
                    for line in hunk.lines() {
                        match line {
                            diffy::Line::Context(text) => {
                                old.push_str(text);
                                new.push_str(text);
                            }
                            diffy::Line::Delete(text) => old.push_str(text),
                            diffy::Line::Insert(text) => new.push_str(text),
                        }
                    }
                }
                (patch.existed.then_some(old), patch.exists.then_some(new))
            }
        };
        files.push(ManifestFile {
            path: patch.path,
            before,
            after,
        });
    }
    Ok(files)
}

/// Every manifest under `root` (hidden directories, `node_modules` and `vendor` left out),
/// each as if the change created it.
pub fn files_from_tree(root: &Path) -> Result<Vec<ManifestFile>> {
    let mut files = Vec::new();
    walk(root, root, &mut files)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<ManifestFile>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let entry = entry.map_err(Error::io("list", dir))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type().map_err(Error::io("stat", &path))?;
        if kind.is_dir() {
            if !name.starts_with('.') && name != "node_modules" && name != "vendor" {
                walk(root, &path, out)?;
            }
            continue;
        }
        let Ok(relative) = path.strip_prefix(root) else {
            continue;
        };
        let relative = relative.to_string_lossy().replace('\\', "/");
        if kind.is_file() && is_manifest(&relative) {
            let text = std::fs::read_to_string(&path).map_err(Error::io("read", &path))?;
            out.push(ManifestFile {
                path: relative,
                before: None,
                after: Some(text),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
