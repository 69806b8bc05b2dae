//! The sandbox service's gRPC server: `cap.sandbox.v1.Sandbox` over either backend.
//!
//! A thin door (over mutual TLS, next to the standard health service) into one of two
//! backends ([`Backend`]): the local one ([`cap_sandbox`], bubblewrap on this host) or the
//! Kubernetes one ([`cap_sandbox_kube`], a gVisor Pod per session). The only place a backend
//! error becomes a wire status is [`status`]. The `cap-sandbox` service binary parses its
//! flags and serves [`router`]; [`spawn_local`] serves the same in-process for other crates'
//! tests and for the sandbox bench.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use cap_mtls::ServiceTls;
use cap_proto::common::v1 as common;
use cap_proto::sandbox::v1 as pb;
use cap_proto::sandbox::v1::sandbox_server::{Sandbox as SandboxRpc, SandboxServer};
use cap_sandbox::{
    Changes, DiskLimit, ExecEvent, ExecSpec, FileChange, Listing, Sandbox, SandboxConfig,
    SearchResult, SessionInfo,
};
use cap_sandbox_kube::KubeSandbox;
use futures::{Stream, StreamExt};
use tonic::transport::server::Router;
use tonic::{Request, Response, Status};

pub use cap_sandbox_client::MAX_MESSAGE_BYTES;

/// The TLS identity and health name of the sandbox service.
pub const SERVICE_NAME: &str = "sandbox";

/// Why the server could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The service's TLS identity cannot be made or loaded.
    #[error("the sandbox service's TLS identity cannot be loaded")]
    Tls(#[source] cap_mtls::Error),
    /// The gRPC server or its listener cannot be set up.
    #[error("the sandbox service's gRPC server cannot be set up")]
    Runtime(#[source] cap_runtime::Error),
    /// The local backend cannot start.
    #[error("the local sandbox cannot start")]
    Sandbox(#[source] cap_sandbox::Error),
    /// The listener's address cannot be read.
    #[error("the listener's address cannot be read")]
    Io(#[source] std::io::Error),
}

/// What the set-up functions return.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Starts the sandbox service inside this process on a free loopback port, with its sessions
/// under `sessions` and its identity from `pki`: the real service, for other crates' tests.
/// Returns the `https://` URL and the server task (abort it to take the service away).
pub async fn spawn_local(
    sessions: PathBuf,
    pki: &cap_mtls::Pki,
) -> Result<(String, tokio::task::JoinHandle<()>)> {
    let tls = pki.service(SERVICE_NAME).map_err(Error::Tls)?;
    // The disk limit polled: callers remove their temporary directory while the server task
    // may still hold the sandbox, and loop-mounted workspaces would outlive it (attached loop
    // devices, on every test run). The loop mode has its own tests in `cap-sandbox`.
    let sandbox = Sandbox::new(SandboxConfig {
        disk_limit: DiskLimit::Poll,
        ..SandboxConfig::new(sessions)
    })
    .await
    .map_err(Error::Sandbox)?;
    let router = router(sandbox, &tls).await?;
    let listener = cap_runtime::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), None)
        .await
        .map_err(Error::Runtime)?;
    let url = cap_runtime::https_url(listener.local_addr().map_err(Error::Io)?);
    let server = tokio::spawn(async move {
        if let Err(error) = cap_runtime::serve(router, listener).await {
            tracing::error!(error = %error, "in-process sandbox service stopped");
        }
    });
    Ok((url, server))
}

/// The gRPC router: the sandbox service and the health service, over mutual TLS with `tls`.
/// Tests serve it in-process on a port-0 listener.
pub async fn router(sandbox: impl Into<Backend>, tls: &ServiceTls) -> Result<Router> {
    let health = cap_runtime::health_service::<SandboxServer<SandboxService>>().await;
    let mut server = cap_runtime::grpc_server(tls).map_err(Error::Runtime)?;
    Ok(server
        .add_service(health)
        .add_service(DecodeErrorsAreInvalidArguments(
            SandboxService::new(sandbox).into_server(),
        )))
}

/// Wraps a tonic server so that a request that cannot be decoded (a `string` field that is
/// not UTF-8, a truncated message) is answered `INVALID_ARGUMENT` instead of tonic's
/// `INTERNAL`: the fault is the caller's, and retrying it unchanged fails again.
#[derive(Debug, Clone)]
pub struct DecodeErrorsAreInvalidArguments<S>(pub S);

/// The prefix of tonic's message for a request it cannot decode.
const DECODE_ERROR_PREFIX: &str = "failed to decode Protobuf message";

impl<S: tonic::server::NamedService> tonic::server::NamedService
    for DecodeErrorsAreInvalidArguments<S>
{
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> tonic::codegen::Service<tonic::codegen::http::Request<B>>
    for DecodeErrorsAreInvalidArguments<S>
where
    S: tonic::codegen::Service<
            tonic::codegen::http::Request<B>,
            Response = tonic::codegen::http::Response<R>,
        >,
    S::Future: Send + 'static,
    R: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: tonic::codegen::http::Request<B>) -> Self::Future {
        let response = self.0.call(request);
        Box::pin(async move {
            let response = response.await?;
            // A request that fails to decode is answered before any body: the status is in
            // the headers (a "trailers-only" response).
            match Status::from_header_map(response.headers()) {
                Some(status)
                    if status.code() == tonic::Code::Internal
                        && status.message().starts_with(DECODE_ERROR_PREFIX) =>
                {
                    tracing::debug!(message = status.message(), "undecodable request");
                    Ok(Status::invalid_argument(format!(
                        "the request is not a valid message: {}",
                        status.message()
                    ))
                    .into_http())
                }
                _ => Ok(response),
            }
        })
    }
}

