//! The sandbox's Kubernetes backend: each session is a Pod under the gVisor RuntimeClass,
//! fenced by a NetworkPolicy that denies all traffic but egress to the registry proxy.
//!
//! The Pod runs as a non-root user with a read-only root filesystem, no privilege
//! escalation, every capability dropped and the runtime's default seccomp profile; it has
//! CPU, memory and ephemeral-storage limits, an `activeDeadlineSeconds`, no service account
//! token and no service links. Commands run through the API's `exec` with their output
//! streamed. Everything a session created is deleted when it ends, and when its creation
//! fails half-way. Readiness is a bounded wait: a Pod that cannot start (image not pulled,
//! unschedulable, runtime class missing) is reported with the cause.
//!
//! The objects are built by [`pod`] and [`network_policy`], pure functions the tests check
//! field by field; [`KubeSandbox`] sends them.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, Pod, PodSecurityContext, PodSpec,
    ResourceRequirements, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{AttachParams, DeleteParams, PostParams};
use kube::{Api, Client};
use tokio::sync::mpsc;
use uuid::Uuid;

pub use cap_sandbox::{ExecEvent, ExitInfo, Limits};

/// The label every object of this backend carries.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "cap-sandbox");
/// The label naming the session an object belongs to.
pub const SESSION_LABEL: &str = "cap.dev/sandbox-session";
/// The container's name in every Pod.
pub const CONTAINER: &str = "sandbox";
/// The non-root user the container runs as.
pub const SANDBOX_UID: i64 = 65534;

/// Errors of the Kubernetes backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("kubernetes {operation} failed")]
    Api {
        /// What was being done, e.g. "create pod".
        operation: &'static str,
        /// The client's error (the API server's status when it answered).
        #[source]
        source: kube::Error,
    },
    /// The session's Pod did not become ready.
    #[error("sandbox pod {pod} did not start: {reason}")]
    NotReady {
        /// The Pod.
        pod: String,
        /// Why (the Pod's own status, or the wait's timeout).
        reason: String,
    },
    /// A session id that is not a UUID.
    #[error("invalid session id {0:?}: expected a UUID")]
    InvalidSessionId(String),
    /// A command that cannot be run.
    #[error("invalid command: {0}")]
    InvalidCommand(&'static str),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

fn api(operation: &'static str) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Api { operation, source }
}

/// How sessions are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeConfig {
    /// The namespace sessions live in.
    pub namespace: String,
    /// The RuntimeClass of every Pod.
    pub runtime_class: String,
    /// Limits of each session's Pod (`disk_bytes` bounds its writable volumes).
    pub limits: Limits,
    /// `activeDeadlineSeconds` of each Pod: the most a session lives.
    pub active_deadline_seconds: i64,
    /// How long a new Pod may take to be running.
    pub ready_timeout: Duration,
    /// The registry proxy: namespace and Pod labels egress is allowed to, its port, and the
    /// URL the sandbox is given as `HTTPS_PROXY` (a cluster IP: the sandbox has no DNS).
    pub proxy: ProxyTarget,
}

/// Where the registry proxy runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyTarget {
    /// Its namespace.
    pub namespace: String,
    /// Labels of its Pods.
    pub pod_labels: BTreeMap<String, String>,
    /// Its port.
    pub port: i32,
    /// `http://<address>:<port>` as the sandbox reaches it.
    pub url: String,
}

impl KubeConfig {
    /// Defaults: RuntimeClass `gvisor`, [`Limits::default`], a 2 h deadline, 60 s to start,
    /// the proxy at `cap-egress-proxy` pods in `namespace`, port 3128.
    pub fn new(namespace: impl Into<String>, proxy_url: impl Into<String>) -> Self {
        let namespace = namespace.into();
        Self {
            runtime_class: "gvisor".into(),
            limits: Limits::default(),
            active_deadline_seconds: 2 * 60 * 60,
            ready_timeout: Duration::from_secs(60),
            proxy: ProxyTarget {
                namespace: namespace.clone(),
                pod_labels: BTreeMap::from([(
                    "app.kubernetes.io/name".to_owned(),
                    "cap-egress-proxy".to_owned(),
                )]),
                port: 3128,
                url: proxy_url.into(),
            },
            namespace,
        }
    }
}

