//! Starts the fleet on one machine: each service its own process on loopback, talking mutual
//! TLS with certificates from the development CA this crate creates first.
//!
//! Services bind port 0 and write the address they got to a file; the launcher starts them in
//! dependency order, passes each the addresses of those it calls, and waits until each answers
//! the gRPC health check before starting the next. Used by the `cap` command and by the
//! end-to-end tests, which therefore exercise the same start-up path a user runs.
//!
//! Several supervisor replicas can share the store ([`FleetConfig::supervisor_replicas`]):
//! each is a process of its own name (`supervisor-2`, ...) that [`Fleet::kill`] and
//! [`Fleet::restart`] address like any service.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cap_mtls::Pki;
use tokio::process::{Child, Command};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Errors of the launcher.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A service binary is not where it should be.
    #[error(
        "service binary {0} not found; build the workspace's binaries first (`cargo build --bins`)"
    )]
    MissingBinary(PathBuf),
    /// A file or process operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// TLS material could not be prepared.
    #[error("PKI")]
    Pki(#[from] cap_mtls::Error),
    /// A service did not come up.
    #[error("service {service} did not start: {reason}\n--- last lines of {log} ---\n{log_tail}")]
    StartFailed {
        /// The service (a supervisor replica's own name, e.g. `supervisor-2`).
        service: String,
        /// Why.
        reason: String,
        /// Its log file.
        log: String,
        /// The end of its log.
        log_tail: String,
    },
    /// The service is not part of the fleet.
    #[error("unknown service {0:?}")]
    UnknownService(String),
    /// The gateway's identity store could not be used.
    #[error("the gateway's identity store")]
    Identity(#[from] cap_identity::Error),
}

/// The gateway's SQLite file in its data directory (as the gateway names it).
const GATEWAY_DATABASE: &str = "gateway.db";

fn time_day() -> cap_identity::Lifetime {
    cap_identity::Lifetime::days(1)
}

/// Result of the launcher.
pub type Result<T> = std::result::Result<T, Error>;

/// The fleet's services in start order: each depends only on those before it.
pub const SERVICES: [&str; 7] = [
    "sandbox",
    "github",
    "context-agent",
    "testing-agent",
    "coding-agent",
    "supervisor",
    "gateway",
];

/// The model endpoint the coding agent uses.
#[derive(Clone)]
pub struct ModelEndpoint {
    /// OpenAI-compatible base URL, e.g. `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    /// Sent as a bearer token when set.
    pub api_key: Option<String>,
    /// The model's name.
    pub model: String,
}

impl std::fmt::Debug for ModelEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelEndpoint")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .finish()
    }
}

/// How to start the fleet.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Directory holding the `cap-*` service binaries.
    pub bin_dir: PathBuf,
    /// Root of all state: PKI, databases, forge, sandbox sessions, logs.
    pub data_dir: PathBuf,
    /// Where the gateway serves HTTP; port 0 picks one.
    pub http_listen: SocketAddr,
    /// `postgres://...` for the supervisor and GitHub service; `None` means SQLite files.
    pub database_url: Option<String>,
    /// The model endpoint.
    pub model: ModelEndpoint,
    /// Steps the coding agent may take per task.
    pub max_steps: u32,
    /// `RUST_LOG` for the services.
    pub log_filter: String,
    /// How many supervisor replicas share the store: the first is `supervisor`, the others
    /// `supervisor-2`, `supervisor-3`, ..., each started right after it with its own name as
    /// its `--replica-id`. The gateway talks to `supervisor`.
    pub supervisor_replicas: usize,
    /// The supervisors' task lease in seconds (`--lease-seconds`); `None` keeps theirs.
    pub supervisor_lease_seconds: Option<u64>,
    /// Repository ids or globs the default organisation may target (the gateway's
    /// `--allow-repository`); Admins add others through the API.
    pub allowed_repositories: Vec<String>,
}

