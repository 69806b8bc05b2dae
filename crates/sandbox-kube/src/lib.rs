//! The sandbox's Kubernetes backend: each session is a Pod under the gVisor RuntimeClass,
//! fenced by a NetworkPolicy that denies all traffic but egress to the registry proxy.
//!
//! The Pod runs as a non-root user with a read-only root filesystem, no privilege
//! escalation, every capability dropped and the runtime's default seccomp profile; it has
//! CPU, memory and ephemeral-storage limits, an `activeDeadlineSeconds`, no service account
//! token and no service links. The repository is checked out on the host (nothing it
//! contains runs there) and streamed as a tar through the API's `exec` into `tar -x` in the
//! Pod's `/workspace`. Commands run through `exec` too, output streamed and capped; a
//! timeout or a caller that goes away kills every process of the sandbox user in the Pod.
//! Reading, writing and listing files are small scripts run through `exec` (the session
//! images need `/bin/sh`, GNU `tar` and GNU `find`). Searching and the workspace's changes
//! run the local backend's own search and diff (Rust regular expressions, `.gitignore`
//! rules, its diff format) on a copy of the workspace streamed out by `tar -c` and unpacked
//! on the host with every entry checked, the changes against the cached checkout of the
//! commit the Pod's annotations name. Everything a session created is deleted when it
//! ends, when its creation fails half-way, and when its caller leaves during creation. Readiness is a bounded wait: a Pod that cannot start (image not pulled,
//! unschedulable, runtime class missing) is reported with the cause.
//!
//! The objects are built by [`pod`] and [`network_policy`], pure functions the tests check
//! field by field; [`KubeSandbox`] sends them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

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
use uuid::Uuid;

pub use cap_sandbox::{ExecEvent, ExecSpec, ExitInfo, Limits};

/// The label every object of this backend carries.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "cap-sandbox");
/// The label naming the session an object belongs to.
pub const SESSION_LABEL: &str = "cap.dev/sandbox-session";
/// The container's name in every Pod.
pub const CONTAINER: &str = "sandbox";
/// The non-root user the container runs as.
pub const SANDBOX_UID: i64 = 65534;
/// Where the repository's tree is, in the container.
pub const WORKSPACE: &str = "/workspace";
/// The annotation of a session's Pod naming the repository it was made from.
pub const REPO_ANNOTATION: &str = "cap.dev/repo-url";
/// The annotation of a session's Pod naming the full sha of its commit.
pub const COMMIT_ANNOTATION: &str = "cap.dev/commit-sha";

mod checkout;
mod error;
mod sandbox;

pub use error::{Error, ErrorKind, Result};
pub use sandbox::{KubeExecStream, KubeSandbox, PROBE_TIMEOUT};

/// How sessions are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeConfig {
    /// The namespace sessions live in.
    pub namespace: String,
    /// The RuntimeClass of every Pod.
    pub runtime_class: String,
    /// Put before the image a session is made for (`coding-assistant/python:3`) to name it
    /// in the cluster's registry, e.g. `registry.internal:5000/`.
    pub image_prefix: String,
    /// Limits of each session's Pod (`disk_bytes` bounds its writable volumes).
    pub limits: Limits,
    /// `activeDeadlineSeconds` of each Pod: the most a session lives.
    pub active_deadline_seconds: i64,
    /// How long a new Pod may take to be running.
    pub ready_timeout: Duration,
    /// Timeout of a command that names none; also the bound on the backend's own commands
    /// (unpacking the repository, file operations).
    pub default_timeout: Duration,
    /// Largest timeout a command may ask for.
    pub max_timeout: Duration,
    /// Output (stdout and stderr together) kept per command, in bytes.
    pub output_cap_bytes: usize,
    /// Host directory of the cache of checkouts (`.cache`) and of the copies of workspaces
    /// searched and diffed.
    pub scratch_dir: PathBuf,
    /// The largest workspace (as a tar) copied to the host to be searched or diffed.
    pub max_workspace_bytes: u64,
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
    /// Defaults: RuntimeClass `gvisor`, no image prefix, [`Limits::default`], a 2 h
    /// deadline, 60 s to start, 15 min default and 1 h maximum command timeouts, 1 MiB of
    /// output, checkouts under `cap-sandbox-kube` in the system temporary directory, 256 MiB
    /// workspaces searched or diffed at most, the proxy at
    /// `cap-egress-proxy` pods in `namespace`, port 3128.
    pub fn new(namespace: impl Into<String>, proxy_url: impl Into<String>) -> Self {
        let namespace = namespace.into();
        Self {
            runtime_class: "gvisor".into(),
            image_prefix: String::new(),
            limits: Limits::default(),
            active_deadline_seconds: 2 * 60 * 60,
            ready_timeout: Duration::from_secs(60),
            default_timeout: Duration::from_secs(15 * 60),
            max_timeout: Duration::from_secs(60 * 60),
            output_cap_bytes: 1024 * 1024,
            scratch_dir: std::env::temp_dir().join("cap-sandbox-kube"),
            max_workspace_bytes: 256 * 1024 * 1024,
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
                working_dir: Some(WORKSPACE.into()),
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
                        mount_path: WORKSPACE.into(),
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
