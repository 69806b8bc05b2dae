//! [`KubeSandbox`]: sessions as Pods, commands and file operations through the API's exec.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use cap_sandbox::{
    Changes, Checkouts, DirEntry, ExecEvent, ExecSpec, ExitInfo, FileChange, Listing,
    MAX_LIST_ENTRIES, MAX_READ_BYTES, MAX_SEARCH_MATCHES, SearchResult, SessionInfo, Workspace,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{AttachParams, AttachedProcess, DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::checkout::{self, Checkout};
use crate::{
    COMMIT_ANNOTATION, CONTAINER, Error, KubeConfig, MANAGED_BY, REPO_ANNOTATION, Result,
    SESSION_LABEL, Startup, WORKSPACE, network_policy, object_name, pod, startup_state,
};

/// How long the API server has to answer the readiness probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Stdout and stderr pipes between the exec's WebSocket and us (kube's default is 1 KiB).
const PIPE_BYTES: usize = 64 * 1024;
/// Stderr kept from a command the backend runs itself, for its error message.
const STDERR_KEPT: usize = 4096;
/// Exit codes of the backend's own scripts (1 and 2 are left to the tools they run).
const EXIT_NOT_FOUND: i32 = 3;
const EXIT_WRONG_TYPE: i32 = 4;
const EXIT_TOO_LARGE: i32 = 5;

/// `write_files` in the Pod: `sh -c WRITE_SCRIPT sh <workspace> <n> <paths...>`, the first
/// `n` paths written (their contents in the tar on stdin), the others deleted. The staging
/// directory holds `new/` (the contents) and `old/` (the files replaced or deleted); `undo`
/// needs no log: a path whose new content left `new/` was installed, a path in `old/` was
/// moved aside.
pub(crate) const WRITE_SCRIPT: &str = r#"set -u
ws=$1; n=$2; shift 2
cd "$ws" || exit 1
stage=$(mktemp -d "$ws/.cap-write.XXXXXX") || exit 1
mkdir "$stage/new" "$stage/old" || { rm -rf "$stage"; exit 1; }
tar -x -m -f - -C "$stage/new" || { rm -rf "$stage"; exit 1; }
undo() {
  j=0
  for q in "$@"; do
    j=$((j + 1))
    if [ "$j" -le "$n" ] && [ ! -e "$stage/new/$q" ]; then rm -f -- "$q"; fi
    if [ -e "$stage/old/$q" ] || [ -L "$stage/old/$q" ]; then mv -f -- "$stage/old/$q" "$q"; fi
  done
  rm -rf "$stage"
  exit 1
}
i=0
for p in "$@"; do
  i=$((i + 1))
  if [ -d "$p" ] && [ ! -L "$p" ]; then echo "$p is a directory" >&2; undo "$@"; fi
  if [ -e "$p" ] || [ -L "$p" ]; then
    mkdir -p -- "$stage/old/$(dirname -- "$p")" && mv -f -- "$p" "$stage/old/$p" || undo "$@"
  fi
  if [ "$i" -le "$n" ]; then
    mkdir -p -- "$(dirname -- "$p")" && mv -f -- "$stage/new/$p" "$p" || undo "$@"
  fi
done
rm -rf "$stage""#;

fn api(operation: &'static str) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Api { operation, source }
}

/// Sessions as gVisor Pods. Cheap to clone; holds no session state, so any replica of the
/// service can serve any session.
#[derive(Clone)]
pub struct KubeSandbox {
    inner: Arc<Inner>,
}

struct Inner {
    config: KubeConfig,
    pods: Api<Pod>,
    policies: Api<NetworkPolicy>,
    /// The cache of checkouts under the scratch directory, opened on first use.
    checkouts: tokio::sync::OnceCell<Checkouts>,
}

impl std::fmt::Debug for KubeSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSandbox")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// What an exec the backend runs for itself reads on stdin.
enum Stdin {
    /// Nothing.
    Closed,
    /// These bytes.
    Bytes(Vec<u8>),
    /// The checkout, packed as a tar on the fly.
    Tree(PathBuf),
}

/// What such an exec printed and how it ended.
#[derive(Debug)]
struct Collected {
    exit_code: i32,
    stdout: Vec<u8>,
    /// More stdout came than was kept.
    stdout_truncated: bool,
    stderr: Vec<u8>,
}

impl Collected {
    fn failure(&self, operation: &'static str) -> Error {
        let stderr = String::from_utf8_lossy(&self.stderr);
        Error::PodCommand {
            operation,
            exit_code: self.exit_code,
            detail: stderr.trim().to_owned(),
        }
    }
}

impl KubeSandbox {
    /// A backend over `client` (in production `Client::try_default()`; in tests a mock).
    pub fn new(client: Client, config: KubeConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                pods: Api::namespaced(client.clone(), &config.namespace),
                policies: Api::namespaced(client, &config.namespace),
                checkouts: tokio::sync::OnceCell::new(),
                config,
            }),
        }
    }

    /// A backend over the cluster this process finds (in-cluster service account, else
    /// `KUBECONFIG`), once [`probe`](Self::probe) has shown it answers.
    pub async fn connect(config: KubeConfig) -> Result<Self> {
        let client = Client::try_default()
            .await
            .map_err(|source| Error::NoCluster { source })?;
        let backend = Self::new(client, config);
        backend.probe().await?;
        Ok(backend)
    }

    /// The configuration.
    pub fn config(&self) -> &KubeConfig {
        &self.inner.config
    }

    /// Readiness: the API server answers, and lets us list Pods in the namespace, within
    /// [`PROBE_TIMEOUT`].
    pub async fn probe(&self) -> Result<()> {
        match tokio::time::timeout(PROBE_TIMEOUT, self.sessions()).await {
            Ok(result) => result.map(drop),
            Err(_) => Err(Error::NoAnswer {
                waited: PROBE_TIMEOUT,
            }),
        }
    }

    /// Makes a session: checks the repository out on the host, creates the NetworkPolicy
    /// (so the Pod never runs unfenced), then the Pod, waits until it runs and unpacks the
    /// tree into its `/workspace`. On any failure, deletes what it made.
    pub async fn create_session(
        &self,
        repo_url: &str,
        commit_sha: &str,
        requested_image: &str,
    ) -> Result<SessionInfo> {
        cap_sandbox::validate_repo_url(repo_url)?;
        let sha = cap_sandbox::validate_commit_sha(commit_sha)?;
        if !requested_image.is_empty() {
            // Fail before the clone; resolved again against the tree below.
            cap_sandbox::resolve_image(requested_image, &self.inner.config.scratch_dir)
                .map_err(Error::UnknownImage)?;
        }
        let checkout = self.checkout(repo_url, &sha).await?;
        let image = cap_sandbox::resolve_image(requested_image, &checkout.tree())
            .map_err(Error::UnknownImage)?;
        let session = Uuid::new_v4();
        // Made in a task of its own, so that a caller who goes away half-way (its future
        // dropped) leaves nothing behind: whatever the task made is deleted when nobody is
        // left to receive the session.
        let (done, made) = tokio::sync::oneshot::channel();
        let backend = self.clone();
        let repo_url = repo_url.to_owned();
        let commit_sha = checkout.commit_sha.clone();
        tokio::spawn(async move {
            let result = backend.make(session, &image, &repo_url, &checkout).await;
            drop(checkout);
            let made_it = result.is_ok();
            if let Err(error) = &result {
                tracing::warn!(%session, error = %error.chain(), "sandbox pod failed to start; cleaning up");
                backend.delete_all(session).await;
            }
            if done.send(result.map(|()| image)).is_err() && made_it {
                tracing::info!(%session, "the caller left while its session was made; deleting it");
                backend.delete_all(session).await;
            }
        });
        let image = made.await.map_err(|_| Error::Interrupted)??;
        tracing::info!(%session, image, commit = %commit_sha, "sandbox pod running");
        Ok(SessionInfo {
            session_id: session,
            image,
            commit_sha,
        })
    }

    /// The checkout of `sha` of `repo_url` (both validated), from the cache.
    async fn checkout(&self, repo_url: &str, sha: &str) -> Result<Checkout> {
        let scratch = &self.inner.config.scratch_dir;
        let checkouts = self
            .inner
            .checkouts
            .get_or_try_init(|| async { Checkouts::open(scratch) })
            .await?;
        checkout::checkout(checkouts, scratch, repo_url, sha).await
    }

    async fn make(
        &self,
        session: Uuid,
        image: &str,
        repo_url: &str,
        checkout: &Checkout,
    ) -> Result<()> {
        let post = PostParams::default();
        let image = format!("{}{image}", self.inner.config.image_prefix);
        let mut pod = pod(session, &image, &self.inner.config);
        // What the workspace was made from, for `get_changes` on any replica.
        pod.metadata.annotations = Some(BTreeMap::from([
            (REPO_ANNOTATION.to_owned(), repo_url.to_owned()),
            (COMMIT_ANNOTATION.to_owned(), checkout.commit_sha.clone()),
        ]));
        self.inner
            .policies
            .create(&post, &network_policy(session, &self.inner.config))
            .await
            .map_err(api("create network policy"))?;
        self.inner
            .pods
            .create(&post, &pod)
            .await
            .map_err(api("create pod"))?;
        self.wait_running(session).await?;
        let unpacked = self
            .collect(
                session,
                "unpacking the repository",
                &["tar", "-x", "-m", "-f", "-", "-C", WORKSPACE],
                Stdin::Tree(checkout.tree()),
                /*stdout_limit*/ STDERR_KEPT,
            )
            .await?;
        if unpacked.exit_code != 0 {
            return Err(unpacked.failure("unpacking the repository"));
        }
        Ok(())
    }

    /// Polls the Pod until it runs, fails, or the ready timeout passes.
    async fn wait_running(&self, session: Uuid) -> Result<()> {
        let name = object_name(session);
        let deadline = tokio::time::Instant::now() + self.inner.config.ready_timeout;
        loop {
            let pod = self.inner.pods.get(&name).await.map_err(api("read pod"))?;
            match startup_state(&pod) {
                Startup::Running => return Ok(()),
                Startup::Failed(reason) => return Err(Error::NotReady { pod: name, reason }),
                Startup::Pending => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::NotReady {
                    pod: name,
                    reason: format!(
                        "not running after {:?} (still pending)",
                        self.inner.config.ready_timeout
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Starts `argv` in the session's container.
    async fn attach(&self, session: Uuid, argv: &[&str], stdin: bool) -> Result<AttachedProcess> {
        let params = AttachParams::default()
            .container(CONTAINER)
            .stdin(stdin)
            .stdout(true)
            .stderr(true)
            .max_stdin_buf_size(PIPE_BYTES)
            .max_stdout_buf_size(PIPE_BYTES)
            .max_stderr_buf_size(PIPE_BYTES);
        self.inner
            .pods
            .exec(&object_name(session), argv.iter().copied(), &params)
            .await
            .map_err(|source| match source {
                kube::Error::Api(status) if status.code == 404 => {
                    Error::SessionNotFound { id: session }
                }
                source => Error::Api {
                    operation: "exec",
                    source,
                },
            })
    }

    /// Runs `command` (by `/bin/sh -c`) in the session's Pod as [`ExecSpec`] says, streaming
    /// its output (capped) and ending with [`ExecEvent::Exit`]. The timeout, or dropping the
    /// stream, kills every process of the sandbox user in the Pod.
    pub async fn exec(&self, session: &str, spec: ExecSpec) -> Result<KubeExecStream> {
        let session = parse_session(session)?;
        let timeout = self.timeout(spec.timeout)?;
        let argv = exec_argv(&spec)?;
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let mut process = self.attach(session, &argv, /*stdin*/ false).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let backend = self.clone();
        let cap = OutputCap::new(self.inner.config.output_cap_bytes);
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let (stdout, stderr, status) =
                (process.stdout(), process.stderr(), process.take_status());
            let run = async {
                tokio::join!(
                    forward(stdout, &tx, ExecEvent::Stdout, &cap),
                    forward(stderr, &tx, ExecEvent::Stderr, &cap)
                );
                match status {
                    Some(status) => status.await,
                    None => None,
                }
            };
            let outcome = tokio::select! {
                status = tokio::time::timeout(timeout, run) => Some(status),
                () = tx.closed() => None,
            };
            let (exit_code, timed_out) = match outcome {
                Some(Ok(status)) => (status.map_or(-1, |status| exit_code(&status)), false),
                Some(Err(_)) => {
                    drop(process);
                    backend.kill_all(session).await;
                    (-1, true)
                }
                None => {
                    tracing::debug!(%session, "exec caller went away; killing");
                    drop(process);
                    backend.kill_all(session).await;
                    return;
                }
            };
            let _ = tx.send(ExecEvent::Exit(ExitInfo {
                exit_code,
                timed_out,
                duration: started.elapsed(),
                output_truncated: cap.truncated(),
                limits_hit: Vec::new(),
            }));
        });
        Ok(KubeExecStream { rx })
    }

    /// Kills every process of the sandbox user in the Pod but its idle PID 1 (`kill -1`
    /// spares PID 1 and the caller): what a timeout or a vanished caller leaves running.
    async fn kill_all(&self, session: Uuid) {
        match self.attach(session, &["kill", "-KILL", "-1"], false).await {
            Ok(killer) => {
                if let Err(error) = killer.join().await {
                    tracing::warn!(%session, %error, "kill in sandbox pod failed");
                }
            }
            Err(error) => {
                tracing::warn!(%session, error = %error.chain(), "cannot kill in sandbox pod");
            }
        }
    }

    /// Runs `argv` (for `operation`) for the backend itself, feeding `stdin`, keeping at most `stdout_limit`
    /// bytes of stdout; bounded by the default timeout.
    async fn collect(
        &self,
        session: Uuid,
        operation: &'static str,
        argv: &[&str],
        stdin: Stdin,
        stdout_limit: usize,
    ) -> Result<Collected> {
        let mut process = self
            .attach(session, argv, !matches!(stdin, Stdin::Closed))
            .await?;
        let feed = feed(process.stdin(), stdin);
        let (stdout, stderr, status) = (process.stdout(), process.stderr(), process.take_status());
        let run = async {
            tokio::pin!(feed);
            let outputs = async {
                tokio::join!(
                    read_capped(stdout, stdout_limit),
                    read_capped(stderr, STDERR_KEPT)
                )
            };
            tokio::pin!(outputs);
            // The outputs end when the command does. A command that exits before reading all
            // its stdin ends the feed with it: what it did not read is of no use.
            let mut fed = None;
            let ((stdout, stdout_truncated), (stderr, _)) = loop {
                tokio::select! {
                    result = &mut feed, if fed.is_none() => fed = Some(result),
                    outputs = &mut outputs => break outputs,
                }
            };
            let status = match status {
                Some(status) => status.await,
                None => None,
            };
            (fed, stdout, stdout_truncated, stderr, status)
        };
        let timeout = self.inner.config.default_timeout;
        let Ok((fed, stdout, stdout_truncated, stderr, status)) =
            tokio::time::timeout(timeout, run).await
        else {
            drop(process);
            self.kill_all(session).await;
            return Err(Error::PodCommand {
                operation,
                exit_code: -1,
                detail: format!("timed out after {timeout:?}"),
            });
        };
        let exit_code = status.map_or(-1, |status| exit_code(&status));
        // A host-side failure to produce the input matters only if the command was content
        // with what it got; otherwise its own complaint says more.
        if let (0, Some(Err(source))) = (exit_code, fed) {
            return Err(Error::Io {
                action: "stream stdin of an exec into",
                path: PathBuf::from(object_name(session)),
                source,
            });
        }
        Ok(Collected {
            exit_code,
            stdout,
            stdout_truncated,
            stderr,
        })
    }

    /// Reads a file of the workspace (at most [`MAX_READ_BYTES`]).
    pub async fn read_file(&self, session: &str, path: &str) -> Result<Vec<u8>> {
        let session = parse_session(session)?;
        let rel = workspace_path(path, /*allow_root*/ false)?;
        let max = MAX_READ_BYTES.to_string();
        let script = format!(
            "cd {WORKSPACE} || exit 1; [ -e \"$1\" ] || exit {EXIT_NOT_FOUND}; \
             [ -f \"$1\" ] || exit {EXIT_WRONG_TYPE}; \
             [ \"$(wc -c < \"$1\")\" -le \"$2\" ] || exit {EXIT_TOO_LARGE}; exec cat -- \"$1\""
        );
        let argv = ["/bin/sh", "-c", &script, "sh", &rel, &max];
        let limit = usize::try_from(MAX_READ_BYTES).unwrap_or(usize::MAX);
        let read = self
            .collect(session, "reading a file", &argv, Stdin::Closed, limit)
            .await?;
        match read.exit_code {
            0 => Ok(read.stdout),
            EXIT_NOT_FOUND => Err(Error::PathNotFound { path: rel }),
            EXIT_WRONG_TYPE => Err(Error::WrongFileType {
                path: rel,
                expected: "regular file",
            }),
            EXIT_TOO_LARGE => Err(Error::FileTooLarge {
                path: rel,
                max_bytes: MAX_READ_BYTES,
            }),
            _ => Err(read.failure("reading a file")),
        }
    }

    /// Writes and deletes files, all or none. Every path is validated on the host; in the
    /// Pod, every new content is unpacked into a staging directory inside the workspace (same
    /// filesystem, so what follows are renames that need no space), then each old file is
    /// moved aside and each new one moved into place; a failure on the way moves everything
    /// back. Returns the number of changes.
    pub async fn write_files(&self, session: &str, changes: Vec<FileChange>) -> Result<usize> {
        let session = parse_session(session)?;
        let count = changes.len();
        let mut written = Vec::new();
        let mut deleted = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut packed = tar::Builder::new(Vec::new());
        for change in changes {
            let rel = workspace_path(&change.path, /*allow_root*/ false)?;
            if !seen.insert(rel.clone()) {
                return Err(Error::InvalidPath {
                    path: change.path,
                    reason: "is changed twice in one write",
                });
            }
            match change.content {
                Some(content) => {
                    let mut header = tar::Header::new_gnu();
                    header.set_size(content.len() as u64);
                    header.set_mode(0o644);
                    packed
                        .append_data(&mut header, &rel, content.as_slice())
                        .map_err(|source| Error::Io {
                            action: "pack",
                            path: PathBuf::from(&rel),
                            source,
                        })?;
                    written.push(rel);
                }
                None => deleted.push(rel),
            }
        }
        let tar = packed.into_inner().map_err(|source| Error::Io {
            action: "pack",
            path: PathBuf::from("changes"),
            source,
        })?;
        let written_count = written.len().to_string();
        let mut argv = vec![
            "/bin/sh",
            "-c",
            WRITE_SCRIPT,
            "sh",
            WORKSPACE,
            &written_count,
        ];
        argv.extend(written.iter().chain(&deleted).map(String::as_str));
        let done = self
            .collect(
                session,
                "writing files",
                &argv,
                Stdin::Bytes(tar),
                STDERR_KEPT,
            )
            .await?;
        if done.exit_code != 0 {
            return Err(done.failure("writing files"));
        }
        Ok(count)
    }

    /// Lists a directory of the workspace (`""` or `.` is the root), recursively if asked;
    /// symlinks are listed, never followed.
    pub async fn list_directory(
        &self,
        session: &str,
        path: &str,
        recursive: bool,
    ) -> Result<Listing> {
        let session = parse_session(session)?;
        let rel = workspace_path(path, /*allow_root*/ true)?;
        let depth = if recursive { "" } else { "-maxdepth 1" };
        let script = format!(
            "cd {WORKSPACE} || exit 1; [ -e \"./$1\" ] || exit {EXIT_NOT_FOUND}; \
             [ -d \"./$1\" ] || exit {EXIT_WRONG_TYPE}; cd \"./$1\" || exit 1; \
             exec find . -mindepth 1 {depth} -printf '%y %s %P\\0'"
        );
        let argv = ["/bin/sh", "-c", &script, "sh", &rel];
        // An entry is at most a few hundred bytes: enough for the entries kept, and a sign
        // that more exist.
        let limit = MAX_LIST_ENTRIES * 512;
        let listed = self
            .collect(session, "listing a directory", &argv, Stdin::Closed, limit)
            .await?;
        match listed.exit_code {
            0 => Ok(parse_listing(&rel, &listed.stdout, listed.stdout_truncated)),
            EXIT_NOT_FOUND => Err(Error::PathNotFound { path: rel }),
            EXIT_WRONG_TYPE => Err(Error::WrongFileType {
                path: rel,
                expected: "directory",
            }),
            _ => Err(listed.failure("listing a directory")),
        }
    }

    /// Searches the workspace's text files for the regular expression `pattern`, optionally
    /// only files matching `glob`, exactly as the local backend does: on a copy of the
    /// workspace on the host, by the local backend's search (`.gitignore` honoured).
    pub async fn search_files(
        &self,
        session: &str,
        pattern: &str,
        glob: Option<&str>,
    ) -> Result<SearchResult> {
        let session = parse_session(session)?;
        let copy = self.workspace_copy(session).await?;
        let (pattern, glob) = (pattern.to_owned(), glob.map(str::to_owned));
        let (matches, truncated) = blocking(move || {
            let workspace = Workspace::open(&copy.path().join("workspace"))?;
            Ok(cap_sandbox::search_workspace(
                &workspace,
                &pattern,
                glob.as_deref(),
                MAX_SEARCH_MATCHES,
            )?)
        })
        .await?;
        Ok(SearchResult { matches, truncated })
    }

    /// The workspace's created, modified and deleted files against the commit the session
    /// was made from, with a diff, exactly as the local backend computes them: a copy of the
    /// workspace on the host against the cached checkout of that commit.
    pub async fn get_changes(&self, session: &str) -> Result<Changes> {
        let session = parse_session(session)?;
        let name = object_name(session);
        let pod = self
            .inner
            .pods
            .get(&name)
            .await
            .map_err(|source| match source {
                kube::Error::Api(status) if status.code == 404 => {
                    Error::SessionNotFound { id: session }
                }
                source => Error::Api {
                    operation: "read pod",
                    source,
                },
            })?;
        let annotations = pod.metadata.annotations.unwrap_or_default();
        let (Some(repo_url), Some(sha)) = (
            annotations.get(REPO_ANNOTATION),
            annotations.get(COMMIT_ANNOTATION),
        ) else {
            return Err(Error::NotReady {
                pod: name,
                reason: format!(
                    "it lacks the annotations {REPO_ANNOTATION} and {COMMIT_ANNOTATION}"
                ),
            });
        };
        cap_sandbox::validate_repo_url(repo_url)?;
        let sha = cap_sandbox::validate_commit_sha(sha)?;
        let base = self.checkout(repo_url, &sha).await?;
        let copy = self.workspace_copy(session).await?;
        blocking(move || {
            let workspace = Workspace::open(&copy.path().join("workspace"))?;
            Ok(cap_sandbox::workspace_changes(&base.tree(), &workspace)?)
        })
        .await
    }

    /// A copy of the session's `/workspace` on the host, streamed out of the Pod by `tar -c`
    /// and unpacked with every entry checked; at most `max_workspace_bytes`.
    async fn workspace_copy(&self, session: Uuid) -> Result<tempfile::TempDir> {
        let max_bytes = self.inner.config.max_workspace_bytes;
        let operation = "packing the workspace";
        // Without what a `write_files` cut short (its Pod killed) may have left.
        let argv = [
            "tar",
            "-c",
            "-f",
            "-",
            "--exclude=./.cap-write.*",
            "-C",
            WORKSPACE,
            ".",
        ];
        let limit = usize::try_from(max_bytes).unwrap_or(usize::MAX);
        let packed = self
            .collect(session, operation, &argv, Stdin::Closed, limit)
            .await?;
        if packed.exit_code != 0 {
            return Err(packed.failure(operation));
        }
        if packed.stdout_truncated {
            return Err(Error::WorkspaceTooLarge { max_bytes });
        }
        let copy = checkout::private_dir(&self.inner.config.scratch_dir, "cap-kube-workspace-")?;
        let root = copy.path().join("workspace");
        blocking(move || {
            std::fs::create_dir(&root).map_err(|source| Error::Io {
                action: "create",
                path: root.clone(),
                source,
            })?;
            checkout::unpack(packed.stdout.as_slice(), &root, max_bytes)?;
            Ok(copy)
        })
        .await
    }

    /// Deletes the session's Pod and NetworkPolicy (those already gone are not an error).
    pub async fn destroy_session(&self, session: &str) -> Result<()> {
        let session = parse_session(session)?;
        let name = object_name(session);
        let now = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        ignore_not_found(self.inner.pods.delete(&name, &now).await.map(drop))
            .map_err(api("delete pod"))?;
        ignore_not_found(self.inner.policies.delete(&name, &now).await.map(drop))
            .map_err(api("delete network policy"))?;
        tracing::info!(%session, "sandbox pod deleted");
        Ok(())
    }

    /// Best-effort cleanup after a failed creation.
    async fn delete_all(&self, session: Uuid) {
        if let Err(error) = self.destroy_session(&session.to_string()).await {
            tracing::error!(%session, error = %error.chain(), "cannot clean up a failed sandbox pod");
        }
    }

    /// Lists the sessions this backend's objects belong to (for a sweep after a restart).
    pub async fn sessions(&self) -> Result<Vec<String>> {
        let params = ListParams::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
        let pods = self
            .inner
            .pods
            .list(&params)
            .await
            .map_err(api("list pods"))?;
        Ok(pods
            .items
            .into_iter()
            .filter_map(|pod| pod.metadata.labels?.get(SESSION_LABEL).cloned())
            .collect())
    }

    fn timeout(&self, requested: Option<Duration>) -> Result<Duration> {
        let max = self.inner.config.max_timeout;
        match requested {
            None => Ok(self.inner.config.default_timeout),
            Some(timeout) if timeout.is_zero() || timeout > max => Err(Error::InvalidTimeout {
                seconds: timeout.as_secs(),
                max_seconds: max.as_secs(),
            }),
            Some(timeout) => Ok(timeout),
        }
    }
}

/// The events of a command running in a Pod, ending with [`ExecEvent::Exit`]. Dropping the
/// stream kills the command.
#[derive(Debug)]
pub struct KubeExecStream {
    rx: mpsc::UnboundedReceiver<ExecEvent>,
}

impl futures::Stream for KubeExecStream {
    type Item = ExecEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ExecEvent>> {
        self.rx.poll_recv(cx)
    }
}

/// The argv of a user command: into its working directory, with its environment, then
/// `/bin/sh -c command`. Values travel as arguments, never spliced into the script.
pub(crate) fn exec_argv(spec: &ExecSpec) -> Result<Vec<String>> {
    if spec.command.trim().is_empty() {
        return Err(Error::InvalidCommand("is empty"));
    }
    if spec.command.contains('\0') {
        return Err(Error::InvalidCommand("contains a NUL byte"));
    }
    let cwd = workspace_path(&spec.cwd, /*allow_root*/ true)?;
    let mut argv = vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        "cd \"$0\" && exec env \"$@\"".to_owned(),
        format!("{WORKSPACE}/{cwd}"),
    ];
    for (name, value) in &spec.env {
        let mut chars = name.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
            && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !valid || value.contains('\0') {
            return Err(Error::InvalidEnv { name: name.clone() });
        }
        argv.push(format!("{name}={value}"));
    }
    argv.extend(["/bin/sh".to_owned(), "-c".to_owned(), spec.command.clone()]);
    Ok(argv)
}

/// A workspace path as callers give it, made plain: `/`-separated, relative, no `..`, no
/// empty or `.` components (`""` and `.` are the root where allowed, returned as `""`).
pub(crate) fn workspace_path(path: &str, allow_root: bool) -> Result<String> {
    let invalid = |reason| Error::InvalidPath {
        path: path.to_owned(),
        reason,
    };
    if path.starts_with('/') {
        return Err(invalid("must be relative to the workspace"));
    }
    if path.contains('\0') {
        return Err(invalid("contains a NUL byte"));
    }
    if path.len() > 4096 {
        return Err(invalid("is longer than 4096 bytes"));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(invalid("`..` is not allowed")),
            part => parts.push(part),
        }
    }
    if parts.is_empty() && !allow_root {
        return Err(invalid("names no file"));
    }
    Ok(parts.join("/"))
}

