//! The PRD's tools: their schemas for the model and their implementations.
//!
//! A tool returns what goes back to the model. Anything wrong with a call (invalid JSON,
//! missing or mistyped parameters, paths escaping the workspace, a file that is not there)
//! becomes an error result the model can act on; only infrastructure failures are errors.

use std::time::Duration;

use cap_llm::ToolSpec;
use cap_proto::agent::v1::{CommandExecuted, FileModified, observation};
use cap_testrun::lint::LintTool;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::diff;
use crate::overlay::{FileState, Overlay, glob_matcher};
use crate::paths::normalize;
use crate::workspace::{CommandOutput, Workspace};
use crate::{AgentConfig, Change, Error};

/// The names of every tool, as the model sees them.
pub const TOOL_NAMES: [&str; 9] = [
    "read_file",
    "list_directory",
    "search_files",
    "edit_file",
    "create_file",
    "delete_file",
    "apply_diff",
    "run_tests",
    "run_command",
];

/// The tools after which the repository's formatters run (FR-005).
const FORMATTED_TOOLS: [&str; 3] = ["edit_file", "create_file", "apply_diff"];
/// Characters of a failing formatter's output sent back to the model.
const FORMAT_OUTPUT_CHARS: usize = 2_000;
/// Lines `read_file` returns when no range is given.
const MAX_READ_LINES: usize = 2000;
/// Characters of one line `read_file` shows.
const MAX_LINE_CHARS: usize = 2000;
/// Characters `read_file` returns at once (about 15k tokens).
const MAX_READ_CHARS: usize = 60_000;
/// Entries `list_directory` shows.
const MAX_LIST_ENTRIES: usize = 1000;
/// Matches `search_files` shows.
const MAX_SEARCH_HITS: usize = 200;
/// Characters of command output sent back to the model.
const MAX_OUTPUT_CHARS: usize = 12_000;
/// Characters of output kept in an Observation's `stdout_snippet`.
const SNIPPET_CHARS: usize = 4_000;

/// The JSON schemas of every tool, in [`TOOL_NAMES`] order.
pub fn tool_specs() -> Vec<ToolSpec> {
    TOOL_NAMES.iter().filter_map(|name| spec(name)).collect()
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required})
}

/// The schema of the tool called `name`.
pub(crate) fn spec(name: &str) -> Option<ToolSpec> {
    let (description, parameters) = match name {
        "read_file" => (
            "Read a text file of the repository. Returns its lines prefixed with line numbers. \
             Give line_start/line_end (1-based, inclusive) to read part of a long file.",
            object(
                json!({
                    "path": {"type": "string", "description": "Path relative to the repository root."},
                    "line_start": {"type": "integer", "minimum": 1, "description": "First line to return."},
                    "line_end": {"type": "integer", "minimum": 1, "description": "Last line to return."}
                }),
                &["path"],
            ),
        ),
        "list_directory" => (
            "List a directory of the repository (\".\" is the root). Directories end with `/`.",
            object(
                json!({
                    "path": {"type": "string", "description": "Directory relative to the repository root."},
                    "recursive": {"type": "boolean", "description": "List everything below it (default false)."}
                }),
                &["path"],
            ),
        ),
        "search_files" => (
            "Search file contents with a regular expression. Returns `path:line: text` per match.",
            object(
                json!({
                    "pattern": {"type": "string", "description": "Regular expression (Rust regex syntax)."},
                    "glob": {"type": "string", "description": "Only search files matching this glob, e.g. `*.py` or `src/**/*.rs`."}
                }),
                &["pattern"],
            ),
        ),
        "edit_file" => (
            "Replace text in a file. old_string must occur exactly once in the file (include \
             enough surrounding lines to make it unique, whitespace exact); it is replaced by new_string.",
            object(
                json!({
                    "path": {"type": "string", "description": "File relative to the repository root."},
                    "old_string": {"type": "string", "description": "The exact text to replace."},
                    "new_string": {"type": "string", "description": "The text to put in its place."}
                }),
                &["path", "old_string", "new_string"],
            ),
        ),
        "create_file" => (
            "Create a new file with the given content. Fails if the file exists (use edit_file then).",
            object(
                json!({
                    "path": {"type": "string", "description": "File relative to the repository root."},
                    "content": {"type": "string", "description": "The complete content."}
                }),
                &["path", "content"],
            ),
        ),
        "delete_file" => (
            "Delete a file.",
            object(
                json!({"path": {"type": "string", "description": "File relative to the repository root."}}),
                &["path"],
            ),
        ),
        "apply_diff" => (
            "Apply a unified diff (---/+++ headers, @@ hunks; several files allowed; /dev/null \
             creates or deletes). Either every hunk applies or nothing changes.",
            object(
                json!({"diff_text": {"type": "string", "description": "The unified diff."}}),
                &["diff_text"],
            ),
        ),
        "run_tests" => (
            "Run the repository's tests (all edits so far are written first). Returns the \
             outcome, counts, failing tests and the end of the output.",
            object(
                json!({"test_pattern": {"type": "string", "description": "Only run tests matching this (test name, file or pattern)."}}),
                &[],
            ),
        ),
        "run_command" => (
            "Run a shell command in the repository's sandbox (no network; all edits so far are \
             written first). Returns the exit code and the end of the output.",
            object(
                json!({
                    "cmd": {"type": "string", "description": "The command, run with /bin/sh -c."},
                    "cwd": {"type": "string", "description": "Directory relative to the repository root (default the root)."},
                    "timeout": {"type": "integer", "minimum": 1, "description": "Timeout in seconds."}
                }),
                &["cmd"],
            ),
        ),
        _ => return None,
    };
    Some(ToolSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        parameters,
    })
}

