//! Pull request templates: where GitHub keeps them, and how the platform's description is
//! put into one.

/// Where GitHub looks for a repository's single pull request template (names compared without
/// case), in its order: `.github/`, the root, `docs/`.
pub const DIRECTORIES: [&str; 3] = [".github", "", "docs"];
/// The template's file name (GitHub matches it case-insensitively).
pub const FILE_NAME: &str = "pull_request_template.md";

/// Headings under which the description goes, when the template has one of them.
const DESCRIPTION_HEADINGS: [&str; 5] = ["summary", "description", "what", "changes", "overview"];

/// `template` filled with `body`: the template's HTML comments (hints to a human author) are
/// dropped; the body goes under the first heading that asks for a summary or description,
/// else above the template. The template's other sections (checklists, test notes) stay as
/// they are for the reviewer.
pub fn fill(template: &str, body: &str) -> String {
    let template = strip_comments(template);
    let body = body.trim();
    let mut out = String::new();
    let mut placed = false;
    for line in template.lines() {
        out.push_str(line);
        out.push('\n');
        if !placed && is_description_heading(line) {
            out.push('\n');
            out.push_str(body);
            out.push('\n');
            placed = true;
        }
    }
    let out = collapse_blank_lines(&out);
    if placed {
        out
    } else {
        format!("{body}\n\n{out}")
    }
}

fn is_description_heading(line: &str) -> bool {
    let Some(title) = line.trim_start().strip_prefix('#') else {
        return false;
    };
    let title = title.trim_start_matches('#').trim().to_ascii_lowercase();
    DESCRIPTION_HEADINGS
        .iter()
        .any(|heading| title.starts_with(heading))
}

fn strip_comments(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        match rest[start..].find("-->") {
            Some(end) => rest = &rest[start + end + 3..],
            // An unclosed comment hides the rest from a rendered page too.
            None => rest = "",
        }
    }
    out.push_str(rest);
    out
}

fn collapse_blank_lines(text: &str) -> String {
    let mut out = String::new();
    let mut blank = 0;
    for line in text.trim().lines() {
        if line.trim().is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;
