//! Sandbox service: create, exec (streamed), file access and destroy of isolated workspaces.
//!
//! A thin gRPC door (`cap.sandbox.v1.Sandbox`, over mutual TLS, next to the standard health
//! service) into one of two backends ([`Backend`]): the local one ([`cap_sandbox`],
//! bubblewrap on this host, the default) or the Kubernetes one ([`cap_sandbox_kube`], a
//! gVisor Pod per session), chosen by `--backend`. The only place a backend error becomes a
//! wire status is [`status`].

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use anyhow::{Context as _, bail};
use cap_mtls::ServiceTls;
use cap_proto::common::v1 as common;
use cap_proto::sandbox::v1 as pb;
use cap_proto::sandbox::v1::sandbox_server::{Sandbox as SandboxRpc, SandboxServer};
use cap_runtime::CommonArgs;
use cap_sandbox::{
    Changes, DiskLimit, EgressConfig, EgressPolicy, ExecEvent, ExecSpec, FileChange, Limits,
    Listing, Sandbox, SandboxConfig, SearchResult, SessionInfo,
};
use cap_sandbox_kube::{KubeConfig, KubeSandbox};
use futures::{Stream, StreamExt};
use tonic::transport::server::Router;
use tonic::{Request, Response, Status};

/// The TLS identity and health name of this service.
pub const SERVICE_NAME: &str = "sandbox";

/// Largest request or response message, for `WriteFiles` and `GetChanges` carrying whole
/// files (gRPC's default is 4 MiB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Configuration of the sandbox service.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "cap-sandbox",
    about = "Isolated workspaces: create, exec, files, changes, destroy."
)]
pub struct Config {
    /// Flags every service takes.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Directory the sessions live under; default `<data-dir>/sandbox`.
    #[arg(long, env = "CAP_SANDBOX_SESSIONS_DIR")]
    pub sessions_dir: Option<PathBuf>,
    /// The bubblewrap binary.
    #[arg(long, env = "CAP_SANDBOX_BWRAP", default_value = "/usr/bin/bwrap")]
    pub bwrap: PathBuf,
    /// Timeout of a command that names none, in seconds.
    #[arg(
        long,
        env = "CAP_SANDBOX_DEFAULT_TIMEOUT_SECONDS",
        default_value_t = 900
    )]
    pub default_timeout_seconds: u64,
    /// Largest timeout a command may ask for, in seconds.
    #[arg(long, env = "CAP_SANDBOX_MAX_TIMEOUT_SECONDS", default_value_t = 3600)]
    pub max_timeout_seconds: u64,
    /// Output (stdout and stderr together) kept per command, in bytes; the rest is dropped.
    #[arg(long, env = "CAP_SANDBOX_OUTPUT_CAP_BYTES", default_value_t = 1024 * 1024)]
    pub output_cap_bytes: usize,
    /// CPU time a command may use, in thousandths of a CPU (2000 = two CPUs).
    #[arg(long, env = "CAP_SANDBOX_CPU_MILLIS", default_value_t = 2000)]
    pub cpu_millis: u32,
    /// Memory a command may use (its `/tmp` included), in bytes.
    #[arg(long, env = "CAP_SANDBOX_MEMORY_BYTES", default_value_t = 4 << 30)]
    pub memory_bytes: u64,
    /// Processes and threads a command may have at once.
    #[arg(long, env = "CAP_SANDBOX_MAX_PROCESSES", default_value_t = 1024)]
    pub max_processes: u32,
    /// Disk a command may fill: its largest file, the size of its `/tmp` and of the
    /// workspace, in bytes.
    #[arg(long, env = "CAP_SANDBOX_DISK_BYTES", default_value_t = 10 << 30)]
    pub disk_bytes: u64,
    /// How the local backend enforces the disk limit on the workspace: `loop` (each on its
    /// own filesystem of that size: hard; needs root and loop devices), `poll` (its size
    /// checked every 2 s: soft), or `auto` (loop when usable, else poll).
    #[arg(long, env = "CAP_SANDBOX_DISK_LIMIT", default_value = "auto")]
    pub disk_limit: DiskLimit,
    /// The cgroup root the CPU, memory and process limits are enforced through (v1 or v2).
    #[arg(
        long,
        env = "CAP_SANDBOX_CGROUP_ROOT",
        default_value = "/sys/fs/cgroup"
    )]
    pub cgroup_root: PathBuf,
    /// Run without CPU, memory and process limits (a host where the service cannot make
    /// cgroups, e.g. not root); never in production.
    #[arg(long, env = "CAP_SANDBOX_NO_CGROUPS")]
    pub no_cgroups: bool,
    /// On a timeout, seconds between SIGTERM and SIGKILL.
    #[arg(long, env = "CAP_SANDBOX_TERM_GRACE_SECONDS", default_value_t = 5)]
    pub term_grace_seconds: u64,
    /// Hosts sandboxes may reach through the egress proxy (comma-separated; `*.example.org`
    /// for subdomains; `registries` for the public package registries). Empty: no network.
    #[arg(long, env = "CAP_SANDBOX_EGRESS_ALLOW", value_delimiter = ',')]
    pub egress_allow: Vec<String>,
    /// The `cap-sandbox-relay` binary; default: next to this executable.
    #[arg(long, env = "CAP_SANDBOX_EGRESS_RELAY")]
    pub egress_relay: Option<PathBuf>,
    /// Local backend: sandbox launchers kept ready, each already in its cgroup (0: made per
    /// command, slower to start).
    #[arg(long, env = "CAP_SANDBOX_WARM_LAUNCHERS", default_value_t = 2)]
    pub warm_launchers: usize,
    /// Where sessions run: `local` (bubblewrap on this host) or `kubernetes` (a gVisor Pod
    /// per session, through the cluster's API).
    #[arg(long, env = "CAP_SANDBOX_BACKEND", value_enum, default_value_t = BackendKind::Local)]
    pub backend: BackendKind,
    /// Kubernetes backend: the namespace session Pods are made in (the service account's
    /// Role must allow Pods, `pods/exec` and NetworkPolicies there).
    #[arg(long, env = "CAP_SANDBOX_KUBE_NAMESPACE")]
    pub kube_namespace: Option<String>,
    /// Kubernetes backend: the egress proxy as sandboxes reach it, `http://<cluster IP>:<port>`
    /// (an IP: sandboxes have no DNS). Its Pods must be labelled
    /// `app.kubernetes.io/name=cap-egress-proxy` in the same namespace.
    #[arg(long, env = "CAP_SANDBOX_KUBE_PROXY_URL")]
    pub kube_proxy_url: Option<String>,
    /// Kubernetes backend: the RuntimeClass of session Pods; default `gvisor`.
    #[arg(long, env = "CAP_SANDBOX_KUBE_RUNTIME_CLASS")]
    pub kube_runtime_class: Option<String>,
    /// Kubernetes backend: put before image names (`coding-assistant/python`) to find them in
    /// the cluster's registry, e.g. `registry.internal:5000/`.
    #[arg(long, env = "CAP_SANDBOX_KUBE_IMAGE_PREFIX")]
    pub kube_image_prefix: Option<String>,
}

