//! The egress proxy: the one way out of a sandbox, to an allow-list of package registries.
//!
//! An HTTP `CONNECT` proxy (what pip, npm, Maven and Go use for `https://` through
//! `HTTPS_PROXY`). A request passes only when its host is on the allow-list (exact names, or
//! `*.example.org` for the subdomains of `example.org`) and every address the name resolves to
//! is a public one: loopback, private, link-local, carrier-grade NAT, multicast, unspecified
//! and IPv6 unique-local addresses never pass, whatever name they hide behind (a registry name
//! pointing at `127.0.0.1` is refused), unless named one by one in
//! [`EgressPolicy::allowed_private_addresses`] (an internal registry mirror). The proxy
//! connects to the address it checked, never resolving again, so a name cannot change its
//! answer between the check and the connection. Every refusal is answered `403` with the
//! reason and recorded ([`EgressProxy::refusals`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::path::Path;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::task::JoinHandle;

use crate::{Error, Result};

/// The longest request head the proxy reads.
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// How long a client has to send its request, and the proxy to connect upstream.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// The most refusals kept (the oldest are dropped).
const MAX_REFUSALS: usize = 1000;

/// What may pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Host names that may be reached: `pypi.org`, or `*.pythonhosted.org` for subdomains.
    pub allowed_hosts: Vec<String>,
    /// Non-public addresses that may still be reached (an internal mirror), one by one.
    pub allowed_private_addresses: Vec<IpAddr>,
}

impl EgressPolicy {
    /// The public registries of the languages the sandbox has images for.
    pub fn package_registries() -> Self {
        Self {
            allowed_hosts: [
                "pypi.org",
                "files.pythonhosted.org",
                "registry.npmjs.org",
                "proxy.golang.org",
                "sum.golang.org",
                "repo.maven.apache.org",
                "repo1.maven.org",
                "static.crates.io",
                "index.crates.io",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
            allowed_private_addresses: Vec::new(),
        }
    }

    /// Whether `host` is on the allow-list (case-insensitive, a trailing dot ignored).
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allowed_hosts.iter().any(|allowed| {
            let allowed = allowed.to_ascii_lowercase();
            match allowed.strip_prefix("*.") {
                Some(suffix) => host
                    .strip_suffix(suffix)
                    .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
                None => host == allowed,
            }
        })
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusalReason {
    /// Not an HTTP `CONNECT host:port` request.
    BadRequest(String),
    /// The host is not on the allow-list.
    HostNotAllowed,
    /// The host resolves to an address that never passes.
    NonPublicAddress(IpAddr),
    /// The host does not resolve.
    Unresolvable,
}

impl std::fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RefusalReason::BadRequest(what) => write!(f, "bad request: {what}"),
            RefusalReason::HostNotAllowed => write!(f, "host is not on the allow-list"),
            RefusalReason::NonPublicAddress(ip) => {
                write!(f, "host resolves to the non-public address {ip}")
            }
            RefusalReason::Unresolvable => write!(f, "host does not resolve"),
        }
    }
}

/// One refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The host as asked (empty when the request could not be parsed).
    pub host: String,
    /// The port as asked (0 when the request could not be parsed).
    pub port: u16,
    /// Why.
    pub reason: RefusalReason,
}

