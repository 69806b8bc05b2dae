//! Linters and formatters the repository configures: detection from its own files, runs on
//! the changed files inside the sandbox, violations parsed from the tools' machine formats
//! (JSON for ruff, pylint and ESLint, Checkstyle XML, `path:line:col: message` lines for
//! flake8, mypy, go vet and tsc, file lists for the formatters' check modes), and the
//! formatters applied to files after a modification (FR-005).
//!
//! The file names come from the coding agent's changes and are untrusted: they are checked
//! (relative, no `..`, no leading `-`) and shell-quoted, and every tool gets `--` before
//! them where it accepts it.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use cap_proto::sandbox::v1::exec_output::Output;
use cap_proto::sandbox::v1::{ExecRequest, ListDirectoryRequest, ReadFileRequest};
use cap_sandbox_client::SandboxApi;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::gotest::tail_chars;
use crate::junit::{MESSAGE_CAP, cap_chars};
use crate::plan::shell_quote;
use crate::{Error, Result};

/// A linter or formatter the crate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LintTool {
    /// `ruff check` (and `ruff format` when configured as the formatter).
    Ruff,
    /// `black` (formatter).
    Black,
    /// `pylint`.
    Pylint,
    /// `mypy`.
    Mypy,
    /// `flake8`.
    Flake8,
    /// ESLint.
    Eslint,
    /// Prettier (formatter).
    Prettier,
    /// The TypeScript compiler's type check (`tsc --noEmit`).
    Tsc,
    /// `gofmt` (formatter).
    Gofmt,
    /// `go vet`.
    GoVet,
    /// golangci-lint.
    GolangciLint,
    /// Checkstyle.
    Checkstyle,
    /// Spotless through Maven (formatter).
    Spotless,
}

impl LintTool {
    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ruff => "ruff",
            Self::Black => "black",
            Self::Pylint => "pylint",
            Self::Mypy => "mypy",
            Self::Flake8 => "flake8",
            Self::Eslint => "eslint",
            Self::Prettier => "prettier",
            Self::Tsc => "tsc",
            Self::Gofmt => "gofmt",
            Self::GoVet => "go_vet",
            Self::GolangciLint => "golangci_lint",
            Self::Checkstyle => "checkstyle",
            Self::Spotless => "spotless",
        }
    }

    /// Whether the tool rewrites files (and so can be applied after a modification).
    pub fn is_formatter(self) -> bool {
        matches!(
            self,
            Self::Black | Self::Prettier | Self::Gofmt | Self::Spotless
        )
    }

    /// Whether the tool looks at `path` (by its extension).
    pub fn handles(self, path: &str) -> bool {
        self.extensions().iter().any(|ext| path.ends_with(ext))
    }

    /// The file extensions the tool looks at.
    fn extensions(self) -> &'static [&'static str] {
        match self {
            Self::Ruff | Self::Black | Self::Pylint | Self::Mypy | Self::Flake8 => &[".py"],
            Self::Eslint | Self::Prettier => &[".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs"],
            Self::Tsc => &[".ts", ".tsx"],
            Self::Gofmt | Self::GoVet | Self::GolangciLint => &[".go"],
            Self::Checkstyle | Self::Spotless => &[".java"],
        }
    }

    /// The check command on `files` (already validated and quoted), and how its output is
    /// read.
    fn check(self, files: &str) -> (String, Format) {
        match self {
            Self::Ruff => (
                format!("ruff check --no-cache --output-format=json -- {files}"),
                Format::RuffJson,
            ),
            Self::Black => (
                format!("python3 -m black --check -- {files} 2>&1"),
                Format::WouldReformat,
            ),
            Self::Pylint => (
                format!("python3 -m pylint --output-format=json --persistent=n -- {files}"),
                Format::PylintJson,
            ),
            Self::Mypy => (
                format!(
                    // `--no-incremental` alone still writes `.mypy_cache` into the workspace.
                    "python3 -m mypy --no-error-summary --no-color-output --show-column-numbers \
                     --no-incremental --cache-dir=/dev/null -- {files}"
                ),
                Format::Lines,
            ),
            Self::Flake8 => (format!("python3 -m flake8 -- {files}"), Format::Lines),
            Self::Eslint => (
                format!("./node_modules/.bin/eslint --format json -- {files}"),
                Format::EslintJson,
            ),
            Self::Prettier => (
                format!("./node_modules/.bin/prettier --list-different -- {files}"),
                Format::FileList,
            ),
            // tsc checks the project, not single files (they would lose its configuration).
            Self::Tsc => (
                "./node_modules/.bin/tsc --noEmit --pretty false".to_owned(),
                Format::Lines,
            ),
            Self::Gofmt => (format!("gofmt -l -- {files}"), Format::FileList),
            // go vet checks packages: the changed files' directories.
            Self::GoVet => ("go vet ./... 2>&1".to_owned(), Format::Lines),
            Self::GolangciLint => (
                "golangci-lint run --out-format=line-number ./... 2>&1".to_owned(),
                Format::Lines,
            ),
            Self::Checkstyle => (
                format!("checkstyle -f xml -c checkstyle.xml {files}"),
                Format::CheckstyleXml,
            ),
            Self::Spotless => ("mvn -q -o spotless:check 2>&1".to_owned(), Format::ExitCode),
        }
    }

    /// The command that formats `files` in place, for formatters.
    fn format(self, files: &str) -> Option<String> {
        Some(match self {
            Self::Black => format!("python3 -m black --quiet -- {files}"),
            Self::Prettier => format!("./node_modules/.bin/prettier --write -- {files}"),
            Self::Gofmt => format!("gofmt -w -- {files}"),
            Self::Ruff => format!("ruff format --no-cache -- {files}"),
            Self::Spotless => "mvn -q -o spotless:apply".to_owned(),
            _ => return None,
        })
    }
}

