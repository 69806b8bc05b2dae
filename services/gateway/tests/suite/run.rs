//! The whole service as the binary runs it: flags, both listeners, address files, health.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use cap_gateway::Config;
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::support::Fleet;

fn config(fleet: &Fleet, supervisor_url: &str) -> Config {
    let dir = fleet.dir.path();
    Config::try_parse_from([
        "cap-gateway".to_owned(),
        "--listen=127.0.0.1:0".to_owned(),
        format!("--addr-file={}", dir.join("gateway.addr").display()),
        format!("--pki-dir={}", dir.join("pki").display()),
        format!("--data-dir={}", dir.join("data").display()),
        "--http-listen=127.0.0.1:0".to_owned(),
        format!(
            "--http-addr-file={}",
            dir.join("gateway-http.addr").display()
        ),
        format!("--supervisor-url={supervisor_url}"),
        format!("--github-url={}", fleet.github_url),
    ])
    .unwrap()
}

/// Waits for a launcher-style address file (written atomically once listening).
async fn addr_file(path: &Path) -> SocketAddr {
    let wait = async {
        loop {
            if let Ok(text) = std::fs::read_to_string(path) {
                return text.parse().unwrap();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .expect("the gateway starts")
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    http_request(addr, "GET", path, &[], "").await
}

async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        request.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn serves_http_and_grpc_health() {
    let fleet = Fleet::start().await;
    let config = config(&fleet, &fleet.supervisor_url);
    let server = tokio::spawn(cap_gateway::run(config));

    // The gRPC address file is written last: once it exists, both listeners are up.
    let grpc = addr_file(&fleet.dir.path().join("gateway.addr")).await;
    let http = addr_file(&fleet.dir.path().join("gateway-http.addr")).await;

    let response = http_get(http, "/healthz").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with(r#"{"status":"ok"}"#), "{response}");

    // Nothing but the dashboard and health without signing in; the first Admin's one-time
    // password, written at first start, signs in.
    let response = http_get(http, "/api/v1/tasks").await;
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert!(response.contains("sign in first"), "{response}");
    let password_file = fleet.dir.path().join("data/initial-admin-password");
    let password = std::fs::read_to_string(&password_file).unwrap();
    let login = serde_json::json!({"username": "admin", "password": password.trim()}).to_string();
    let response = http_request(http, "POST", "/api/v1/auth/login", &[], &login).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("set-cookie: cap_session=") && response.contains("HttpOnly"),
        "{response}"
    );
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    let me: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(me["role"], "admin");
    let bearer = format!("Bearer {}", me["token"].as_str().unwrap());
    let response = http_request(
        http,
        "GET",
        "/api/v1/tasks",
        &[("authorization", &bearer)],
        "",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with(r#"{"tasks":[]}"#), "{response}");

    let tls = fleet.pki.service("cli").unwrap();
    let channel = tls.channel(&cap_runtime::https_url(grpc)).unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", "gateway"] {
        let answer = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving, "{service:?}");
    }
    server.abort();
}

#[tokio::test]
async fn refuses_a_plaintext_upstream_url() {
    let fleet = Fleet::start().await;
    let config = config(&fleet, "http://127.0.0.1:1");
    let error = cap_gateway::run(config).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"--supervisor-url "http://127.0.0.1:1" is not an https:// URL"#
    );
}

#[test]
fn upstream_urls_are_required_flags() {
    let error =
        Config::try_parse_from(["cap-gateway", "--github-url=https://127.0.0.1:1"]).unwrap_err();
    assert!(error.to_string().contains("--supervisor-url"), "{error}");
}
