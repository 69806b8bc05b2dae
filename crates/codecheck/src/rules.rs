//! The rule table: every rule's stable id, severity and message.
//!
//! A rule id is `<language>.<what>`; TypeScript shares the `js.*` rules. The ids are stable:
//! reviewers and stored findings refer to them.

use serde::{Deserialize, Serialize};

/// How much a finding should worry a reviewer. Neither stops a workflow: a human decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look: often legitimate, sometimes the start of something worse.
    Warning,
    /// Runs code or commands built at run time, or turns a security check off.
    High,
}

impl Severity {
    /// The name shown to users (`warning`, `high`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::High => "high",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Stable id, e.g. `python.eval`.
    pub id: &'static str,
    /// How serious a hit is.
    pub severity: Severity,
    /// What was found and why it matters, one line.
    pub message: &'static str,
    /// A rule whose finding on the same line this one makes redundant (a decode-then-exec
    /// is also an `eval`; an encoded blob is also a long literal).
    pub supersedes: Option<&'static str>,
}

const fn rule(id: &'static str, severity: Severity, message: &'static str) -> Rule {
    Rule {
        id,
        severity,
        message,
        supersedes: None,
    }
}

const fn over(
    id: &'static str,
    severity: Severity,
    message: &'static str,
    supersedes: &'static str,
) -> Rule {
    Rule {
        id,
        severity,
        message,
        supersedes: Some(supersedes),
    }
}

use Severity::{High, Warning};

const EVAL: &str = "evaluates code given at run time: whoever controls the text runs code";
const DECODE_EXEC: &str =
    "decodes a hidden payload and runs it as code: a common shape of obfuscated malware";
const DYNAMIC_IMPORT: &str =
    "loads a module whose name is computed at run time: what runs depends on input";
const SHELL: &str =
    "runs a shell command built at run time: input that reaches it can inject commands";
const NETWORK: &str =
    "adds a network call to a file that made none: check where data goes and comes from";
const BLOB: &str = "a long base64 or hex literal: an encoded payload a reviewer cannot read";
const LONG_LITERAL: &str =
    "a very long single-line literal: hides content from review (minified or obfuscated)";
const TLS: &str = "turns TLS certificate or host name verification off: traffic can be intercepted";

/// Every rule, in the order findings on one line are preferred.
pub const RULES: &[Rule] = &[
    over("python.decode_exec", High, DECODE_EXEC, "python.eval"),
    rule("python.eval", High, EVAL),
    rule("python.dynamic_import", Warning, DYNAMIC_IMPORT),
    over("python.shell", High, SHELL, "python.subprocess_built"),
    rule(
        "python.subprocess_built",
        Warning,
        "starts a program from a command string built at run time: input decides what runs",
    ),
    rule("python.network", Warning, NETWORK),
    over("python.encoded_blob", Warning, BLOB, "python.long_literal"),
    rule("python.long_literal", Warning, LONG_LITERAL),
    rule("python.tls_disabled", High, TLS),
    over("js.decode_exec", High, DECODE_EXEC, "js.eval"),
    rule("js.eval", High, EVAL),
    rule("js.dynamic_import", Warning, DYNAMIC_IMPORT),
    rule("js.shell", High, SHELL),
    rule("js.network", Warning, NETWORK),
    over("js.encoded_blob", Warning, BLOB, "js.long_literal"),
    rule("js.long_literal", Warning, LONG_LITERAL),
    rule("js.tls_disabled", High, TLS),
    rule("go.shell", High, SHELL),
    rule(
        "go.dynamic_import",
        Warning,
        "opens a plugin whose path is computed at run time: what runs depends on input",
    ),
    rule("go.network", Warning, NETWORK),
    over("go.encoded_blob", Warning, BLOB, "go.long_literal"),
    rule("go.long_literal", Warning, LONG_LITERAL),
    rule("go.tls_disabled", High, TLS),
    rule("java.eval", High, EVAL),
    rule(
        "java.reflection",
        Warning,
        "loads a class whose name is computed at run time: what runs depends on input",
    ),
    rule("java.shell", High, SHELL),
    rule("java.network", Warning, NETWORK),
    over("java.encoded_blob", Warning, BLOB, "java.long_literal"),
    rule("java.long_literal", Warning, LONG_LITERAL),
    rule("java.tls_disabled", High, TLS),
];

/// The rule with this id.
pub fn find(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|rule| rule.id == id)
}

/// The index of a rule in [`RULES`] (its preference among findings on one line).
pub(crate) fn index(id: &str) -> Option<usize> {
    RULES.iter().position(|rule| rule.id == id)
}

/// Whether a rule is one of the "network call added" rules, which hold only for files that
/// made no network call before the change.
pub(crate) fn is_network(id: &str) -> bool {
    id.ends_with(".network")
}