impl std::fmt::Display for LintTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a tool's output is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    RuffJson,
    PylintJson,
    EslintJson,
    CheckstyleXml,
    /// `path:line[:col]: message` or tsc's `path(line,col): message`.
    Lines,
    /// One file name per line: files that are not formatted.
    FileList,
    /// Black's `would reformat <file>` lines.
    WouldReformat,
    /// Nothing to parse; a non-zero exit is one violation.
    ExitCode,
}

/// The root files whose content [`detect_linters`] reads.
pub const LINT_CONFIG_FILES: [&str; 5] = [
    "pyproject.toml",
    "setup.cfg",
    "tox.ini",
    "package.json",
    "pom.xml",
];

/// [`detect_linters`] on the session's workspace: its root listing and configuration files.
pub async fn detect_linters_in(
    sandbox: &dyn SandboxApi,
    session_id: &str,
) -> Result<Vec<LintTool>> {
    if session_id.is_empty() {
        return Err(Error::EmptySessionId);
    }
    let listing = sandbox
        .list_directory(ListDirectoryRequest {
            session_id: session_id.to_owned(),
            path: String::new(),
            recursive: false,
        })
        .await
        .map_err(|source| Error::Sandbox {
            operation: "ListDirectory",
            source,
        })?;
    let paths: Vec<String> = listing
        .entries
        .into_iter()
        .filter(|e| !e.is_dir)
        .map(|e| e.path.trim_start_matches("./").to_owned())
        .collect();
    let mut contents = HashMap::new();
    for name in LINT_CONFIG_FILES {
        if !paths.iter().any(|p| p == name) {
            continue;
        }
        let request = ReadFileRequest {
            session_id: session_id.to_owned(),
            path: name.to_owned(),
        };
        match sandbox.read_file(request).await {
            Ok(response) => {
                let text = String::from_utf8_lossy(&response.content).into_owned();
                contents.insert(name.to_owned(), text);
            }
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::NotFound | tonic::Code::InvalidArgument
                ) => {}
            Err(source) => {
                return Err(Error::Sandbox {
                    operation: "ReadFile",
                    source,
                });
            }
        }
    }
    Ok(detect_linters(&paths, &contents))
}

