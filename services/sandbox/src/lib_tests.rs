use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use pretty_assertions::assert_eq;
use tonic::Code;

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
fn errors_map_to_codes_and_internal_details_stay_in_the_log() {
    let invalid = status(cap_sandbox::Error::InvalidPath {
        path: "../x".into(),
        reason: "`..` is not allowed",
    });
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert_eq!(
        invalid.message(),
        "invalid path \"../x\": `..` is not allowed"
    );
    let missing = status(cap_sandbox::Error::PathNotFound {
        path: "a.txt".into(),
    });
    assert_eq!(missing.code(), Code::NotFound);
    let precondition = status(cap_sandbox::Error::CommitNotFound {
        url: "/r.git".into(),
        sha: "abc1234".into(),
    });
    assert_eq!(precondition.code(), Code::FailedPrecondition);
    let internal = status(cap_sandbox::Error::Io {
        action: "read",
        path: "/secret/host/path".into(),
        source: std::io::Error::other("disk on fire"),
    });
    assert_eq!(internal.code(), Code::Internal);
    assert!(
        !internal.message().contains("/secret/host/path"),
        "{}",
        internal.message()
    );
    assert!(
        !internal.message().contains("disk on fire"),
        "{}",
        internal.message()
    );
}

#[test]
fn wire_changes_must_say_what_to_do() {
    use cap_proto::common::v1::file_change::Change;
    let write = common::FileChange {
        path: "a".into(),
        change: Some(Change::Content(b"x".to_vec())),
    };
    assert_eq!(
        file_change(write).unwrap(),
        FileChange {
            path: "a".into(),
            content: Some(b"x".to_vec())
        }
    );
    let delete = common::FileChange {
        path: "a".into(),
        change: Some(Change::Deleted(true)),
    };
    assert_eq!(
        file_change(delete).unwrap(),
        FileChange {
            path: "a".into(),
            content: None
        }
    );
    for change in [None, Some(Change::Deleted(false))] {
        let error = file_change(common::FileChange {
            path: "a".into(),
            change,
        })
        .unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument);
    }
    assert_eq!(
        wire_change(FileChange {
            path: "b".into(),
            content: None
        }),
        common::FileChange {
            path: "b".into(),
            change: Some(Change::Deleted(true))
        }
    );
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
fn kubernetes_errors_map_to_codes_and_cluster_details_stay_in_the_log() {
    let too_large = status(cap_sandbox_kube::Error::WorkspaceTooLarge { max_bytes: 1024 });
    assert_eq!(too_large.code(), Code::FailedPrecondition);
    assert_eq!(
        too_large.message(),
        "the workspace is larger than 1024 bytes, the most searched or diffed"
    );
    let bad_sha = status(cap_sandbox_kube::Error::Local(
        cap_sandbox::validate_commit_sha("main").unwrap_err(),
    ));
    assert_eq!(bad_sha.code(), Code::InvalidArgument);
    let invalid = status(cap_sandbox_kube::Error::InvalidTimeout {
        seconds: 0,
        max_seconds: 3600,
    });
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert_eq!(
        invalid.message(),
        "invalid timeout 0 s: must be between 1 and 3600 s"
    );
    let missing = status(cap_sandbox_kube::Error::SessionNotFound {
        id: uuid::Uuid::new_v4(),
    });
    assert_eq!(missing.code(), Code::NotFound);
    let not_ready = status(cap_sandbox_kube::Error::NotReady {
        pod: "cap-sandbox-x".into(),
        reason: "ErrImagePull: manifest unknown".into(),
    });
    assert_eq!(not_ready.code(), Code::FailedPrecondition);
    assert!(
        not_ready.message().contains("ErrImagePull"),
        "{}",
        not_ready.message()
    );
    let pod_failure = status(cap_sandbox_kube::Error::PodCommand {
        operation: "reading a file",
        exit_code: 1,
        detail: "secret detail".into(),
    });
    assert_eq!(pod_failure.code(), Code::Internal);
    assert!(!pod_failure.message().contains("secret detail"));
}

