//! Sandbox service: create, exec (streamed), file access and destroy of isolated workspaces.
//!
//! The service's flags and its `run`: the gRPC server itself, over the local backend
//! ([`cap_sandbox`], bubblewrap on this host, the default) or the Kubernetes one
//! ([`cap_sandbox_kube`], a gVisor Pod per session), is [`cap_sandbox_server`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use cap_runtime::CommonArgs;
use cap_sandbox::{DiskLimit, EgressConfig, EgressPolicy, Limits, Sandbox, SandboxConfig};
use cap_sandbox_kube::{KubeConfig, KubeSandbox};
use cap_sandbox_server::{Backend, SERVICE_NAME, router};

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

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
