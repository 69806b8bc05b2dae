//! The backend against kube-rs' `tower-test` mock: every request it sends is checked, and
//! the mock answers as an API server would.

use std::time::Duration;

use cap_sandbox_kube::{Error, KubeConfig, KubeSandbox, object_name};
use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use tower_test::mock::{Handle, SendResponse};

type ApiHandle = Handle<Request<Body>, Response<Body>>;

const NS: &str = "sandboxes";

/// A backend over the mock, and a real repository to make sessions from (url, sha).
fn backend() -> (KubeSandbox, ApiHandle, Repo) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, NS);
    let dir = tempfile::tempdir().unwrap();
    let (url, sha) = super::repo::python_project(dir.path());
    let mut config = KubeConfig::new(NS, "http://10.96.0.50:3128");
    config.ready_timeout = Duration::from_secs(30);
    config.scratch_dir = dir.path().to_owned();
    (
        KubeSandbox::new(client, config),
        handle,
        Repo {
            _dir: dir,
            url,
            sha,
        },
    )
}

struct Repo {
    _dir: tempfile::TempDir,
    url: String,
    sha: String,
}

impl Repo {
    fn create(
        &self,
        backend: &KubeSandbox,
        image: &'static str,
    ) -> tokio::task::JoinHandle<Result<cap_sandbox::SessionInfo, Error>> {
        let (backend, url, sha) = (backend.clone(), self.url.clone(), self.sha.clone());
        tokio::spawn(async move { backend.create_session(&url, &sha, image).await })
    }
}

/// The next request: method, path, JSON body (null when empty), and its responder.
async fn next(handle: &mut ApiHandle) -> (Method, String, Value, SendResponse<Response<Body>>) {
    let (method, path, _, body, send) = next_with_query(handle).await;
    (method, path, body, send)
}

/// The next request with its query and headers.
async fn next_with_query(
    handle: &mut ApiHandle,
) -> (
    Method,
    String,
    (String, http::HeaderMap),
    Value,
    SendResponse<Response<Body>>,
) {
    let (request, send) = handle
        .next_request()
        .await
        .expect("the backend sent nothing");
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = (
        request.uri().query().unwrap_or_default().to_owned(),
        request.headers().clone(),
    );
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (method, path, query, body, send)
}

