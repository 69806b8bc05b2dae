//! What every service of the fleet does the same way: common flags, tracing, binding a
//! listener (port 0 included, with the bound address written to a file for the launcher),
//! serving gRPC over mutual TLS with the standard health service, and graceful shutdown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use cap_mtls::{Pki, ServiceTls};
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::{Router, TcpIncoming};

mod log_redaction;

pub use log_redaction::{RedactingMakeWriter, RedactingWriter};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The bound address could not be written to the address file.
    #[error("cannot write address file {path}")]
    AddrFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// TLS material could not be loaded.
    #[error("TLS setup")]
    Tls(#[from] cap_mtls::Error),
    /// The gRPC server failed.
    #[error("gRPC server")]
    Transport(#[from] tonic::transport::Error),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Flags every gRPC service takes.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Address to serve gRPC on; port 0 picks a free port.
    #[arg(long, env = "CAP_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// File to write the bound address to once listening (used by the fleet launcher).
    #[arg(long, env = "CAP_ADDR_FILE")]
    pub addr_file: Option<PathBuf>,
    /// Directory holding the fleet's CA and service certificates; created on first start.
    #[arg(long, env = "CAP_PKI_DIR", default_value = ".cap-data/pki")]
    pub pki_dir: PathBuf,
    /// Directory for this service's data (databases, repositories, workspaces).
    #[arg(long, env = "CAP_DATA_DIR", default_value = ".cap-data")]
    pub data_dir: PathBuf,
}

/// Flags every agent service takes: the common ones and the sandbox it works through.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// Flags every service takes.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The sandbox service (`https://host:port`).
    #[arg(long, env = "CAP_SANDBOX_URL")]
    pub sandbox_url: String,
}

impl CommonArgs {
    /// Loads (or, in development, creates) the TLS identity of `service`.
    pub fn tls(&self, service: &str) -> Result<ServiceTls> {
        Ok(Pki::ensure_dev(&self.pki_dir)?.service(service)?)
    }

    /// Binds the listen address and publishes the bound address.
    pub async fn bind(&self) -> Result<TcpListener> {
        bind(self.listen, self.addr_file.as_deref()).await
    }
}

/// Sets up tracing for a service: `RUST_LOG` filters, default `info`; every line goes to
/// stdout through the secret detector ([`RedactingMakeWriter`]).
pub fn init_tracing(service: &str) {
    init_tracing_into(service, "info", std::io::stdout);
}

/// Sets up tracing for a command-line tool: as [`init_tracing`], but default `warn` and on
/// stderr, so what the tool prints on stdout (a report, SARIF, JSON) stays only that.
pub fn init_cli_tracing(tool: &str) {
    init_tracing_into(tool, "warn", std::io::stderr);
}

fn init_tracing_into<W>(name: &str, default_filter: &str, out: fn() -> W)
where
    W: std::io::Write + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    // A second init (tests starting several services in one process) is not an error.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        // Colour codes between a field's name and its value would hide `name=value`
        // assignments from the secret detector, so there are none, in a terminal either.
        .with_ansi(false)
        .with_writer(RedactingMakeWriter::new(out))
        .try_init();
    redact_panics();
    tracing::debug!(name, "tracing ready");
}

/// Replaces the panic hook with one that prints what the default prints (where, the
/// message, a backtrace when `RUST_BACKTRACE` asks for one) through the secret detector: a
/// panic's message may quote a value, and it lands in the same log as the traced lines.
pub fn redact_panics() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("<unnamed>");
        let backtrace = std::backtrace::Backtrace::capture();
        let report = match backtrace.status() {
            std::backtrace::BacktraceStatus::Captured => {
                format!("thread '{name}' {info}\nstack backtrace:\n{backtrace}")
            }
            _ => format!("thread '{name}' {info}"),
        };
        eprintln!("{}", cap_secrets::redact(&report));
    }));
}

/// Binds `addr` and, when `addr_file` is given, writes the bound address there (atomically).
pub async fn bind(addr: SocketAddr, addr_file: Option<&Path>) -> Result<TcpListener> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    if let Some(path) = addr_file {
        let addr_err = |source| Error::AddrFile {
            path: path.to_owned(),
            source,
        };
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bound.to_string()).map_err(addr_err)?;
        std::fs::rename(&tmp, path).map_err(addr_err)?;
    }
    tracing::info!(%bound, "listening");
    Ok(listener)
}

/// A gRPC server builder with mutual TLS from `tls`.
pub fn grpc_server(tls: &ServiceTls) -> Result<Server> {
    Ok(Server::builder().tls_config(tls.server_config())?)
}

/// The standard gRPC health service, reporting `SERVING` for the whole server and for `S`.
pub async fn health_service<S: tonic::server::NamedService>()
-> tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health> {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter.set_serving::<S>().await;
    service
}

/// Serves `router` on `listener` until SIGINT or SIGTERM.
pub async fn serve(router: Router, listener: TcpListener) -> Result<()> {
    // Without TCP_NODELAY the last small frames of a streamed reply wait for the peer's
    // delayed acknowledgement: about 40 ms at the end of every streaming call.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let (signalled, on_signal) = tokio::sync::oneshot::channel();
    let server = router.serve_with_incoming_shutdown(incoming, async {
        shutdown_signal().await;
        let _ = signalled.send(());
    });
    // In-flight calls get a grace period; a peer holding a stream open must not keep the
    // process (and what it cleans up on exit) alive forever.
    let grace = async {
        if on_signal.await.is_ok() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        served = server => served?,
        () = grace => tracing::warn!(
            grace_seconds = SHUTDOWN_GRACE.as_secs(),
            "calls still in flight after the grace period; stopping anyway"
        ),
    }
    tracing::info!("stopped");
    Ok(())
}

/// How long in-flight calls may run after SIGINT or SIGTERM.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(error) => {
                    tracing::warn!(%error, "no SIGTERM handler; stopping on SIGINT only");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Turns a loopback listen address into the `https://` URL clients dial.
pub fn https_url(addr: SocketAddr) -> String {
    format!("https://{addr}")
}

/// Who a gRPC call acts for, as the audit log names them: the user in its `x-cap-actor`
/// metadata ([`cap_proto::ACTOR_METADATA`]) when the caller is the gateway (the client
/// certificate the handshake verified says so, [`cap_mtls::peer_service`]); `service:<name>`
/// for another of the fleet's services, whatever metadata it sends, since only the gateway
/// signs users in; `"anonymous"` for a call without a client certificate.
pub fn acting_user<T>(request: &tonic::Request<T>) -> String {
    match cap_mtls::peer_service(request).as_deref() {
        Some(GATEWAY_SERVICE) => user_in_metadata(request.metadata()),
        Some(service) => format!("service:{service}"),
        None => ANONYMOUS.to_owned(),
    }
}

/// The service whose calls may name the user they act for.
pub const GATEWAY_SERVICE: &str = "gateway";
const ANONYMOUS: &str = "anonymous";

/// The user named in `x-cap-actor`: `"anonymous"` when it is absent or not a plain name (1 to
/// 64 ASCII letters, digits, `.`, `_`, `-` or `@`), so nothing a caller sends there can forge
/// an audit line's layout or pass for a service.
fn user_in_metadata(metadata: &tonic::metadata::MetadataMap) -> String {
    let Some(value) = metadata
        .get(cap_proto::ACTOR_METADATA)
        .and_then(|value| value.to_str().ok())
    else {
        return ANONYMOUS.to_owned();
    };
    let plain = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if plain {
        value.to_owned()
    } else {
        ANONYMOUS.to_owned()
    }
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