/// The name of a session's objects.
pub fn object_name(session: Uuid) -> String {
    format!("cap-sandbox-{session}")
}

fn labels(session: Uuid) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        (SESSION_LABEL.to_owned(), session.to_string()),
    ])
}

fn meta(session: Uuid, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(object_name(session)),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels(session)),
        ..Default::default()
    }
}

/// The session's Pod.
pub fn pod(session: Uuid, image: &str, config: &KubeConfig) -> Pod {
    let limits = &config.limits;
    let quantities = BTreeMap::from([
        (
            "cpu".to_owned(),
            Quantity(format!("{}m", limits.cpu_millis)),
        ),
        (
            "memory".to_owned(),
            Quantity(limits.memory_bytes.to_string()),
        ),
        (
            "ephemeral-storage".to_owned(),
            Quantity(limits.disk_bytes.to_string()),
        ),
    ]);
    let runtime_default = || SeccompProfile {
        type_: "RuntimeDefault".into(),
        localhost_profile: None,
    };
    let scratch = |name: &str| Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: None,
            size_limit: Some(Quantity(limits.disk_bytes.to_string())),
        }),
        ..Default::default()
    };
    let env = ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]
        .into_iter()
        .map(|name| EnvVar {
            name: name.to_owned(),
            value: Some(config.proxy.url.clone()),
            value_from: None,
        })
        .collect();
    Pod {
        metadata: meta(session, &config.namespace),
        spec: Some(PodSpec {
            runtime_class_name: Some(config.runtime_class.clone()),
            restart_policy: Some("Never".into()),
            active_deadline_seconds: Some(config.active_deadline_seconds),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            host_network: Some(false),
            host_pid: Some(false),
            host_ipc: Some(false),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(SANDBOX_UID),
                run_as_group: Some(SANDBOX_UID),
                fs_group: Some(SANDBOX_UID),
                seccomp_profile: Some(runtime_default()),
                ..Default::default()
            }),
            containers: vec![Container {
                name: CONTAINER.into(),
                image: Some(image.to_owned()),
                // The container idles; commands arrive through `exec`.
                command: Some(vec!["sleep".into(), "infinity".into()]),
                working_dir: Some("/workspace".into()),
                env: Some(env),
                resources: Some(ResourceRequirements {
                    limits: Some(quantities.clone()),
                    requests: Some(quantities),
                    ..Default::default()
                }),
                security_context: Some(SecurityContext {
                    allow_privilege_escalation: Some(false),
                    privileged: Some(false),
                    read_only_root_filesystem: Some(true),
                    run_as_non_root: Some(true),
                    run_as_user: Some(SANDBOX_UID),
                    capabilities: Some(Capabilities {
                        add: None,
                        drop: Some(vec!["ALL".into()]),
                    }),
                    seccomp_profile: Some(runtime_default()),
                    ..Default::default()
                }),
                volume_mounts: Some(vec![
                    VolumeMount {
                        name: "workspace".into(),
                        mount_path: "/workspace".into(),
                        ..Default::default()
                    },
                    VolumeMount {
                        name: "tmp".into(),
                        mount_path: "/tmp".into(),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }],
            volumes: Some(vec![scratch("workspace"), scratch("tmp")]),
            ..Default::default()
        }),
        status: None,
    }
}

/// The session's NetworkPolicy: no ingress at all, egress only to the registry proxy.
pub fn network_policy(session: Uuid, config: &KubeConfig) -> NetworkPolicy {
    let proxy = &config.proxy;
    NetworkPolicy {
        metadata: meta(session, &config.namespace),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    SESSION_LABEL.to_owned(),
                    session.to_string(),
                )])),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(Vec::new()),
            egress: Some(vec![NetworkPolicyEgressRule {
                to: Some(vec![NetworkPolicyPeer {
                    namespace_selector: Some(LabelSelector {
                        match_labels: Some(BTreeMap::from([(
                            "kubernetes.io/metadata.name".to_owned(),
                            proxy.namespace.clone(),
                        )])),
                        match_expressions: None,
                    }),
                    pod_selector: Some(LabelSelector {
                        match_labels: Some(proxy.pod_labels.clone()),
                        match_expressions: None,
                    }),
                    ip_block: None,
                }]),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(proxy.port)),
                    protocol: Some("TCP".into()),
                    end_port: None,
                }]),
            }]),
        }),
    }
}