/// The linters and formatters the repository configures, from its file paths and the
/// contents of [`LINT_CONFIG_FILES`]. A Go module always gets `gofmt` and `go vet` (Go's own
/// tools need no configuration).
pub fn detect_linters(paths: &[String], contents: &HashMap<String, String>) -> Vec<LintTool> {
    let has = |name: &str| paths.iter().any(|p| p == name);
    let text = |name: &str| contents.get(name).map(String::as_str).unwrap_or_default();
    let pyproject = text("pyproject.toml");
    let setup_cfg = text("setup.cfg");
    let tox = text("tox.ini");
    let mut tools = BTreeSet::new();
    if has("ruff.toml") || has(".ruff.toml") || pyproject.contains("[tool.ruff") {
        tools.insert(LintTool::Ruff);
    }
    if pyproject.contains("[tool.black") {
        tools.insert(LintTool::Black);
    }
    if has(".pylintrc") || has("pylintrc") || pyproject.contains("[tool.pylint") {
        tools.insert(LintTool::Pylint);
    }
    if has("mypy.ini")
        || has(".mypy.ini")
        || pyproject.contains("[tool.mypy")
        || setup_cfg.contains("[mypy")
    {
        tools.insert(LintTool::Mypy);
    }
    if has(".flake8") || setup_cfg.contains("[flake8]") || tox.contains("[flake8]") {
        tools.insert(LintTool::Flake8);
    }
    let package: serde_json::Value = serde_json::from_str(text("package.json")).unwrap_or_default();
    let depends_on = |name: &str| {
        ["dependencies", "devDependencies"]
            .iter()
            .any(|section| package.get(section).and_then(|d| d.get(name)).is_some())
    };
    let eslint_config = paths.iter().any(|p| {
        !p.contains('/') && (p.starts_with(".eslintrc") || p.starts_with("eslint.config."))
    }) || package.get("eslintConfig").is_some();
    if eslint_config && depends_on("eslint") {
        tools.insert(LintTool::Eslint);
    }
    let prettier_config = paths.iter().any(|p| {
        !p.contains('/') && (p.starts_with(".prettierrc") || p.starts_with("prettier.config."))
    }) || package.get("prettier").is_some();
    if prettier_config && depends_on("prettier") {
        tools.insert(LintTool::Prettier);
    }
    if has("tsconfig.json") && depends_on("typescript") {
        tools.insert(LintTool::Tsc);
    }
    if has("go.mod") {
        tools.insert(LintTool::Gofmt);
        tools.insert(LintTool::GoVet);
        if has(".golangci.yml") || has(".golangci.yaml") || has(".golangci.toml") {
            tools.insert(LintTool::GolangciLint);
        }
    }
    if has("checkstyle.xml") {
        tools.insert(LintTool::Checkstyle);
    }
    if has("pom.xml") && text("pom.xml").contains("spotless-maven-plugin") {
        tools.insert(LintTool::Spotless);
    }
    tools.into_iter().collect()
}

/// One problem a linter reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// Workspace-relative file.
    pub file: String,
    /// 1-based line; 0 when the tool names none (an unformatted file).
    pub line: u32,
    /// 1-based column; 0 when unknown.
    pub column: u32,
    /// The rule, e.g. `F401`, `unused-import`, `no-unused-vars`; empty when none.
    pub code: String,
    /// What is wrong.
    pub message: String,
}

/// The result of one tool on the changed files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LintRun {
    /// The tool.
    pub tool: LintTool,
    /// The command run.
    pub command: String,
    /// Its exit code; -1 when killed.
    pub exit_code: i32,
    /// What it reported.
    pub violations: Vec<Violation>,
    /// Why the tool could not run (not installed, timed out, unreadable output); `None`
    /// when it ran.
    pub problem: Option<String>,
    /// The end of its output.
    pub output_tail: String,
}