/// A tool call that did not work.
#[derive(Debug)]
pub(crate) enum ToolError {
    /// The model's mistake: told to the model.
    Message(String),
    /// Refused for safety (a path leaving the workspace, `.git`, a denied file): told to the
    /// model and reported as an event, so a reviewer sees what the model tried.
    Refused(String),
    /// The infrastructure failed: the task stops.
    Fatal(Error),
}

impl From<Error> for ToolError {
    fn from(error: Error) -> Self {
        if error.is_fatal() {
            return ToolError::Fatal(error);
        }
        match error {
            Error::Sandbox { source, .. } if source.code() == tonic::Code::PermissionDenied => {
                ToolError::Refused(source.message().to_owned())
            }
            Error::Sandbox { source, .. } => ToolError::Message(source.message().to_owned()),
            other => ToolError::Message(other.chain()),
        }
    }
}

/// What a tool call produced.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolOutput {
    /// What goes back to the model.
    pub(crate) content: String,
    pub(crate) is_error: bool,
    /// The call was refused for safety ([`ToolError::Refused`]).
    pub(crate) refused: bool,
    pub(crate) detail: Option<observation::Detail>,
}

impl ToolOutput {
    fn ok(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            is_error: false,
            refused: false,
            detail: None,
        }
    }

    pub(crate) fn error(message: impl AsRef<str>) -> Self {
        Self {
            content: format!("Error: {}", message.as_ref()),
            is_error: true,
            refused: false,
            detail: None,
        }
    }

    fn refused(message: String) -> Self {
        Self {
            refused: true,
            ..Self::error(message)
        }
    }

    fn with_detail(mut self, detail: observation::Detail) -> Self {
        self.detail = Some(detail);
        self
    }
}

type ToolResult = Result<ToolOutput, ToolError>;

#[derive(Deserialize)]
struct ReadFileArgs {
    path: String,
    line_start: Option<u64>,
    line_end: Option<u64>,
}

#[derive(Deserialize)]
struct ListDirectoryArgs {
    path: String,
    recursive: Option<bool>,
}

#[derive(Deserialize)]
struct SearchFilesArgs {
    pattern: String,
    glob: Option<String>,
}

#[derive(Deserialize)]
struct EditFileArgs {
    path: String,
    old_string: String,
    new_string: String,
}

#[derive(Deserialize)]
struct CreateFileArgs {
    path: String,
    content: String,
}

