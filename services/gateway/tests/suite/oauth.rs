//! Sign-in with GitHub against the loopback GitHub stand-in: the whole flow through its
//! redirects, every way the state can be wrong, a refused code, accounts linked by GitHub id,
//! GitHub push access required to submit, and OAuth switched off.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use cap_gateway::oauth::{GitHubOAuth, OAuthArgs, STATE_COOKIE};
use cap_gateway::{AppState, app};
use cap_identity::Role;
use serde_json::json;
use tower::ServiceExt;

use super::github_standin::{GitHubStandIn, percent_encode};
use super::support::*;

const HOST: &str = "gateway.test:8080";
const CALLBACK: &str = "http://gateway.test:8080/api/v1/auth/github/callback";
const OCTOCAT: i64 = 583_231;

/// A raw answer: status, headers and body text.
struct Raw {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Raw {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or(serde_json::Value::Null)
    }

    fn location(&self) -> String {
        self.headers
            .get(header::LOCATION)
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    /// The `Set-Cookie` values.
    fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|value| value.to_str().unwrap().to_owned())
            .collect()
    }

    /// The value the answer sets the cookie `name` to.
    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies().iter().find_map(|cookie| {
            let (pair, _) = cookie.split_once(';').unwrap_or((cookie, ""));
            let (key, value) = pair.split_once('=')?;
            (key == name).then(|| value.to_owned())
        })
    }

    /// Asserts an error envelope with `status` and `code` whose message contains `words`.
    #[track_caller]
    fn refused(&self, status: StatusCode, code: &str, words: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "{}", self.text);
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{message:?} lacks {words:?}");
    }
}

/// Every answer a test saw, to look for the client secret in.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn all(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

async fn call(state: &AppState, request: Request<Body>, seen: &Seen) -> Raw {
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    seen.0.lock().unwrap().push(format!("{headers:?}\n{text}"));
    Raw {
        status,
        headers,
        text,
    }
}

fn browser_get(path: &str, cookies: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::get(path).header("host", HOST);
    if !cookies.is_empty() {
        let header = cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        builder = builder.header("cookie", header);
    }
    builder.body(Body::empty()).unwrap()
}

/// The standard flags pointed at the stand-in.
fn oauth_args(standin: &GitHubStandIn) -> OAuthArgs {
    OAuthArgs {
        client_id: Some(standin.client_id.clone()),
        client_secret: Some(standin.client_secret.parse().unwrap()),
        client_secret_file: None,
        web_url: standin.url.clone(),
        api_url: standin.url.clone(),
        redirect_url: None,
        default_role: Role::Viewer,
        organisations: Vec::new(),
    }
}

async fn gateway(fleet: &Fleet, args: &OAuthArgs) -> AppState {
    let oauth = GitHubOAuth::from_args(args, fleet.dir.path())
        .unwrap()
        .unwrap();
    fleet.state().await.with_github_oauth(oauth)
}

/// A browser half-way through: GitHub has sent it back to the callback.
struct AtCallback {
    /// Path and query of the callback, as GitHub's redirect named it.
    callback: String,
    /// The state cookie the gateway set at the start.
    state_cookie: String,
}

/// Starts a sign-in and follows GitHub's authorize redirect back to the gateway.
async fn to_callback(state: &AppState, standin: &GitHubStandIn, seen: &Seen) -> AtCallback {
    let started = call(state, browser_get("/api/v1/auth/github/start", &[]), seen).await;
    assert_eq!(started.status, StatusCode::FOUND, "{}", started.text);
    let state_cookie = started.cookie(STATE_COOKIE).expect("a state cookie");
    let authorize = started.location();
    assert!(
        authorize.starts_with(&format!("{}/login/oauth/authorize?", standin.url)),
        "{authorize}"
    );
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let at_github = client.get(&authorize).send().await.unwrap();
    assert_eq!(at_github.status(), StatusCode::FOUND);
    let back = at_github.headers()[header::LOCATION].to_str().unwrap();
    let callback = back.strip_prefix("http://gateway.test:8080").unwrap();
    AtCallback {
        callback: callback.to_owned(),
        state_cookie,
    }
}

/// A signed-in browser: its session cookie and the CSRF value from `/me`.
struct Browser {
    session: String,
    csrf: String,
    me: serde_json::Value,
}

