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

fn backend() -> (KubeSandbox, ApiHandle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, NS);
    let mut config = KubeConfig::new(NS, "http://10.96.0.50:3128");
    config.ready_timeout = Duration::from_secs(30);
    (KubeSandbox::new(client, config), handle)
}

/// The next request: method, path, JSON body (null when empty), and its responder.
async fn next(handle: &mut ApiHandle) -> (Method, String, Value, SendResponse<Response<Body>>) {
    let (request, send) = handle
        .next_request()
        .await
        .expect("the backend sent nothing");
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (method, path, body, send)
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
async fn a_session_is_a_fenced_gvisor_pod_and_destroy_deletes_everything() {
    let (backend, mut api) = backend();
    let creating = tokio::spawn({
        let backend = backend.clone();
        async move { backend.create_session("python:3.12-slim").await }
    });

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
    assert_eq!(container["image"], json!("python:3.12-slim"));
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
    let created = creating.await.unwrap().unwrap();
    assert_eq!(created.to_string(), session);

    let destroying = tokio::spawn({
        let backend = backend.clone();
        let session = session.clone();
        async move { backend.destroy_session(&session).await }
    });
    let (method, path, params, send) = next(&mut api).await;
    assert_eq!((method, path), (Method::DELETE, format!("{PODS}/{name}")));
    assert_eq!(params["gracePeriodSeconds"], json!(0));
    reply(send, StatusCode::OK, &pod);
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
    destroying.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_refused_pod_is_reported_and_its_fence_deleted() {
    let (backend, mut api) = backend();
    let creating = tokio::spawn({
        let backend = backend.clone();
        async move { backend.create_session("node:22").await }
    });
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
    let (backend, mut api) = backend();
    let creating = tokio::spawn({
        let backend = backend.clone();
        async move { backend.create_session("no-such-image:0").await }
    });
    let (_, _, policy, send) = next(&mut api).await;
    let name = policy["metadata"]["name"].as_str().unwrap().to_owned();
    reply(send, StatusCode::CREATED, &policy);
    let (_, _, pod, send) = next(&mut api).await;
    reply(send, StatusCode::CREATED, &pod);
    let (_, _, _, send) = next(&mut api).await;
    let mut pulling = pod.clone();
    pulling["status"] = json!({"phase": "Pending", "containerStatuses": [{
        "name": "sandbox", "image": "no-such-image:0", "imageID": "", "ready": false,
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
    let (backend, _api) = backend();
    let error = backend
        .destroy_session("../../kube-system")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidSessionId(_)), "{error}");
    let error = backend
        .exec("not-a-uuid", "true", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidSessionId(_)), "{error}");
    let id = uuid::Uuid::new_v4();
    let error = backend
        .exec(&id.to_string(), "  ", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidCommand(_)), "{error}");
    assert_eq!(object_name(id), format!("cap-sandbox-{id}"));
}
