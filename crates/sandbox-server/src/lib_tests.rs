use pretty_assertions::assert_eq;
use tonic::Code;

use super::*;
use cap_sandbox_kube::KubeConfig;

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
