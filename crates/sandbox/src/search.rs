//! `search_files`: a regular expression over the workspace's text files, honouring
//! `.gitignore` like git would (even though the workspace has no `.git`).

use std::io::Read;
use std::path::Path;

use ignore::WalkBuilder;
use ignore::overrides::OverrideBuilder;
use rustix::fs::OFlags;

use crate::paths::{RelPath, is_git_dir};
use crate::workspace::Workspace;
use crate::{Error, Result, SearchMatch};

/// Files larger than this are not searched.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// A matched line is cut to this many characters.
const MAX_LINE_CHARS: usize = 500;
/// Compiled-regex size limit, so that a pathological pattern is an error, not a hog.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A walker over `root` as git sees it: `.gitignore` honoured, hidden files included,
/// `.git` skipped, symlinks not followed, sorted by name.
pub(crate) fn walker(root: &Path) -> WalkBuilder {
    let mut builder = WalkBuilder::new(root);
    builder
        .hidden(false)
        .ignore(false)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .parents(false)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(|entry| !is_git_dir(&entry.file_name().to_string_lossy()));
    builder
}

/// The components of `path` below `root`.
pub(crate) fn relative(root: &Path, path: &Path) -> Option<RelPath> {
    let inside = path.strip_prefix(root).ok()?;
    let components: Vec<String> = inside
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    (!components.is_empty()).then(|| RelPath::from_components(components))
}

/// Searches the workspace; at most `max_matches` matches, the flag telling whether there
/// were more.
pub fn search(
    ws: &Workspace,
    pattern: &str,
    glob: Option<&str>,
    max_matches: usize,
) -> Result<(Vec<SearchMatch>, bool)> {
    let regex = regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|source| Error::InvalidPattern {
            pattern: pattern.to_owned(),
            source: Box::new(source),
        })?;
    let mut builder = walker(ws.root());
    if let Some(glob) = glob.filter(|glob| !glob.is_empty()) {
        let invalid = |source| Error::InvalidGlob {
            glob: glob.to_owned(),
            source: Box::new(source),
        };
        let mut overrides = OverrideBuilder::new(ws.root());
        overrides.add(glob).map_err(invalid)?;
        builder.overrides(overrides.build().map_err(invalid)?);
    }
    let mut matches = Vec::new();
    for entry in builder.build() {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_some_and(|kind| kind.is_file()) {
            continue;
        }
        let Some(rel) = relative(ws.root(), entry.path()) else {
            continue;
        };
        let Some(text) = read_text(ws, &rel) else {
            continue;
        };
        for (index, line) in text.lines().enumerate() {
            if !regex.is_match(line) {
                continue;
            }
            if matches.len() >= max_matches {
                return Ok((matches, true));
            }
            let line = line.trim_end_matches('\r');
            matches.push(SearchMatch {
                path: rel.as_string(),
                line_number: u32::try_from(index + 1).unwrap_or(u32::MAX),
                line: line.chars().take(MAX_LINE_CHARS).collect(),
            });
        }
    }
    Ok((matches, false))
}

/// A file's text, or `None` for binary, oversized or unreadable files.
fn read_text(ws: &Workspace, rel: &RelPath) -> Option<String> {
    let fd = ws
        .open_beneath(rel, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK)
        .ok()?;
    let file = std::fs::File::from(fd);
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES).read_to_end(&mut bytes).ok()?;
    if bytes.contains(&0) {
        return None;
    }
    Some(String::from_utf8_lossy(&bytes).into_owned())
}