async fn finish(state: &AppState, at: &AtCallback, seen: &Seen) -> Browser {
    let done = call(
        state,
        browser_get(&at.callback, &[(STATE_COOKIE, &at.state_cookie)]),
        seen,
    )
    .await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.text);
    assert_eq!(done.location(), "/");
    let session = done.cookie("cap_session").expect("a session cookie");
    let cookies = done.cookies();
    let session_cookie = cookies
        .iter()
        .find(|c| c.starts_with("cap_session="))
        .unwrap();
    for attribute in ["Path=/;", "HttpOnly", "SameSite=Strict", "Max-Age=86400"] {
        assert!(session_cookie.contains(attribute), "{session_cookie}");
    }
    let cleared = cookies
        .iter()
        .find(|c| c.starts_with(STATE_COOKIE))
        .unwrap();
    assert!(
        cleared.contains("Max-Age=0"),
        "the state cookie is cleared: {cleared}"
    );
    let me = call(
        state,
        browser_get("/api/v1/auth/me", &[("cap_session", &session)]),
        seen,
    )
    .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    let me = me.json();
    Browser {
        session,
        csrf: me["csrf_token"].as_str().unwrap().to_owned(),
        me,
    }
}

async fn sign_in(state: &AppState, standin: &GitHubStandIn, seen: &Seen) -> Browser {
    let at = to_callback(state, standin, seen).await;
    finish(state, &at, seen).await
}

#[tokio::test]
async fn the_whole_flow_ends_signed_in_with_a_session_cookie() {
    let fleet = Fleet::start().await;
    let standin = GitHubStandIn::start().await;
    standin.account(OCTOCAT, "octocat", &[]);
    standin.sign_in_as(OCTOCAT);
    let state = gateway(&fleet, &oauth_args(&standin)).await;
    let seen = Seen::default();

    let started = call(&state, browser_get("/api/v1/auth/github/start", &[]), &seen).await;
    let state_cookie = started
        .cookies()
        .into_iter()
        .find(|cookie| cookie.starts_with(STATE_COOKIE))
        .unwrap();
    for attribute in [
        "HttpOnly",
        "SameSite=Lax",
        "Max-Age=600",
        "Path=/api/v1/auth/github",
    ] {
        assert!(state_cookie.contains(attribute), "{state_cookie}");
    }
    let location = started.location();
    assert!(
        location.contains("&scope=repo%20read:org%20write:discussion&"),
        "{location}"
    );

    let browser = sign_in(&state, &standin, &seen).await;
    assert_eq!(browser.me["user"], "gh-octocat");
    assert_eq!(browser.me["role"], "viewer");
    let asked = standin.authorize_queries().pop().unwrap();
    assert_eq!(asked["client_id"], standin.client_id);
    assert_eq!(asked["redirect_uri"], CALLBACK);
    assert_eq!(asked["scope"], "repo read:org write:discussion");
    let exchange = standin.exchanges().pop().unwrap();
    assert_eq!(exchange["redirect_uri"], CALLBACK);
    let token = standin.issued_tokens().pop().unwrap();
    assert!(
        standin
            .api_calls()
            .contains(&("/user".to_owned(), format!("Bearer {token}"))),
        "{:?}",
        standin.api_calls()
    );
    // No organisation restriction: memberships are not read.
    assert!(
        standin
            .api_calls()
            .iter()
            .all(|(path, _)| path != "/user/orgs")
    );

    // The same session as a password sign-in: changes by cookie need the CSRF header, and
    // signing out ends it.
    let logout = |csrf: Option<&str>| {
        let mut builder = Request::post("/api/v1/auth/logout")
            .header("host", HOST)
            .header("cookie", format!("cap_session={}", browser.session));
        if let Some(csrf) = csrf {
            builder = builder.header("x-csrf-token", csrf);
        }
        builder.body(Body::empty()).unwrap()
    };
    call(&state, logout(None), &seen).await.refused(
        StatusCode::FORBIDDEN,
        "forbidden",
        "x-csrf-token",
    );
    let out = call(&state, logout(Some(&browser.csrf)), &seen).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text);
    let after = call(
        &state,
        browser_get("/api/v1/auth/me", &[("cap_session", &browser.session)]),
        &seen,
    )
    .await;
    after.refused(StatusCode::UNAUTHORIZED, "unauthenticated", "signed out");
}

