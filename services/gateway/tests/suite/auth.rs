//! Who may do what: every route for each role, credentials that fail and why, cookies with
//! CSRF, the four-eyes rule, the allow-list, the daily pull-request limit and rate limits.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cap_identity::{AllowedRepository, DEFAULT_ORGANISATION, Role};
use serde_json::json;

use super::pull_requests::pr;
use super::support::*;
use super::tasks::{TASK, running_task};

/// Every route of the API with the least role it needs (`None`: public).
const ROUTES: &[(&str, &str, Option<Role>)] = &[
    ("GET", "/", None),
    ("GET", "/healthz", None),
    ("GET", "/api/v1/auth/me", Some(Role::Viewer)),
    ("GET", "/api/v1/tasks", Some(Role::Viewer)),
    ("GET", "/api/v1/tasks/{task}", Some(Role::Viewer)),
    ("GET", "/api/v1/tasks/{task}/events", Some(Role::Viewer)),
    ("GET", "/api/v1/pull-requests", Some(Role::Viewer)),
    ("GET", "/api/v1/pull-requests/pr-1", Some(Role::Viewer)),
    ("GET", "/ws/tasks/{task}/stream", Some(Role::Viewer)),
    ("POST", "/api/v1/tasks", Some(Role::Developer)),
    (
        "POST",
        "/api/v1/tasks/{task}/interrupt",
        Some(Role::Developer),
    ),
    ("POST", "/api/v1/tasks/{task}/resume", Some(Role::Developer)),
    (
        "POST",
        "/api/v1/tasks/{task}/constraints",
        Some(Role::Developer),
    ),
    ("POST", "/api/v1/tasks/{task}/abort", Some(Role::Developer)),
    (
        "POST",
        "/api/v1/tasks/{task}/approve",
        Some(Role::Developer),
    ),
    ("POST", "/api/v1/tasks/{task}/reject", Some(Role::Developer)),
    (
        "POST",
        "/api/v1/pull-requests/pr-1/review",
        Some(Role::Developer),
    ),
    (
        "POST",
        "/api/v1/pull-requests/pr-1/merge",
        Some(Role::Developer),
    ),
    ("GET", "/api/v1/users", Some(Role::Admin)),
    ("POST", "/api/v1/users", Some(Role::Admin)),
    ("PATCH", "/api/v1/users/someone", Some(Role::Admin)),
    ("GET", "/api/v1/tokens", Some(Role::Admin)),
    ("POST", "/api/v1/tokens", Some(Role::Admin)),
    ("DELETE", "/api/v1/tokens/some-id", Some(Role::Admin)),
    ("GET", "/api/v1/allow-list", Some(Role::Admin)),
    ("POST", "/api/v1/allow-list", Some(Role::Admin)),
    ("DELETE", "/api/v1/allow-list", Some(Role::Admin)),
    ("GET", "/api/v1/audit", Some(Role::Admin)),
    ("GET", "/api/v1/quarantine", Some(Role::Admin)),
    (
        "GET",
        "/api/v1/quarantine/{task}/files?path=app.py",
        Some(Role::Admin),
    ),
];

fn request(method: &str, path: &str, credential: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path.replace("{task}", TASK))
        .header("host", "gateway.test:8080");
    if let Some(token) = credential {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    if method != "GET" {
        builder = builder.header("content-type", "application/json");
    }
    builder
        .body(Body::from(if method == "GET" { "" } else { "{}" }))
        .unwrap()
}

#[tokio::test]
async fn each_role_reaches_exactly_the_routes_it_may() {
    let fleet = Fleet::start().await;
    let state = fleet.state().await;
    fleet.tasks.add_task(running_task(TASK), vec![]);
    fleet.github.add(pr("pr-1", 1, "acme/widgets"));
    let tokens = [
        (Role::Viewer, token_of(&state, "vera", Role::Viewer).await),
        (
            Role::Developer,
            token_of(&state, "dev", Role::Developer).await,
        ),
        (Role::Admin, admin_token(&state).await),
    ];
    for (method, path, required) in ROUTES {
        let anonymous = send_as_is(&state, request(method, path, None)).await;
        match required {
            None => assert!(
                anonymous.status.is_success(),
                "{method} {path}: {}",
                anonymous.text
            ),
            Some(_) => {
                let (code, _) = anonymous.error(StatusCode::UNAUTHORIZED);
                assert_eq!(code, "unauthenticated", "{method} {path}");
                assert!(
                    anonymous.text.contains("sign in first"),
                    "{}",
                    anonymous.text
                );
            }
        }
        let Some(required) = required else { continue };
        for (role, token) in &tokens {
            let answer = send_as_is(&state, request(method, path, Some(token))).await;
            if role.allows(*required) {
                // Past the guard: whatever the route answers, it is not a refusal of rights.
                assert!(
                    answer.status != StatusCode::UNAUTHORIZED
                        && answer.status != StatusCode::FORBIDDEN,
                    "{role} {method} {path}: {}",
                    answer.text
                );
            } else {
                answer.error(StatusCode::FORBIDDEN);
                let message = answer.json["error"]["message"].as_str().unwrap();
                assert!(
                    message.contains(&format!("needs the {required} role")),
                    "{message}"
                );
            }
        }
    }
}