impl LintRun {
    /// Whether the tool ran and found nothing.
    pub fn clean(&self) -> bool {
        self.problem.is_none() && self.violations.is_empty()
    }
}

/// `files` as shell words, only those `tool` looks at; an error for a path that could
/// escape the workspace or pass for an option.
fn quoted_files(tool: LintTool, files: &[String]) -> Result<Option<String>> {
    let mut words = Vec::new();
    for file in files {
        let bad = file.is_empty()
            || file.starts_with('/')
            || file.starts_with('-')
            || file.split('/').any(|part| part == "..")
            || file.contains(['\0', '\n', '\r']);
        if bad {
            return Err(Error::InvalidPath {
                path: tail_chars(file, 200),
            });
        }
        if tool.handles(file) {
            words.push(shell_quote(file));
        }
    }
    Ok((!words.is_empty()).then(|| words.join(" ")))
}

/// Runs each of `tools` on the changed `files` they apply to (tools with no such file are
/// skipped) and collects their violations.
pub async fn run_linters(
    sandbox: &dyn SandboxApi,
    session_id: &str,
    tools: &[LintTool],
    files: &[String],
    timeout: Duration,
) -> Result<Vec<LintRun>> {
    let mut runs = Vec::new();
    for &tool in tools {
        let Some(quoted) = quoted_files(tool, files)? else {
            continue;
        };
        let (command, format) = tool.check(&quoted);
        let (code, timed_out, stdout, combined) =
            exec(sandbox, session_id, &command, timeout).await?;
        runs.push(assemble(
            tool, command, format, code, timed_out, &stdout, &combined,
        ));
    }
    Ok(runs)
}

/// Applies the formatters among `tools` to the changed `files` (FR-005: after each
/// modification); returns what each did. Failures are reported in the runs, not errors.
pub async fn format_files(
    sandbox: &dyn SandboxApi,
    session_id: &str,
    tools: &[LintTool],
    files: &[String],
    timeout: Duration,
) -> Result<Vec<LintRun>> {
    let mut runs = Vec::new();
    for &tool in tools {
        let Some(quoted) = quoted_files(tool, files)? else {
            continue;
        };
        let Some(command) = tool.format(&quoted) else {
            continue;
        };
        let (code, timed_out, _stdout, combined) =
            exec(sandbox, session_id, &command, timeout).await?;
        runs.push(assemble(
            tool,
            command,
            Format::ExitCode,
            code,
            timed_out,
            "",
            &combined,
        ));
    }
    Ok(runs)
}

async fn exec(
    sandbox: &dyn SandboxApi,
    session_id: &str,
    command: &str,
    timeout: Duration,
) -> Result<(i32, bool, String, String)> {
    if session_id.is_empty() {
        return Err(Error::EmptySessionId);
    }
    let sandbox_error = |source| Error::Sandbox {
        operation: "Exec",
        source,
    };
    let env = HashMap::from([
        ("NO_COLOR".to_owned(), "1".to_owned()),
        ("PYTHONDONTWRITEBYTECODE".to_owned(), "1".to_owned()),
        ("GOPROXY".to_owned(), "off".to_owned()),
        ("GOTOOLCHAIN".to_owned(), "local".to_owned()),
    ]);
    let request = ExecRequest {
        session_id: session_id.to_owned(),
        command: command.to_owned(),
        cwd: String::new(),
        timeout_seconds: u32::try_from(timeout.as_secs().max(1)).unwrap_or(u32::MAX),
        env,
    };
    let mut stream = sandbox.exec(request).await.map_err(sandbox_error)?;
    let (mut stdout, mut combined) = (Vec::new(), Vec::new());
    while let Some(message) = stream.next().await.transpose().map_err(sandbox_error)? {
        match message.output {
            Some(Output::Stdout(bytes)) => {
                stdout.extend_from_slice(&bytes);
                combined.extend_from_slice(&bytes);
            }
            Some(Output::Stderr(bytes)) => combined.extend_from_slice(&bytes),
            Some(Output::Exit(exit)) => {
                return Ok((
                    exit.exit_code,
                    exit.timed_out,
                    String::from_utf8_lossy(&stdout).into_owned(),
                    String::from_utf8_lossy(&combined).into_owned(),
                ));
            }
            None => {}
        }
    }
    Err(Error::MissingExitStatus)
}