/// Where sessions run.
#[derive(Debug, Clone)]
pub enum Backend {
    /// bubblewrap on this host.
    Local(Sandbox),
    /// A gVisor Pod per session.
    Kubernetes(KubeSandbox),
}

impl From<Sandbox> for Backend {
    fn from(sandbox: Sandbox) -> Self {
        Self::Local(sandbox)
    }
}

impl From<KubeSandbox> for Backend {
    fn from(sandbox: KubeSandbox) -> Self {
        Self::Kubernetes(sandbox)
    }
}

type EventStream = Pin<Box<dyn Stream<Item = ExecEvent> + Send>>;

/// One backend call, each backend's error mapped by [`status`].
macro_rules! dispatch {
    ($backend:expr, $sandbox:ident => $call:expr) => {
        match $backend {
            Backend::Local($sandbox) => $call.await.map_err(status),
            Backend::Kubernetes($sandbox) => $call.await.map_err(status),
        }
    };
}

impl Backend {
    async fn create_session(
        &self,
        repo_url: &str,
        commit_sha: &str,
        image: &str,
    ) -> Result<SessionInfo, Status> {
        dispatch!(self, sandbox => sandbox.create_session(repo_url, commit_sha, image))
    }

    async fn exec(&self, session_id: &str, spec: ExecSpec) -> Result<EventStream, Status> {
        match self {
            Backend::Local(sandbox) => Ok(Box::pin(
                sandbox.exec(session_id, spec).await.map_err(status)?,
            )),
            Backend::Kubernetes(sandbox) => Ok(Box::pin(
                sandbox.exec(session_id, spec).await.map_err(status)?,
            )),
        }
    }

    async fn read_file(&self, session_id: &str, path: &str) -> Result<Vec<u8>, Status> {
        dispatch!(self, sandbox => sandbox.read_file(session_id, path))
    }

    async fn write_files(
        &self,
        session_id: &str,
        changes: Vec<FileChange>,
    ) -> Result<usize, Status> {
        dispatch!(self, sandbox => sandbox.write_files(session_id, changes))
    }

    async fn list_directory(
        &self,
        session_id: &str,
        path: &str,
        recursive: bool,
    ) -> Result<Listing, Status> {
        dispatch!(self, sandbox => sandbox.list_directory(session_id, path, recursive))
    }

    async fn search_files(
        &self,
        session_id: &str,
        pattern: &str,
        glob: Option<&str>,
    ) -> Result<SearchResult, Status> {
        dispatch!(self, sandbox => sandbox.search_files(session_id, pattern, glob))
    }