#[tokio::test]
async fn bad_credentials_are_refused_saying_why() {
    let fleet = Fleet::start().await;
    let state = fleet.state().await;
    let keys_dir = fleet.dir.path().join("identity");
    let cases = [
        ("garbage".to_owned(), "malformed"),
        ("cap_unknown".to_owned(), "not known"),
        // Signed by another installation's key.
        (
            foreign_session(&tempfile::tempdir().unwrap().path().join("k")),
            "key this gateway does not have",
        ),
        // Expired yesterday, with this gateway's key.
        (expired_session(&keys_dir), "expired"),
        // This gateway's key, but the claims altered after signing.
        (tampered_session(&state).await, "signature does not match"),
    ];
    for (token, why) in cases {
        let answer = send_as_is(&state, request("GET", "/api/v1/tasks", Some(&token))).await;
        answer.error(StatusCode::UNAUTHORIZED);
        assert!(answer.text.contains(why), "{why}: {}", answer.text);
    }

    // A revoked API token stops at once.
    let token = token_of(&state, "ci", Role::Developer).await;
    let store = state.authenticator().store();
    let id = store.tokens(Some("ci")).await.unwrap()[0].id.clone();
    store.revoke_token(&id).await.unwrap();
    let answer = send_as_is(&state, request("GET", "/api/v1/tasks", Some(&token))).await;
    answer.error(StatusCode::UNAUTHORIZED);
    assert!(answer.text.contains("revoked"), "{}", answer.text);
}

fn foreign_session(dir: &std::path::Path) -> String {
    let keys = cap_identity::keys::SessionKeys::load_or_create(dir).unwrap();
    let now = cap_storage::now_ms() / 1000;
    keys.sign(&cap_identity::keys::SessionKeys::claims(TESTER, Role::Admin, "s", now).unwrap())
        .unwrap()
}

fn expired_session(dir: &std::path::Path) -> String {
    let keys = cap_identity::keys::SessionKeys::load_or_create(dir).unwrap();
    let yesterday = cap_storage::now_ms() / 1000 - 2 * 86_400;
    keys.sign(
        &cap_identity::keys::SessionKeys::claims(TESTER, Role::Admin, "s", yesterday).unwrap(),
    )
    .unwrap()
}