#[tokio::test]
async fn the_scopes_are_explained_before_the_redirect() {
    let fleet = Fleet::start().await;
    let standin = GitHubStandIn::start().await;
    let mut args = oauth_args(&standin);
    args.default_role = Role::Developer;
    let state = gateway(&fleet, &args).await;
    let explained = call(
        &state,
        browser_get("/api/v1/auth/github", &[]),
        &Seen::default(),
    )
    .await;
    assert_eq!(explained.status, StatusCode::OK, "{}", explained.text);
    let body = explained.json();
    let scopes: Vec<&str> = body["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|scope| {
            assert!(scope["why"].as_str().unwrap().len() > 20, "{scope}");
            scope["scope"].as_str().unwrap()
        })
        .collect();
    assert_eq!(scopes, ["repo", "read:org", "write:discussion"]);
    assert_eq!(body["start_url"], "/api/v1/auth/github/start");
    assert_eq!(
        body["new_users"],
        json!({"name": "gh-<login>", "role": "developer"})
    );
    // The dashboard offers it: the page says it is on, the script shows the scopes.
    let page = call(&state, browser_get("/", &[]), &Seen::default()).await;
    assert!(
        page.text.contains(r#"<body data-github-signin="on">"#),
        "{}",
        page.text
    );
    let script = call(&state, browser_get("/assets/app.js", &[]), &Seen::default()).await;
    for needle in ["Sign in with GitHub", "/api/v1/auth/github", "scope.why"] {
        assert!(script.text.contains(needle), "app.js lacks {needle}");
    }
    for route in [
        "/api/v1/auth/github",
        "/api/v1/auth/github/start",
        "/api/v1/auth/github/callback",
    ] {
        assert_eq!(
            cap_gateway::auth::required_role(&axum::http::Method::GET, route),
            None,
            "{route} is public"
        );
    }
}

#[tokio::test]
async fn a_missing_altered_reused_or_expired_state_is_refused_naming_which() {
    let fleet = Fleet::start().await;
    let standin = GitHubStandIn::start().await;
    standin.account(OCTOCAT, "octocat", &[]);
    standin.sign_in_as(OCTOCAT);
    let state = gateway(&fleet, &oauth_args(&standin)).await;
    let seen = Seen::default();

    let at = to_callback(&state, &standin, &seen).await;
    let code = at
        .callback
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let without_state = format!("/api/v1/auth/github/callback?code={code}");
    let answer = call(
        &state,
        browser_get(&without_state, &[(STATE_COOKIE, &at.state_cookie)]),
        &seen,
    )
    .await;
    answer.refused(
        StatusCode::BAD_REQUEST,
        "missing_field",
        "no `state` parameter",
    );
    assert_eq!(answer.json()["error"]["field"], "state");

    let altered = format!(
        "/api/v1/auth/github/callback?code={code}&state={}x",
        at.state_cookie
    );
    call(
        &state,
        browser_get(&altered, &[(STATE_COOKIE, &at.state_cookie)]),
        &seen,
    )
    .await
    .refused(StatusCode::FORBIDDEN, "forbidden", "does not match");

    // An attacker who sets both the cookie and the parameter still needs a state this
    // gateway issued.
    let forged = "forged-state-value";
    call(
        &state,
        browser_get(
            &format!("/api/v1/auth/github/callback?code={code}&state={forged}"),
            &[(STATE_COOKIE, forged)],
        ),
        &seen,
    )
    .await
    .refused(
        StatusCode::FORBIDDEN,
        "forbidden",
        "not issued by this gateway",
    );

    // Without the cookie: the callback reached another browser than the one that started.
    call(&state, browser_get(&at.callback, &[]), &seen)
        .await
        .refused(StatusCode::FORBIDDEN, "forbidden", "holds no sign-in state");

    // None of those used the state up: the real callback still signs in, once.
    let browser = finish(&state, &at, &seen).await;
    assert_eq!(browser.me["user"], "gh-octocat");
    call(
        &state,
        browser_get(&at.callback, &[(STATE_COOKIE, &at.state_cookie)]),
        &seen,
    )
    .await
    .refused(StatusCode::FORBIDDEN, "forbidden", "used already");

    let hurried = GitHubOAuth::from_args(&oauth_args(&standin), fleet.dir.path())
        .unwrap()
        .unwrap()
        .with_state_lifetime(Duration::ZERO);
    let hurried = fleet.state().await.with_github_oauth(hurried);
    let late = to_callback(&hurried, &standin, &seen).await;
    call(
        &hurried,
        browser_get(&late.callback, &[(STATE_COOKIE, &late.state_cookie)]),
        &seen,
    )
    .await
    .refused(StatusCode::FORBIDDEN, "forbidden", "expired");
}

