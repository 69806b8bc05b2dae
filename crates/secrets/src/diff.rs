//! Unified diffs: the added lines of each file, with their line numbers in the new file.

use crate::{Error, Result};

/// The added lines of one file in a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffFile {
    /// The new file's path (without git's `b/` prefix).
    pub path: String,
    /// The added lines, each ending in `\n`.
    pub text: String,
    /// For each line of `text`, its 1-based line number in the new file.
    pub new_lines: Vec<usize>,
}

/// Whether `text` is a unified diff: it starts with `diff --git` or `--- `, or is a
/// `git format-patch` mail holding one.
/// A `+++` header is required too, so a YAML document opening with `--- ` is not taken for
/// an (empty) diff and left unscanned.
pub fn looks_like_diff(text: &str) -> bool {
    let opening = text.starts_with("diff --git ")
        || text.starts_with("--- ")
        || (text.starts_with("From ") && text.contains("\ndiff --git "));
    opening && (text.contains("\n+++ ") || text.starts_with("diff --git "))
}

/// Where the parser is.
enum State {
    /// Between files or in a file's header.
    Header,
    /// In a hunk, with this many old and new lines still to come.
    Hunk { old_left: usize, new_left: usize },
    /// In a binary patch, until the next file.
    Binary,
}

/// Parses a unified diff (git's or plain) into the added lines of each file. Removed and
/// context lines are dropped; deleted files have no added lines and are left out.
pub fn parse_diff(diff: &str) -> Result<Vec<DiffFile>> {
    let mut files: Vec<DiffFile> = Vec::new();
    // The file the next hunks belong to (None for a deleted file).
    let mut current: Option<usize> = None;
    let mut state = State::Header;
    let mut new_line = 0usize;
    // memchr's SIMD search finds the line ends several times faster than `str::lines`.
    let bytes = diff.as_bytes();
    let ends = memchr::memchr_iter(b'\n', bytes)
        .chain((!diff.is_empty() && !diff.ends_with('\n')).then_some(bytes.len()));
    let mut line_start = 0;
    let mut line_no = 0;
    for line_end in ends {
        line_no += 1;
        let line = &diff[line_start..line_end];
        line_start = line_end + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let State::Hunk { old_left, new_left } = &mut state {
            let (first, rest) = match line.as_bytes().first() {
                Some(&b) => (b, &line[1..]),
                // Some tools strip the single space of an empty context line.
                None => (b' ', ""),
            };
            match first {
                b'+' => {
                    if *new_left == 0 {
                        return Err(diff_error(
                            line_no,
                            "more added lines than the hunk header says",
                        ));
                    }
                    if let Some(file) = current {
                        let file = &mut files[file];
                        file.text.push_str(rest);
                        file.text.push('\n');
                        file.new_lines.push(new_line);
                    }
                    *new_left -= 1;
                    new_line += 1;
                }
                b'-' => {
                    if *old_left == 0 {
                        return Err(diff_error(
                            line_no,
                            "more removed lines than the hunk header says",
                        ));
                    }
                    *old_left -= 1;
                }
                b' ' => {
                    if *old_left == 0 || *new_left == 0 {
                        return Err(diff_error(
                            line_no,
                            "more context lines than the hunk header says",
                        ));
                    }
                    *old_left -= 1;
                    *new_left -= 1;
                    new_line += 1;
                }
                // `\ No newline at end of file`.
                b'\\' => {}
                _ => {
                    return Err(diff_error(
                        line_no,
                        "a hunk line must start with ' ', '+', '-' or '\\' (the hunk ended early)",
                    ));
                }
            }
            if let State::Hunk {
                old_left: 0,
                new_left: 0,
            } = state
            {
                state = State::Header;
            }
            continue;
        }
        if line.starts_with("diff --git ") {
            // The path comes from `+++`; a rename or mode change without hunks adds nothing.
            current = None;
            state = State::Header;
            continue;
        }
        if matches!(state, State::Binary) {
            continue;
        }
        if line.starts_with("GIT binary patch") {
            state = State::Binary;
            continue;
        }
        if let Some(path) = line.strip_prefix("+++ ") {
            let path = header_path(path);
            current = if path == "/dev/null" {
                None
            } else {
                files.push(DiffFile {
                    path: path.strip_prefix("b/").unwrap_or(&path).to_owned(),
                    text: String::new(),
                    new_lines: Vec::new(),
                });
                Some(files.len() - 1)
            };
            continue;
        }
        if let Some(header) = line.strip_prefix("@@ ") {
            let (old_left, new_start, new_left) = hunk_header(header)
                .ok_or_else(|| diff_error(line_no, "a hunk header must read @@ -a,b +c,d @@"))?;
            new_line = new_start;
            state = if old_left == 0 && new_left == 0 {
                State::Header
            } else {
                State::Hunk { old_left, new_left }
            };
        }
        // Anything else between files (`index`, `---`, `new file mode`, `Binary files ...
        // differ`, mail headers) carries no added lines.
    }
    // A hunk whose counts reached zero went back to `Header`, so one still open is short.
    if let State::Hunk { .. } = state {
        return Err(diff_error(
            line_no,
            "the diff ends inside a hunk (truncated?)",
        ));
    }
    files.retain(|file| !file.text.is_empty());
    Ok(files)
}

fn diff_error(line: usize, reason: &str) -> Error {
    Error::Diff {
        line,
        reason: reason.to_owned(),
    }
}

/// Parses `-a[,b] +c[,d] @@...` into (old count, new start, new count).
fn hunk_header(header: &str) -> Option<(usize, usize, usize)> {
    let mut parts = header.split(' ');
    let old = parts.next()?.strip_prefix('-')?;
    let new = parts.next()?.strip_prefix('+')?;
    let count = |range: &str| -> Option<(usize, usize)> {
        match range.split_once(',') {
            Some((start, count)) => Some((start.parse().ok()?, count.parse().ok()?)),
            None => Some((range.parse().ok()?, 1)),
        }
    };
    let (_, old_count) = count(old)?;
    let (new_start, new_count) = count(new)?;
    Some((old_count, new_start, new_count))
}

/// The path of a `+++` header: a tab ends it (plain diff's timestamp), and git quotes paths
/// with unusual characters C-style.
fn header_path(raw: &str) -> String {
    let raw = raw.split('\t').next().unwrap_or(raw);
    let Some(quoted) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return raw.to_owned();
    };
    let mut bytes = Vec::with_capacity(quoted.len());
    let mut chars = quoted.bytes().peekable();
    while let Some(b) = chars.next() {
        if b != b'\\' {
            bytes.push(b);
            continue;
        }
        match chars.next() {
            Some(b'n') => bytes.push(b'\n'),
            Some(b't') => bytes.push(b'\t'),
            Some(digit @ b'0'..=b'7') => {
                let mut value = u32::from(digit - b'0');
                for _ in 0..2 {
                    if let Some(&next @ b'0'..=b'7') = chars.peek() {
                        value = value * 8 + u32::from(next - b'0');
                        chars.next();
                    }
                }
                bytes.push(u8::try_from(value).unwrap_or(b'?'));
            }
            Some(other) => bytes.push(other),
            None => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
