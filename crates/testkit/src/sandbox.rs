//! An in-memory sandbox: [`SandboxApi`] over maps of files, for tests that need a workspace
//! but not bubblewrap.
//!
//! Repositories are registered by URL and commit ([`MemorySandbox::add_repository`]); a
//! session is a copy of one. Files, listings, search and changes behave like the sandbox
//! service's (same status codes for a missing session or file, a path leaving the workspace,
//! a bad pattern). Nothing is ever executed: `Exec` is answered by a handler the test sets
//! ([`MemorySandbox::on_exec`]), which may also change the session's files, as a command
//! would. Failures are injected per operation ([`MemorySandbox::fail`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use cap_proto::common::v1::{FileChange, file_change};
use cap_proto::sandbox::v1 as pb;
use cap_sandbox_client::{ExecStream, Result, SandboxApi, async_trait};
use futures::StreamExt as _;
use tonic::Status;

/// The files of a workspace, by path relative to its root.
pub type Files = BTreeMap<String, Vec<u8>>;

/// What a command run in the memory sandbox printed and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecReply {
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// Its exit code (-1: killed).
    pub exit_code: i32,
    /// It was killed at its timeout.
    pub timed_out: bool,
}

impl ExecReply {
    /// A command that printed `stdout` and exited with `exit_code`.
    pub fn exit(exit_code: i32, stdout: impl Into<String>) -> Self {
        Self {
            stdout: stdout.into(),
            exit_code,
            ..Self::default()
        }
    }
}

type ExecHandler = dyn Fn(&pb::ExecRequest, &mut Files) -> ExecReply + Send + Sync;

/// The in-memory sandbox. Cheap to share (`Arc`); see the module docs.
#[derive(Default)]
pub struct MemorySandbox {
    state: Mutex<State>,
    exec: Mutex<Option<Arc<ExecHandler>>>,
}

#[derive(Debug, Default)]
struct State {
    repositories: HashMap<(String, String), Files>,
    sessions: BTreeMap<String, Session>,
    created: u64,
    failures: HashMap<&'static str, VecDeque<Status>>,
}

#[derive(Debug, Clone)]
struct Session {
    base: Files,
    files: Files,
}

impl std::fmt::Debug for MemorySandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemorySandbox")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl MemorySandbox {
    /// An empty sandbox: no repositories, no sessions; every command exits 0 silently.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Registers the repository at `url` whose commit `sha` holds `files`.
    pub fn add_repository<'a>(
        &self,
        url: &str,
        sha: &str,
        files: impl IntoIterator<Item = &'a (&'a str, &'a str)>,
    ) {
        let files = files
            .into_iter()
            .map(|(path, content)| ((*path).to_owned(), content.as_bytes().to_vec()))
            .collect();
        self.lock()
            .repositories
            .insert((url.to_owned(), sha.to_owned()), files);
    }

    /// Answers every `Exec` with `handler`, which sees the request and the session's files.
    pub fn on_exec(
        &self,
        handler: impl Fn(&pb::ExecRequest, &mut Files) -> ExecReply + Send + Sync + 'static,
    ) {
        *self.exec.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(handler));
    }

    /// The next call of `operation` (an RPC name, e.g. `"GetChanges"`) fails with `status`;
    /// called again, the failures queue up.
    pub fn fail(&self, operation: &'static str, status: Status) {
        self.lock()
            .failures
            .entry(operation)
            .or_default()
            .push_back(status);
    }

    /// The ids of the sessions not destroyed.
    pub fn sessions(&self) -> Vec<String> {
        self.lock().sessions.keys().cloned().collect()
    }

    /// The files of `session_id`, when it exists.
    pub fn files(&self, session_id: &str) -> Option<Files> {
        self.lock()
            .sessions
            .get(session_id)
            .map(|session| session.files.clone())
    }

    /// Makes the session `session_id` on the registered repository `url` at `sha`, as a
    /// crashed run would have left it; whether the repository is registered.
    pub fn restore_session(&self, session_id: &str, url: &str, sha: &str) -> bool {
        let mut state = self.lock();
        let Some(files) = state
            .repositories
            .get(&(url.to_owned(), sha.to_owned()))
            .cloned()
        else {
            return false;
        };
        state.sessions.insert(
            session_id.to_owned(),
            Session {
                base: files.clone(),
                files,
            },
        );
        true
    }

    /// Writes `content` at `path` in `session_id`, as a command would (not through the API).
    pub fn put_file(&self, session_id: &str, path: &str, content: impl AsRef<[u8]>) {
        if let Some(session) = self.lock().sessions.get_mut(session_id) {
            session
                .files
                .insert(path.to_owned(), content.as_ref().to_vec());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fails the call when a failure is queued for `operation`.
    fn enter(&self, operation: &'static str) -> Result<std::sync::MutexGuard<'_, State>> {
        let mut state = self.lock();
        if let Some(status) = state
            .failures
            .get_mut(operation)
            .and_then(VecDeque::pop_front)
        {
            return Err(status);
        }
        Ok(state)
    }
}

impl State {
    fn session(&mut self, session_id: &str) -> Result<&mut Session> {
        self.sessions
            .get_mut(session_id)
            .ok_or_else(|| Status::not_found(format!("session {session_id} not found")))
    }
}

/// A path the sandbox accepts: relative, inside the workspace, not into `.git`.
fn check_path(path: &str) -> Result<()> {
    let reason = if path.starts_with('/') {
        Some("absolute paths are not allowed")
    } else if path.split('/').any(|part| part == "..") {
        Some("`..` is not allowed")
    } else if path.split('/').any(|part| part == ".git") {
        Some("`.git` is not reachable")
    } else if path.contains('\0') {
        Some("NUL is not allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Status::invalid_argument(format!(
            "invalid path {path:?}: {reason}"
        ))),
        None => Ok(()),
    }
}