/// Builds a [`LintRun`] from a tool's exit and output.
fn assemble(
    tool: LintTool,
    command: String,
    format: Format,
    code: i32,
    timed_out: bool,
    stdout: &str,
    combined: &str,
) -> LintRun {
    let mut problem = None;
    let mut violations = Vec::new();
    if timed_out {
        problem = Some("the tool was killed at its timeout".to_owned());
    } else if code == 127 || combined.contains("No module named") && code != 0 {
        problem = Some(format!("{tool} is not installed in the sandbox"));
    } else {
        match parse(format, stdout) {
            Ok(found) => violations = found,
            Err(reason) => problem = Some(format!("unreadable {tool} output: {reason}")),
        }
        if format == Format::ExitCode && code != 0 {
            violations.push(Violation {
                file: String::new(),
                line: 0,
                column: 0,
                code: String::new(),
                message: format!("{tool} exited with code {code}"),
            });
        }
    }
    LintRun {
        tool,
        command,
        exit_code: code,
        violations,
        problem,
        output_tail: tail_chars(combined.trim_end(), 2048),
    }
}

fn violation(file: &str, line: u32, column: u32, code: &str, message: &str) -> Violation {
    Violation {
        file: file
            .trim()
            .trim_start_matches("./")
            .trim_start_matches("/workspace/")
            .to_owned(),
        line,
        column,
        code: code.to_owned(),
        message: cap_chars(message.trim(), MESSAGE_CAP),
    }
}

/// Parses a tool's output; `Err` with the reason when it is not in the expected format.
fn parse(format: Format, out: &str) -> std::result::Result<Vec<Violation>, String> {
    let json = |text: &str| -> std::result::Result<serde_json::Value, String> {
        if text.trim().is_empty() {
            return Ok(serde_json::Value::Array(Vec::new()));
        }
        serde_json::from_str(text).map_err(|e| e.to_string())
    };
    let num = |v: &serde_json::Value| u32::try_from(v.as_u64().unwrap_or(0)).unwrap_or(u32::MAX);
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    match format {
        Format::RuffJson => {
            let value = json(out)?;
            let items = value.as_array().ok_or("not a JSON array")?;
            Ok(items
                .iter()
                .map(|i| {
                    violation(
                        &s(&i["filename"]),
                        num(&i["location"]["row"]),
                        num(&i["location"]["column"]),
                        &s(&i["code"]),
                        &s(&i["message"]),
                    )
                })
                .collect())
        }
        Format::PylintJson => {
            let value = json(out)?;
            let items = value.as_array().ok_or("not a JSON array")?;
            Ok(items
                .iter()
                .map(|i| {
                    // pylint's columns are 0-based.
                    violation(
                        &s(&i["path"]),
                        num(&i["line"]),
                        num(&i["column"]) + 1,
                        &s(&i["symbol"]),
                        &s(&i["message"]),
                    )
                })
                .collect())
        }
        Format::EslintJson => {
            let value = json(out)?;
            let files = value.as_array().ok_or("not a JSON array")?;
            Ok(files
                .iter()
                .flat_map(|f| {
                    let path = s(&f["filePath"]);
                    f["messages"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .map(move |m| {
                            violation(
                                &path,
                                num(&m["line"]),
                                num(&m["column"]),
                                &s(&m["ruleId"]),
                                &s(&m["message"]),
                            )
                        })
                })
                .collect())
        }
        Format::CheckstyleXml => {
            if out.trim().is_empty() {
                return Ok(Vec::new());
            }
            let doc = roxmltree::Document::parse(out).map_err(|e| e.to_string())?;
            if !doc.root_element().has_tag_name("checkstyle") {
                return Err("the root element is not <checkstyle>".to_owned());
            }
            Ok(doc
                .descendants()
                .filter(|n| n.has_tag_name("error"))
                .map(|e| {
                    let file = e
                        .parent()
                        .and_then(|p| p.attribute("name"))
                        .unwrap_or_default();
                    let attr = |name: &str| e.attribute(name).unwrap_or_default();
                    let source = attr("source");
                    let rule = source.rsplit('.').next().unwrap_or(source);
                    violation(
                        file,
                        attr("line").parse().unwrap_or(0),
                        attr("column").parse().unwrap_or(0),
                        rule.trim_end_matches("Check"),
                        attr("message"),
                    )
                })
                .collect())
        }
        Format::Lines => Ok(out.lines().filter_map(parse_location_line).collect()),
        Format::FileList => Ok(out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|file| violation(file, 0, 0, "format", "the file is not formatted"))
            .collect()),
        Format::WouldReformat => Ok(out
            .lines()
            .filter_map(|l| l.trim().strip_prefix("would reformat "))
            .map(|file| violation(file, 0, 0, "format", "the file is not formatted"))
            .collect()),
        Format::ExitCode => Ok(Vec::new()),
    }
}

