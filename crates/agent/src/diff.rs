//! `apply_diff`: unified diffs (one or several files) applied all or nothing.
//!
//! Parsing and hunk application are `diffy`'s (exact context, no fuzz; a hunk may sit at an
//! offset from where its header says). Every hunk of every file is checked against the
//! current content (through the overlay) before anything is staged.

use std::collections::BTreeMap;

use diffy::patch_set::{FileOperation, ParseOptions, PatchKind, PatchSet};

use crate::overlay::{FileState, Overlay};
use crate::paths::normalize;
use crate::tools::ToolError;
use crate::workspace::Workspace;

/// One file's edit: content before and after (`None` = absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileEdit {
    pub(crate) path: String,
    pub(crate) before: Option<String>,
    pub(crate) after: Option<String>,
}

/// What a file patch does, with normalized paths.
#[derive(Debug)]
enum Op {
    Create(String),
    Delete(String),
    Modify(String),
    Rename { from: String, to: String },
}

/// Strips git's `a/` / `b/` prefix.
fn strip(path: &str, prefix: &str) -> String {
    path.strip_prefix(prefix).unwrap_or(path).to_owned()
}

fn op_of(operation: &FileOperation<'_, str>) -> Result<Op, ToolError> {
    let path =
        |raw: &str, prefix: &str| normalize(&strip(raw, prefix), false).map_err(ToolError::Refused);
    Ok(match operation {
        FileOperation::Create(p) => Op::Create(path(p, "b/")?),
        FileOperation::Delete(p) => Op::Delete(path(p, "a/")?),
        FileOperation::Modify { original, modified } => {
            // git's prefixes only when both sides carry them.
            let git = original.starts_with("a/") && modified.starts_with("b/");
            let (a, b) = if git { ("a/", "b/") } else { ("", "") };
            let from = path(original, a)?;
            let to = path(modified, b)?;
            if from == to {
                Op::Modify(to)
            } else {
                Op::Rename { from, to }
            }
        }
        FileOperation::Rename { from, to } => Op::Rename {
            from: path(from, "a/")?,
            to: path(to, "b/")?,
        },
        FileOperation::Copy { to, .. } => {
            return Err(ToolError::Message(format!(
                "copying files ({to}) is not supported in a diff; use create_file"
            )));
        }
    })
}

/// Parses `diff_text` and applies it to the current content, staging nothing; returns the
/// edits in diff order, or a message saying which file or hunk failed.
pub(crate) async fn plan<W: Workspace>(
    overlay: &Overlay,
    ws: &W,
    diff_text: &str,
) -> Result<Vec<FileEdit>, ToolError> {
    if diff_text.trim().is_empty() {
        return Err(ToolError::Message("diff_text is empty".to_owned()));
    }
    let options = if diff_text.contains("diff --git ") {
        ParseOptions::gitdiff()
    } else {
        ParseOptions::unidiff()
    };
    let patches: Vec<_> = PatchSet::parse(diff_text, options)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            ToolError::Message(format!(
                "cannot parse the diff: {e}; give a unified diff with ---/+++ headers and @@ hunks \
                 whose line counts match"
            ))
        })?;
    if patches.is_empty() {
        return Err(ToolError::Message(
            "the diff has no file changes; give a unified diff with ---/+++ headers and @@ hunks"
                .to_owned(),
        ));
    }
    // Path -> content so far in this diff (`None` = absent), so several patches of one file
    // apply in sequence.
    let mut current: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut original: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for file in &patches {
        let op = op_of(file.operation())?;
        let PatchKind::Text(patch) = file.patch() else {
            return Err(ToolError::Message(format!(
                "{op:?}: binary patches are not supported"
            )));
        };
        let mut load = async |path: &str| -> Result<Option<String>, ToolError> {
            if let Some(content) = current.get(path) {
                return Ok(content.clone());
            }
            let content = match overlay.read(ws, path).await? {
                FileState::Missing => None,
                FileState::Text(text) => Some(text),
                FileState::Binary(size) => {
                    return Err(ToolError::Message(format!(
                        "{path} is a binary file ({size} bytes); a diff cannot change it"
                    )));
                }
            };
            original.insert(path.to_owned(), content.clone());
            current.insert(path.to_owned(), content.clone());
            order.push(path.to_owned());
            Ok(content)
        };
        let apply = |path: &str, base: &str| {
            diffy::apply(base, patch).map_err(|e| {
                ToolError::Message(format!(
                    "{e} of {path}: its context or removed lines do not match the file; \
                     read the file and make the diff from its current content"
                ))
            })
        };
        let (source, target, result) = match &op {
            Op::Create(path) => {
                if load(path).await?.is_some() {
                    return Err(ToolError::Message(format!(
                        "the diff creates {path}, which already exists"
                    )));
                }
                (None, path, Some(apply(path, "")?))
            }
            Op::Delete(path) => {
                let Some(base) = load(path).await? else {
                    return Err(ToolError::Message(format!(
                        "the diff deletes {path}, which does not exist"
                    )));
                };
                // The hunks must match what is deleted.
                apply(path, &base)?;
                (None, path, None)
            }
            Op::Modify(path) => {
                let Some(base) = load(path).await? else {
                    return Err(ToolError::Message(format!(
                        "the diff modifies {path}, which does not exist (use --- /dev/null to create it)"
                    )));
                };
                (None, path, Some(apply(path, &base)?))
            }
            Op::Rename { from, to } => {
                let Some(base) = load(from).await? else {
                    return Err(ToolError::Message(format!(
                        "the diff renames {from}, which does not exist"
                    )));
                };
                if load(to).await?.is_some() {
                    return Err(ToolError::Message(format!(
                        "the diff renames {from} to {to}, which already exists"
                    )));
                }
                (Some(from), to, Some(apply(from, &base)?))
            }
        };
        if let Some(source) = source {
            current.insert(source.clone(), None);
        }
        current.insert(target.clone(), result);
    }
    Ok(order
        .into_iter()
        .filter_map(|path| {
            let before = original.get(&path).cloned().flatten();
            let after = current.get(&path).cloned().flatten();
            (before != after).then_some(FileEdit {
                path,
                before,
                after,
            })
        })
        .collect())
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