fn not_found(path: &str) -> Status {
    Status::not_found(format!("{path:?} does not exist in the workspace"))
}

fn is_dir(files: &Files, dir: &str) -> bool {
    dir.is_empty()
        || files
            .keys()
            .any(|path| path.starts_with(&format!("{dir}/")))
}

fn wire_change(path: &str, content: Option<&Vec<u8>>) -> FileChange {
    FileChange {
        path: path.to_owned(),
        change: Some(match content {
            Some(bytes) => file_change::Change::Content(bytes.clone()),
            None => file_change::Change::Deleted(true),
        }),
    }
}

#[async_trait]
impl SandboxApi for MemorySandbox {
    async fn create_session(
        &self,
        request: pb::CreateSessionRequest,
    ) -> Result<pb::CreateSessionResponse> {
        let mut state = self.enter("CreateSession")?;
        let key = (request.repo_url.clone(), request.commit_sha.clone());
        let Some(files) = state.repositories.get(&key).cloned() else {
            return Err(Status::failed_precondition(format!(
                "commit {} not found in {}",
                request.commit_sha, request.repo_url
            )));
        };
        state.created += 1;
        let session_id = format!("memory-session-{}", state.created);
        state.sessions.insert(
            session_id.clone(),
            Session {
                base: files.clone(),
                files,
            },
        );
        Ok(pb::CreateSessionResponse {
            session_id,
            image: "memory".to_owned(),
        })
    }

    async fn exec(&self, request: pb::ExecRequest) -> Result<ExecStream> {
        let handler = self
            .exec
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut state = self.enter("Exec")?;
        if request.timeout_seconds == 0 {
            return Err(Status::invalid_argument("invalid timeout 0 s"));
        }
        let session = state.session(&request.session_id)?;
        let reply = match handler {
            Some(handler) => handler(&request, &mut session.files),
            None => ExecReply::default(),
        };
        let mut outputs = Vec::new();
        if !reply.stdout.is_empty() {
            outputs.push(pb::exec_output::Output::Stdout(reply.stdout.into_bytes()));
        }
        if !reply.stderr.is_empty() {
            outputs.push(pb::exec_output::Output::Stderr(reply.stderr.into_bytes()));
        }
        outputs.push(pb::exec_output::Output::Exit(pb::ExitStatus {
            exit_code: reply.exit_code,
            timed_out: reply.timed_out,
            duration_ms: 1,
            output_truncated: false,
        }));
        let messages = outputs.into_iter().map(|output| {
            Ok(pb::ExecOutput {
                output: Some(output),
            })
        });
        Ok(futures::stream::iter(messages).boxed())
    }

    async fn read_file(&self, request: pb::ReadFileRequest) -> Result<pb::ReadFileResponse> {
        let mut state = self.enter("ReadFile")?;
        check_path(&request.path)?;
        let session = state.session(&request.session_id)?;
        match session.files.get(&request.path) {
            Some(content) => Ok(pb::ReadFileResponse {
                content: content.clone(),
            }),
            None if is_dir(&session.files, &request.path) => Err(Status::invalid_argument(
                format!("{:?} is not a regular file", request.path),
            )),
            None => Err(not_found(&request.path)),
        }
    }

    async fn write_files(&self, request: pb::WriteFilesRequest) -> Result<pb::WriteFilesResponse> {
        let mut state = self.enter("WriteFiles")?;
        let session = state.session(&request.session_id)?;
        // All or none: check every change before applying any.
        for change in &request.changes {
            check_path(&change.path)?;
            if matches!(
                change.change,
                None | Some(file_change::Change::Deleted(false))
            ) {
                return Err(Status::invalid_argument(format!(
                    "change of {:?} has neither content nor deleted = true",
                    change.path
                )));
            }
            let deletes = matches!(change.change, Some(file_change::Change::Deleted(true)));
            if deletes && !session.files.contains_key(&change.path) {
                return Err(not_found(&change.path));
            }
        }
        for change in &request.changes {
            match &change.change {
                Some(file_change::Change::Content(bytes)) => {
                    session.files.insert(change.path.clone(), bytes.clone());
                }
                _ => {
                    session.files.remove(&change.path);
                }
            }
        }
        Ok(pb::WriteFilesResponse {
            files_written: u32::try_from(request.changes.len()).unwrap_or(u32::MAX),
        })
    }

