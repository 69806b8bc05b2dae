//! The embedded dashboard: served with the right types, self-contained.

use axum::http::StatusCode;

use super::support::{get, offline_state, send};

#[tokio::test]
async fn dashboard_and_assets_are_served() {
    let (_dir, state) = offline_state().await;

    let page = send(&state, get("/")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.content_type, "text/html; charset=utf-8");
    assert!(
        page.text
            .contains(r#"<script src="/assets/app.js" defer></script>"#)
    );
    assert!(page.text.contains(r#"href="/assets/style.css""#));

    let script = send(&state, get("/assets/app.js")).await;
    assert_eq!(script.status, StatusCode::OK);
    assert_eq!(script.content_type, "text/javascript; charset=utf-8");
    for needle in [
        "/api/v1/tasks",
        "/api/v1/pull-requests",
        "/ws/tasks/",
        "request_changes",
        "reject",
        "approve",
    ] {
        assert!(script.text.contains(needle), "app.js lacks {needle}");
    }

    let style = send(&state, get("/assets/style.css")).await;
    assert_eq!(style.status, StatusCode::OK);
    assert_eq!(style.content_type, "text/css; charset=utf-8");

    // No external URLs: the dashboard works offline and under the CSP below.
    for asset in [&page.text, &script.text, &style.text] {
        assert!(
            !asset.contains("http://") && !asset.contains("https://") && !asset.contains("//cdn")
        );
    }
}

#[tokio::test]
async fn dashboard_has_a_strict_content_security_policy() {
    let (_dir, state) = offline_state().await;
    let response = tower::ServiceExt::oneshot(cap_gateway::app(state.clone()), get("/"))
        .await
        .unwrap();
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        csp.contains("connect-src 'self' ws://gateway.test:8080 wss://gateway.test:8080"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");

    // A hostile Host header does not reach the policy.
    let mut request = get("/");
    request
        .headers_mut()
        .insert("host", "evil; script-src *".parse().unwrap());
    let response = tower::ServiceExt::oneshot(cap_gateway::app(state), request)
        .await
        .unwrap();
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(!csp.contains("evil"), "{csp}");
}
