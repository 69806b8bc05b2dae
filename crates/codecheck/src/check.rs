//! Running the queries on one changed file and keeping what the change added.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;
use tree_sitter::{Node, Parser, Query, QueryCursor, StreamingIterator, Tree};

use crate::lang::{Constraint, Lang};
use crate::rules::{self, Rule};
use crate::{ChangedFile, Error, Finding, Skipped};

/// Files larger than this are skipped (generated or vendored code, not an agent's edit).
pub const MAX_FILE_BYTES: usize = 2 * 1024 * 1024;
/// A run of this many base64 (or hex) characters in one literal is an encoded blob. Digests
/// stay below it (SHA-512 in base64 is 88), key material and payloads above.
pub const BLOB_MIN_CHARS: usize = 200;
/// A single-line literal this long hides what it holds from a reviewer.
pub const LONG_LITERAL_MIN_CHARS: usize = 1000;
/// The line's text shown with a finding is cut here.
const SHOWN_CHARS: usize = 160;

/// What each capture of a query means.
#[derive(Debug, Clone, Copy)]
enum Role {
    Rule(&'static Rule),
    Check(Constraint),
    Ignore,
}

/// A language's query, compiled once, with what each of its captures means.
pub(crate) struct Compiled {
    query: Query,
    roles: Vec<Role>,
}

fn compile(lang: Lang) -> Result<Compiled, Error> {
    let query = Query::new(&lang.grammar(), lang.query_source()).map_err(|error| Error::Query {
        language: lang.name(),
        message: error.to_string(),
    })?;
    let roles = query
        .capture_names()
        .iter()
        .map(|name| {
            if name.starts_with('_') {
                Ok(Role::Ignore)
            } else if let Some(check) = Constraint::from_capture(name) {
                Ok(Role::Check(check))
            } else {
                rules::find(name)
                    .map(Role::Rule)
                    .ok_or_else(|| Error::Query {
                        language: lang.name(),
                        message: format!("capture @{name} names no rule or check"),
                    })
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Compiled { query, roles })
}

static PYTHON: LazyLock<Result<Compiled, Error>> = LazyLock::new(|| compile(Lang::Python));
static JAVASCRIPT: LazyLock<Result<Compiled, Error>> = LazyLock::new(|| compile(Lang::JavaScript));
static TYPESCRIPT: LazyLock<Result<Compiled, Error>> = LazyLock::new(|| compile(Lang::TypeScript));
static TSX: LazyLock<Result<Compiled, Error>> = LazyLock::new(|| compile(Lang::Tsx));
static GO: LazyLock<Result<Compiled, Error>> = LazyLock::new(|| compile(Lang::Go));
static JAVA: LazyLock<Result<Compiled, Error>> = LazyLock::new(|| compile(Lang::Java));

pub(crate) fn compiled(lang: Lang) -> Result<&'static Compiled, Error> {
    let cell = match lang {
        Lang::Python => &PYTHON,
        Lang::JavaScript => &JAVASCRIPT,
        Lang::TypeScript => &TYPESCRIPT,
        Lang::Tsx => &TSX,
        Lang::Go => &GO,
        Lang::Java => &JAVA,
    };
    cell.as_ref().map_err(Clone::clone)
}

/// Calls that decode a hidden payload (base64, hex, compression, char codes).
static DECODER: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)b64decode|b32decode|a2b_base64|decodebytes|unhexlify|fromhex|decompress|marshal\.loads|\batob\s*\(|fromCharCode|['"]base64['"]|['"]hex['"]|rot_?13"#,
    )
    .ok()
});

/// Programs that run their argument as a shell script.
const SHELLS: &[&str] = &[
    "sh",
    "bash",
    "zsh",
    "dash",
    "ksh",
    "fish",
    "cmd",
    "cmd.exe",
    "powershell",
    "powershell.exe",
    "pwsh",
];

