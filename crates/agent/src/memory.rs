//! An in-memory [`Workspace`] for unit tests: the test kit's in-memory sandbox behind the
//! product's [`SandboxWorkspace`] for files, listings and search; commands logged, not run;
//! test runs and formatting faked.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cap_testkit::sandbox::MemorySandbox;
use cap_testrun::TestRun;
use cap_testrun::lint::{LintRun, LintTool, Violation};
use tonic::Status;

use crate::workspace::{
    CommandOutput, Listing, SandboxWorkspace, SearchResult, Workspace, WriteChange,
};
use crate::{Error, Result};

/// The one session of the workspace.
const SESSION: &str = "memory-workspace";
const REPOSITORY: &str = "memory://workspace";

#[derive(Debug)]
pub(crate) struct MemoryWorkspace {
    sandbox: Arc<MemorySandbox>,
    workspace: SandboxWorkspace,
    log: Mutex<Vec<String>>,
    test_run: Mutex<Option<TestRun>>,
    /// The repository's formatter: formatting drops trailing spaces, and refuses files
    /// holding `syntax error` like a formatter that cannot parse them.
    formatter: Mutex<Option<LintTool>>,
    /// (operations still allowed, then the status every operation fails with)
    down: Mutex<Option<(usize, Status)>>,
}

impl Default for MemoryWorkspace {
    fn default() -> Self {
        Self::with_files([])
    }
}

impl MemoryWorkspace {
    pub(crate) fn with_files<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let files: Vec<(&str, &str)> = files.into_iter().collect();
        let sandbox = MemorySandbox::new();
        sandbox.add_repository(REPOSITORY, "0", &files);
        sandbox.restore_session(SESSION, REPOSITORY, "0");
        Self {
            workspace: SandboxWorkspace::new(sandbox.clone(), SESSION),
            sandbox,
            log: Mutex::default(),
            test_run: Mutex::default(),
            formatter: Mutex::default(),
            down: Mutex::default(),
        }
    }

    pub(crate) fn insert_bytes(&self, path: &str, bytes: &[u8]) {
        self.sandbox.put_file(SESSION, path, bytes);
    }

    pub(crate) fn set_test_run(&self, run: TestRun) {
        *self.test_run.lock().unwrap_or_else(PoisonError::into_inner) = Some(run);
    }

    pub(crate) fn set_formatter(&self, tool: LintTool) {
        *self
            .formatter
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(tool);
    }

    /// Every operation after the next `after` fails with `status` (the sandbox went away).
    pub(crate) fn go_down(&self, after: usize, status: Status) {
        *self.down.lock().unwrap_or_else(PoisonError::into_inner) = Some((after, status));
    }

    pub(crate) fn file(&self, path: &str) -> Option<String> {
        self.sandbox
            .files(SESSION)?
            .get(path)
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
    }

    pub(crate) fn paths(&self) -> Vec<String> {
        self.sandbox
            .files(SESSION)
            .unwrap_or_default()
            .into_keys()
            .collect()
    }

    pub(crate) fn log(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn record(&self, entry: String) {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(entry);
    }

    fn check_up(&self, operation: &'static str) -> Result<()> {
        match &mut *self.down.lock().unwrap_or_else(PoisonError::into_inner) {
            Some((0, status)) => Err(Error::Sandbox {
                operation,
                source: status.clone(),
            }),
            Some((allowed, _)) => {
                *allowed -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl Workspace for MemoryWorkspace {
    async fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        self.check_up("ReadFile")?;
        self.workspace.read_file(path).await
    }

    async fn write_files(&self, changes: Vec<WriteChange>) -> Result<()> {
        self.check_up("WriteFiles")?;
        let names: Vec<String> = changes.iter().map(|c| c.path.clone()).collect();
        self.workspace.write_files(changes).await?;
        self.record(format!("write_files {}", names.join(",")));
        Ok(())
    }

    async fn list_directory(&self, path: &str, recursive: bool) -> Result<Listing> {
        self.check_up("ListDirectory")?;
        self.workspace.list_directory(path, recursive).await
    }

    async fn search_files(&self, pattern: &str, glob: Option<&str>) -> Result<SearchResult> {
        self.check_up("SearchFiles")?;
        self.workspace.search_files(pattern, glob).await
    }

    async fn exec(&self, command: &str, cwd: &str, timeout: Duration) -> Result<CommandOutput> {
        self.check_up("Exec")?;
        self.record(format!(
            "exec {command} in {cwd:?} for {}s",
            timeout.as_secs()
        ));
        let exit_code = if command == "false" { 1 } else { 0 };
        Ok(CommandOutput {
            exit_code,
            timed_out: false,
            duration_ms: 3,
            output: format!("ran {command}\n"),
            truncated: false,
        })
    }

    async fn run_tests(
        &self,
        test_command: Option<&str>,
        pattern: Option<&str>,
        timeout: Duration,
    ) -> Result<Option<TestRun>> {
        self.check_up("Exec")?;
        self.record(format!(
            "run_tests {test_command:?} {pattern:?} for {}s",
            timeout.as_secs()
        ));
        Ok(self
            .test_run
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }

    async fn formatters(&self) -> Result<Vec<LintTool>> {
        self.check_up("ListDirectory")?;
        let formatter = *self
            .formatter
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(formatter.into_iter().collect())
    }

    async fn format_files(
        &self,
        tools: &[LintTool],
        files: &[String],
        timeout: Duration,
    ) -> Result<Vec<LintRun>> {
        self.check_up("Exec")?;
        self.record(format!(
            "format {tools:?} {} for {}s",
            files.join(","),
            timeout.as_secs()
        ));
        let mut runs = Vec::new();
        let map = self.sandbox.files(SESSION).unwrap_or_default();
        for &tool in tools {
            let mut violations = Vec::new();
            for file in files.iter().filter(|f| tool.handles(f)) {
                let Some(text) = map
                    .get(file)
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                else {
                    continue;
                };
                if text.contains("syntax error") {
                    violations.push(Violation {
                        file: file.clone(),
                        line: 0,
                        column: 0,
                        code: String::new(),
                        message: format!("cannot format {file}: cannot parse"),
                    });
                    continue;
                }
                let formatted: String = text
                    .lines()
                    .map(|l| format!("{}\n", l.trim_end()))
                    .collect();
                self.sandbox.put_file(SESSION, file, formatted);
            }
            runs.push(LintRun {
                tool,
                command: format!("{tool} {}", files.join(" ")),
                exit_code: if violations.is_empty() { 0 } else { 123 },
                violations,
                problem: None,
                output_tail: String::new(),
            });
        }
        Ok(runs)
    }
}
