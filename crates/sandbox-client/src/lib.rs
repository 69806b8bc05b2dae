//! The one seam between the libraries and the sandbox.
//!
//! [`SandboxApi`] is the sandbox service's contract (`cap.sandbox.v1.Sandbox`) as a trait:
//! sessions, files, search, exec (streamed) and changes. Every library that touches a
//! workspace takes a [`Sandbox`] (a shared `dyn SandboxApi`), so the same code runs against
//! the product path, [`GrpcSandbox`] (the service over mutual TLS), and against the in-memory
//! sandbox of the test kit.
//!
//! The trait speaks the contract's own messages and answers with `tonic::Status`: a caller
//! classifies an error by its code (`NOT_FOUND`, `INVALID_ARGUMENT`, `UNAVAILABLE`, ...) the
//! same way whichever implementation is behind it, and the gRPC implementation adds no
//! translation layer that could drift from the service's.

use std::fmt;
use std::sync::Arc;

use cap_proto::sandbox::v1 as pb;
use cap_proto::sandbox::v1::sandbox_client::SandboxClient;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use tonic::Status;
/// Implementors of [`SandboxApi`] use this attribute (`tonic`'s `async_trait`).
pub use tonic::async_trait;
use tonic::transport::Channel;

/// The SHA-256 of a file's content as lower-case hex: how the coding agent names the
/// content it left in a file, and how the supervisor tells whether a command changed the
/// file after that.
pub fn content_digest(content: &[u8]) -> String {
    use sha2::Digest as _;
    format!("{:x}", sha2::Sha256::digest(content))
}

/// What every sandbox operation returns: the contract's status on failure.
pub type Result<T, E = Status> = std::result::Result<T, E>;

/// The output of one command, as the sandbox streams it, ending with its exit.
pub type ExecStream = BoxStream<'static, Result<pb::ExecOutput>>;

/// A sandbox shared by the tasks and tools of one process.
pub type Sandbox = Arc<dyn SandboxApi>;

/// The sandbox service's RPCs. See `proto/sandbox/v1/sandbox.proto` for what each does.
#[async_trait]
pub trait SandboxApi: Send + Sync + fmt::Debug + 'static {
    /// Checks the repository out and makes a session with a writable workspace.
    async fn create_session(
        &self,
        request: pb::CreateSessionRequest,
    ) -> Result<pb::CreateSessionResponse>;
    /// Runs a command inside the sandbox; its output streams, ending with its exit.
    async fn exec(&self, request: pb::ExecRequest) -> Result<ExecStream>;
    /// The content of one file.
    async fn read_file(&self, request: pb::ReadFileRequest) -> Result<pb::ReadFileResponse>;
    /// Writes and deletes files, all or none.
    async fn write_files(&self, request: pb::WriteFilesRequest) -> Result<pb::WriteFilesResponse>;
    /// Lists a directory, recursively when asked.
    async fn list_directory(
        &self,
        request: pb::ListDirectoryRequest,
    ) -> Result<pb::ListDirectoryResponse>;
    /// Lines matching a regular expression.
    async fn search_files(
        &self,
        request: pb::SearchFilesRequest,
    ) -> Result<pb::SearchFilesResponse>;
    /// The workspace's changes against the checkout it was made from.
    async fn get_changes(&self, request: pb::GetChangesRequest) -> Result<pb::GetChangesResponse>;
    /// Destroys the session and its workspace.
    async fn destroy_session(
        &self,
        request: pb::DestroySessionRequest,
    ) -> Result<pb::DestroySessionResponse>;
}

/// The product path: the sandbox service, reached over gRPC.
#[derive(Debug, Clone)]
pub struct GrpcSandbox {
    client: SandboxClient<Channel>,
}

impl GrpcSandbox {
    /// The sandbox service behind `channel`, accepting messages up to `max_message_bytes`
    /// (whole files travel in `WriteFiles` and `GetChanges`).
    pub fn new(channel: Channel, max_message_bytes: usize) -> Self {
        Self {
            client: SandboxClient::new(channel)
                .max_decoding_message_size(max_message_bytes)
                .max_encoding_message_size(max_message_bytes),
        }
    }

    /// [`GrpcSandbox::new`] as a shared [`Sandbox`].
    pub fn shared(channel: Channel, max_message_bytes: usize) -> Sandbox {
        Arc::new(Self::new(channel, max_message_bytes))
    }
}

impl From<SandboxClient<Channel>> for GrpcSandbox {
    /// A client already set up (its message limits as they are).
    fn from(client: SandboxClient<Channel>) -> Self {
        Self { client }
    }
}

/// Largest message the sandbox's RPCs carry, for `WriteFiles` and `GetChanges` with whole
/// files (gRPC's default is 4 MiB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

#[async_trait]
impl SandboxApi for GrpcSandbox {
    async fn create_session(
        &self,
        request: pb::CreateSessionRequest,
    ) -> Result<pb::CreateSessionResponse> {
        Ok(self
            .client
            .clone()
            .create_session(request)
            .await?
            .into_inner())
    }

    async fn exec(&self, request: pb::ExecRequest) -> Result<ExecStream> {
        Ok(self
            .client
            .clone()
            .exec(request)
            .await?
            .into_inner()
            .boxed())
    }

    async fn read_file(&self, request: pb::ReadFileRequest) -> Result<pb::ReadFileResponse> {
        Ok(self.client.clone().read_file(request).await?.into_inner())
    }

    async fn write_files(&self, request: pb::WriteFilesRequest) -> Result<pb::WriteFilesResponse> {
        Ok(self.client.clone().write_files(request).await?.into_inner())
    }

    async fn list_directory(
        &self,
        request: pb::ListDirectoryRequest,
    ) -> Result<pb::ListDirectoryResponse> {
        Ok(self
            .client
            .clone()
            .list_directory(request)
            .await?
            .into_inner())
    }

    async fn search_files(
        &self,
        request: pb::SearchFilesRequest,
    ) -> Result<pb::SearchFilesResponse> {
        Ok(self
            .client
            .clone()
            .search_files(request)
            .await?
            .into_inner())
    }

    async fn get_changes(&self, request: pb::GetChangesRequest) -> Result<pb::GetChangesResponse> {
        Ok(self.client.clone().get_changes(request).await?.into_inner())
    }

    async fn destroy_session(
        &self,
        request: pb::DestroySessionRequest,
    ) -> Result<pb::DestroySessionResponse> {
        Ok(self
            .client
            .clone()
            .destroy_session(request)
            .await?
            .into_inner())
    }
}
