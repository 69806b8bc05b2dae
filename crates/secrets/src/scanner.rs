//! The scanner: keyword pre-filter, rule patterns near the hits, checks, allow-list.

use std::borrow::Cow;
use std::ops::Range;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::bytes::{Captures, Regex, RegexBuilder};

use crate::allow::AllowList;
use crate::checks;
use crate::finding::{Finding, fingerprint, redacted_form};
use crate::rules::{AWS_KEY_ID_RULE, AWS_SECRET_RULE, Check, Matcher, Rule, rules};
use crate::{Error, Result};

/// How far past a private key's header its `-----END` marker is looked for.
const PRIVATE_KEY_MAX_BYTES: usize = 64 * 1024;
/// How far past a keyword a multi-line regex rule (PuTTY keys) looks.
const MULTI_LINE_WINDOW_BYTES: usize = 16 * 1024;
/// Lines around an AWS access key id searched for its secret key.
const AWS_PAIR_LINES: usize = 4;

/// A rule with its pattern compiled.
struct CompiledRule {
    rule: &'static Rule,
    regex: Option<Regex>,
    /// The pattern may span lines, so it gets a window past the keyword's line.
    multi_line: bool,
}

/// A match before it becomes a finding; holds the secret, so it never leaves the crate.
struct Candidate {
    rule: usize,
    /// What redaction replaces.
    span: Range<usize>,
    /// What is fingerprinted and shown in part.
    secret: String,
}

/// The secret scanner: the rules compiled once, the keyword automaton, the allow-list.
/// Building one costs a few milliseconds; build it once and share it (it is `Sync`).
pub struct Scanner {
    rules: Vec<CompiledRule>,
    keywords: AhoCorasick,
    /// For each keyword of the automaton, the rules it starts.
    keyword_rules: Vec<Vec<usize>>,
    private_key_header: Regex,
    aws_secret_candidate: Regex,
    allow: AllowList,
    aws_secret_rule: Option<usize>,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("rules", &self.rules.len())
            .field("allow", &self.allow)
            .finish_non_exhaustive()
    }
}

fn compile(rule: &'static str, pattern: &str) -> Result<Regex> {
    RegexBuilder::new(pattern)
        .unicode(false)
        .build()
        .map_err(|source| Error::Rule { rule, source })
}

impl Scanner {
    /// A scanner with the built-in rules and an empty allow-list.
    pub fn new() -> Result<Self> {
        Self::with_allow_list(AllowList::new())
    }

    /// A scanner with the built-in rules and `allow`.
    pub fn with_allow_list(allow: AllowList) -> Result<Self> {
        let mut compiled = Vec::new();
        let mut keywords: Vec<String> = Vec::new();
        let mut keyword_rules: Vec<Vec<usize>> = Vec::new();
        for (index, rule) in rules().iter().enumerate() {
            let (regex, multi_line) = match rule.matcher {
                Matcher::Regex(pattern) => {
                    (Some(compile(rule.id, pattern)?), pattern.contains(r"\n"))
                }
                Matcher::PrivateKeyBlock => (None, true),
                Matcher::Assignment => (None, false),
            };
            compiled.push(CompiledRule {
                rule,
                regex,
                multi_line,
            });
            for keyword in rule.keywords {
                let keyword = keyword.to_ascii_lowercase();
                match keywords.iter().position(|known| *known == keyword) {
                    Some(at) => keyword_rules[at].push(index),
                    None => {
                        keywords.push(keyword);
                        keyword_rules.push(vec![index]);
                    }
                }
            }
        }
        // A full DFA: two to three times faster than the default (an NFA) at this many
        // keywords, and small enough to build in a few milliseconds.
        let builder = |kind| {
            AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .kind(kind)
                .build(&keywords)
        };
        let automaton = builder(Some(AhoCorasickKind::DFA))
            .or_else(|_| builder(None))
            .map_err(Error::Keywords)?;
        let aws_secret_rule = rules().iter().position(|rule| rule.id == AWS_SECRET_RULE);
        Ok(Self {
            rules: compiled,
            keywords: automaton,
            keyword_rules,
            private_key_header: compile(
                "private-key",
                r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY(?: BLOCK)?-----",
            )?,
            aws_secret_candidate: compile(
                AWS_SECRET_RULE,
                r"(?:^|[^A-Za-z0-9/+=])([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)",
            )?,
            allow,
            aws_secret_rule,
        })
    }