async fn tampered_session(state: &cap_gateway::AppState) -> String {
    use base64::Engine as _;
    state
        .authenticator()
        .store()
        .set_password(
            TESTER,
            "the tester's password",
            state.authenticator().key_dir(),
        )
        .await
        .unwrap();
    let token = state
        .authenticator()
        .sign_in(TESTER, "the tester's password")
        .await
        .unwrap()
        .token;
    let parts: Vec<&str> = token.split('.').collect();
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: serde_json::Value =
        serde_json::from_slice(&engine.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = json!("someone-else");
    let forged = engine.encode(serde_json::to_vec(&claims).unwrap());
    format!("{}.{forged}.{}", parts[0], parts[2])
}

#[tokio::test]
async fn the_dashboard_cookie_needs_the_csrf_token_for_changes_and_ends_at_sign_out() {
    let fleet = Fleet::start().await;
    let state = fleet.state().await;
    fleet.tasks.add_task(running_task(TASK), vec![]);
    state
        .authenticator()
        .store()
        .add_user(
            "dana",
            Role::Developer,
            Some("dana's long password"),
            DEFAULT_ORGANISATION,
        )
        .await
        .unwrap();

    let wrong = post_json(
        "/api/v1/auth/login",
        r#"{"username": "dana", "password": "not it at all"}"#,
    );
    let answer = send_as_is(&state, wrong).await;
    answer.error(StatusCode::UNAUTHORIZED);
    assert!(answer.text.contains("wrong user name or password"));

    let login = post_json(
        "/api/v1/auth/login",
        r#"{"username": "dana", "password": "dana's long password"}"#,
    );
    let response = tower::ServiceExt::oneshot(cap_gateway::app(state.clone()), login)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let with_cookie = |mut request: Request<Body>| {
        request
            .headers_mut()
            .insert("cookie", session.parse().unwrap());
        request
    };

    let me = send(&state, with_cookie(get("/api/v1/auth/me"))).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.json["user"], "dana");
    assert_eq!(me.json["role"], "developer");
    let csrf = me.json["csrf_token"].as_str().unwrap().to_owned();

    let interrupt = format!("/api/v1/tasks/{TASK}/interrupt");
    let answer = send(&state, with_cookie(post_raw(&interrupt, None, ""))).await;
    answer.error(StatusCode::FORBIDDEN);
    assert!(answer.text.contains("x-csrf-token"), "{}", answer.text);
    let mut request = with_cookie(post_raw(&interrupt, None, ""));
    request
        .headers_mut()
        .insert("x-csrf-token", csrf.parse().unwrap());
    let answer = send(&state, request).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);

    // A WebSocket opened by another site's page with the cookie is refused.
    let mut request = with_cookie(get(&format!("/ws/tasks/{TASK}/stream")));
    request
        .headers_mut()
        .insert("upgrade", "websocket".parse().unwrap());
    request
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    let answer = send(&state, request).await;
    answer.error(StatusCode::FORBIDDEN);
    assert!(answer.text.contains("own origin"), "{}", answer.text);

    let mut logout = with_cookie(post_raw("/api/v1/auth/logout", None, ""));
    logout
        .headers_mut()
        .insert("x-csrf-token", csrf.parse().unwrap());
    let response = tower::ServiceExt::oneshot(cap_gateway::app(state.clone()), logout)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let answer = send(&state, with_cookie(get("/api/v1/auth/me"))).await;
    answer.error(StatusCode::UNAUTHORIZED);
    assert!(answer.text.contains("signed out"), "{}", answer.text);
}

#[tokio::test]
async fn the_author_of_a_task_cannot_approve_its_change_unless_the_repository_allows_it() {
    let fleet = Fleet::start().await;
    let state = fleet.state().await;
    let alice = token_of(&state, "alice", Role::Developer).await;
    let bob = token_of(&state, "bob", Role::Developer).await;

    let submit = json!({"repository_id": "acme/widgets", "prompt": "Add a feature"}).to_string();
    let answer = send(&state, bearer(post_json("/api/v1/tasks", &submit), &alice)).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);
    let task_id = answer.json["task_id"].as_str().unwrap().to_owned();
    // The supervisor is told who asked.
    assert_eq!(fleet.tasks.actors.lock().unwrap().last().unwrap(), "alice");
    let mut opened = pr("pr-1", 1, "acme/widgets");
    opened.task_id = task_id.clone();
    fleet.github.add(opened);

    let approve = r#"{"action": "approve"}"#;
    let answer = send(
        &state,
        bearer(
            post_json("/api/v1/pull-requests/pr-1/review", approve),
            &alice,
        ),
    )
    .await;
    answer.error(StatusCode::FORBIDDEN);
    assert!(answer.text.contains("four-eyes"), "{}", answer.text);
    let answer = send(
        &state,
        bearer(
            post_raw("/api/v1/pull-requests/pr-1/merge", None, ""),
            &alice,
        ),
    )
    .await;
    answer.error(StatusCode::FORBIDDEN);
    // The same for a protected change the task paused at.
    let answer = send(
        &state,
        bearer(
            post_raw(&format!("/api/v1/tasks/{task_id}/approve"), None, ""),
            &alice,
        ),
    )
    .await;
    answer.error(StatusCode::FORBIDDEN);

    // Nobody reviews in another's name.
    let as_bob = r#"{"action": "approve", "reviewer": "bob"}"#;
    let answer = send(
        &state,
        bearer(
            post_json("/api/v1/pull-requests/pr-1/review", as_bob),
            &alice,
        ),
    )
    .await;
    answer.error(StatusCode::BAD_REQUEST);

    let answer = send(
        &state,
        bearer(
            post_json("/api/v1/pull-requests/pr-1/review", approve),
            &bob,
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["reviews"][0]["reviewer"], "bob");

    // A repository whose policy allows self-approval.
    state
        .authenticator()
        .store()
        .allow_repository(&AllowedRepository {
            organisation: DEFAULT_ORGANISATION.into(),
            pattern: "acme/*".into(),
            allow_self_approval: true,
        })
        .await
        .unwrap();
    let answer = send(
        &state,
        bearer(
            post_raw("/api/v1/pull-requests/pr-1/merge", None, ""),
            &alice,
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
}

#[tokio::test]
async fn repositories_off_the_allow_list_are_refused() {
    let fleet = Fleet::start().await;
    let state = fleet.state().await;
    let store = state.authenticator().store();
    store
        .disallow_repository(DEFAULT_ORGANISATION, "*")
        .await
        .unwrap();
    store
        .allow_repository(&AllowedRepository {
            organisation: DEFAULT_ORGANISATION.into(),
            pattern: "team/*".into(),
            allow_self_approval: false,
        })
        .await
        .unwrap();
    let dev = token_of(&state, "dev", Role::Developer).await;
    let submit = |repo: &str| json!({"repository_id": repo, "prompt": "Do it"}).to_string();
    let answer = send(
        &state,
        bearer(post_json("/api/v1/tasks", &submit("other/app")), &dev),
    )
    .await;
    answer.error(StatusCode::FORBIDDEN);
    assert!(
        answer.text.contains("not on the allow-list"),
        "{}",
        answer.text
    );
    let answer = send(
        &state,
        bearer(post_json("/api/v1/tasks", &submit("team/app")), &dev),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);
    assert_eq!(fleet.tasks.submitted().len(), 1);
}

#[tokio::test]
async fn the_daily_pull_request_limit_refuses_with_429_and_says_when() {
    let fleet = Fleet::start().await;
    let state = fleet.state().await;
    state
        .authenticator()
        .store()
        .set_daily_pull_requests(DEFAULT_ORGANISATION, 2)
        .await
        .unwrap();
    let dev = token_of(&state, "dev", Role::Developer).await;
    let submit = json!({"repository_id": "acme/widgets", "prompt": "Do it"}).to_string();
    for _ in 0..2 {
        let answer = send(&state, bearer(post_json("/api/v1/tasks", &submit), &dev)).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);
    }
    let request = bearer(post_json("/api/v1/tasks", &submit), &dev);
    let response = tower::ServiceExt::oneshot(cap_gateway::app(state.clone()), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        retry_after > 86_000 && retry_after <= 86_401,
        "{retry_after}"
    );
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("limit of 2 pull requests a day") && text.contains("next is allowed at"),
        "{text}"
    );
    // Refused submissions never reached the supervisor.
    assert_eq!(fleet.tasks.submitted().len(), 2);
}

