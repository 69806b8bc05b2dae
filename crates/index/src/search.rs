//! `search_files(pattern, glob)` on ripgrep's own crates: `.gitignore` honoured, hidden files
//! and binary files skipped, symbolic links not followed.

use std::path::Path;
use std::sync::Mutex;

use grep::regex::RegexMatcher;
use grep::searcher::{BinaryDetection, SearcherBuilder, sinks};

use crate::{Error, Result};

/// Options for [`search_files`].
#[derive(Debug, Clone)]
pub struct SearchOptions {
    /// Stop after this many matches (the result says it was cut).
    pub max_matches: usize,
    /// Threads walking and searching; 0 means one per available core.
    pub threads: usize,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            max_matches: 1000,
            threads: 0,
        }
    }
}

/// One matching line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct SearchMatch {
    /// Path relative to the root, `/`-separated.
    pub path: String,
    /// Line number, 1-based.
    pub line: u64,
    /// The line, without its line ending, cut to 500 bytes.
    pub text: String,
}

/// Searches `root` for the regular expression `pattern` in files matching `glob` (all files
/// when `None`). Returns the matches sorted by path and line, and whether `max_matches` cut
/// them.
pub fn search_files(
    root: &Path,
    pattern: &str,
    glob: Option<&str>,
    options: &SearchOptions,
) -> Result<(Vec<SearchMatch>, bool)> {
    let matcher =
        RegexMatcher::new_line_matcher(pattern).map_err(|source| Error::InvalidPattern {
            pattern: pattern.to_owned(),
            source,
        })?;
    let mut builder = ignore::WalkBuilder::new(root);
    builder
        .follow_links(false)
        .require_git(false)
        .threads(options.threads);
    if let Some(glob) = glob.filter(|g| !g.trim().is_empty()) {
        let mut overrides = ignore::overrides::OverrideBuilder::new(root);
        overrides.add(glob).map_err(|source| Error::InvalidGlob {
            glob: glob.to_owned(),
            source,
        })?;
        let overrides = overrides.build().map_err(|source| Error::InvalidGlob {
            glob: glob.to_owned(),
            source,
        })?;
        builder.overrides(overrides);
    }
    let found = Mutex::new(Vec::new());
    let max = options.max_matches;
    let count = std::sync::atomic::AtomicUsize::new(0);
    builder.build_parallel().run(|| {
        let matcher = matcher.clone();
        let found = &found;
        let count = &count;
        let mut searcher = SearcherBuilder::new()
            .binary_detection(BinaryDetection::quit(0))
            .line_number(true)
            .build();
        Box::new(move |entry| {
            let Ok(entry) = entry else {
                return ignore::WalkState::Continue;
            };
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                return ignore::WalkState::Continue;
            }
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap_or(path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let mut local = Vec::new();
            let _ = searcher.search_path(
                &matcher,
                path,
                sinks::Lossy(|line, text| {
                    let text = text.trim_end_matches(['\n', '\r']);
                    let mut cut = text.len().min(500);
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    local.push(SearchMatch {
                        path: rel.clone(),
                        line,
                        text: text[..cut].to_owned(),
                    });
                    Ok(local.len() < max)
                }),
            );
            if local.is_empty() {
                return ignore::WalkState::Continue;
            }
            let total =
                count.fetch_add(local.len(), std::sync::atomic::Ordering::Relaxed) + local.len();
            found
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend(local);
            if total > max {
                ignore::WalkState::Quit
            } else {
                ignore::WalkState::Continue
            }
        })
    });
    let mut found = found
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    found.sort();
    let truncated = found.len() > max;
    found.truncate(max);
    Ok((found, truncated))
}