impl FleetConfig {
    /// Defaults for a data directory: binaries next to the running executable, gateway on a
    /// free port, SQLite.
    pub fn new(data_dir: impl Into<PathBuf>, model: ModelEndpoint) -> Result<Self> {
        Ok(Self {
            bin_dir: default_bin_dir()?,
            data_dir: data_dir.into(),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: None,
            model,
            max_steps: 30,
            log_filter: "info".to_owned(),
            supervisor_replicas: 1,
            supervisor_lease_seconds: None,
            allowed_repositories: vec!["demo/*".to_owned()],
        })
    }

    /// Where the forge keeps its bare repositories.
    pub fn forge_root(&self) -> PathBuf {
        self.data_dir.join("forge")
    }

    fn pki_dir(&self) -> PathBuf {
        self.data_dir.join("pki")
    }

    fn run_dir(&self) -> PathBuf {
        self.data_dir.join("run")
    }

    /// Directory of the services' log files.
    pub fn log_dir(&self) -> PathBuf {
        self.data_dir.join("logs")
    }
}

/// The directory of the running executable, or its parent when it is a test binary in
/// `target/<profile>/deps`.
pub fn default_bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(|source| Error::Io {
        what: "locating the running executable".into(),
        source,
    })?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir.pop();
    }
    Ok(dir)
}

struct ServiceProcess {
    /// The process's name: the service's, or a supervisor replica's (`supervisor-2`).
    name: String,
    /// Which of [`SERVICES`] it runs.
    service: &'static str,
    child: Child,
    grpc_addr: SocketAddr,
}

impl Drop for ServiceProcess {
    /// SIGTERM, not SIGKILL: every service shuts down on it, and the sandbox then unmounts its
    /// workspace filesystems, which a killed one leaves for its next start on the same root (a
    /// test's temporary root has none).
    fn drop(&mut self) {
        if let Some(pid) = process_pid(&self.child) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }
}

/// A running fleet. Dropping it stops the services (SIGTERM) and waits up to 5 s for them.
pub struct Fleet {
    config: FleetConfig,
    pki: Pki,
    processes: Vec<ServiceProcess>,
    gateway_http: SocketAddr,
}