    /// The allow-list in force.
    pub fn allow_list(&self) -> &AllowList {
        &self.allow
    }

    /// The secrets in `text`, as findings in `file` (a path relative to the scanned root, or
    /// empty), sorted by position. Findings the allow-list allows are left out.
    pub fn scan_text(&self, file: &str, text: &str) -> Vec<Finding> {
        if self.allow.allows_path(file) {
            return Vec::new();
        }
        let candidates = self.candidates(text);
        let mut findings = Vec::with_capacity(candidates.len());
        let mut lines = LineCounter::new(text);
        for candidate in candidates {
            let rule = self.rules[candidate.rule].rule;
            let fingerprint = fingerprint(&candidate.secret);
            if self.allow.allows(file, rule.id, &fingerprint) {
                continue;
            }
            let (line, column) = lines.position(candidate.span.start);
            findings.push(Finding {
                rule_id: rule.id,
                description: rule.description,
                file: file.to_owned(),
                line,
                column,
                redacted: redacted_form(&candidate.secret),
                fingerprint,
                span: candidate.span,
            });
        }
        findings
    }

    /// `text` with every detected secret replaced by its redacted form. The allow-list does
    /// not apply: redaction is for text that is shown, where a known-public value costs
    /// nothing to hide.
    pub fn redact(&self, text: &str) -> String {
        self.redacted(text).into_owned()
    }