/// A running egress proxy; stops when dropped.
#[derive(Debug)]
pub struct EgressProxy {
    addr: Option<SocketAddr>,
    refusals: Arc<Mutex<Vec<Refusal>>>,
    task: JoinHandle<()>,
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EgressProxy {
    /// Starts serving `policy` on `listen` (port 0 picks one).
    pub async fn start(listen: SocketAddr, policy: EgressPolicy) -> Result<Self> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| Error::Io {
                action: "bind the egress proxy on",
                path: listen.to_string().into(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Io {
            action: "bind the egress proxy on",
            path: listen.to_string().into(),
            source,
        })?;
        tracing::info!(%addr, "egress proxy listening");
        Ok(Self::spawn(Listener::Tcp(listener), Some(addr), policy))
    }

    /// Starts serving `policy` on a Unix socket at `path` (replacing a stale one), the way
    /// sandboxes reach it: the socket is bind-mounted into each one.
    pub fn start_unix(path: &Path, policy: EgressPolicy) -> Result<Self> {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Io {
                    action: "remove the stale egress socket",
                    path: path.to_owned(),
                    source,
                });
            }
        }
        let listener =
            UnixListener::bind(path).map_err(Error::io("bind the egress proxy on", path))?;
        tracing::info!(socket = %path.display(), "egress proxy listening");
        Ok(Self::spawn(Listener::Unix(listener), None, policy))
    }

    fn spawn(listener: Listener, addr: Option<SocketAddr>, policy: EgressPolicy) -> Self {
        let refusals = Arc::new(Mutex::new(Vec::new()));
        let policy = Arc::new(policy);
        let task = tokio::spawn(accept_loop(listener, policy, Arc::clone(&refusals)));
        Self {
            addr,
            refusals,
            task,
        }
    }

    /// The TCP address it listens on (`None` on a Unix socket).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// The requests refused so far (the latest 1000).
    pub fn refusals(&self) -> Vec<Refusal> {
        lock(&self.refusals).clone()
    }
}

fn lock(refusals: &Mutex<Vec<Refusal>>) -> std::sync::MutexGuard<'_, Vec<Refusal>> {
    refusals
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// A client connection of either kind.
trait Client: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Client for T {}

impl Listener {
    async fn accept(&self) -> std::io::Result<Box<dyn Client>> {
        Ok(match self {
            Listener::Tcp(listener) => Box::new(listener.accept().await?.0),
            Listener::Unix(listener) => Box::new(listener.accept().await?.0),
        })
    }
}

