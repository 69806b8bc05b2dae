//! Where the tools act: a workspace reached through the sandbox service.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cap_proto::common::v1::{FileChange, file_change};
use cap_proto::sandbox::v1::{
    ExecRequest, ListDirectoryRequest, ReadFileRequest, SearchFilesRequest, WriteFilesRequest,
    exec_output,
};
use cap_sandbox_client::Sandbox;
use cap_testrun::lint::{self, LintRun, LintTool};
use cap_testrun::{TestPlan, TestRun};
use tokio::sync::OnceCell;
use tokio_stream::StreamExt as _;

use crate::{Error, Result};

/// How much of a command's combined output is kept (its tail).
pub(crate) const OUTPUT_TAIL_BYTES: usize = 16 * 1024;

/// One file to write or delete, relative to the workspace root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteChange {
    /// The path.
    pub path: String,
    /// The new content; `None` deletes the file.
    pub content: Option<Vec<u8>>,
}

/// An entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// Path relative to the workspace root.
    pub path: String,
    /// Whether it is a directory.
    pub is_dir: bool,
    /// Size in bytes (files).
    pub size: u64,
}

/// A directory listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// The entries, sorted by path.
    pub entries: Vec<Entry>,
    /// More entries exist than were returned.
    pub truncated: bool,
}

/// One matching line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SearchHit {
    /// Path relative to the workspace root.
    pub path: String,
    /// 1-based line number.
    pub line_number: u32,
    /// The line.
    pub line: String,
}

/// The result of a search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchResult {
    /// The matches.
    pub hits: Vec<SearchHit>,
    /// More matches exist than were returned.
    pub truncated: bool,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit code; -1 when killed by a signal or the timeout.
    pub exit_code: i32,
    /// Killed at the timeout.
    pub timed_out: bool,
    /// Wall time.
    pub duration_ms: u64,
    /// The tail of stdout and stderr as they interleaved.
    pub output: String,
    /// Output was dropped (by the sandbox's cap or because only the tail is kept).
    pub truncated: bool,
}

