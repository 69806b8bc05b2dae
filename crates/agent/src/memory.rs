//! An in-memory [`Workspace`] for unit tests: files in a map, commands logged, not run.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use cap_testrun::TestRun;
use cap_testrun::lint::{LintRun, LintTool, Violation};
use tonic::Status;

use crate::overlay::glob_matcher;
use crate::workspace::{
    CommandOutput, Entry, Listing, SearchHit, SearchResult, Workspace, WriteChange,
};
use crate::{Error, Result};

#[derive(Debug, Default)]
pub(crate) struct MemoryWorkspace {
    files: Mutex<BTreeMap<String, Vec<u8>>>,
    log: Mutex<Vec<String>>,
    test_run: Mutex<Option<TestRun>>,
    /// The repository's formatter: formatting drops trailing spaces, and refuses files
    /// holding `syntax error` like a formatter that cannot parse them.
    formatter: Mutex<Option<LintTool>>,
    /// (operations still allowed, then the status every operation fails with)
    down: Mutex<Option<(usize, Status)>>,
}

fn err(operation: &'static str, source: Status) -> Error {
    Error::Sandbox { operation, source }
}

impl MemoryWorkspace {
    pub(crate) fn with_files<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let ws = Self::default();
        {
            let mut map = ws.files.lock().unwrap_or_else(PoisonError::into_inner);
            for (path, content) in files {
                map.insert(path.to_owned(), content.as_bytes().to_vec());
            }
        }
        ws
    }

    pub(crate) fn insert_bytes(&self, path: &str, bytes: &[u8]) {
        self.files
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path.to_owned(), bytes.to_vec());
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
        self.files
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
    }

    pub(crate) fn paths(&self) -> Vec<String> {
        self.files
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
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
            Some((0, status)) => Err(err(operation, status.clone())),
            Some((allowed, _)) => {
                *allowed -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn is_dir(files: &BTreeMap<String, Vec<u8>>, dir: &str) -> bool {
        dir.is_empty()
            || files
                .keys()
                .any(|path| path.starts_with(&format!("{dir}/")))
    }
}

impl Workspace for MemoryWorkspace {
    async fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        self.check_up("ReadFile")?;
        let files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bytes) = files.get(path) {
            return Ok(bytes.clone());
        }
        if Self::is_dir(&files, path) {
            return Err(err(
                "ReadFile",
                Status::invalid_argument(format!("{path:?} is not a regular file")),
            ));
        }
        Err(err(
            "ReadFile",
            Status::not_found(format!("{path:?} does not exist in the workspace")),
        ))
    }

    async fn write_files(&self, changes: Vec<WriteChange>) -> Result<()> {
        self.check_up("WriteFiles")?;
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        for change in &changes {
            if change.path.starts_with('/')
                || change.path.split('/').any(|p| p == ".." || p == ".git")
            {
                return Err(err(
                    "WriteFiles",
                    Status::invalid_argument(format!("invalid path {:?}", change.path)),
                ));
            }
            if change.content.is_none() && !files.contains_key(&change.path) {
                return Err(err(
                    "WriteFiles",
                    Status::not_found(format!("{:?} does not exist", change.path)),
                ));
            }
        }
        let names: Vec<String> = changes.iter().map(|c| c.path.clone()).collect();
        for change in changes {
            match change.content {
                Some(bytes) => files.insert(change.path, bytes),
                None => files.remove(&change.path),
            };
        }
        drop(files);
        self.record(format!("write_files {}", names.join(",")));
        Ok(())
    }

    async fn list_directory(&self, path: &str, recursive: bool) -> Result<Listing> {
        self.check_up("ListDirectory")?;
        let files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        if files.contains_key(path) {
            return Err(err(
                "ListDirectory",
                Status::invalid_argument(format!("{path:?} is not a directory")),
            ));
        }
        if !Self::is_dir(&files, path) {
            return Err(err(
                "ListDirectory",
                Status::not_found(format!("{path:?} does not exist in the workspace")),
            ));
        }
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let mut entries = BTreeMap::new();
        for (file, bytes) in files.iter() {
            let Some(rest) = file.strip_prefix(&prefix) else {
                continue;
            };
            let parts: Vec<&str> = rest.split('/').collect();
            let depth = if recursive { parts.len() } else { 1 };
            for level in 1..=depth.min(parts.len()) {
                let entry_path = format!("{prefix}{}", parts[..level].join("/"));
                let is_dir = level < parts.len();
                let size = if is_dir { 0 } else { bytes.len() as u64 };
                entries.entry(entry_path.clone()).or_insert(Entry {
                    path: entry_path,
                    is_dir,
                    size,
                });
            }
        }
        Ok(Listing {
            entries: entries.into_values().collect(),
            truncated: false,
        })
    }

    async fn search_files(&self, pattern: &str, glob: Option<&str>) -> Result<SearchResult> {
        self.check_up("SearchFiles")?;
        let regex = regex::Regex::new(pattern).map_err(|e| {
            err(
                "SearchFiles",
                Status::invalid_argument(format!("invalid regular expression: {e}")),
            )
        })?;
        let matcher = match glob {
            Some(glob) => Some(glob_matcher(glob).map_err(|e| {
                err(
                    "SearchFiles",
                    Status::invalid_argument(format!("invalid glob: {e}")),
                )
            })?),
            None => None,
        };
        let files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        let mut hits = Vec::new();
        for (path, bytes) in files.iter() {
            if let Some(matcher) = &matcher {
                let name = if glob.unwrap_or_default().contains('/') {
                    path.as_str()
                } else {
                    path.rsplit('/').next().unwrap_or(path)
                };
                if !matcher.is_match(name) {
                    continue;
                }
            }
            let Ok(text) = std::str::from_utf8(bytes) else {
                continue;
            };
            for (index, line) in text.lines().enumerate() {
                if regex.is_match(line) {
                    hits.push(SearchHit {
                        path: path.clone(),
                        line_number: index as u32 + 1,
                        line: line.to_owned(),
                    });
                }
            }
        }
        Ok(SearchResult {
            hits,
            truncated: false,
        })
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
        let mut map = self.files.lock().unwrap_or_else(PoisonError::into_inner);
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
                map.insert(file.clone(), formatted.into_bytes());
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