/// Parses `find -printf '%y %s %P\0'` output of the directory `rel` into a sorted listing.
pub(crate) fn parse_listing(rel: &str, output: &[u8], output_truncated: bool) -> Listing {
    let mut entries: Vec<DirEntry> = output
        .split(|&byte| byte == 0)
        .filter_map(|record| {
            let record = std::str::from_utf8(record).ok()?;
            let (kind, rest) = record.split_once(' ')?;
            let (size, name) = rest.split_once(' ')?;
            let is_dir = kind == "d";
            Some(DirEntry {
                path: if rel.is_empty() {
                    name.to_owned()
                } else {
                    format!("{rel}/{name}")
                },
                is_dir,
                size: if is_dir { 0 } else { size.parse().ok()? },
            })
        })
        .collect();
    // A cut-off output ends in a partial record: drop it.
    if output_truncated {
        entries.pop();
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let truncated = output_truncated || entries.len() > MAX_LIST_ENTRIES;
    entries.truncate(MAX_LIST_ENTRIES);
    Listing { entries, truncated }
}

/// How much output a command may still send, across its stdout and stderr.
struct OutputCap {
    left: AtomicUsize,
    truncated: AtomicBool,
}

impl OutputCap {
    fn new(bytes: usize) -> Self {
        Self {
            left: AtomicUsize::new(bytes),
            truncated: AtomicBool::new(false),
        }
    }

    /// How many of `n` bytes may go out.
    fn take(&self, n: usize) -> usize {
        let mut granted = 0;
        let _ = self
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                granted = left.min(n);
                Some(left - granted)
            });
        if granted < n {
            self.truncated.store(true, Ordering::Relaxed);
        }
        granted
    }

    fn truncated(&self) -> bool {
        self.truncated.load(Ordering::Relaxed)
    }
}