    async fn list_directory(
        &self,
        request: pb::ListDirectoryRequest,
    ) -> Result<pb::ListDirectoryResponse> {
        let mut state = self.enter("ListDirectory")?;
        let dir = request.path.trim_end_matches('/');
        if !dir.is_empty() {
            check_path(dir)?;
        }
        let session = state.session(&request.session_id)?;
        if session.files.contains_key(dir) {
            return Err(Status::invalid_argument(format!(
                "{dir:?} is not a directory"
            )));
        }
        if !is_dir(&session.files, dir) {
            return Err(not_found(dir));
        }
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut entries = BTreeMap::new();
        for (path, content) in &session.files {
            let Some(rest) = path.strip_prefix(&prefix) else {
                continue;
            };
            let parts: Vec<&str> = rest.split('/').collect();
            // Every directory on the way, then the file (only the first level unless recursive).
            for depth in 1..parts.len() {
                if depth > 1 && !request.recursive {
                    break;
                }
                let dir_path = format!("{prefix}{}", parts[..depth].join("/"));
                entries
                    .entry(dir_path.clone())
                    .or_insert(pb::DirectoryEntry {
                        path: dir_path,
                        is_dir: true,
                        size: 0,
                    });
            }
            if parts.len() == 1 || request.recursive {
                entries.insert(
                    path.clone(),
                    pb::DirectoryEntry {
                        path: path.clone(),
                        is_dir: false,
                        size: content.len() as u64,
                    },
                );
            }
        }
        Ok(pb::ListDirectoryResponse {
            entries: entries.into_values().collect(),
            truncated: false,
        })
    }

    async fn search_files(
        &self,
        request: pb::SearchFilesRequest,
    ) -> Result<pb::SearchFilesResponse> {
        let mut state = self.enter("SearchFiles")?;
        let pattern = regex::Regex::new(&request.pattern).map_err(|error| {
            Status::invalid_argument(format!("invalid regular expression: {error}"))
        })?;
        let glob = match request.glob.as_str() {
            "" => None,
            glob => Some(
                globset::GlobBuilder::new(glob.trim_start_matches('/'))
                    .literal_separator(true)
                    .build()
                    .map_err(|error| Status::invalid_argument(format!("invalid glob: {error}")))?
                    .compile_matcher(),
            ),
        };
        let session = state.session(&request.session_id)?;
        let mut matches = Vec::new();
        let by_path = request.glob.contains('/');
        for (path, content) in &session.files {
            let name = if by_path {
                path.as_str()
            } else {
                path.rsplit('/').next().unwrap_or(path)
            };
            if glob.as_ref().is_some_and(|glob| !glob.is_match(name)) {
                continue;
            }
            // Binary files are not searched.
            let Ok(text) = std::str::from_utf8(content) else {
                continue;
            };
            for (index, line) in text.lines().enumerate() {
                if pattern.is_match(line) {
                    matches.push(pb::SearchMatch {
                        path: path.clone(),
                        line_number: u32::try_from(index + 1).unwrap_or(u32::MAX),
                        line: line.to_owned(),
                    });
                }
            }
        }
        Ok(pb::SearchFilesResponse {
            matches,
            truncated: false,
        })
    }

    async fn get_changes(&self, request: pb::GetChangesRequest) -> Result<pb::GetChangesResponse> {
        let mut state = self.enter("GetChanges")?;
        let session = state.session(&request.session_id)?;
        let mut changes = Vec::new();
        let mut diff = String::new();
        let paths: std::collections::BTreeSet<&String> =
            session.base.keys().chain(session.files.keys()).collect();
        for path in paths {
            let (before, after) = (session.base.get(path), session.files.get(path));
            if before == after {
                continue;
            }
            changes.push(wire_change(path, after));
            let text = |bytes: Option<&Vec<u8>>| {
                bytes.map_or_else(String::new, |b| String::from_utf8_lossy(b).into_owned())
            };
            let (old, new) = (text(before), text(after));
            diff.push_str(
                &similar::TextDiff::from_lines(&old, &new)
                    .unified_diff()
                    .header(&format!("a/{path}"), &format!("b/{path}"))
                    .to_string(),
            );
        }
        Ok(pb::GetChangesResponse { changes, diff })
    }

    async fn destroy_session(
        &self,
        request: pb::DestroySessionRequest,
    ) -> Result<pb::DestroySessionResponse> {
        let mut state = self.enter("DestroySession")?;
        match state.sessions.remove(&request.session_id) {
            Some(_) => Ok(pb::DestroySessionResponse {}),
            None => Err(Status::not_found(format!(
                "session {} not found",
                request.session_id
            ))),
        }
    }
}

#[cfg(test)]
#[path = "sandbox_tests.rs"]
mod tests;