#[tokio::test]
async fn each_user_has_a_request_rate_limit() {
    let fleet = Fleet::start().await;
    let state = fleet.state().await.with_limits(cap_gateway::Limits::new(
        std::num::NonZeroU32::new(3).unwrap(),
    ));
    let dev = token_of(&state, "dev", Role::Developer).await;
    let other = token_of(&state, "other", Role::Viewer).await;
    for _ in 0..3 {
        let answer = send(&state, bearer(get("/api/v1/tasks"), &dev)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    }
    let answer = send(&state, bearer(get("/api/v1/tasks"), &dev)).await;
    answer.error(StatusCode::TOO_MANY_REQUESTS);
    assert!(answer.text.contains("too many requests"), "{}", answer.text);
    // Another user is not slowed by the first.
    let answer = send(&state, bearer(get("/api/v1/tasks"), &other)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
}

#[tokio::test]
async fn an_admin_manages_users_and_tokens_through_the_api() {
    let fleet = Fleet::start().await;
    let state = fleet.state().await;
    let answer = send(
        &state,
        post_json("/api/v1/users", r#"{"name": "carol", "role": "viewer"}"#),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let password = answer.json["password"].as_str().unwrap().to_owned();
    assert!(
        !answer.text.contains("argon2"),
        "no hash leaves: {}",
        answer.text
    );
    let answer = send(
        &state,
        post_json("/api/v1/users", r#"{"name": "carol", "role": "viewer"}"#),
    )
    .await;
    answer.error(StatusCode::CONFLICT);

    let body = json!({"username": "carol", "password": password}).to_string();
    let answer = send_as_is(&state, post_json("/api/v1/auth/login", &body)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["role"], "viewer");

    let too_much = r#"{"user": "carol", "role": "developer", "expires": "30d"}"#;
    let answer = send(&state, post_json("/api/v1/tokens", too_much)).await;
    answer.error(StatusCode::BAD_REQUEST);
    let answer = send(
        &state,
        post_json(
            "/api/v1/tokens",
            r#"{"user": "carol", "role": "viewer", "expires": "1d", "label": "grafana"}"#,
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let token = answer.json["token"].as_str().unwrap().to_owned();
    let id = answer.json["id"].as_str().unwrap().to_owned();
    let answer = send(&state, bearer(get("/api/v1/tasks"), &token)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let answer = send(&state, get("/api/v1/tokens?user=carol")).await;
    assert!(!answer.text.contains(&token), "secrets are never listed");

    let revoke = Request::delete(format!("/api/v1/tokens/{id}"))
        .body(Body::empty())
        .unwrap();
    let answer = send(&state, revoke).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let answer = send(&state, bearer(get("/api/v1/tasks"), &token)).await;
    answer.error(StatusCode::UNAUTHORIZED);

    // Disabling signs the user out at once; an Admin cannot lock themselves out.
    let disable = Request::patch("/api/v1/users/carol")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"disabled": true}"#))
        .unwrap();
    assert_eq!(send(&state, disable).await.status, StatusCode::OK);
    let answer = send_as_is(&state, post_json("/api/v1/auth/login", &body)).await;
    answer.error(StatusCode::UNAUTHORIZED);
    let demote_self = Request::patch(format!("/api/v1/users/{TESTER}"))
        .header("content-type", "application/json")
        .body(Body::from(r#"{"role": "viewer"}"#))
        .unwrap();
    send(&state, demote_self).await.error(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_admin_reads_the_audit_log_and_quarantined_workspaces() {
    let fleet = Fleet::start().await;
    let state = fleet.state().await;
    let mut quarantined = running_task(TASK);
    quarantined.status = "failed".to_owned();
    quarantined.error_message = "secrets found; the workspace is quarantined".to_owned();
    fleet.tasks.add_task(quarantined, vec![]);
    let admin = admin_token(&state).await;
    let get = |path: &str| request("GET", path, Some(&admin));

    let answer = send_as_is(&state, get(&format!("/api/v1/audit?task_id={TASK}"))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["records"][0]["action"], "task.submitted");
    assert_eq!(answer.json["records"][0]["actor"], "someone-else");
    assert_eq!(answer.json["records"][0]["details"]["prompt"], "p");
    let answer = send_as_is(&state, get("/api/v1/audit?task_id=nope")).await;
    assert_eq!(answer.error(StatusCode::BAD_REQUEST).0, "invalid_task_id");

    let answer = send_as_is(&state, get("/api/v1/quarantine")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["tasks"][0]["task"]["task_id"], TASK);
    assert_eq!(answer.json["tasks"][0]["files"][0], "app.py");

    let path = format!("/api/v1/quarantine/{TASK}/files?path=app.py");
    let answer = send_as_is(&state, get(&path)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    // The supervisor is told which Admin reads (it audits the read).
    assert_eq!(answer.json["content"], "tester read app.py");
    let answer = send_as_is(&state, get(&format!("/api/v1/quarantine/{TASK}/files"))).await;
    let (code, message) = answer.error(StatusCode::BAD_REQUEST);
    assert_eq!(code, "missing_field", "{message:?}");
}

#[tokio::test]
async fn sign_ins_and_admin_changes_are_in_the_audit_log() {
    let fleet = Fleet::start().await;
    let state = fleet.state().await;
    let admin = admin_token(&state).await;
    let post = |path: &str, body: serde_json::Value| {
        let mut request = request("POST", path, Some(&admin));
        *request.body_mut() = Body::from(body.to_string());
        request
    };
    let answer = send_as_is(
        &state,
        post(
            "/api/v1/users",
            json!({"name": "audrey", "role": "developer", "password": "correct horse battery"}),
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let answer = send_as_is(
        &state,
        post("/api/v1/allow-list", json!({"pattern": "acme/*"})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let mut login = request("POST", "/api/v1/auth/login", None);
    *login.body_mut() =
        Body::from(json!({"username": "audrey", "password": "correct horse battery"}).to_string());
    let answer = send_as_is(&state, login).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);

    let records = fleet.audit().await.records(None, 10).await.unwrap();
    let trail: Vec<String> = records
        .iter()
        .map(|record| format!("{} {} {}", record.actor, record.action, record.details_json))
        .collect();
    assert_eq!(trail.len(), 3, "{trail:#?}");
    assert!(
        trail[0].starts_with(&format!("{TESTER} user.added")),
        "{trail:#?}"
    );
    assert!(
        trail[0].contains("\"audrey\"") && !trail[0].contains("horse"),
        "{trail:#?}"
    );
    assert!(
        trail[1].starts_with(&format!("{TESTER} allow_list.added")),
        "{trail:#?}"
    );
    assert!(trail[1].contains("acme/*"), "{trail:#?}");
    assert!(trail[2].starts_with("audrey auth.signed_in"), "{trail:#?}");
}