/// Copies one output of an exec into events, within the cap; what is over the cap is read
/// and dropped, so the command is never stalled by a full pipe.
async fn forward(
    reader: Option<tokio::io::ReadHalf<tokio::io::SimplexStream>>,
    tx: &mpsc::UnboundedSender<ExecEvent>,
    wrap: fn(bytes::Bytes) -> ExecEvent,
    cap: &OutputCap,
) {
    let Some(mut reader) = reader else { return };
    let mut buf = vec![0u8; 32 * 1024];
    while let Ok(n) = reader.read(&mut buf).await {
        if n == 0 {
            return;
        }
        let granted = cap.take(n);
        if granted > 0
            && tx
                .send(wrap(bytes::Bytes::copy_from_slice(&buf[..granted])))
                .is_err()
        {
            return;
        }
    }
}

/// Writes `stdin` into an exec's stdin and closes it. The tree is packed on a blocking
/// thread into a bounded channel: dropping this future (the command ended, or timed out)
/// drops the channel, which ends the packing thread with a broken pipe.
async fn feed(
    writer: Option<tokio::io::WriteHalf<tokio::io::SimplexStream>>,
    stdin: Stdin,
) -> std::io::Result<()> {
    let Some(mut writer) = writer else {
        return Ok(());
    };
    match stdin {
        Stdin::Closed => {}
        Stdin::Bytes(bytes) => writer.write_all(&bytes).await?,
        Stdin::Tree(tree) => {
            let (tx, mut chunks) = mpsc::channel(4);
            let packing = tokio::task::spawn_blocking(move || {
                let mut out = std::io::BufWriter::with_capacity(PIPE_BYTES, ChannelWriter(tx));
                checkout::pack(&tree, &mut out)
            });
            while let Some(chunk) = chunks.recv().await {
                writer.write_all(&chunk).await?;
            }
            packing.await.map_err(std::io::Error::other)??;
        }
    }
    writer.shutdown().await
}