/// The operations the tools need from a workspace.
///
/// Errors the sandbox gives for a caller's mistake (missing file, invalid path, bad pattern)
/// are [`Error::Sandbox`] with a non-fatal code; see [`Error::is_fatal`].
pub trait Workspace: Send + Sync {
    /// The content of the file at `path`.
    fn read_file(&self, path: &str) -> impl Future<Output = Result<Vec<u8>>> + Send;
    /// Writes and deletes files, all or none.
    fn write_files(&self, changes: Vec<WriteChange>) -> impl Future<Output = Result<()>> + Send;
    /// Lists `path` (`""` = root), recursively when asked.
    fn list_directory(
        &self,
        path: &str,
        recursive: bool,
    ) -> impl Future<Output = Result<Listing>> + Send;
    /// Lines matching the regular expression `pattern` in files matching `glob`.
    fn search_files(
        &self,
        pattern: &str,
        glob: Option<&str>,
    ) -> impl Future<Output = Result<SearchResult>> + Send;
    /// Runs `command` with `/bin/sh -c` in `cwd` (relative to the workspace root).
    fn exec(
        &self,
        command: &str,
        cwd: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<CommandOutput>> + Send;
    /// Runs the tests: `test_command` when given, else the detected framework's; `None` when
    /// no framework is detected.
    fn run_tests(
        &self,
        test_command: Option<&str>,
        pattern: Option<&str>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Option<TestRun>>> + Send;
    /// The formatters the repository configures (FR-005), e.g. black, Prettier, gofmt.
    fn formatters(&self) -> impl Future<Output = Result<Vec<LintTool>>> + Send;
    /// Formats `files` in place with `tools`; what each tool did.
    fn format_files(
        &self,
        tools: &[LintTool],
        files: &[String],
        timeout: Duration,
    ) -> impl Future<Output = Result<Vec<LintRun>>> + Send;
}

/// The product workspace: a session of the sandbox service.
#[derive(Debug, Clone)]
pub struct SandboxWorkspace {
    sandbox: Sandbox,
    session_id: String,
    /// The repository's formatters, detected at the first edit.
    formatters: Arc<OnceCell<Vec<LintTool>>>,
}

impl SandboxWorkspace {
    /// The workspace of `session_id`, reached through `sandbox`.
    pub fn new(sandbox: Sandbox, session_id: impl Into<String>) -> Self {
        Self {
            sandbox,
            session_id: session_id.into(),
            formatters: Arc::default(),
        }
    }

    /// The session id.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }
}

fn sandbox(operation: &'static str) -> impl FnOnce(tonic::Status) -> Error {
    move |source| Error::Sandbox { operation, source }
}

impl Workspace for SandboxWorkspace {
    async fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        let request = ReadFileRequest {
            session_id: self.session_id.clone(),
            path: path.to_owned(),
        };
        let response = self
            .sandbox
            .read_file(request)
            .await
            .map_err(sandbox("ReadFile"))?;
        Ok(response.content)
    }

    async fn write_files(&self, changes: Vec<WriteChange>) -> Result<()> {
        let changes = changes
            .into_iter()
            .map(|change| FileChange {
                path: change.path,
                change: Some(match change.content {
                    Some(content) => file_change::Change::Content(content),
                    None => file_change::Change::Deleted(true),
                }),
            })
            .collect();
        let request = WriteFilesRequest {
            session_id: self.session_id.clone(),
            changes,
        };
        self.sandbox
            .write_files(request)
            .await
            .map_err(sandbox("WriteFiles"))?;
        Ok(())
    }

    async fn list_directory(&self, path: &str, recursive: bool) -> Result<Listing> {
        let request = ListDirectoryRequest {
            session_id: self.session_id.clone(),
            path: path.to_owned(),
            recursive,
        };
        let response = self
            .sandbox
            .list_directory(request)
            .await
            .map_err(sandbox("ListDirectory"))?;
        let mut entries: Vec<Entry> = response
            .entries
            .into_iter()
            .map(|entry| Entry {
                path: entry.path,
                is_dir: entry.is_dir,
                size: entry.size,
            })
            .collect();
        entries.sort();
        Ok(Listing {
            entries,
            truncated: response.truncated,
        })
    }

    async fn search_files(&self, pattern: &str, glob: Option<&str>) -> Result<SearchResult> {
        let request = SearchFilesRequest {
            session_id: self.session_id.clone(),
            pattern: pattern.to_owned(),
            glob: glob.unwrap_or_default().to_owned(),
        };
        let response = self
            .sandbox
            .search_files(request)
            .await
            .map_err(sandbox("SearchFiles"))?;
        let hits = response
            .matches
            .into_iter()
            .map(|hit| SearchHit {
                path: hit.path,
                line_number: hit.line_number,
                line: hit.line,
            })
            .collect();
        Ok(SearchResult {
            hits,
            truncated: response.truncated,
        })
    }

    async fn exec(&self, command: &str, cwd: &str, timeout: Duration) -> Result<CommandOutput> {
        let request = ExecRequest {
            session_id: self.session_id.clone(),
            command: command.to_owned(),
            cwd: cwd.to_owned(),
            timeout_seconds: u32::try_from(timeout.as_secs().max(1)).unwrap_or(u32::MAX),
            env: Default::default(),
        };
        let mut stream = self.sandbox.exec(request).await.map_err(sandbox("Exec"))?;
        let mut tail = Tail::new(OUTPUT_TAIL_BYTES);
        while let Some(item) = stream.next().await {
            match item.map_err(sandbox("Exec"))?.output {
                Some(exec_output::Output::Stdout(bytes) | exec_output::Output::Stderr(bytes)) => {
                    tail.push(&bytes);
                }
                Some(exec_output::Output::Exit(exit)) => {
                    let truncated = tail.dropped || exit.output_truncated;
                    return Ok(CommandOutput {
                        exit_code: exit.exit_code,
                        timed_out: exit.timed_out,
                        duration_ms: exit.duration_ms,
                        output: tail.into_text(),
                        truncated,
                    });
                }
                None => {}
            }
        }
        Err(Error::ExecIncomplete)
    }

    async fn run_tests(
        &self,
        test_command: Option<&str>,
        pattern: Option<&str>,
        timeout: Duration,
    ) -> Result<Option<TestRun>> {
        let plan = match test_command {
            Some(command) => TestPlan::custom(command),
            None => match cap_testrun::detect(&*self.sandbox, &self.session_id)
                .await
                .map_err(|source| Error::TestRun { source })?
            {
                Some(plan) => plan,
                None => return Ok(None),
            },
        };
        let run = cap_testrun::run(&*self.sandbox, &self.session_id, &plan, pattern, timeout)
            .await
            .map_err(|source| Error::TestRun { source })?;
        Ok(Some(run))
    }

    async fn formatters(&self) -> Result<Vec<LintTool>> {
        let tools = self
            .formatters
            .get_or_try_init(|| async {
                let tools = lint::detect_linters_in(&*self.sandbox, &self.session_id)
                    .await
                    .map_err(|source| Error::Format { source })?;
                Ok::<_, Error>(tools.into_iter().filter(|t| t.is_formatter()).collect())
            })
            .await?;
        Ok(tools.clone())
    }

    async fn format_files(
        &self,
        tools: &[LintTool],
        files: &[String],
        timeout: Duration,
    ) -> Result<Vec<LintRun>> {
        lint::format_files(&*self.sandbox, &self.session_id, tools, files, timeout)
            .await
            .map_err(|source| Error::Format { source })
    }
}

/// The last `cap` bytes of a byte stream.
#[derive(Debug)]
pub(crate) struct Tail {
    cap: usize,
    bytes: Vec<u8>,
    pub(crate) dropped: bool,
}

impl Tail {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            bytes: Vec::new(),
            dropped: false,
        }
    }

    pub(crate) fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
        if self.bytes.len() > self.cap {
            let excess = self.bytes.len() - self.cap;
            self.bytes.drain(..excess);
            self.dropped = true;
        }
    }

    /// The kept bytes as text; a character cut at the start is replaced, not an error.
    pub(crate) fn into_text(self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}