#[tokio::test]
async fn a_code_github_refuses_or_a_denied_authorisation_is_reported() {
    let fleet = Fleet::start().await;
    let standin = GitHubStandIn::start().await;
    standin.account(OCTOCAT, "octocat", &[]);
    standin.sign_in_as(OCTOCAT);
    let state = gateway(&fleet, &oauth_args(&standin)).await;
    let seen = Seen::default();

    let at = to_callback(&state, &standin, &seen).await;
    let bad_code = format!(
        "/api/v1/auth/github/callback?code=not-the-code&state={}",
        at.state_cookie
    );
    let answer = call(
        &state,
        browser_get(&bad_code, &[(STATE_COOKIE, &at.state_cookie)]),
        &seen,
    )
    .await;
    answer.refused(
        StatusCode::BAD_REQUEST,
        "bad_verification_code",
        "GitHub refused the sign-in code (bad_verification_code: The code passed is incorrect or expired.)",
    );
    assert!(answer.cookie("cap_session").is_none());

    let at = to_callback(&state, &standin, &seen).await;
    let denied = format!(
        "/api/v1/auth/github/callback?error=access_denied&error_description={}&state={}",
        percent_encode("The user has denied your application access."),
        at.state_cookie
    );
    call(
        &state,
        browser_get(&denied, &[(STATE_COOKIE, &at.state_cookie)]),
        &seen,
    )
    .await
    .refused(
        StatusCode::FORBIDDEN,
        "forbidden",
        "denied your application access",
    );
}

#[tokio::test]
async fn a_github_account_stays_one_user_across_a_rename_and_never_takes_over_a_local_one() {
    let fleet = Fleet::start().await;
    let standin = GitHubStandIn::start().await;
    let state = gateway(&fleet, &oauth_args(&standin)).await;
    let seen = Seen::default();
    standin.account(OCTOCAT, "octocat", &[]);
    standin.sign_in_as(OCTOCAT);
    assert_eq!(
        sign_in(&state, &standin, &seen).await.me["user"],
        "gh-octocat"
    );

    standin.account(OCTOCAT, "octocat-renamed", &[]);
    let again = sign_in(&state, &standin, &seen).await;
    assert_eq!(again.me["user"], "gh-octocat", "linked by GitHub id");
    let store = state.authenticator().store();
    let user = store.user("gh-octocat").await.unwrap().unwrap();
    assert_eq!(user.github_login.as_deref(), Some("octocat-renamed"));

    // Someone takes the old login on GitHub, and a local Admin has the name `gh-hubot`.
    standin.account(9_000_001, "octocat", &[]);
    standin.sign_in_as(9_000_001);
    let newcomer = sign_in(&state, &standin, &seen).await;
    assert_eq!(newcomer.me["user"], "gh-octocat-9000001");
    store.ensure_user("gh-hubot", Role::Admin).await.unwrap();
    standin.account(9_000_002, "hubot", &[]);
    standin.sign_in_as(9_000_002);
    let hubot = sign_in(&state, &standin, &seen).await;
    assert_eq!(hubot.me["user"], "gh-hubot-9000002");
    assert_eq!(hubot.me["role"], "viewer");
}