    /// As [`Scanner::redact`], borrowing `text` unchanged when it holds no secret: the common
    /// case costs one pass of the keyword automaton and no copy (log lines).
    pub fn redacted<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let candidates = self.candidates(text);
        if candidates.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        for candidate in candidates {
            let (start, end) = char_bounds(text, candidate.span.clone());
            if start < copied {
                continue;
            }
            out.push_str(&text[copied..start]);
            out.push_str(&redacted_form(&candidate.secret));
            copied = end;
        }
        out.push_str(&text[copied..]);
        Cow::Owned(out)
    }

    /// Every match in `text` that passes its rule's checks, overlaps resolved, by position.
    fn candidates(&self, text: &str) -> Vec<Candidate> {
        let bytes = text.as_bytes();
        let mut scanned_until = vec![0usize; self.rules.len()];
        let mut found = Vec::new();
        for hit in self.keywords.find_overlapping_iter(bytes) {
            for &rule in &self.keyword_rules[hit.pattern().as_usize()] {
                if hit.start() < scanned_until[rule] {
                    continue;
                }
                let line_start = memchr::memrchr(b'\n', &bytes[..hit.start()]).map_or(0, |i| i + 1);
                let line_end = memchr::memchr(b'\n', &bytes[hit.end()..])
                    .map_or(bytes.len(), |i| hit.end() + i);
                let compiled = &self.rules[rule];
                if compiled.rule.matcher == Matcher::Assignment {
                    scanned_until[rule] = assignment_candidate(
                        rule,
                        text,
                        hit.start()..hit.end(),
                        line_start..line_end,
                        &mut found,
                    );
                    continue;
                }
                scanned_until[rule] = match &compiled.regex {
                    Some(regex) => {
                        let end = if compiled.multi_line {
                            (line_end + MULTI_LINE_WINDOW_BYTES).min(bytes.len())
                        } else {
                            line_end
                        };
                        self.regex_candidates(rule, regex, text, line_start..end, &mut found);
                        end
                    }
                    None => self
                        .private_key_candidates(rule, text, line_start..line_end, &mut found)
                        .max(line_end),
                };
            }
        }
        self.pair_aws_secrets(text, &mut found);
        resolve_overlaps(found, &self.rules)
    }

    fn regex_candidates(
        &self,
        rule: usize,
        regex: &Regex,
        text: &str,
        window: Range<usize>,
        found: &mut Vec<Candidate>,
    ) {
        let base = window.start;
        let haystack = &text.as_bytes()[window];
        let check = self.rules[rule].rule.check;
        for caps in regex.captures_iter(haystack) {
            if let Some((span, secret)) = checked_secret(check, &caps, text, base) {
                found.push(Candidate { rule, span, secret });
            }
        }
    }

    /// Finds private-key blocks whose header is in `line`; returns how far it looked.
    fn private_key_candidates(
        &self,
        rule: usize,
        text: &str,
        line: Range<usize>,
        found: &mut Vec<Candidate>,
    ) -> usize {
        let bytes = text.as_bytes();
        let mut looked_until = line.end;
        for header in self.private_key_header.find_iter(&bytes[line.clone()]) {
            let body_start = line.start + header.end();
            let limit = (body_start + PRIVATE_KEY_MAX_BYTES).min(bytes.len());
            let region = &bytes[body_start..limit];
            let (body_end, block_end) = match memchr::memmem::find(region, b"-----END ") {
                Some(at) => {
                    let end_marker = body_start + at;
                    // The block ends after the END marker's closing dashes.
                    let after = memchr::memmem::find(&bytes[end_marker + 9..limit], b"-----")
                        .map_or(end_marker + 9, |i| end_marker + 9 + i + 5);
                    (end_marker, after)
                }
                // A key cut short (a truncated paste) is still leaked material: its body
                // runs to the first character no key block holds.
                None => {
                    let end = region
                        .iter()
                        .position(|&b| !is_key_body_byte(b))
                        .map_or(limit, |i| body_start + i);
                    (end, end)
                }
            };
            if let Some(secret) = private_key_body(&text[body_start..body_end]) {
                found.push(Candidate {
                    rule,
                    span: line.start + header.start()..block_end,
                    secret,
                });
            }
            looked_until = looked_until.max(block_end);
        }
        looked_until
    }

    /// An AWS secret access key sits near its access key id without a telling name
    /// (`credentials.csv`, a pasted pair): a 40-character high-entropy base64 token within a few
    /// lines of an id is taken as its secret.
    fn pair_aws_secrets(&self, text: &str, found: &mut Vec<Candidate>) {
        let Some(secret_rule) = self.aws_secret_rule else {
            return;
        };
        let bytes = text.as_bytes();
        let ids: Vec<usize> = found
            .iter()
            .filter(|c| self.rules[c.rule].rule.id == AWS_KEY_ID_RULE)
            .map(|c| c.span.start)
            .collect();
        for id_at in ids {
            let mut start = id_at;
            for _ in 0..=AWS_PAIR_LINES {
                match memchr::memrchr(b'\n', &bytes[..start]) {
                    Some(i) => start = i,
                    None => {
                        start = 0;
                        break;
                    }
                }
            }
            let mut end = id_at;
            for _ in 0..=AWS_PAIR_LINES {
                match memchr::memchr(b'\n', &bytes[end..]) {
                    Some(i) => end += i + 1,
                    None => {
                        end = bytes.len();
                        break;
                    }
                }
            }
            for caps in self.aws_secret_candidate.captures_iter(&bytes[start..end]) {
                let Some(group) = caps.get(1) else { continue };
                let span = start + group.start()..start + group.end();
                if found.iter().any(|c| overlaps(&c.span, &span)) {
                    continue;
                }
                let value = &text[span.clone()];
                let b = value.as_bytes();
                let mixed = b.iter().any(u8::is_ascii_lowercase)
                    && b.iter().any(u8::is_ascii_uppercase)
                    && b.iter().any(u8::is_ascii_digit);
                if mixed
                    && !checks::is_hex_digest(value)
                    && checks::entropy(b) >= 4.0
                    && !checks::is_placeholder(value)
                {
                    found.push(Candidate {
                        rule: secret_rule,
                        span,
                        secret: value.to_owned(),
                    });
                }
            }
        }
    }
}