#[derive(Deserialize)]
struct DeleteFileArgs {
    path: String,
}

#[derive(Deserialize)]
struct ApplyDiffArgs {
    diff_text: String,
}

#[derive(Deserialize)]
struct RunTestsArgs {
    test_pattern: Option<String>,
}

#[derive(Deserialize)]
struct RunCommandArgs {
    cmd: String,
    cwd: Option<String>,
    timeout: Option<u64>,
}

/// Parses `arguments` (raw JSON text from the model) into the tool's parameters.
fn parse_args<T: DeserializeOwned>(tool: &str, arguments: &str) -> Result<T, ToolError> {
    let value: Value = serde_json::from_str(arguments).map_err(|e| {
        ToolError::Message(format!(
            "the arguments of {tool} are not valid JSON ({e}); send one JSON object with the parameters"
        ))
    })?;
    if !value.is_object() {
        return Err(ToolError::Message(format!(
            "the arguments of {tool} must be a JSON object, not {}",
            kind_of(&value)
        )));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let at = if path == "." {
            String::new()
        } else {
            format!(" at `{path}`")
        };
        ToolError::Message(format!("invalid arguments for {tool}{at}: {inner}"))
    })
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn path_arg(path: &str, allow_root: bool) -> Result<String, ToolError> {
    normalize(path, allow_root).map_err(ToolError::Refused)
}

/// Line counts of a change, for `file_modified`.
fn line_counts(before: &str, after: &str) -> (u32, u32) {
    let diff = similar::TextDiff::from_lines(before, after);
    let (mut additions, mut deletions) = (0u32, 0u32);
    for change in diff.iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Insert => additions += 1,
            similar::ChangeTag::Delete => deletions += 1,
            similar::ChangeTag::Equal => {}
        }
    }
    (additions, deletions)
}

fn file_modified(path: &str, change: Change, before: &str, after: &str) -> FileModified {
    let (additions, deletions) = line_counts(before, after);
    FileModified {
        path: path.to_owned(),
        change: change.as_str().to_owned(),
        additions,
        deletions,
    }
}

/// The last `max` characters of `text`.
fn tail_chars(text: &str, max: usize) -> &str {
    let count = text.chars().count();
    if count <= max {
        return text;
    }
    let skip = count - max;
    text.char_indices()
        .nth(skip)
        .map_or(text, |(at, _)| &text[at..])
}

/// Runs tool calls against one workspace, with the task's staged edits.
pub(crate) struct Toolbox<'a, W> {
    pub(crate) ws: &'a W,
    pub(crate) overlay: &'a mut Overlay,
    pub(crate) config: &'a AgentConfig,
    /// The repository's own test command, when the task names one.
    pub(crate) test_command: Option<&'a str>,
}