fn reply(send: SendResponse<Response<Body>>, code: StatusCode, body: &Value) {
    send.send_response(
        Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

fn failure(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": format!("{reason} (mock)"), "reason": reason, "code": code})
}

fn with_phase(mut pod: Value, phase: &str) -> Value {
    pod["status"] = json!({"phase": phase});
    pod
}

const PODS: &str = "/api/v1/namespaces/sandboxes/pods";
const POLICIES: &str = "/apis/networking.k8s.io/v1/namespaces/sandboxes/networkpolicies";

#[tokio::test]
async fn a_session_is_a_fenced_gvisor_pod_and_a_refused_unpack_deletes_everything() {
    let (backend, mut api, repo) = backend();
    let creating = repo.create(&backend, "coding-assistant/python:3.12");

    // The fence comes first.
    let (method, path, policy, send) = next(&mut api).await;
    assert_eq!((method, path.as_str()), (Method::POST, POLICIES));
    let name = policy["metadata"]["name"].as_str().unwrap().to_owned();
    let session = policy["metadata"]["labels"]["cap.dev/sandbox-session"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(name, format!("cap-sandbox-{session}"));
    assert_eq!(
        policy["spec"],
        json!({
            "podSelector": {"matchLabels": {"cap.dev/sandbox-session": session}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": [{
                "to": [{
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NS}},
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "cap-egress-proxy"}}
                }],
                "ports": [{"port": 3128, "protocol": "TCP"}]
            }]
        })
    );
    reply(send, StatusCode::CREATED, &policy);

    // Then the pod, checked field by field.
    let (method, path, pod, send) = next(&mut api).await;
    assert_eq!((method, path.as_str()), (Method::POST, PODS));
    let spec = &pod["spec"];
    assert_eq!(pod["metadata"]["name"], json!(name));
    assert_eq!(spec["runtimeClassName"], json!("gvisor"));
    assert_eq!(spec["restartPolicy"], json!("Never"));
    assert_eq!(spec["activeDeadlineSeconds"], json!(7200));
    assert_eq!(spec["automountServiceAccountToken"], json!(false));
    assert_eq!(spec["enableServiceLinks"], json!(false));
    assert_eq!(
        spec["securityContext"],
        json!({"runAsNonRoot": true, "runAsUser": 65534, "runAsGroup": 65534, "fsGroup": 65534,
               "seccompProfile": {"type": "RuntimeDefault"}})
    );
    let container = &spec["containers"][0];
    assert_eq!(container["image"], json!("coding-assistant/python:3.12"));
    assert_eq!(
        container["securityContext"],
        json!({"allowPrivilegeEscalation": false, "privileged": false,
               "readOnlyRootFilesystem": true, "runAsNonRoot": true, "runAsUser": 65534,
               "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}})
    );
    assert_eq!(
        container["resources"]["limits"],
        json!({"cpu": "2000m", "memory": "4294967296", "ephemeral-storage": "10737418240"})
    );
    assert_eq!(
        container["env"][1],
        json!({"name": "HTTPS_PROXY", "value": "http://10.96.0.50:3128"})
    );
    assert_eq!(
        spec["volumes"][0]["emptyDir"]["sizeLimit"],
        json!("10737418240")
    );
    reply(send, StatusCode::CREATED, &pod);

    // Readiness: pending, then running.
    let (method, path, _, send) = next(&mut api).await;
    assert_eq!((method, path), (Method::GET, format!("{PODS}/{name}")));
    reply(send, StatusCode::OK, &with_phase(pod.clone(), "Pending"));
    let (method, _, _, send) = next(&mut api).await;
    assert_eq!(method, Method::GET);
    reply(send, StatusCode::OK, &with_phase(pod.clone(), "Running"));

    // The tree goes in through an exec of `tar -x` in the sandbox container, stdin open: a
    // WebSocket upgrade (which this mock cannot complete; the fake API server in `exec.rs`
    // does). Refused here, it ends the session and everything made is deleted.
    let (method, path, (query, headers), _, send) = next_with_query(&mut api).await;
    assert_eq!((method, path), (Method::GET, format!("{PODS}/{name}/exec")));
    assert_eq!(
        query,
        "&stdin=true&stdout=true&stderr=true&container=sandbox\
         &command=tar&command=-x&command=-m&command=-f&command=-&command=-C&command=%2Fworkspace"
    );
    assert_eq!(headers["upgrade"], "websocket");
    reply(send, StatusCode::FORBIDDEN, &failure(403, "Forbidden"));
    for path in [PODS, POLICIES] {
        let (method, got, _, send) = next(&mut api).await;
        assert_eq!((method, got), (Method::DELETE, format!("{path}/{name}")));
        reply(
            send,
            StatusCode::OK,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
        );
    }
    let error = creating.await.unwrap().unwrap_err();
    assert!(
        matches!(
            error,
            Error::Api {
                operation: "exec",
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(session.len(), 36);
}

#[tokio::test]
async fn a_refused_pod_is_reported_and_its_fence_deleted() {
    let (backend, mut api, repo) = backend();
    let creating = repo.create(&backend, "coding-assistant/node:22");
    let (_, _, policy, send) = next(&mut api).await;
    let name = policy["metadata"]["name"].as_str().unwrap().to_owned();
    reply(send, StatusCode::CREATED, &policy);
    let (method, _, _, send) = next(&mut api).await;
    assert_eq!(method, Method::POST);
    reply(send, StatusCode::FORBIDDEN, &failure(403, "Forbidden"));
    // Cleanup: the pod (never made) and the policy.
    let (method, path, _, send) = next(&mut api).await;
    assert_eq!((method, path), (Method::DELETE, format!("{PODS}/{name}")));
    reply(send, StatusCode::NOT_FOUND, &failure(404, "NotFound"));
    let (method, path, _, send) = next(&mut api).await;
    assert_eq!(
        (method, path),
        (Method::DELETE, format!("{POLICIES}/{name}"))
    );
    reply(
        send,
        StatusCode::OK,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
    );
    let error = creating.await.unwrap().unwrap_err();
    assert!(
        matches!(
            error,
            Error::Api {
                operation: "create pod",
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn a_pod_that_cannot_pull_its_image_fails_fast_with_the_cause() {
    let (backend, mut api, repo) = backend();
    let creating = repo.create(&backend, "coding-assistant/go:0");
    let (_, _, policy, send) = next(&mut api).await;
    let name = policy["metadata"]["name"].as_str().unwrap().to_owned();
    reply(send, StatusCode::CREATED, &policy);
    let (_, _, pod, send) = next(&mut api).await;
    reply(send, StatusCode::CREATED, &pod);
    let (_, _, _, send) = next(&mut api).await;
    let mut pulling = pod.clone();
    pulling["status"] = json!({"phase": "Pending", "containerStatuses": [{
        "name": "sandbox", "image": "coding-assistant/go:0", "imageID": "", "ready": false,
        "restartCount": 0,
        "state": {"waiting": {"reason": "ErrImagePull", "message": "manifest unknown"}}}]});
    reply(send, StatusCode::OK, &pulling);
    for (kind, path) in [("pod", PODS), ("policy", POLICIES)] {
        let (method, got, _, send) = next(&mut api).await;
        assert_eq!(
            (method, got),
            (Method::DELETE, format!("{path}/{name}")),
            "{kind}"
        );
        reply(
            send,
            StatusCode::OK,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
        );
    }
    let error = creating.await.unwrap().unwrap_err();
    assert!(
        matches!(&error, Error::NotReady { reason, .. } if reason == "ErrImagePull: manifest unknown"),
        "{error}"
    );
}

#[tokio::test]
async fn bad_session_ids_never_reach_the_api() {
    let (backend, _api, _repo) = backend();
    let error = backend
        .destroy_session("../../kube-system")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidSessionId(_)), "{error}");
    let error = backend.read_file("not-a-uuid", "a.txt").await.unwrap_err();
    assert!(matches!(error, Error::InvalidSessionId(_)), "{error}");
    let id = uuid::Uuid::new_v4();
    assert_eq!(object_name(id), format!("cap-sandbox-{id}"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_readiness_probe_is_bounded_and_names_the_cause() {
    let (backend, mut api, _repo) = backend();
    // An API server that takes the request and never answers.
    let probing = tokio::spawn({
        let backend = backend.clone();
        async move { backend.probe().await }
    });
    let (method, path, _, _pending) = next(&mut api).await;
    assert_eq!((method, path.as_str()), (Method::GET, PODS));
    let error = probing.await.unwrap().unwrap_err();
    assert!(
        matches!(error, Error::NoAnswer { waited } if waited == cap_sandbox_kube::PROBE_TIMEOUT),
        "{error}"
    );

    // One that refuses: the API's own reason is in the error chain.
    let probing = tokio::spawn({
        let backend = backend.clone();
        async move { backend.probe().await }
    });
    let (_, _, _, send) = next(&mut api).await;
    reply(send, StatusCode::FORBIDDEN, &failure(403, "Forbidden"));
    let error = probing.await.unwrap().unwrap_err();
    assert!(
        matches!(
            error,
            Error::Api {
                operation: "list pods",
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error.chain().contains("Forbidden (mock)"),
        "{}",
        error.chain()
    );

    // One that answers: ready.
    let probing = tokio::spawn({
        let backend = backend.clone();
        async move { backend.probe().await }
    });
    let (_, _, _, send) = next(&mut api).await;
    reply(
        send,
        StatusCode::OK,
        &json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": []}),
    );
    probing.await.unwrap().unwrap();
}