/// Parses one file and runs its language's query; every skip says why.
pub(crate) fn check_file(
    parser: &mut Parser,
    file: &ChangedFile<'_>,
    findings: &mut Vec<Finding>,
    skipped: &mut Vec<Skipped>,
) {
    let Some(after) = file.after else { return };
    let Some(lang) = Lang::from_path(file.path) else {
        return;
    };
    let mut skip = |reason: String| {
        skipped.push(Skipped {
            path: file.path.to_owned(),
            reason,
        })
    };
    if after.len() > MAX_FILE_BYTES {
        skip(format!(
            "{} bytes, over the {MAX_FILE_BYTES}-byte limit of the checks",
            after.len()
        ));
        return;
    }
    let added = added_rows(file.before, after);
    if added.is_empty() {
        return;
    }
    let compiled = match compiled(lang) {
        Ok(compiled) => compiled,
        Err(error) => {
            skip(error.to_string());
            return;
        }
    };
    let Some(tree) = parse(parser, lang, after) else {
        skip(format!("the {} parser gave no tree", lang.name()));
        return;
    };
    let mut found = Vec::new();
    run(
        compiled,
        lang,
        &tree,
        after,
        Some(&added),
        &mut |rule, row| {
            found.push((rule, row));
        },
    );
    if found.iter().any(|(rule, _)| rules::is_network(rule.id))
        && had_network(parser, lang, compiled, file.before)
    {
        found.retain(|(rule, _)| !rules::is_network(rule.id));
    }
    found.sort_by_key(|(rule, row)| (*row, rules::index(rule.id)));
    found.dedup_by_key(|(rule, row)| (*row, rule.id));
    let superseded: Vec<(usize, &str)> = found
        .iter()
        .filter_map(|(rule, row)| rule.supersedes.map(|other| (*row, other)))
        .collect();
    found.retain(|(rule, row)| !superseded.contains(&(*row, rule.id)));
    let lines: Vec<&str> = after.lines().collect();
    for (rule, row) in found {
        findings.push(Finding {
            rule: rule.id.to_owned(),
            severity: rule.severity,
            path: file.path.to_owned(),
            line: row + 1,
            message: rule.message.to_owned(),
            text: shown(lines.get(row).copied().unwrap_or_default()),
        });
    }
}

fn parse(parser: &mut Parser, lang: Lang, text: &str) -> Option<Tree> {
    parser.set_language(&lang.grammar()).ok()?;
    // A tree with errors is still a tree: the parts that parsed are checked.
    parser.parse(text, None)
}

/// Whether the file's version before the change made a network call already.
fn had_network(parser: &mut Parser, lang: Lang, compiled: &Compiled, before: Option<&str>) -> bool {
    let Some(before) = before else { return false };
    let Some(tree) = parse(parser, lang, before) else {
        return false;
    };
    let mut any = false;
    run(compiled, lang, &tree, before, None, &mut |rule, _| {
        any |= rules::is_network(rule.id);
    });
    any
}