/// `path:line:col: message`, `path:line: message` or tsc's `path(line,col): message`.
fn parse_location_line(line: &str) -> Option<Violation> {
    let line = line.trim_end();
    // tsc: `src/a.ts(3,7): error TS2322: Type ...`
    if let Some((head, message)) = line.split_once("): ")
        && let Some((path, position)) = head.rsplit_once('(')
        && let Some((l, c)) = position.split_once(',')
        && let (Ok(l), Ok(c)) = (l.parse(), c.parse())
    {
        let (code, text) = split_code(message);
        return Some(violation(path, l, c, code, text));
    }
    let mut parts = line.splitn(4, ':');
    let path = parts.next()?;
    let l: u32 = parts.next()?.trim().parse().ok()?;
    let third = parts.next()?;
    let (column, message) = match third.trim().parse::<u32>() {
        Ok(c) => (c, parts.next().unwrap_or_default()),
        Err(_) => (0, line.splitn(3, ':').nth(2).unwrap_or_default()),
    };
    if path.is_empty() || path.contains(' ') {
        return None;
    }
    let (code, text) = split_code(message.trim());
    Some(violation(path, l, column, code, text))
}

/// `error TS2322: text` -> (`TS2322`, `text`); flake8's `F401 text` -> (`F401`, `text`);
/// mypy's `error: text  [code]` -> (`code`, `text`).
fn split_code(message: &str) -> (&str, &str) {
    let message = message.trim();
    let message = message
        .strip_prefix("error ")
        .or_else(|| message.strip_prefix("warning "))
        .unwrap_or(message);
    if let Some((code, rest)) = message.split_once(": ")
        && !code.contains(' ')
        && code != "error"
        && code != "note"
        && code != "warning"
    {
        return (code, rest);
    }
    let message = message
        .strip_prefix("error: ")
        .or_else(|| message.strip_prefix("warning: "))
        .unwrap_or(message);
    if let Some(start) = message.rfind("  [")
        && message.ends_with(']')
    {
        return (&message[start + 3..message.len() - 1], &message[..start]);
    }
    if let Some((code, rest)) = message.split_once(' ')
        && code.len() >= 2
        && code.len() <= 8
        && code.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && code.chars().skip(1).all(|c| c.is_ascii_digit())
    {
        return (code, rest);
    }
    ("", message)
}

#[cfg(test)]
#[path = "lint_tests.rs"]
mod tests;