/// Sessions as gVisor Pods. Cheap to clone.
#[derive(Clone)]
pub struct KubeSandbox {
    config: KubeConfig,
    pods: Api<Pod>,
    policies: Api<NetworkPolicy>,
}

impl std::fmt::Debug for KubeSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSandbox")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl KubeSandbox {
    /// A backend over `client` (in production `Client::try_default()`; in tests a mock).
    pub fn new(client: Client, config: KubeConfig) -> Self {
        Self {
            pods: Api::namespaced(client.clone(), &config.namespace),
            policies: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    /// Makes a session: the NetworkPolicy first (so the Pod never runs unfenced), then the
    /// Pod, then waits until it runs. On any failure, deletes what it made.
    pub async fn create_session(&self, image: &str) -> Result<Uuid> {
        let session = Uuid::new_v4();
        let made = self.make(session, image).await;
        if let Err(error) = made {
            tracing::warn!(%session, %error, "sandbox pod failed to start; cleaning up");
            self.delete_all(session).await;
            return Err(error);
        }
        tracing::info!(%session, image, "sandbox pod running");
        Ok(session)
    }

    async fn make(&self, session: Uuid, image: &str) -> Result<()> {
        let post = PostParams::default();
        self.policies
            .create(&post, &network_policy(session, &self.config))
            .await
            .map_err(api("create network policy"))?;
        self.pods
            .create(&post, &pod(session, image, &self.config))
            .await
            .map_err(api("create pod"))?;
        self.wait_running(session).await
    }

    /// Polls the Pod until it runs, fails, or the ready timeout passes.
    async fn wait_running(&self, session: Uuid) -> Result<()> {
        let name = object_name(session);
        let deadline = tokio::time::Instant::now() + self.config.ready_timeout;
        loop {
            let pod = self.pods.get(&name).await.map_err(api("read pod"))?;
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
                        self.config.ready_timeout
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Runs `/bin/sh -c command` in the session's Pod, streaming its output; the receiver
    /// ends with [`ExecEvent::Exit`]. The timeout ends the exec and kills every process of
    /// the sandbox user in the Pod.
    pub async fn exec(
        &self,
        session: &str,
        command: &str,
        timeout: Duration,
    ) -> Result<mpsc::UnboundedReceiver<ExecEvent>> {
        let session = parse_session(session)?;
        if command.trim().is_empty() {
            return Err(Error::InvalidCommand("is empty"));
        }
        let name = object_name(session);
        let params = AttachParams::default()
            .container(CONTAINER)
            .stdin(false)
            .stdout(true)
            .stderr(true);
        let mut process = self
            .pods
            .exec(&name, ["/bin/sh", "-c", command], &params)
            .await
            .map_err(api("exec"))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let pods = self.pods.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let stdout = process.stdout();
            let stderr = process.stderr();
            let status = process.take_status();
            let streams = async {
                tokio::join!(
                    forward(stdout, &tx, ExecEvent::Stdout),
                    forward(stderr, &tx, ExecEvent::Stderr)
                );
                match status {
                    Some(status) => status.await,
                    None => None,
                }
            };
            let (exit_code, timed_out) = match tokio::time::timeout(timeout, streams).await {
                Ok(status) => (status.map_or(-1, |status| exit_code(&status)), false),
                Err(_) => {
                    // Everything the sandbox user runs in the Pod, the exec'd shell included.
                    let kill = AttachParams::default().container(CONTAINER).stdin(false);
                    if let Ok(killer) = pods.exec(&name, ["kill", "-KILL", "-1"], &kill).await {
                        let _ = killer.join().await;
                    }
                    (-1, true)
                }
            };
            let _ = tx.send(ExecEvent::Exit(ExitInfo {
                exit_code,
                timed_out,
                duration: started.elapsed(),
                output_truncated: false,
                limits_hit: Vec::new(),
            }));
        });
        Ok(rx)
    }

    /// Deletes the session's Pod and NetworkPolicy (those already gone are not an error).
    pub async fn destroy_session(&self, session: &str) -> Result<()> {
        let session = parse_session(session)?;
        let name = object_name(session);
        let now = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        ignore_not_found(self.pods.delete(&name, &now).await.map(drop))
            .map_err(api("delete pod"))?;
        ignore_not_found(self.policies.delete(&name, &now).await.map(drop))
            .map_err(api("delete network policy"))?;
        tracing::info!(%session, "sandbox pod deleted");
        Ok(())
    }

    /// Best-effort cleanup after a failed creation.
    async fn delete_all(&self, session: Uuid) {
        if let Err(error) = self.destroy_session(&session.to_string()).await {
            tracing::error!(%session, %error, "cannot clean up a failed sandbox pod");
        }
    }

    /// Lists the sessions this backend's objects belong to (for a sweep after a restart).
    pub async fn sessions(&self) -> Result<Vec<String>> {
        let params =
            kube::api::ListParams::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
        let pods = self.pods.list(&params).await.map_err(api("list pods"))?;
        Ok(futures::stream::iter(pods.items)
            .filter_map(|pod| async move {
                pod.metadata
                    .labels
                    .and_then(|l| l.get(SESSION_LABEL).cloned())
            })
            .collect()
            .await)
    }
}

/// Copies one output of an exec into events until it ends or the caller goes away.
async fn forward(
    reader: Option<tokio::io::ReadHalf<tokio::io::SimplexStream>>,
    tx: &mpsc::UnboundedSender<ExecEvent>,
    wrap: fn(bytes::Bytes) -> ExecEvent,
) {
    use tokio::io::AsyncReadExt as _;
    let Some(mut reader) = reader else { return };
    let mut buf = vec![0u8; 32 * 1024];
    while let Ok(n) = reader.read(&mut buf).await {
        if n == 0
            || tx
                .send(wrap(bytes::Bytes::copy_from_slice(&buf[..n])))
                .is_err()
        {
            return;
        }
    }
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
fn exit_code(status: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Status) -> i32 {
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

/// Where a Pod is in its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    /// Not yet running, nothing wrong yet.
    Pending,
    /// Running.
    Running,
    /// Will not run; why.
    Failed(String),
}

/// Reads a Pod's status: running, still starting, or failed with a cause (terminal phase,
/// an image that cannot be pulled, a configuration error, unschedulable).
pub fn startup_state(pod: &Pod) -> Startup {
    let Some(status) = &pod.status else {
        return Startup::Pending;
    };
    match status.phase.as_deref() {
        Some("Running") => return Startup::Running,
        Some(phase @ ("Failed" | "Succeeded")) => {
            let reason = status.reason.clone().unwrap_or_default();
            return Startup::Failed(format!("pod phase {phase} {reason}").trim().to_owned());
        }
        _ => {}
    }
    const FATAL: [&str; 6] = [
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    ];
    for container in status.container_statuses.iter().flatten() {
        if let Some(waiting) = container.state.as_ref().and_then(|s| s.waiting.as_ref())
            && let Some(reason) = waiting.reason.as_deref()
            && FATAL.contains(&reason)
        {
            let message = waiting.message.clone().unwrap_or_default();
            return Startup::Failed(format!("{reason}: {message}").trim().to_owned());
        }
    }
    for condition in status.conditions.iter().flatten() {
        if condition.type_ == "PodScheduled"
            && condition.status == "False"
            && condition.reason.as_deref() == Some("Unschedulable")
        {
            return Startup::Failed(format!(
                "unschedulable: {}",
                condition.message.clone().unwrap_or_default()
            ));
        }
    }
    Startup::Pending
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