/// Where sessions run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// bubblewrap on this host.
    Local,
    /// A gVisor Pod per session.
    Kubernetes,
}

/// The backend a [`Config`] describes, checked.
#[derive(Debug, Clone)]
pub enum BackendConfig {
    /// The local backend.
    Local(SandboxConfig),
    /// The Kubernetes backend.
    Kubernetes(KubeConfig),
}

impl Config {
    /// The backend these flags describe, or why they do not make one: a `--kube-*` flag
    /// without `--backend kubernetes`, or the Kubernetes backend without its namespace or
    /// proxy, or with the local egress allow-list (its egress goes through the cluster's proxy).
    pub fn backend_config(&self) -> anyhow::Result<BackendConfig> {
        let kube_flags = [
            ("--kube-namespace", self.kube_namespace.is_some()),
            ("--kube-proxy-url", self.kube_proxy_url.is_some()),
            ("--kube-runtime-class", self.kube_runtime_class.is_some()),
            ("--kube-image-prefix", self.kube_image_prefix.is_some()),
        ];
        match self.backend {
            BackendKind::Local => {
                if let Some((flag, _)) = kube_flags.iter().find(|(_, given)| *given) {
                    bail!("{flag} is for --backend kubernetes; the backend is local");
                }
                Ok(BackendConfig::Local(self.sandbox_config()))
            }
            BackendKind::Kubernetes => self.kube_config().map(BackendConfig::Kubernetes),
        }
    }

    fn kube_config(&self) -> anyhow::Result<KubeConfig> {
        if !self.egress_allow.is_empty() || self.egress_relay.is_some() {
            bail!(
                "--egress-allow and --egress-relay are for the local backend; with --backend \
                 kubernetes, sandboxes reach only the egress proxy at --kube-proxy-url"
            );
        }
        let Some(namespace) = self.kube_namespace.as_deref().filter(|ns| !ns.is_empty()) else {
            bail!("--backend kubernetes needs --kube-namespace");
        };
        let Some(proxy_url) = self.kube_proxy_url.as_deref() else {
            bail!("--backend kubernetes needs --kube-proxy-url (http://<cluster IP>:<port>)");
        };
        let port = proxy_url
            .strip_prefix("http://")
            .and_then(|rest| {
                rest.trim_end_matches('/')
                    .parse::<std::net::SocketAddr>()
                    .ok()
            })
            .map(|addr| addr.port())
            .with_context(|| {
                format!("--kube-proxy-url {proxy_url:?} is not http://<IP address>:<port>")
            })?;
        let local = self.sandbox_config();
        let mut config = KubeConfig::new(namespace, proxy_url.trim_end_matches('/'));
        config.proxy.port = i32::from(port);
        if let Some(class) = &self.kube_runtime_class {
            config.runtime_class = class.clone();
        }
        config.image_prefix = self.kube_image_prefix.clone().unwrap_or_default();
        config.limits = local.limits;
        config.default_timeout = local.default_timeout;
        config.max_timeout = local.max_timeout;
        config.output_cap_bytes = local.output_cap_bytes;
        // The repository is checked out here before it is sent to the Pod.
        config.scratch_dir = local.root;
        Ok(config)
    }