#[tokio::test]
async fn only_members_of_the_admitted_organisations_sign_in() {
    let fleet = Fleet::start().await;
    let standin = GitHubStandIn::start().await;
    let mut args = oauth_args(&standin);
    args.organisations = vec!["Acme".into()];
    let state = gateway(&fleet, &args).await;
    let seen = Seen::default();
    standin.account(OCTOCAT, "octocat", &["github", "acme"]);
    standin.account(42, "outsider", &["elsewhere"]);

    standin.sign_in_as(OCTOCAT);
    assert_eq!(
        sign_in(&state, &standin, &seen).await.me["user"],
        "gh-octocat"
    );
    assert!(
        standin
            .api_calls()
            .iter()
            .any(|(path, _)| path == "/user/orgs")
    );

    standin.sign_in_as(42);
    let at = to_callback(&state, &standin, &seen).await;
    let answer = call(
        &state,
        browser_get(&at.callback, &[(STATE_COOKIE, &at.state_cookie)]),
        &seen,
    )
    .await;
    answer.refused(
        StatusCode::FORBIDDEN,
        "forbidden",
        "outsider is not a member of Acme",
    );
    assert!(
        state
            .authenticator()
            .store()
            .user("gh-outsider")
            .await
            .unwrap()
            .is_none()
    );
}

fn submit(browser: &Browser, repository: &str) -> Request<Body> {
    Request::post("/api/v1/tasks")
        .header("host", HOST)
        .header("content-type", "application/json")
        .header("cookie", format!("cap_session={}", browser.session))
        .header("x-csrf-token", &browser.csrf)
        .body(Body::from(
            json!({"repository_id": repository, "prompt": "Add a health check"}).to_string(),
        ))
        .unwrap()
}

#[tokio::test]
async fn a_github_user_submits_only_where_github_lets_them_push() {
    let fleet = Fleet::start().await;
    let standin = GitHubStandIn::start().await;
    let mut args = oauth_args(&standin);
    args.default_role = Role::Developer;
    let state = gateway(&fleet, &args).await;
    let seen = Seen::default();
    standin.account(OCTOCAT, "octocat", &[]);
    standin.sign_in_as(OCTOCAT);
    standin.grant("acme/widgets", OCTOCAT, /*push*/ true);
    standin.grant("acme/handbook", OCTOCAT, /*push*/ false);
    let browser = sign_in(&state, &standin, &seen).await;
    assert_eq!(browser.me["role"], "developer");

    let accepted = call(&state, submit(&browser, "acme/widgets"), &seen).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text);
    assert_eq!(
        fleet.tasks.actors.lock().unwrap().as_slice(),
        ["gh-octocat"]
    );
    let token = standin.issued_tokens().pop().unwrap();
    assert!(
        standin
            .api_calls()
            .contains(&("/repos/acme/widgets".to_owned(), format!("Bearer {token}")))
    );

    call(&state, submit(&browser, "acme/handbook"), &seen)
        .await
        .refused(
            StatusCode::FORBIDDEN,
            "forbidden",
            "GitHub access to acme/handbook is missing: GitHub lets octocat read it but not push",
        );
    call(&state, submit(&browser, "acme/secret-plans"), &seen)
        .await
        .refused(
            StatusCode::FORBIDDEN,
            "forbidden",
            "GitHub access to acme/secret-plans is missing: GitHub knows no such repository",
        );
    call(&state, submit(&browser, "widgets"), &seen)
        .await
        .refused(
            StatusCode::FORBIDDEN,
            "forbidden",
            "GitHub access to widgets is missing: it is not a GitHub repository name",
        );
    // The allow-list still applies first.
    let store = state.authenticator().store();
    store
        .disallow_repository(cap_identity::DEFAULT_ORGANISATION, "*")
        .await
        .unwrap();
    store
        .allow_repository(&cap_identity::AllowedRepository {
            organisation: cap_identity::DEFAULT_ORGANISATION.into(),
            pattern: "acme/handbook".into(),
            allow_self_approval: false,
        })
        .await
        .unwrap();
    call(&state, submit(&browser, "acme/widgets"), &seen)
        .await
        .refused(StatusCode::FORBIDDEN, "forbidden", "not on the allow-list");
    store
        .allow_repository(&cap_identity::AllowedRepository {
            organisation: cap_identity::DEFAULT_ORGANISATION.into(),
            pattern: "acme/*".into(),
            allow_self_approval: false,
        })
        .await
        .unwrap();

    // The GitHub user's API token carries no GitHub sign-in to ask with.
    let api_token = store
        .create_token(
            "gh-octocat",
            Role::Developer,
            "ci",
            cap_identity::Lifetime::days(1),
        )
        .await
        .unwrap()
        .secret;
    let by_token = bearer(
        post_json(
            "/api/v1/tasks",
            &json!({"repository_id": "acme/widgets", "prompt": "Add a health check"}).to_string(),
        ),
        &api_token,
    );
    call(&state, by_token, &seen).await.refused(
        StatusCode::FORBIDDEN,
        "forbidden",
        "carries no GitHub sign-in",
    );

    // A local account is not checked against GitHub: the local forge has no GitHub access.
    let local = token_of(&state, "dev", Role::Developer).await;
    let by_local = bearer(
        post_json(
            "/api/v1/tasks",
            &json!({"repository_id": "acme/secret-plans", "prompt": "Add a health check"})
                .to_string(),
        ),
        &local,
    );
    let answer = call(&state, by_local, &seen).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);

    // A token revoked at GitHub: sign in again.
    standin.revoke_tokens();
    call(&state, submit(&browser, "acme/widgets"), &seen)
        .await
        .refused(
            StatusCode::FORBIDDEN,
            "forbidden",
            "GitHub no longer accepts octocat's sign-in",
        );
}