/// A blocking writer into a channel; a closed channel is a broken pipe.
struct ChannelWriter(mpsc::Sender<Vec<u8>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(buf.to_vec())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads all of `reader`, keeping the first `limit` bytes; says whether more came.
async fn read_capped(
    reader: Option<tokio::io::ReadHalf<tokio::io::SimplexStream>>,
    limit: usize,
) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut truncated = false;
    let Some(mut reader) = reader else {
        return (kept, truncated);
    };
    let mut buf = vec![0u8; 32 * 1024];
    while let Ok(n) = reader.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = limit.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
        truncated |= n > room;
    }
    (kept, truncated)
}

/// Runs filesystem work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| Error::Interrupted)?
}

fn parse_session(session: &str) -> Result<Uuid> {
    Uuid::try_parse(session).map_err(|_| Error::InvalidSessionId(session.to_owned()))
}

fn ignore_not_found(
    result: std::result::Result<(), kube::Error>,
) -> std::result::Result<(), kube::Error> {
    match result {
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        other => other,
    }
}

/// The exit code in an exec's final status (`NonZeroExitCode` carries it as a cause).
pub(crate) fn exit_code(status: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Status) -> i32 {
    if status.status.as_deref() == Some("Success") {
        return 0;
    }
    status
        .details
        .as_ref()
        .and_then(|details| details.causes.as_ref())
        .and_then(|causes| {
            causes
                .iter()
                .find(|cause| cause.reason.as_deref() == Some("ExitCode"))
                .and_then(|cause| cause.message.as_deref()?.parse().ok())
        })
        .unwrap_or(-1)
}

#[cfg(test)]
#[path = "sandbox_tests.rs"]
mod tests;