/// A service over the Kubernetes backend whose API is a mock that must never be called.
fn kube_service() -> (
    SandboxService,
    tower_test::mock::Handle<
        tonic::codegen::http::Request<kube::client::Body>,
        tonic::codegen::http::Response<kube::client::Body>,
    >,
) {
    let (mock, handle) = tower_test::mock::pair();
    let client = kube::Client::new(mock, "sandboxes");
    let backend = KubeSandbox::new(client, KubeConfig::new("sandboxes", "http://10.0.0.1:3128"));
    (SandboxService::new(backend), handle)
}

#[tokio::test]
async fn bad_requests_to_the_kubernetes_backend_never_reach_the_cluster() {
    let (service, mut api) = kube_service();
    let session_id = "3f0b8c52-8d5f-4a43-9d0e-6a9d1e0c7b11".to_owned();
    let Err(error) = service
        .exec(Request::new(pb::ExecRequest {
            session_id: session_id.clone(),
            command: "true".into(),
            cwd: String::new(),
            timeout_seconds: 0,
            env: Default::default(),
        }))
        .await
    else {
        panic!("a zero timeout was accepted");
    };
    assert_eq!(error.code(), Code::InvalidArgument);
    let error = service
        .read_file(Request::new(pb::ReadFileRequest {
            session_id: session_id.clone(),
            path: "../../etc/passwd".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    let error = service
        .create_session(Request::new(pb::CreateSessionRequest {
            image: "ubuntu:latest".into(),
            repo_url: "/srv/forge/repo.git".into(),
            commit_sha: "abcdef1".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().contains("unknown image"),
        "{}",
        error.message()
    );
    let error = service
        .destroy_session(Request::new(pb::DestroySessionRequest {
            session_id: "kube-system".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    let error = service
        .search_files(Request::new(pb::SearchFilesRequest {
            session_id: "kube-system".into(),
            pattern: "x".into(),
            glob: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    let error = service
        .get_changes(Request::new(pb::GetChangesRequest {
            session_id: "kube-system".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    // Nothing was sent to the API server.
    drop(service);
    assert!(api.next_request().await.is_none());
}

/// Answers the mock API's next request with `code` and a JSON body; returns its method and
/// path.
async fn answer(
    api: &mut tower_test::mock::Handle<
        tonic::codegen::http::Request<kube::client::Body>,
        tonic::codegen::http::Response<kube::client::Body>,
    >,
    code: u16,
    body: &str,
) -> String {
    let (request, send) = api.next_request().await.unwrap();
    let call = format!("{} {}", request.method(), request.uri().path());
    send.send_response(
        tonic::codegen::http::Response::builder()
            .status(code)
            .body(kube::client::Body::from(body.as_bytes().to_vec()))
            .unwrap(),
    );
    call
}

#[tokio::test]
async fn kubernetes_sessions_are_destroyed_and_missing_ones_reported_through_the_service() {
    let (service, mut api) = kube_service();
    let session_id = "3f0b8c52-8d5f-4a43-9d0e-6a9d1e0c7b11";
    let name = format!("cap-sandbox-{session_id}");
    let exec = tokio::spawn({
        let service = service.clone();
        async move {
            service
                .exec(Request::new(pb::ExecRequest {
                    session_id: session_id.into(),
                    command: "true".into(),
                    cwd: String::new(),
                    timeout_seconds: 10,
                    env: Default::default(),
                }))
                .await
                .map(drop)
        }
    });
    let not_found = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
        "reason":"NotFound","code":404,"message":"pods not found"}"#;
    let call = answer(&mut api, 404, not_found).await;
    assert_eq!(
        call,
        format!("GET /api/v1/namespaces/sandboxes/pods/{name}/exec")
    );
    let error = exec.await.unwrap().unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    assert_eq!(error.message(), format!("no sandbox session {session_id}"));

    let destroy = tokio::spawn({
        let service = service.clone();
        async move {
            service
                .destroy_session(Request::new(pb::DestroySessionRequest {
                    session_id: session_id.into(),
                }))
                .await
        }
    });
    let success = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success"}"#;
    assert_eq!(
        answer(&mut api, 200, success).await,
        format!("DELETE /api/v1/namespaces/sandboxes/pods/{name}")
    );
    assert_eq!(
        answer(&mut api, 404, not_found).await,
        format!("DELETE /apis/networking.k8s.io/v1/namespaces/sandboxes/networkpolicies/{name}")
    );
    destroy.await.unwrap().unwrap();
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