#[tokio::test]
async fn without_a_client_id_the_routes_say_oauth_is_not_configured() {
    let fleet = Fleet::start().await;
    let state = fleet.state().await;
    let seen = Seen::default();
    for path in [
        "/api/v1/auth/github",
        "/api/v1/auth/github/start",
        "/api/v1/auth/github/callback?code=c&state=s",
    ] {
        call(&state, browser_get(path, &[]), &seen).await.refused(
            StatusCode::NOT_FOUND,
            "oauth_not_configured",
            "GitHub sign-in is not configured on this gateway",
        );
    }
    // The dashboard does not offer it, nor ask for it.
    let page = call(&state, browser_get("/", &[]), &seen).await;
    assert!(page.text.contains("<body>"), "{}", page.text);
    assert!(!page.text.contains("data-github-signin"), "{}", page.text);
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_client_secret_never_appears_in_logs_or_answers() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // One thread: the gateway and the stand-in run under this subscriber.
    let _logging = tracing::subscriber::set_default(subscriber);

    let fleet = Fleet::start().await;
    let standin = GitHubStandIn::start().await;
    standin.account(OCTOCAT, "octocat", &[]);
    standin.sign_in_as(OCTOCAT);
    let args = oauth_args(&standin);
    assert!(!format!("{args:?}").contains(&standin.client_secret));
    let state = gateway(&fleet, &args).await;
    let seen = Seen::default();
    call(&state, browser_get("/api/v1/auth/github", &[]), &seen).await;
    sign_in(&state, &standin, &seen).await;
    let at = to_callback(&state, &standin, &seen).await;
    let bad_code = format!(
        "/api/v1/auth/github/callback?code=wrong&state={}",
        at.state_cookie
    );
    call(
        &state,
        browser_get(&bad_code, &[(STATE_COOKIE, &at.state_cookie)]),
        &seen,
    )
    .await;

    // A gateway with the wrong secret: GitHub refuses it, and the answer names the error only.
    let mut wrong = oauth_args(&standin);
    let wrong_secret = format!("wrong-secret-{}", uuid::Uuid::new_v4().simple());
    wrong.client_secret = Some(wrong_secret.parse().unwrap());
    let misconfigured = gateway(&fleet, &wrong).await;
    let at = to_callback(&misconfigured, &standin, &seen).await;
    let answer = call(
        &misconfigured,
        browser_get(&at.callback, &[(STATE_COOKIE, &at.state_cookie)]),
        &seen,
    )
    .await;
    answer.refused(
        StatusCode::BAD_GATEWAY,
        "github_error",
        "GitHub refused the gateway's OAuth app (incorrect_client_credentials)",
    );

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("signed in with GitHub"), "{logs}");
    for secret in [&standin.client_secret, &wrong_secret] {
        assert!(!logs.contains(secret.as_str()), "the log shows the secret");
        assert!(
            !seen.all().contains(secret.as_str()),
            "an answer shows the secret"
        );
    }
    // The secret did travel where it belongs: to the token endpoint.
    assert!(
        standin
            .exchanges()
            .iter()
            .any(|form| form["client_secret"] == standin.client_secret)
    );
}