impl<W: Workspace> Toolbox<'_, W> {
    /// Runs the tool `name` with `arguments`; `Err` only when the task cannot go on.
    pub(crate) async fn call(&mut self, name: &str, arguments: &str) -> crate::Result<ToolOutput> {
        let result = match name {
            "read_file" => self.read_file(arguments).await,
            "list_directory" => self.list_directory(arguments).await,
            "search_files" => self.search_files(arguments).await,
            "edit_file" => self.edit_file(arguments).await,
            "create_file" => self.create_file(arguments).await,
            "delete_file" => self.delete_file(arguments).await,
            "apply_diff" => self.apply_diff(arguments).await,
            "run_tests" => self.run_tests(arguments).await,
            "run_command" => self.run_command(arguments).await,
            other => Err(ToolError::Message(format!(
                "unknown tool {other:?}; the tools are: {}",
                TOOL_NAMES.join(", ")
            ))),
        };
        let result = match result {
            Ok(mut output) if FORMATTED_TOOLS.contains(&name) => {
                match self.format_staged(&mut output).await {
                    Ok(()) => Ok(output),
                    // The edit stands; the model hears why it was not formatted.
                    Err(ToolError::Message(message) | ToolError::Refused(message)) => {
                        output.content.push_str(&format!(
                            "\nthe modified files could not be formatted: {message}"
                        ));
                        Ok(output)
                    }
                    Err(fatal) => Err(fatal),
                }
            }
            other => other,
        };
        match result {
            Ok(output) => Ok(output),
            Err(ToolError::Message(message)) => Ok(ToolOutput::error(message)),
            Err(ToolError::Refused(message)) => Ok(ToolOutput::refused(message)),
            Err(ToolError::Fatal(error)) => Err(error),
        }
    }

    /// Reads a text file through the overlay; `Ok(None)` when absent.
    async fn text(&self, path: &str) -> Result<Option<String>, ToolError> {
        match self.overlay.read(self.ws, path).await? {
            FileState::Missing => Ok(None),
            FileState::Text(text) => Ok(Some(text)),
            FileState::Binary(size) => Err(ToolError::Message(format!(
                "{path} is a binary file ({size} bytes); only text files can be read or edited"
            ))),
        }
    }

    async fn read_file(&self, arguments: &str) -> ToolResult {
        let args: ReadFileArgs = parse_args("read_file", arguments)?;
        let path = path_arg(&args.path, false)?;
        let Some(text) = self.text(&path).await? else {
            return Err(ToolError::Message(format!("{path} does not exist")));
        };
        let lines: Vec<&str> = text.lines().collect();
        let total = lines.len();
        if total == 0 {
            return Ok(ToolOutput::ok(format!("{path} is empty")));
        }
        let start = usize::try_from(args.line_start.unwrap_or(1)).unwrap_or(usize::MAX);
        if start == 0 {
            return Err(ToolError::Message(
                "line_start is 1-based; 0 is not a line".to_owned(),
            ));
        }
        if start > total {
            return Err(ToolError::Message(format!(
                "line_start {start} is past the end of {path}, which has {total} lines"
            )));
        }
        let mut end = match args.line_end {
            Some(end) => {
                let end = usize::try_from(end).unwrap_or(usize::MAX);
                if end < start {
                    return Err(ToolError::Message(format!(
                        "line_end {end} is before line_start {start}"
                    )));
                }
                end.min(total)
            }
            None => total.min(start.saturating_add(MAX_READ_LINES - 1)),
        };
        let mut out = String::new();
        for (index, line) in lines.iter().enumerate().take(end).skip(start - 1) {
            if out.len() > MAX_READ_CHARS {
                // `index` is 0-based: the lines shown end at line number `index`.
                end = index;
                break;
            }
            let line = line.trim_end_matches('\r');
            let shown: String = line.chars().take(MAX_LINE_CHARS).collect();
            let cut = if shown.len() < line.len() {
                " [line cut]"
            } else {
                ""
            };
            out.push_str(&format!("{:>6}\t{shown}{cut}\n", index + 1));
        }
        if end < total {
            out.push_str(&format!(
                "... {path} has {total} lines; showing {start}-{end}. Use line_start/line_end for more.\n"
            ));
        }
        Ok(ToolOutput::ok(out))
    }

    async fn list_directory(&self, arguments: &str) -> ToolResult {
        let args: ListDirectoryArgs = parse_args("list_directory", arguments)?;
        let dir = path_arg(&args.path, true)?;
        let listing = self
            .overlay
            .list(self.ws, &dir, args.recursive.unwrap_or(false))
            .await?;
        if listing.entries.is_empty() {
            let shown = if dir.is_empty() { "." } else { dir.as_str() };
            return Ok(ToolOutput::ok(format!("{shown} is empty")));
        }
        let mut out = String::new();
        for entry in listing.entries.iter().take(MAX_LIST_ENTRIES) {
            if entry.is_dir {
                out.push_str(&format!("{}/\n", entry.path));
            } else {
                out.push_str(&format!("{} ({} bytes)\n", entry.path, entry.size));
            }
        }
        if listing.truncated || listing.entries.len() > MAX_LIST_ENTRIES {
            out.push_str("... more entries not shown; list a subdirectory\n");
        }
        Ok(ToolOutput::ok(out))
    }

    async fn search_files(&self, arguments: &str) -> ToolResult {
        let args: SearchFilesArgs = parse_args("search_files", arguments)?;
        if args.pattern.is_empty() {
            return Err(ToolError::Message("pattern is empty".to_owned()));
        }
        let regex = regex::Regex::new(&args.pattern).map_err(|e| {
            ToolError::Message(format!(
                "pattern {:?} is not a valid regular expression: {e}",
                args.pattern
            ))
        })?;
        let glob = args
            .glob
            .as_deref()
            .map(str::trim)
            .filter(|glob| !glob.is_empty());
        if let Some(glob) = glob {
            // Matched against workspace paths only, so it cannot reach out; a glob that
            // tries is refused (and reported) as such a path is.
            normalize(glob, true).map_err(ToolError::Refused)?;
        }
        let matcher = match glob {
            Some(glob) => Some(
                glob_matcher(glob)
                    .map_err(|e| ToolError::Message(format!("glob {glob:?} is not valid: {e}")))?,
            ),
            None => None,
        };
        let glob = glob.zip(matcher.as_ref());
        let result = self
            .overlay
            .search(self.ws, &args.pattern, &regex, glob)
            .await?;
        if result.hits.is_empty() {
            return Ok(ToolOutput::ok(format!("no matches for {:?}", args.pattern)));
        }
        let mut out = String::new();
        for hit in result.hits.iter().take(MAX_SEARCH_HITS) {
            let line: String = hit.line.chars().take(300).collect();
            out.push_str(&format!("{}:{}: {line}\n", hit.path, hit.line_number));
        }
        if result.truncated || result.hits.len() > MAX_SEARCH_HITS {
            out.push_str("... more matches not shown; narrow the pattern or the glob\n");
        }
        Ok(ToolOutput::ok(out))
    }

    async fn edit_file(&mut self, arguments: &str) -> ToolResult {
        let args: EditFileArgs = parse_args("edit_file", arguments)?;
        let path = path_arg(&args.path, false)?;
        if args.old_string.is_empty() {
            return Err(ToolError::Message(
                "old_string is empty; give the exact text to replace (use create_file for new files)"
                    .to_owned(),
            ));
        }
        if args.old_string == args.new_string {
            return Err(ToolError::Message(
                "old_string and new_string are the same".to_owned(),
            ));
        }
        let Some(before) = self.text(&path).await? else {
            return Err(ToolError::Message(format!(
                "{path} does not exist (use create_file to create it)"
            )));
        };
        let count = before.matches(&args.old_string).count();
        match count {
            0 => {
                return Err(ToolError::Message(format!(
                    "old_string was not found in {path}; read the file and copy the text exactly, whitespace included"
                )));
            }
            1 => {}
            n => {
                return Err(ToolError::Message(format!(
                    "old_string occurs {n} times in {path}; include more surrounding lines so it occurs exactly once"
                )));
            }
        }
        let after = before.replacen(&args.old_string, &args.new_string, 1);
        let detail = file_modified(&path, Change::Modified, &before, &after);
        let summary = format!(
            "edited {path} (+{} -{} lines)",
            detail.additions, detail.deletions
        );
        self.overlay.stage(&path, Some(after), true);
        Ok(ToolOutput::ok(summary).with_detail(observation::Detail::FileModified(detail)))
    }

    async fn create_file(&mut self, arguments: &str) -> ToolResult {
        let args: CreateFileArgs = parse_args("create_file", arguments)?;
        let path = path_arg(&args.path, false)?;
        match self.overlay.read(self.ws, &path).await {
            Ok(FileState::Missing) => {}
            Ok(FileState::Text(_) | FileState::Binary(_)) => {
                return Err(ToolError::Message(format!(
                    "{path} already exists; use edit_file or apply_diff to change it"
                )));
            }
            Err(error) => {
                return Err(match ToolError::from(error) {
                    ToolError::Message(message) => {
                        ToolError::Message(format!("cannot create {path}: {message}"))
                    }
                    other => other,
                });
            }
        }
        let detail = file_modified(&path, Change::Created, "", &args.content);
        let summary = format!("created {path} ({} lines)", detail.additions);
        self.overlay.stage(&path, Some(args.content), false);
        Ok(ToolOutput::ok(summary).with_detail(observation::Detail::FileModified(detail)))
    }

    async fn delete_file(&mut self, arguments: &str) -> ToolResult {
        let args: DeleteFileArgs = parse_args("delete_file", arguments)?;
        let path = path_arg(&args.path, false)?;
        let before = match self.overlay.read(self.ws, &path).await? {
            FileState::Missing => {
                return Err(ToolError::Message(format!("{path} does not exist")));
            }
            FileState::Text(text) => text,
            FileState::Binary(_) => String::new(),
        };
        let detail = file_modified(&path, Change::Deleted, &before, "");
        self.overlay.stage(&path, None, true);
        Ok(ToolOutput::ok(format!("deleted {path}"))
            .with_detail(observation::Detail::FileModified(detail)))
    }

    async fn apply_diff(&mut self, arguments: &str) -> ToolResult {
        let args: ApplyDiffArgs = parse_args("apply_diff", arguments)?;
        let edits = diff::plan(self.overlay, self.ws, &args.diff_text).await?;
        if edits.is_empty() {
            return Err(ToolError::Message("the diff changes nothing".to_owned()));
        }
        let mut details = Vec::new();
        for edit in &edits {
            let change = match (&edit.before, &edit.after) {
                (None, _) => Change::Created,
                (Some(_), Some(_)) => Change::Modified,
                (Some(_), None) => Change::Deleted,
            };
            let before = edit.before.as_deref().unwrap_or("");
            let after = edit.after.as_deref().unwrap_or("");
            details.push(file_modified(&edit.path, change, before, after));
        }
        for edit in edits {
            self.overlay
                .stage(&edit.path, edit.after, edit.before.is_some());
        }
        let mut out = format!("applied the diff to {} file(s):\n", details.len());
        for d in &details {
            out.push_str(&format!(
                "{} {} (+{} -{})\n",
                d.change, d.path, d.additions, d.deletions
            ));
        }
        let output = ToolOutput::ok(out);
        // One file: its detail; several: the content lists them all.
        Ok(match <[FileModified; 1]>::try_from(details) {
            Ok([detail]) => output.with_detail(observation::Detail::FileModified(detail)),
            Err(_) => output,
        })
    }

    /// FR-005: writes the staged files the repository's formatters handle, formats them in
    /// the sandbox and tells the model which were reformatted (so it reads them again before
    /// its next edit) and what a formatter could not do. Nothing happens where the
    /// repository configures no formatter for the files.
    async fn format_staged(&mut self, output: &mut ToolOutput) -> Result<(), ToolError> {
        let staged = self.overlay.staged_files();
        let tools: Vec<LintTool> = self
            .ws
            .formatters()
            .await?
            .into_iter()
            .filter(|tool| staged.iter().any(|(path, _)| tool.handles(path)))
            .collect();
        if tools.is_empty() {
            return Ok(());
        }
        let staged: Vec<(String, String)> = staged
            .into_iter()
            .filter(|(path, _)| tools.iter().any(|tool| tool.handles(path)))
            .collect();
        let files: Vec<String> = staged.iter().map(|(path, _)| path.clone()).collect();
        self.flush().await?;
        let runs = self
            .ws
            .format_files(&tools, &files, self.config.command_timeout)
            .await?;
        let names: Vec<&str> = tools.iter().map(|tool| tool.as_str()).collect();
        for (path, written) in &staged {
            let FileState::Text(formatted) = self.overlay.read(self.ws, path).await? else {
                continue;
            };
            self.overlay.accept(path, &formatted);
            if formatted != *written {
                let (additions, deletions) = line_counts(written, &formatted);
                output.content.push_str(&format!(
                    "\n{path} was reformatted by {} (+{additions} -{deletions} lines); read it \
                     again before editing it",
                    names.join(", ")
                ));
            }
        }
        for run in runs.iter().filter(|run| !run.clean()) {
            let mut why: Vec<String> = run.problem.iter().cloned().collect();
            why.extend(run.violations.iter().map(|v| v.message.clone()));
            output.content.push_str(&format!(
                "\n{} could not format {}: {}",
                run.tool,
                files.join(", "),
                why.join("; ")
            ));
            let tail = tail_chars(run.output_tail.trim(), FORMAT_OUTPUT_CHARS);
            if !tail.is_empty() {
                output
                    .content
                    .push_str(&format!("\n--- {} output (end) ---\n{tail}", run.tool));
            }
        }
        Ok(())
    }

    /// Writes the staged edits before something runs in the workspace.
    async fn flush(&mut self) -> Result<(), ToolError> {
        self.overlay
            .flush(self.ws)
            .await
            .map_err(|error| match ToolError::from(error) {
                ToolError::Message(message) => ToolError::Message(format!(
                    "the staged edits could not be written, nothing ran: {message}"
                )),
                other => other,
            })?;
        Ok(())
    }

    async fn run_tests(&mut self, arguments: &str) -> ToolResult {
        let args: RunTestsArgs = parse_args("run_tests", arguments)?;
        let pattern = args
            .test_pattern
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty());
        self.flush().await?;
        let run = self
            .ws
            .run_tests(self.test_command, pattern, self.config.test_timeout)
            .await?;
        let Some(run) = run else {
            return Err(ToolError::Message(
                "no test framework was detected in this repository; run the tests with run_command"
                    .to_owned(),
            ));
        };
        let mut out = run.summary();
        for case in run
            .cases
            .iter()
            .filter(|c| c.outcome == "failed" || c.outcome == "error")
            .take(10)
        {
            if !case.message.is_empty() {
                let message: String = case.message.chars().take(1500).collect();
                out.push_str(&format!("\n--- {} ---\n{message}\n", case.name));
            }
        }
        out.push_str("\n--- output (end) ---\n");
        out.push_str(tail_chars(&run.output_tail, MAX_OUTPUT_CHARS));
        let detail = CommandExecuted {
            command: run.command.clone(),
            exit_code: run.exit_code,
            stdout_snippet: tail_chars(&run.output_tail, SNIPPET_CHARS).to_owned(),
            timed_out: run.timed_out,
            duration_ms: run.duration_ms,
        };
        Ok(ToolOutput::ok(out).with_detail(observation::Detail::CommandExecuted(detail)))
    }

    async fn run_command(&mut self, arguments: &str) -> ToolResult {
        let args: RunCommandArgs = parse_args("run_command", arguments)?;
        if args.cmd.trim().is_empty() {
            return Err(ToolError::Message("cmd is empty".to_owned()));
        }
        let cwd = path_arg(args.cwd.as_deref().unwrap_or(""), true)?;
        let max = self.config.max_command_timeout.as_secs();
        let timeout = match args.timeout {
            None => self.config.command_timeout,
            Some(seconds) if (1..=max).contains(&seconds) => Duration::from_secs(seconds),
            Some(seconds) => {
                return Err(ToolError::Message(format!(
                    "timeout {seconds} is out of range; give 1 to {max} seconds"
                )));
            }
        };
        self.flush().await?;
        let output: CommandOutput = self.ws.exec(&args.cmd, &cwd, timeout).await?;
        let mut out = format!("exit code: {}", output.exit_code);
        if output.timed_out {
            out.push_str(&format!(
                " (killed after the {}s timeout)",
                timeout.as_secs()
            ));
        }
        out.push('\n');
        let shown = tail_chars(&output.output, MAX_OUTPUT_CHARS);
        if output.truncated || shown.len() < output.output.len() {
            out.push_str("--- output (end only) ---\n");
        } else {
            out.push_str("--- output ---\n");
        }
        out.push_str(shown);
        let detail = CommandExecuted {
            command: args.cmd,
            exit_code: output.exit_code,
            stdout_snippet: tail_chars(&output.output, SNIPPET_CHARS).to_owned(),
            timed_out: output.timed_out,
            duration_ms: output.duration_ms,
        };
        Ok(ToolOutput::ok(out).with_detail(observation::Detail::CommandExecuted(detail)))
    }
}

#[cfg(test)]
#[path = "tools_tests.rs"]
mod tests;
