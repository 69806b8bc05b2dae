//! The dashboard: one HTML page, a script and a style sheet, embedded in the binary (no build
//! step, no external URLs). The script talks to the REST API and the WebSocket stream.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;
use crate::tasks::is_host;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const STYLE_CSS: &str = include_str!("../assets/style.css");

/// `GET /`; the page says whether sign-in with GitHub is on, so the script offers it without
/// asking a gateway that does not have it.
pub async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    // `connect-src 'self'` covers same-origin WebSockets in current browsers; naming the
    // host's ws/wss origins keeps older ones working too.
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| is_host(host));
    let ws = match host {
        Some(host) => format!(" ws://{host} wss://{host}"),
        None => String::new(),
    };
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'{ws}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    let mut response = if state.github_oauth().is_some() {
        let page = INDEX_HTML.replacen("<body>", r#"<body data-github-signin="on">"#, 1);
        asset(page, "text/html; charset=utf-8")
    } else {
        asset(INDEX_HTML, "text/html; charset=utf-8")
    };
    if let Ok(value) = HeaderValue::from_str(&csp) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// `GET /assets/app.js`.
pub async fn script() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

/// `GET /assets/style.css`.
pub async fn style() -> Response {
    asset(STYLE_CSS, "text/css; charset=utf-8")
}

fn asset(body: impl Into<Body>, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body.into(),
    )
        .into_response()
}