async fn accept_loop(
    listener: Listener,
    policy: Arc<EgressPolicy>,
    refusals: Arc<Mutex<Vec<Refusal>>>,
) {
    loop {
        match listener.accept().await {
            Ok(client) => {
                let (policy, refusals) = (Arc::clone(&policy), Arc::clone(&refusals));
                tokio::spawn(async move {
                    if let Some(refusal) = handle(client, &policy).await {
                        tracing::warn!(host = %refusal.host, port = refusal.port, reason = %refusal.reason, "egress refused");
                        let mut list = lock(&refusals);
                        if list.len() >= MAX_REFUSALS {
                            list.remove(0);
                        }
                        list.push(refusal);
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, "egress proxy cannot accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves one client; returns the refusal when there is one.
async fn handle(mut client: Box<dyn Client>, policy: &EgressPolicy) -> Option<Refusal> {
    let head = match tokio::time::timeout(STEP_TIMEOUT, read_head(&mut client)).await {
        Ok(Ok(head)) => head,
        Ok(Err(what)) => {
            return refuse(
                &mut client,
                String::new(),
                0,
                RefusalReason::BadRequest(what),
            )
            .await;
        }
        Err(_) => {
            return refuse(
                &mut client,
                String::new(),
                0,
                RefusalReason::BadRequest("no request within 10 s".into()),
            )
            .await;
        }
    };
    let (host, port) = match parse_connect(&head) {
        Ok(target) => target,
        Err(what) => {
            return refuse(
                &mut client,
                String::new(),
                0,
                RefusalReason::BadRequest(what),
            )
            .await;
        }
    };
    let upstream = match vet(policy, &host, port).await {
        Ok(addr) => addr,
        Err(reason) => return refuse(&mut client, host, port, reason).await,
    };
    let connected = tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(upstream)).await;
    let mut server = match connected {
        Ok(Ok(server)) => server,
        Ok(Err(error)) => {
            tracing::info!(%host, %upstream, %error, "egress upstream unreachable");
            let _ = client
                .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                .await;
            return None;
        }
        Err(_) => {
            let _ = client
                .write_all(b"HTTP/1.1 504 Gateway Timeout\r\nContent-Length: 0\r\n\r\n")
                .await;
            return None;
        }
    };
    tracing::info!(%host, port, %upstream, "egress allowed");
    if client
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await
        .is_err()
    {
        return None;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    None
}

/// Answers `403` with the reason and returns the refusal to record.
async fn refuse(
    client: &mut Box<dyn Client>,
    host: String,
    port: u16,
    reason: RefusalReason,
) -> Option<Refusal> {
    let body = format!("egress refused: {reason}\n");
    let status = match reason {
        RefusalReason::BadRequest(_) => "400 Bad Request",
        _ => "403 Forbidden",
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(response.as_bytes()).await;
    let _ = client.shutdown().await;
    Some(Refusal { host, port, reason })
}

/// Reads up to the blank line ending the request head.
async fn read_head(client: &mut Box<dyn Client>) -> std::result::Result<String, String> {
    let mut head = Vec::with_capacity(512);
    let mut byte = [0u8; 1];
    // Byte by byte: nothing after the head may be consumed (the tunnel starts right after).
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD_BYTES {
            return Err(format!("request head longer than {MAX_HEAD_BYTES} bytes"));
        }
        match client.read(&mut byte).await {
            Ok(0) => return Err("connection closed before the request ended".into()),
            Ok(_) => head.push(byte[0]),
            Err(error) => return Err(format!("read failed: {error}")),
        }
    }
    String::from_utf8(head).map_err(|_| "the request head is not UTF-8".to_owned())
}

/// `CONNECT host:port HTTP/1.x` into its host and port.
fn parse_connect(head: &str) -> std::result::Result<(String, u16), String> {
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    if method != Some("CONNECT") {
        return Err(format!(
            "only CONNECT is served, not {:?}",
            method.unwrap_or_default()
        ));
    }
    if !version.is_some_and(|v| v.starts_with("HTTP/1.")) || parts.next().is_some() {
        return Err("malformed request line".into());
    }
    let target = target.unwrap_or_default();
    let (host, port) = target
        .rsplit_once(':')
        .ok_or_else(|| format!("target {target:?} has no port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port
        .parse()
        .ok()
        .filter(|port| *port != 0)
        .ok_or_else(|| format!("target {target:?} has an invalid port"))?;
    let valid = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
    if !valid {
        return Err(format!("target {target:?} has an invalid host"));
    }
    Ok((host.to_owned(), port))
}

/// The checked address to connect to, or why not.
async fn vet(
    policy: &EgressPolicy,
    host: &str,
    port: u16,
) -> std::result::Result<SocketAddr, RefusalReason> {
    if !policy.allows_host(host) {
        return Err(RefusalReason::HostNotAllowed);
    }
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(STEP_TIMEOUT, tokio::net::lookup_host((host, port)))
            .await
            .ok()
            .and_then(|found| found.ok())
            .map(Iterator::collect)
            .unwrap_or_default(),
    };
    if addrs.is_empty() {
        return Err(RefusalReason::Unresolvable);
    }
    // Every answer must pass, not just one: otherwise a name answering both a public and a
    // private address would be a way in.
    for addr in &addrs {
        let ip = addr.ip();
        if !is_public(ip) && !policy.allowed_private_addresses.contains(&ip) {
            return Err(RefusalReason::NonPublicAddress(ip));
        }
    }
    addrs.first().copied().ok_or(RefusalReason::Unresolvable)
}

/// Whether `ip` is a public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                // 0.0.0.0/8, carrier-grade NAT 100.64.0.0/10, 198.18.0.0/15 benchmarking,
                // 240.0.0.0/4 reserved.
                || a == 0
                || (a == 100 && (b & 0xC0) == 64)
                || (a == 198 && (b & 0xFE) == 18)
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fc00::/7 unique local, fe80::/10 link local, 2001:db8::/32 documentation.
                || (first & 0xFE00) == 0xFC00
                || (first & 0xFFC0) == 0xFE80
                || (first == 0x2001 && v6.segments()[1] == 0x0db8)
                // 64:ff9b::/96 NAT64 can reach private IPv4 space.
                || (first == 0x0064 && v6.segments()[1] == 0xff9b))
        }
    }
}

#[cfg(test)]
#[path = "egress_tests.rs"]
mod tests;