/// Runs the query; for each match whose checks pass and whose rule node touches an added row
/// (all rows when `added` is `None`), calls `hit` with the rule and the row to report.
fn run(
    compiled: &Compiled,
    lang: Lang,
    tree: &Tree,
    text: &str,
    added: Option<&[Range<usize>]>,
    hit: &mut dyn FnMut(&'static Rule, usize),
) {
    let source = text.as_bytes();
    let mut cursor = QueryCursor::new();
    if let Some((first, last)) = added.and_then(|added| added.first().zip(added.last())) {
        // Only the part of the file the change touched is searched.
        cursor.set_point_range(
            tree_sitter::Point::new(first.start, 0)..tree_sitter::Point::new(last.end, 0),
        );
    }
    let mut matches = cursor.matches(&compiled.query, tree.root_node(), source);
    while let Some(found) = matches.next() {
        let mut rule = None;
        let mut passes = true;
        for capture in found.captures {
            match compiled.roles.get(capture.index as usize) {
                Some(Role::Rule(r)) => rule = Some((*r, capture.node)),
                Some(Role::Check(check)) => {
                    passes &= holds(*check, lang, capture.node, source);
                }
                Some(Role::Ignore) | None => {}
            }
        }
        let Some((rule, node)) = rule else { continue };
        if !passes {
            continue;
        }
        let rows = node.start_position().row..node.end_position().row + 1;
        let row = match added {
            None => Some(rows.start),
            Some(added) => first_added(added, rows),
        };
        if let Some(row) = row {
            hit(rule, row);
        }
    }
}

/// The first row of `rows` the change added, if any.
fn first_added(added: &[Range<usize>], rows: Range<usize>) -> Option<usize> {
    let at = added.partition_point(|range| range.end <= rows.start);
    let range = added.get(at)?;
    (range.start < rows.end).then(|| range.start.max(rows.start))
}

/// The rows (0-based) of `after` that are new or changed against `before`, as sorted ranges.
pub(crate) fn added_rows(before: Option<&str>, after: &str) -> Vec<Range<usize>> {
    let Some(before) = before else {
        let rows = after.lines().count().max(1);
        return std::iter::once(0..rows).collect();
    };
    let diff = similar::TextDiff::configure()
        .timeout(std::time::Duration::from_millis(500))
        .diff_lines(before, after);
    let mut rows: Vec<Range<usize>> = Vec::new();
    for op in diff.ops() {
        let range = op.new_range();
        let inserted = matches!(
            op.tag(),
            similar::DiffTag::Insert | similar::DiffTag::Replace
        );
        if !inserted || range.is_empty() {
            continue;
        }
        match rows.last_mut() {
            Some(last) if last.end == range.start => last.end = range.end,
            _ => rows.push(range),
        }
    }
    rows
}

/// The line as shown with a finding: trimmed, cut, cleared of secrets.
fn shown(line: &str) -> String {
    let line = line.trim();
    let mut text: String = line.chars().take(SHOWN_CHARS).collect();
    if line.chars().count() > SHOWN_CHARS {
        text.push('…');
    }
    cap_secrets::redact(&text)
}

fn text_of<'a>(node: Node<'_>, source: &'a [u8]) -> &'a str {
    node.utf8_text(source).unwrap_or_default()
}

fn named_children(node: Node<'_>) -> impl Iterator<Item = Node<'_>> {
    (0..node.named_child_count())
        .filter_map(move |i| node.named_child(i))
        .filter(|child| !child.kind().contains("comment"))
}

fn holds(check: Constraint, lang: Lang, node: Node<'_>, source: &[u8]) -> bool {
    match check {
        Constraint::NonLiteral => !is_literal(lang, node, source),
        Constraint::Built => is_built(lang, node, source),
        Constraint::ShellArgv => is_shell_argv(lang, node, source),
        Constraint::Decoded => DECODER
            .as_ref()
            .is_some_and(|decoder| decoder.is_match(text_of(node, source))),
        Constraint::Blob => longest_base64_run(text_of(node, source)) >= BLOB_MIN_CHARS,
        Constraint::LongLiteral => {
            node.start_position().row == node.end_position().row
                && text_of(node, source).chars().count() >= LONG_LITERAL_MIN_CHARS
        }
        Constraint::EmptyBody => named_children(node).next().is_none(),
        Constraint::ReturnsTrue => {
            let mut statements = named_children(node);
            match (statements.next(), statements.next()) {
                (Some(only), None) => {
                    only.kind() == "return_statement"
                        && named_children(only)
                            .next()
                            .is_some_and(|value| value.kind() == "true")
                }
                _ => false,
            }
        }
    }
}

/// A constant: a literal, or a list, concatenation or collection of constants.
fn is_literal(lang: Lang, node: Node<'_>, source: &[u8]) -> bool {
    let kind = node.kind();
    if lang.is_string(kind) {
        return named_children(node)
            .all(|part| !matches!(part.kind(), "interpolation" | "template_substitution"));
    }
    match kind {
        "integer"
        | "float"
        | "number"
        | "int_literal"
        | "float_literal"
        | "true"
        | "false"
        | "none"
        | "null"
        | "nil"
        | "null_literal"
        | "decimal_integer_literal"
        | "string_content"
        | "string_fragment"
        | "escape_sequence" => true,
        "concatenated_string"
        | "list"
        | "tuple"
        | "set"
        | "array"
        | "parenthesized_expression"
        | "binary_operator"
        | "binary_expression"
        | "literal_value"
        | "literal_element"
        | "array_initializer"
        | "expression_list" => named_children(node).all(|child| is_literal(lang, child, source)),
        "composite_literal" => node
            .child_by_field_name("body")
            .is_some_and(|body| is_literal(lang, body, source)),
        "array_creation_expression" => node
            .child_by_field_name("value")
            .is_some_and(|value| is_literal(lang, value, source)),
        // `List.of("ls", "-l")`, `Arrays.asList(...)`: a constant list in Java.
        "method_invocation" => {
            let name = node
                .child_by_field_name("name")
                .map(|name| text_of(name, source));
            matches!(name, Some("of" | "asList" | "singletonList"))
                && node
                    .child_by_field_name("arguments")
                    .is_some_and(|args| is_literal(lang, args, source))
        }
        "argument_list" | "arguments" => {
            named_children(node).all(|child| is_literal(lang, child, source))
        }
        _ => false,
    }
}

/// A string put together at run time: interpolated, concatenated or formatted.
fn is_built(lang: Lang, node: Node<'_>, source: &[u8]) -> bool {
    if is_literal(lang, node, source) {
        return false;
    }
    match node.kind() {
        "concatenated_string" | "binary_operator" | "binary_expression" | "template_string" => true,
        kind if lang.is_string(kind) => true,
        "call" => node
            .child_by_field_name("function")
            .and_then(|function| function.child_by_field_name("attribute"))
            .is_some_and(|attribute| text_of(attribute, source) == "format"),
        _ => false,
    }
}

/// `["sh", "-c", cmd]` or `("bash", "-c", script)`: a shell given a script that is not a
/// constant.
fn is_shell_argv(lang: Lang, node: Node<'_>, source: &[u8]) -> bool {
    let mut children = named_children(node).skip_while(|child| !lang.is_string(child.kind()));
    let Some(program) = children.next() else {
        return false;
    };
    let name = text_of(program, source).trim_matches(|c| matches!(c, '"' | '\'' | '`'));
    let name = name.rsplit(['/', '\\']).next().unwrap_or(name);
    SHELLS.contains(&name) && children.any(|child| !is_literal(lang, child, source))
}

/// The longest run of base64 (standard or URL-safe, padding included) characters; hex is a
/// subset.
fn longest_base64_run(text: &str) -> usize {
    let mut longest = 0;
    let mut run = 0;
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'=' | b'-' | b'_') {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