    async fn get_changes(&self, session_id: &str) -> Result<Changes, Status> {
        dispatch!(self, sandbox => sandbox.get_changes(session_id))
    }

    async fn destroy_session(&self, session_id: &str) -> Result<(), Status> {
        dispatch!(self, sandbox => sandbox.destroy_session(session_id))
    }
}

/// The `cap.sandbox.v1.Sandbox` implementation.
#[derive(Debug, Clone)]
pub struct SandboxService {
    backend: Backend,
}

impl SandboxService {
    /// A service over `backend` (a [`Sandbox`] or a [`KubeSandbox`]).
    pub fn new(backend: impl Into<Backend>) -> Self {
        Self {
            backend: backend.into(),
        }
    }

    /// The tonic server for it, with message limits that fit whole files.
    pub fn into_server(self) -> SandboxServer<Self> {
        SandboxServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

/// The one mapping from backend errors to gRPC statuses. A local backend error is a
/// [`cap_sandbox_kube::Error::Local`] here, whose kind follows its own, so one mapping serves
/// both backends. Errors about the request carry the whole explanation (it names what the
/// caller got wrong); internal ones a short message, with the details logged.
pub fn status(error: impl Into<cap_sandbox_kube::Error>) -> Status {
    use cap_sandbox_kube::ErrorKind;
    let error = error.into();
    match error.kind() {
        ErrorKind::InvalidArgument => Status::invalid_argument(error.chain()),
        ErrorKind::NotFound => Status::not_found(error.chain()),
        ErrorKind::FailedPrecondition => {
            tracing::warn!(error = %error.chain(), "sandbox request cannot be served");
            Status::failed_precondition(error.chain())
        }
        ErrorKind::Unavailable => {
            tracing::error!(error = %error.chain(), "kubernetes API failure");
            Status::unavailable(
                "the kubernetes API failed (details are in the sandbox service log)",
            )
        }
        ErrorKind::Internal => {
            tracing::error!(error = %error.chain(), "sandbox failure");
            Status::internal("internal sandbox error (details are in the sandbox service log)")
        }
    }
}

type ExecOutputStream = Pin<Box<dyn Stream<Item = Result<pb::ExecOutput, Status>> + Send>>;

fn exec_output(event: ExecEvent) -> pb::ExecOutput {
    use pb::exec_output::Output;
    let output = match event {
        ExecEvent::Stdout(bytes) => Output::Stdout(bytes.to_vec()),
        ExecEvent::Stderr(bytes) => Output::Stderr(bytes.to_vec()),
        ExecEvent::Exit(exit) => Output::Exit(pb::ExitStatus {
            exit_code: exit.exit_code,
            timed_out: exit.timed_out,
            duration_ms: u64::try_from(exit.duration.as_millis()).unwrap_or(u64::MAX),
            output_truncated: exit.output_truncated,
        }),
    };
    pb::ExecOutput {
        output: Some(output),
    }
}

/// A wire change into a sandbox change; a change that says neither what to write nor to
/// delete is refused.
fn file_change(change: common::FileChange) -> Result<FileChange, Status> {
    use common::file_change::Change;
    let content = match change.change {
        Some(Change::Content(bytes)) => Some(bytes),
        Some(Change::Deleted(true)) => None,
        Some(Change::Deleted(false)) | None => {
            return Err(Status::invalid_argument(format!(
                "change of {:?} has neither content nor deleted = true",
                change.path
            )));
        }
    };
    Ok(FileChange {
        path: change.path,
        content,
    })
}

fn wire_change(change: FileChange) -> common::FileChange {
    use common::file_change::Change;
    let change_kind = match change.content {
        Some(bytes) => Change::Content(bytes),
        None => Change::Deleted(true),
    };
    common::FileChange {
        path: change.path,
        change: Some(change_kind),
    }
}

#[tonic::async_trait]
impl SandboxRpc for SandboxService {
    async fn create_session(
        &self,
        request: Request<pb::CreateSessionRequest>,
    ) -> Result<Response<pb::CreateSessionResponse>, Status> {
        let request = request.into_inner();
        let info = self
            .backend
            .create_session(&request.repo_url, &request.commit_sha, &request.image)
            .await?;
        Ok(Response::new(pb::CreateSessionResponse {
            session_id: info.session_id.to_string(),
            image: info.image,
        }))
    }

    type ExecStream = ExecOutputStream;

    async fn exec(
        &self,
        request: Request<pb::ExecRequest>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        let request = request.into_inner();
        let spec = ExecSpec {
            command: request.command,
            cwd: request.cwd,
            // Zero is refused (the contract): a caller must say how long it is willing to wait.
            timeout: Some(Duration::from_secs(u64::from(request.timeout_seconds))),
            env: request.env.into_iter().collect(),
        };
        let events = self.backend.exec(&request.session_id, spec).await?;
        // Dropping this stream (the caller went away) kills the command.
        let stream: ExecOutputStream = Box::pin(events.map(|event| Ok(exec_output(event))));
        Ok(Response::new(stream))
    }

    async fn read_file(
        &self,
        request: Request<pb::ReadFileRequest>,
    ) -> Result<Response<pb::ReadFileResponse>, Status> {
        let request = request.into_inner();
        let content = self
            .backend
            .read_file(&request.session_id, &request.path)
            .await?;
        Ok(Response::new(pb::ReadFileResponse { content }))
    }

    async fn write_files(
        &self,
        request: Request<pb::WriteFilesRequest>,
    ) -> Result<Response<pb::WriteFilesResponse>, Status> {
        let request = request.into_inner();
        let changes = request
            .changes
            .into_iter()
            .map(file_change)
            .collect::<Result<Vec<_>, _>>()?;
        let written = self
            .backend
            .write_files(&request.session_id, changes)
            .await?;
        Ok(Response::new(pb::WriteFilesResponse {
            files_written: u32::try_from(written).unwrap_or(u32::MAX),
        }))
    }

    async fn list_directory(
        &self,
        request: Request<pb::ListDirectoryRequest>,
    ) -> Result<Response<pb::ListDirectoryResponse>, Status> {
        let request = request.into_inner();
        let listing = self
            .backend
            .list_directory(&request.session_id, &request.path, request.recursive)
            .await?;
        Ok(Response::new(pb::ListDirectoryResponse {
            entries: listing
                .entries
                .into_iter()
                .map(|entry| pb::DirectoryEntry {
                    path: entry.path,
                    is_dir: entry.is_dir,
                    size: entry.size,
                })
                .collect(),
            truncated: listing.truncated,
        }))
    }

    async fn search_files(
        &self,
        request: Request<pb::SearchFilesRequest>,
    ) -> Result<Response<pb::SearchFilesResponse>, Status> {
        let request = request.into_inner();
        let glob = Some(request.glob.as_str()).filter(|glob| !glob.is_empty());
        let found = self
            .backend
            .search_files(&request.session_id, &request.pattern, glob)
            .await?;
        Ok(Response::new(pb::SearchFilesResponse {
            matches: found
                .matches
                .into_iter()
                .map(|hit| pb::SearchMatch {
                    path: hit.path,
                    line_number: hit.line_number,
                    line: hit.line,
                })
                .collect(),
            truncated: found.truncated,
        }))
    }

    async fn get_changes(
        &self,
        request: Request<pb::GetChangesRequest>,
    ) -> Result<Response<pb::GetChangesResponse>, Status> {
        let request = request.into_inner();
        let changes = self.backend.get_changes(&request.session_id).await?;
        Ok(Response::new(pb::GetChangesResponse {
            changes: changes.changes.into_iter().map(wire_change).collect(),
            diff: changes.diff,
        }))
    }

    async fn destroy_session(
        &self,
        request: Request<pb::DestroySessionRequest>,
    ) -> Result<Response<pb::DestroySessionResponse>, Status> {
        let request = request.into_inner();
        self.backend.destroy_session(&request.session_id).await?;
        Ok(Response::new(pb::DestroySessionResponse {}))
    }
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
