use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use pretty_assertions::assert_eq;

use super::*;

#[test]
fn defaults_put_sessions_under_the_data_dir() {
    let config = Config::try_parse_from(["cap-sandbox", "--data-dir", "/var/lib/cap"]).unwrap();
    let sandbox = config.sandbox_config();
    assert_eq!(sandbox.root, PathBuf::from("/var/lib/cap/sandbox"));
    assert_eq!(sandbox.bwrap, PathBuf::from("/usr/bin/bwrap"));
    assert_eq!(sandbox.default_timeout, Duration::from_secs(900));
    assert_eq!(sandbox.max_timeout, Duration::from_secs(3600));
    assert_eq!(sandbox.output_cap_bytes, 1024 * 1024);
    assert_eq!(sandbox.limits, Limits::default());
    assert_eq!(sandbox.cgroup_root, Some(PathBuf::from("/sys/fs/cgroup")));
    assert_eq!(sandbox.term_grace, Duration::from_secs(5));
    assert_eq!(sandbox.egress, None);
}

#[test]
fn egress_flags_turn_the_proxy_on() {
    let config = Config::try_parse_from([
        "cap-sandbox",
        "--egress-allow",
        "registries,*.corp.example",
        "--egress-relay",
        "/opt/cap/relay",
    ])
    .unwrap();
    let egress = config.sandbox_config().egress.unwrap();
    assert_eq!(egress.relay, PathBuf::from("/opt/cap/relay"));
    assert!(egress.policy.allows_host("pypi.org"));
    assert!(egress.policy.allows_host("mirror.corp.example"));
    assert!(!egress.policy.allows_host("evil.example"));
}

#[test]
fn limit_flags_set_the_limits() {
    let config = Config::try_parse_from([
        "cap-sandbox",
        "--cpu-millis",
        "500",
        "--memory-bytes",
        "1000000",
        "--max-processes",
        "12",
        "--disk-bytes",
        "2000000",
        "--no-cgroups",
        "--term-grace-seconds",
        "0",
    ])
    .unwrap();
    let sandbox = config.sandbox_config();
    assert_eq!(
        sandbox.limits,
        Limits {
            cpu_millis: 500,
            memory_bytes: 1_000_000,
            max_processes: 12,
            disk_bytes: 2_000_000,
        }
    );
    assert_eq!(sandbox.cgroup_root, None);
    assert_eq!(sandbox.term_grace, Duration::ZERO);
    assert!(Config::try_parse_from(["cap-sandbox", "--memory-bytes", "-1"]).is_err());
}

#[test]
fn flags_override_the_defaults() {
    let config = Config::try_parse_from([
        "cap-sandbox",
        "--sessions-dir",
        "/srv/sessions",
        "--bwrap",
        "/opt/bwrap",
        "--default-timeout-seconds",
        "30",
        "--max-timeout-seconds",
        "60",
        "--output-cap-bytes",
        "4096",
    ])
    .unwrap();
    let sandbox = config.sandbox_config();
    assert_eq!(sandbox.root, PathBuf::from("/srv/sessions"));
    assert_eq!(sandbox.bwrap, PathBuf::from("/opt/bwrap"));
    assert_eq!(sandbox.default_timeout, Duration::from_secs(30));
    assert_eq!(sandbox.max_timeout, Duration::from_secs(60));
    assert_eq!(sandbox.output_cap_bytes, 4096);
    assert!(Config::try_parse_from(["cap-sandbox", "--output-cap-bytes", "lots"]).is_err());
}

#[test]
fn the_local_backend_is_the_default_and_takes_no_kubernetes_flags() {
    let config = Config::try_parse_from(["cap-sandbox"]).unwrap();
    assert_eq!(config.backend, BackendKind::Local);
    assert!(matches!(
        config.backend_config().unwrap(),
        BackendConfig::Local(_)
    ));
    let config = Config::try_parse_from(["cap-sandbox", "--kube-namespace", "sandboxes"]).unwrap();
    assert_eq!(
        config.backend_config().unwrap_err().to_string(),
        "--kube-namespace is for --backend kubernetes; the backend is local"
    );
    assert!(Config::try_parse_from(["cap-sandbox", "--backend", "docker"]).is_err());
}