impl Drop for Fleet {
    /// Every service is told to stop at once, then waited for, so that whoever removes the
    /// data directory next (a test's temporary root) does not pull it from under a sandbox
    /// still unmounting its workspaces: that left loop mounts behind. Blocks, briefly.
    fn drop(&mut self) {
        for process in &self.processes {
            if let Some(pid) = process_pid(&process.child) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for process in &mut self.processes {
            while matches!(process.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("gateway_http", &self.gateway_http)
            .field(
                "services",
                &self.processes.iter().map(|p| &p.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Fleet {
    /// Creates the PKI if needed and starts every service, each healthy before the next.
    pub async fn start(config: FleetConfig) -> Result<Self> {
        for name in SERVICES {
            let binary = binary_path(&config.bin_dir, name);
            if !binary.exists() {
                return Err(Error::MissingBinary(binary));
            }
        }
        for dir in [config.run_dir(), config.log_dir(), config.forge_root()] {
            std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
                what: format!("creating {}", dir.display()),
                source,
            })?;
        }
        // All certificates exist before any service starts, so none races to create them.
        let pki = Pki::ensure_dev(config.pki_dir())?;
        for name in SERVICES.iter().copied().chain(["launcher"]) {
            pki.service(name)?;
        }
        let mut fleet = Self {
            config,
            pki,
            processes: Vec::new(),
            gateway_http: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        for service in SERVICES {
            fleet
                .start_service(service.to_owned(), service, any_port)
                .await?;
            if service == "supervisor" {
                for replica in fleet.supervisor_names().into_iter().skip(1) {
                    fleet.start_service(replica, service, any_port).await?;
                }
            }
        }
        Ok(fleet)
    }

    /// The gateway's HTTP address.
    pub fn gateway_http(&self) -> SocketAddr {
        self.gateway_http
    }

    /// The gateway's store of users and tokens, as its Admin tools use it (the gateway has
    /// made and migrated it by the time the fleet is up).
    pub async fn identity(&self) -> Result<cap_identity::IdentityStore> {
        let url =
            self.config.database_url.clone().unwrap_or_else(|| {
                cap_storage::sqlite_url(&self.gateway_dir().join(GATEWAY_DATABASE))
            });
        Ok(cap_identity::IdentityStore::open(&url).await?)
    }

    /// An API token for `user` acting as `role`, valid for a day; the user is made (without
    /// a password) if it does not exist. For the launcher's own sample task and for tests.
    pub async fn issue_token(&self, user: &str, role: cap_identity::Role) -> Result<String> {
        let store = self.identity().await?;
        store.ensure_user(user, role).await?;
        let issued = store
            .create_token(user, role, "issued by the fleet launcher", time_day())
            .await?;
        Ok(issued.secret)
    }

    /// The first Admin's one-time password, until it is changed.
    pub fn initial_admin_password(&self) -> Option<String> {
        std::fs::read_to_string(self.gateway_dir().join(cap_identity::INITIAL_PASSWORD_FILE))
            .ok()
            .map(|text| text.trim().to_owned())
    }

    /// The supervisors' store: their tasks and the audit log (`cap audit`).
    pub fn supervisor_database_url(&self) -> String {
        self.config
            .database_url
            .clone()
            .unwrap_or_else(|| cap_storage::sqlite_url(&self.config.data_dir.join("supervisor.db")))
    }

    /// Where the supervisors keep the audit log's signing key and its public half
    /// (`cap_audit::PUBLIC_KEY_FILE`): the first supervisor's data dir, as `cap audit`
    /// expects.
    pub fn audit_key_dir(&self) -> PathBuf {
        self.config.data_dir.join("supervisor")
    }

    fn gateway_dir(&self) -> PathBuf {
        self.config.data_dir.join("gateway")
    }

    /// The gateway's base URL, e.g. `http://127.0.0.1:8080`.
    pub fn gateway_url(&self) -> String {
        format!("http://{}", self.gateway_http)
    }

    /// The configuration the fleet runs with.
    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    /// The PKI directory's handle, e.g. for a test's own client.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// The names of the supervisor replicas, `supervisor` first.
    pub fn supervisor_names(&self) -> Vec<String> {
        (1..=self.config.supervisor_replicas.max(1))
            .map(|n| match n {
                1 => "supervisor".to_owned(),
                n => format!("supervisor-{n}"),
            })
            .collect()
    }

    /// The names of the running processes, in start order.
    pub fn process_names(&self) -> Vec<String> {
        self.processes.iter().map(|p| p.name.clone()).collect()
    }

    /// The gRPC address of a service (or of a supervisor replica, by its name).
    pub fn grpc_addr(&self, name: &str) -> Result<SocketAddr> {
        self.processes
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.grpc_addr)
            .ok_or_else(|| Error::UnknownService(name.to_owned()))
    }

    /// Stops a service (SIGTERM, then SIGKILL after 5 s, at once if it already died) and
    /// starts it again on the same address with the same configuration; services that call it
    /// reconnect on their own.
    pub async fn restart(&mut self, name: &str) -> Result<()> {
        let index = self
            .processes
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| Error::UnknownService(name.to_owned()))?;
        let process = self.processes.remove(index);
        let (name, service, addr) = (process.name.clone(), process.service, process.grpc_addr);
        stop_process(process).await;
        // Same address: the services that call it keep a valid URL.
        self.start_service(name, service, addr).await?;
        // Keep start order, so `grpc_addr` and `stop` see the same list.
        let restarted = self.processes.pop();
        if let Some(restarted) = restarted {
            self.processes.insert(index, restarted);
        }
        Ok(())
    }

    /// Kills a service without letting it shut down, as a crash would.
    pub async fn kill(&mut self, name: &str) -> Result<()> {
        let process = self
            .processes
            .iter_mut()
            .find(|p| p.name == name)
            .ok_or_else(|| Error::UnknownService(name.to_owned()))?;
        let _ = process.child.kill().await;
        Ok(())
    }

    /// Stops every service, the last started first.
    pub async fn stop(mut self) {
        while let Some(process) = self.processes.pop() {
            stop_process(process).await;
        }
    }

    /// Starts process `name` running `service` and waits until it is healthy.
    async fn start_service(
        &mut self,
        name: String,
        service: &'static str,
        listen: SocketAddr,
    ) -> Result<()> {
        let config = &self.config;
        let addr_file = config.run_dir().join(format!("{name}.addr"));
        let http_addr_file = config.run_dir().join("gateway-http.addr");
        // A file left by an earlier run would be read as this run's address.
        let _ = std::fs::remove_file(&addr_file);
        if service == "gateway" {
            let _ = std::fs::remove_file(&http_addr_file);
        }
        let log_path = config.log_dir().join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| Error::Io {
                what: format!("opening {}", log_path.display()),
                source,
            })?;
        let log_err = log.try_clone().map_err(|source| Error::Io {
            what: format!("opening {}", log_path.display()),
            source,
        })?;

        let mut command = Command::new(binary_path(&config.bin_dir, service));
        command
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--addr-file")
            .arg(&addr_file)
            .arg("--pki-dir")
            .arg(config.pki_dir())
            .arg("--data-dir")
            .arg(config.data_dir.join(&name))
            .env("RUST_LOG", &config.log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        for (flag, value) in self.service_flags(service)? {
            command.arg(flag).arg(value);
        }
        if service == "gateway" {
            for pattern in &config.allowed_repositories {
                command.arg("--allow-repository").arg(pattern);
            }
        }
        if service == "supervisor" && config.supervisor_replicas > 1 {
            // Replicas on one host would all default to its name; each needs its own.
            command.arg("--replica-id").arg(&name);
        }
        // Through the environment, not argv: argv is visible to every user of the host.
        if let (true, Some(key)) = (service == "coding-agent", &config.model.api_key) {
            command.env("CAP_MODEL_API_KEY", key);
        }
        let child = command.spawn().map_err(|source| Error::Io {
            what: format!("starting {name}"),
            source,
        })?;
        let mut process = ServiceProcess {
            name: name.clone(),
            service,
            child,
            grpc_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let started = Instant::now();
        let deadline = Duration::from_secs(60);
        let fail = |reason: String| Error::StartFailed {
            service: name.clone(),
            reason,
            log: log_path.display().to_string(),
            log_tail: tail(&log_path, 30),
        };
        process.grpc_addr = wait_for_addr(&mut process.child, &addr_file, started, deadline)
            .await
            .map_err(&fail)?;
        if service == "gateway" {
            self.gateway_http =
                wait_for_addr(&mut process.child, &http_addr_file, started, deadline)
                    .await
                    .map_err(&fail)?;
        }
        self.wait_healthy(&mut process, started, deadline)
            .await
            .map_err(&fail)?;
        tracing::info!(service = %name, addr = %process.grpc_addr, "service healthy");
        self.processes.push(process);
        Ok(())
    }

    fn url_of(&self, name: &str) -> Result<String> {
        Ok(format!("https://{}", self.grpc_addr(name)?))
    }

    fn service_flags(&self, name: &str) -> Result<BTreeMap<&'static str, String>> {
        let config = &self.config;
        let mut flags = BTreeMap::new();
        let database = |file: &str| {
            config.database_url.clone().unwrap_or_else(|| {
                format!("sqlite://{}?mode=rwc", config.data_dir.join(file).display())
            })
        };
        match name {
            "sandbox" => {
                flags.insert(
                    "--sessions-dir",
                    config.data_dir.join("sandbox").display().to_string(),
                );
            }
            "github" => {
                flags.insert("--database-url", database("github.db"));
                flags.insert(
                    "--audit-key-dir",
                    self.audit_key_dir().display().to_string(),
                );
                flags.insert("--forge-root", config.forge_root().display().to_string());
                flags.insert("--public-url", self.public_url());
            }
            "testing-agent" | "context-agent" => {
                flags.insert("--sandbox-url", self.url_of("sandbox")?);
            }
            "coding-agent" => {
                flags.insert("--sandbox-url", self.url_of("sandbox")?);
                flags.insert("--model-base-url", config.model.base_url.clone());
                flags.insert("--model", config.model.model.clone());
                flags.insert("--max-steps", config.max_steps.to_string());
            }
            "supervisor" => {
                flags.insert("--database-url", database("supervisor.db"));
                // Every replica signs the audit log with the first one's key.
                flags.insert(
                    "--audit-key-dir",
                    self.audit_key_dir().display().to_string(),
                );
                flags.insert("--sandbox-url", self.url_of("sandbox")?);
                flags.insert("--github-url", self.url_of("github")?);
                flags.insert("--coding-agent-url", self.url_of("coding-agent")?);
                flags.insert("--testing-agent-url", self.url_of("testing-agent")?);
                flags.insert("--context-agent-url", self.url_of("context-agent")?);
                // The operator's snapshots and policy (`cap advisories import`).
                let advisories = config.data_dir.join("advisories");
                flags.insert("--advisories", advisories.display().to_string());
                let policy = config.data_dir.join("policy").join("licences.toml");
                flags.insert("--licence-policy", policy.display().to_string());
                if let Some(seconds) = config.supervisor_lease_seconds {
                    flags.insert("--lease-seconds", seconds.to_string());
                }
            }
            "gateway" => {
                flags.insert("--http-listen", self.http_listen_now().to_string());
                flags.insert(
                    "--http-addr-file",
                    config
                        .run_dir()
                        .join("gateway-http.addr")
                        .display()
                        .to_string(),
                );
                flags.insert("--supervisor-url", self.url_of("supervisor")?);
                flags.insert("--github-url", self.url_of("github")?);
                flags.insert(
                    "--audit-key-dir",
                    self.audit_key_dir().display().to_string(),
                );
                if let Some(url) = &config.database_url {
                    flags.insert("--database-url", url.clone());
                }
            }
            other => return Err(Error::UnknownService(other.to_owned())),
        }
        Ok(flags)
    }

    /// A restarted gateway keeps the port it had, so open dashboards reconnect.
    fn http_listen_now(&self) -> SocketAddr {
        if self.gateway_http.port() != 0 {
            self.gateway_http
        } else {
            self.config.http_listen
        }
    }

    fn public_url(&self) -> String {
        let addr = self.http_listen_now();
        if addr.port() == 0 {
            // Not known before the gateway binds; links stay relative to the dashboard.
            String::new()
        } else {
            format!("http://{addr}")
        }
    }

    async fn wait_healthy(
        &self,
        process: &mut ServiceProcess,
        started: Instant,
        deadline: Duration,
    ) -> std::result::Result<(), String> {
        let tls = self.pki.service("launcher").map_err(|e| e.to_string())?;
        let channel = tls
            .channel(&format!("https://{}", process.grpc_addr))
            .map_err(|e| e.to_string())?;
        let mut health = HealthClient::new(channel);
        loop {
            if let Ok(Some(status)) = process.child.try_wait() {
                return Err(format!("exited with {status}"));
            }
            let answer = health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            match answer {
                Ok(reply) if reply.get_ref().status == ServingStatus::Serving as i32 => {
                    return Ok(());
                }
                Ok(reply) => tracing::debug!(status = reply.get_ref().status, "not serving yet"),
                Err(status) => tracing::debug!(error = %status, "health check failed"),
            }
            if started.elapsed() > deadline {
                return Err(format!("not healthy after {} s", deadline.as_secs()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn process_pid(child: &Child) -> Option<rustix::process::Pid> {
    child
        .id()
        .and_then(|pid| rustix::process::Pid::from_raw(pid as i32))
}

fn binary_path(bin_dir: &Path, name: &str) -> PathBuf {
    bin_dir.join(format!("cap-{name}"))
}

async fn wait_for_addr(
    child: &mut Child,
    file: &Path,
    started: Instant,
    deadline: Duration,
) -> std::result::Result<SocketAddr, String> {
    loop {
        if let Ok(text) = std::fs::read_to_string(file) {
            return text
                .trim()
                .parse()
                .map_err(|e| format!("bad address in {}: {e}", file.display()));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status}"));
        }
        if started.elapsed() > deadline {
            return Err(format!(
                "no address in {} after {} s",
                file.display(),
                deadline.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stop_process(mut process: ServiceProcess) {
    if let Some(pid) = process_pid(&process.child) {
        // SIGTERM lets the service finish its in-flight writes.
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        if tokio::time::timeout(Duration::from_secs(5), process.child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = process.child.kill().await;
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