/// Runs a rule's check on one regex match; the span and the secret if it passes.
fn checked_secret(
    check: Check,
    caps: &Captures<'_>,
    text: &str,
    base: usize,
) -> Option<(Range<usize>, String)> {
    let range = |m: regex::bytes::Match<'_>| base + m.start()..base + m.end();
    let slice = |r: &Range<usize>| text.get(r.clone());
    match check {
        Check::Token { min_entropy } => {
            let group = caps.get(1).or_else(|| caps.get(0))?;
            let span = range(group);
            let secret = slice(&span)?;
            (checks::entropy(secret.as_bytes()) >= min_entropy && !checks::is_placeholder(secret))
                .then(|| (span.clone(), secret.to_owned()))
        }
        Check::Jwt => {
            let span = range(caps.get(1)?);
            let secret = slice(&span)?;
            checks::is_jwt(secret).then(|| (span.clone(), secret.to_owned()))
        }
        Check::UrlPassword => {
            let user = slice(&range(caps.get(1)?))?;
            let span = range(caps.get(2)?);
            let password = slice(&span)?;
            let host = slice(&range(caps.get(3)?))?;
            checks::is_url_password(user, password, host)
                .then(|| (span.clone(), password.to_owned()))
        }
        Check::BasicAuth => {
            let span = range(caps.get(1)?);
            let secret = slice(&span)?;
            checks::is_basic_credentials(secret).then(|| (span.clone(), secret.to_owned()))
        }
        // Private keys and assignments have their own matchers.
        Check::PrivateKey | Check::Assignment => None,
    }
}

/// Bytes of a name in an assignment: identifiers, dotted paths, kebab-case keys.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// Bytes that end a bare (unquoted) value.
fn ends_bare_value(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b'"' | b'\''
                | b'`'
                | b','
                | b';'
                | b'('
                | b')'
                | b'{'
                | b'}'
                | b'['
                | b']'
                | b'\\'
                | b'|'
                | b'<'
                | b'>'
        )
}

/// The generic rule at one keyword hit: parses `name <op> value` around it (see
/// [`Matcher::Assignment`]) and pushes the value if the name sounds secret and the value
/// looks like one. Returns where the name ends, so other keywords in it are skipped.
fn assignment_candidate(
    rule: usize,
    text: &str,
    hit: Range<usize>,
    line: Range<usize>,
    found: &mut Vec<Candidate>,
) -> usize {
    let b = text.as_bytes();
    let mut name_start = hit.start;
    while name_start > line.start && is_name_byte(b[name_start - 1]) {
        name_start -= 1;
    }
    let mut name_end = hit.end;
    while name_end < line.end && is_name_byte(b[name_end]) {
        name_end += 1;
    }
    // A name starts with a letter or `_`: `2fa_token` is not one, `-token` becomes `token`.
    while name_start < hit.start && !(b[name_start].is_ascii_alphabetic() || b[name_start] == b'_')
    {
        name_start += 1;
    }
    let Some(name) = text.get(name_start..name_end) else {
        return name_end;
    };
    if !b[name_start].is_ascii_alphabetic() && b[name_start] != b'_'
        || !checks::is_secret_name(name)
    {
        return name_end;
    }
    // A URL query parameter (`badge.svg?token=3KA3R2D9fV&style=flat`): its value ends at the
    // next `&`; badge and share tokens are short and public, an API key in a URL is long.
    let in_query = name_start > 0 && matches!(b[name_start - 1], b'?' | b'&');
    if let Some((mut span, quoted)) = assignment_value(b, name_end, line.end) {
        if in_query {
            if let Some(amp) = memchr::memchr(b'&', &b[span.clone()]) {
                span.end = span.start + amp;
            }
            if span.len() < 20 {
                return name_end;
            }
        }
        let Some(value) = text.get(span.clone()) else {
            return name_end;
        };
        // A bare value followed by a call, a macro, generics or an index is code:
        // `sqlite3Strlen30(p)`, `parenthesized!(content)`, `Aligned64<[u8; N]>`.
        let next = b.get(span.end).copied();
        let macro_call = value.ends_with('!') && matches!(next, Some(b'(' | b'[' | b'{'));
        if !quoted && (macro_call || matches!(next, Some(b'(' | b'<' | b'[' | b'{'))) {
            return name_end;
        }
        if checks::is_secret_value(value, quoted) {
            found.push(Candidate {
                rule,
                span,
                secret: value.to_owned(),
            });
        }
    }
    name_end
}