#[test]
fn kubernetes_flags_make_the_kubernetes_backend() {
    let config = Config::try_parse_from([
        "cap-sandbox",
        "--data-dir",
        "/var/lib/cap",
        "--backend",
        "kubernetes",
        "--kube-namespace",
        "sandboxes",
        "--kube-proxy-url",
        "http://10.96.0.50:8080/",
        "--kube-runtime-class",
        "gvisor-kvm",
        "--kube-image-prefix",
        "registry.internal:5000/",
        "--memory-bytes",
        "1000000",
        "--max-timeout-seconds",
        "120",
    ])
    .unwrap();
    let BackendConfig::Kubernetes(kube) = config.backend_config().unwrap() else {
        panic!("not the kubernetes backend");
    };
    let mut expected = KubeConfig::new("sandboxes", "http://10.96.0.50:8080");
    expected.proxy.port = 8080;
    expected.runtime_class = "gvisor-kvm".into();
    expected.image_prefix = "registry.internal:5000/".into();
    expected.limits.memory_bytes = 1_000_000;
    expected.max_timeout = Duration::from_secs(120);
    expected.scratch_dir = PathBuf::from("/var/lib/cap/sandbox");
    assert_eq!(kube, expected);
}

#[test]
fn bad_kubernetes_flag_combinations_are_refused_with_the_reason() {
    let kube = ["cap-sandbox", "--backend", "kubernetes"];
    let proxied = [
        "--kube-namespace",
        "s",
        "--kube-proxy-url",
        "http://10.0.0.1:3128",
    ];
    let cases: [(&[&str], &str); 5] = [
        (&[], "--backend kubernetes needs --kube-namespace"),
        (
            &["--kube-namespace", "sandboxes"],
            "--backend kubernetes needs --kube-proxy-url (http://<cluster IP>:<port>)",
        ),
        (
            &[
                "--kube-namespace",
                "sandboxes",
                "--kube-proxy-url",
                "http://proxy:3128",
            ],
            "--kube-proxy-url \"http://proxy:3128\" is not http://<IP address>:<port>",
        ),
        (
            &[
                "--kube-namespace",
                "s",
                "--kube-proxy-url",
                "https://10.0.0.1:3128",
            ],
            "--kube-proxy-url \"https://10.0.0.1:3128\" is not http://<IP address>:<port>",
        ),
        (
            &[&proxied[..], &["--egress-allow", "registries"]].concat(),
            "--egress-allow and --egress-relay are for the local backend; with --backend \
             kubernetes, sandboxes reach only the egress proxy at --kube-proxy-url",
        ),
    ];
    for (flags, message) in cases {
        let config = Config::try_parse_from(kube.iter().chain(flags)).unwrap();
        assert_eq!(config.backend_config().unwrap_err().to_string(), message);
    }
}

#[test]
fn the_disk_limit_mode_is_a_flag_and_unknown_modes_are_refused() {
    let default = Config::try_parse_from(["cap-sandbox"]).unwrap();
    assert_eq!(
        default.sandbox_config().disk_limit,
        cap_sandbox::DiskLimit::Auto
    );
    let poll = Config::try_parse_from(["cap-sandbox", "--disk-limit", "poll"]).unwrap();
    assert_eq!(
        poll.sandbox_config().disk_limit,
        cap_sandbox::DiskLimit::Poll
    );
    let error = Config::try_parse_from(["cap-sandbox", "--disk-limit", "quota"])
        .unwrap_err()
        .to_string();
    assert!(error.contains("auto, loop or poll"), "{error}");
}