    /// The sandbox configuration these flags describe.
    pub fn sandbox_config(&self) -> SandboxConfig {
        let root = self
            .sessions_dir
            .clone()
            .unwrap_or_else(|| self.common.data_dir.join("sandbox"));
        SandboxConfig {
            bwrap: self.bwrap.clone(),
            default_timeout: Duration::from_secs(self.default_timeout_seconds),
            max_timeout: Duration::from_secs(self.max_timeout_seconds),
            output_cap_bytes: self.output_cap_bytes,
            limits: Limits {
                cpu_millis: self.cpu_millis,
                memory_bytes: self.memory_bytes,
                max_processes: self.max_processes,
                disk_bytes: self.disk_bytes,
            },
            cgroup_root: (!self.no_cgroups).then(|| self.cgroup_root.clone()),
            term_grace: Duration::from_secs(self.term_grace_seconds),
            egress: self.egress_config(),
            warm_launchers: self.warm_launchers,
            disk_limit: self.disk_limit,
            ..SandboxConfig::new(root)
        }
    }

    fn egress_config(&self) -> Option<EgressConfig> {
        let mut allowed_hosts = Vec::new();
        for host in self.egress_allow.iter().map(|host| host.trim()) {
            match host {
                "" => {}
                "registries" => {
                    allowed_hosts.extend(EgressPolicy::package_registries().allowed_hosts);
                }
                host => allowed_hosts.push(host.to_owned()),
            }
        }
        if allowed_hosts.is_empty() {
            return None;
        }
        let relay = self.egress_relay.clone().unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(|dir| dir.join("cap-sandbox-relay")))
                .unwrap_or_else(|| PathBuf::from("cap-sandbox-relay"))
        });
        Some(EgressConfig {
            policy: EgressPolicy {
                allowed_hosts,
                allowed_private_addresses: Vec::new(),
            },
            relay,
        })
    }
}

/// Runs the service until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let backend = match config.backend_config()? {
        BackendConfig::Local(local) => Backend::Local(Sandbox::new(local).await?),
        BackendConfig::Kubernetes(kube) => {
            std::fs::create_dir_all(&kube.scratch_dir).with_context(|| {
                format!(
                    "cannot create the checkout directory {}",
                    kube.scratch_dir.display()
                )
            })?;
            let namespace = kube.namespace.clone();
            let backend = KubeSandbox::connect(kube).await.map_err(|error| {
                anyhow::anyhow!(
                    "the kubernetes backend cannot start (namespace {namespace}): {}",
                    error.chain()
                )
            })?;
            Backend::Kubernetes(backend)
        }
    };
    let tls = config.common.tls(SERVICE_NAME)?;
    let listener = config.common.bind().await?;
    let router = router(backend, &tls).await?;
    // `cap_runtime::serve` sets TCP_NODELAY: an exec stream ends with small frames that
    // would otherwise wait for the client's delayed ACK.
    cap_runtime::serve(router, listener).await?;
    Ok(())
}

/// Starts the sandbox service inside this process on a free loopback port, with its sessions
/// under `sessions` and its identity from `pki`: the real service, for other crates' tests.
/// Returns the `https://` URL and the server task (abort it to take the service away).
pub async fn spawn_local(
    sessions: PathBuf,
    pki: &cap_mtls::Pki,
) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let tls = pki.service(SERVICE_NAME)?;
    // The disk limit polled: callers remove their temporary directory while the server task
    // may still hold the sandbox, and loop-mounted workspaces would outlive it (attached loop
    // devices, on every test run). The loop mode has its own tests in `cap-sandbox`.
    let sandbox = Sandbox::new(SandboxConfig {
        disk_limit: DiskLimit::Poll,
        ..SandboxConfig::new(sessions)
    })
    .await?;
    let router = router(sandbox, &tls).await?;
    let listener = cap_runtime::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), None).await?;
    let url = cap_runtime::https_url(listener.local_addr()?);
    let server = tokio::spawn(async move {
        if let Err(error) = cap_runtime::serve(router, listener).await {
            tracing::error!(error = %error, "in-process sandbox service stopped");
        }
    });
    Ok((url, server))
}

/// The gRPC router: the sandbox service and the health service, over mutual TLS with `tls`.
/// Tests serve it in-process on a port-0 listener.
pub async fn router(sandbox: impl Into<Backend>, tls: &ServiceTls) -> anyhow::Result<Router> {
    let health = cap_runtime::health_service::<SandboxServer<SandboxService>>().await;
    let mut server = cap_runtime::grpc_server(tls)?;
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