/// After a name ending at `at`: the operator and the value's span, and whether it was quoted.
fn assignment_value(b: &[u8], mut at: usize, end: usize) -> Option<(Range<usize>, bool)> {
    let peek = |i: usize| if i < end { Some(b[i]) } else { None };
    let skip_spaces = |mut i: usize| {
        while i < end && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        i
    };
    // The name's closing quote or bracket (`"password":`, `'password' =>`, `env['TOKEN'] =`),
    // escaped in a JSON string (`\"password\":`).
    if peek(at) == Some(b'\\') {
        at += 1;
    }
    if matches!(peek(at), Some(b'"' | b'\'')) {
        at += 1;
    }
    if peek(at) == Some(b']') {
        at += 1;
    }
    at = skip_spaces(at);
    // A type annotation before `=`: `const KEY: &str = "..."`, `let token: string = "..."`.
    if peek(at) == Some(b':') && peek(at + 1) != Some(b':') {
        let mut i = skip_spaces(at + 1);
        if peek(i) == Some(b'&') {
            i += 1;
        }
        if b[i.min(end)..end].starts_with(b"'static") {
            i = skip_spaces(i + 7);
        }
        let type_start = i;
        while i < end && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        let after = skip_spaces(i);
        if i > type_start
            && !b[type_start].is_ascii_digit()
            && peek(after) == Some(b'=')
            && !matches!(peek(after + 1), Some(b'=' | b'>'))
        {
            at = after;
        }
    }
    // The operator.
    at += match (peek(at), peek(at + 1)) {
        (Some(b'='), Some(b'>')) | (Some(b':'), Some(b'=')) | (Some(b'?'), Some(b'=')) => 2,
        (Some(b'='), next) if next != Some(b'=') => 1,
        (Some(b':'), next) if next != Some(b':') => 1,
        _ => return None,
    };
    at = skip_spaces(at);
    // A string literal, maybe prefixed (`r"..."`, `b'...'`) or escaped (`\"...\"`).
    let mut open = at;
    if matches!(peek(open), Some(b'r' | b'R' | b'b' | b'B' | b'u' | b'U'))
        && matches!(peek(open + 1), Some(b'"' | b'\'' | b'`' | b'\\'))
    {
        open += 1;
    }
    if peek(open) == Some(b'\\') && matches!(peek(open + 1), Some(b'"' | b'\'' | b'`')) {
        open += 1;
    }
    if matches!(peek(open), Some(b'"' | b'\'' | b'`')) {
        let start = open + 1;
        let mut i = start;
        while i < end && !matches!(b[i], b'"' | b'\'' | b'`' | b'\\') && !b[i].is_ascii_whitespace()
        {
            i += 1;
        }
        let closed = match peek(i) {
            Some(b'"' | b'\'' | b'`') => true,
            Some(b'\\') => matches!(peek(i + 1), Some(b'"' | b'\'' | b'`')),
            _ => false,
        };
        let len = i - start;
        return (closed && (8..=200).contains(&len)).then_some((start..i, true));
    }
    // A bare value: `.env`, YAML, INI, shell.
    let first = peek(at)?;
    // `#` and `!` may be inside a password (a comment starts after whitespace), not first.
    if ends_bare_value(first) || matches!(first, b':' | b'=' | b'&' | b'*' | b'#' | b'!') {
        return None;
    }
    let start = at;
    let mut i = at;
    while i < end && !ends_bare_value(b[i]) {
        i += 1;
    }
    let len = i - start;
    (8..=200).contains(&len).then_some((start..i, false))
}

/// Bytes a private key's body may hold as written in PEM, in a JSON string (`\n` escapes,
/// quotes, commas of a notebook's line list) or commented out (`#`, `//`, `*`, `;`), plus the
/// `Proc-Type:` / `DEK-Info:` headers of an encrypted PEM.
fn is_key_body_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'+' | b'/' | b'=' | b'\\' | b'"' | b'\'' | b',' | b'#' | b'*' | b';' | b':' | b'-'
        )
        || b.is_ascii_whitespace()
}

/// The base64 of a private key's body, if it is one: only key-body characters, and enough
/// dense base64 to be key material rather than `...` or `<your key>`.
fn private_key_body(body: &str) -> Option<String> {
    if !body.bytes().all(is_key_body_byte) {
        return None;
    }
    // Split at real and escaped line ends; drop PEM header fields (`Proc-Type: ...`).
    let unescaped = body.replace("\\r", "\n").replace("\\n", "\n");
    let mut base64 = String::new();
    let mut longest_run = 0;
    for line in unescaped.lines() {
        if line.contains(':') {
            continue;
        }
        let mut run = 0;
        for b in line.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=') {
                base64.push(char::from(b));
                run += 1;
                longest_run = longest_run.max(run);
            } else {
                run = 0;
            }
        }
    }
    (base64.len() >= 100 && longest_run >= 40 && checks::entropy(base64.as_bytes()) >= 4.0)
        .then_some(base64)
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// Sorts by position and keeps one candidate where several cover the same bytes: a
/// format-specific rule beats a generic one, then the longer match wins.
fn resolve_overlaps(mut found: Vec<Candidate>, rules: &[CompiledRule]) -> Vec<Candidate> {
    found.sort_by(|a, b| {
        a.span
            .start
            .cmp(&b.span.start)
            .then(b.span.end.cmp(&a.span.end))
    });
    let mut kept: Vec<Candidate> = Vec::with_capacity(found.len());
    for candidate in found {
        let Some(last) = kept.last() else {
            kept.push(candidate);
            continue;
        };
        if !overlaps(&last.span, &candidate.span) {
            kept.push(candidate);
            continue;
        }
        let last_generic = rules[last.rule].rule.generic;
        let new_generic = rules[candidate.rule].rule.generic;
        let new_wins = (last_generic && !new_generic)
            || (last_generic == new_generic && candidate.span.len() > last.span.len());
        if new_wins {
            kept.pop();
            kept.push(candidate);
        }
    }
    kept
}

/// The byte range widened to char boundaries (a byte regex may stop inside a character).
fn char_bounds(text: &str, span: Range<usize>) -> (usize, usize) {
    let mut start = span.start.min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = span.end.min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    (start, end)
}

/// Turns byte offsets into 1-based (line, column in characters), walking forward only.
struct LineCounter<'a> {
    text: &'a str,
    at: usize,
    line: usize,
    line_start: usize,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            at: 0,
            line: 1,
            line_start: 0,
        }
    }

    fn position(&mut self, offset: usize) -> (usize, usize) {
        let bytes = self.text.as_bytes();
        if offset < self.at {
            // Findings come sorted; an earlier offset only after overlap resolution moved
            // one back, so restart rather than be wrong.
            *self = Self::new(self.text);
        }
        for newline in memchr::memchr_iter(b'\n', &bytes[self.at..offset]) {
            self.line += 1;
            self.line_start = self.at + newline + 1;
        }
        self.at = offset;
        let column = bytes[self.line_start..offset]
            .iter()
            .filter(|&&b| (b & 0xC0) != 0x80)
            .count()
            + 1;
        (self.line, column)
    }
}

#[cfg(test)]
#[path = "scanner_tests.rs"]
mod tests;
