//! The REST client: one request at a time through the circuit breaker, rate limits waited out
//! (within bounds), 5xx retried with backoff.
//!
//! Why `reqwest` rather than octocrab (which the design card names): octocrab is not in the
//! lock file and would bring its own HTTP stack (hyper-rustls, tower layers, its own retry and
//! JWT handling) beside the reqwest/rustls one the fleet already builds, and it hides the
//! response headers (`retry-after`, `x-ratelimit-*`) and status codes that the retry policy
//! and the breaker below are made of. Octocrab can be pointed at a loopback base URL, so
//! that is not the reason; the GitHub surface used here is a dozen REST routes, each typed in
//! [`super::json`].

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cap_circuit::Breaker;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, USER_AGENT};
use reqwest::{Method, StatusCode};

use crate::{Error, Result};

/// The media type of GitHub's JSON answers.
pub(crate) const JSON: &str = "application/vnd.github+json";
/// The media type of a pull request as a unified diff.
pub(crate) const DIFF: &str = "application/vnd.github.diff";
/// The REST API version these calls are written against.
const API_VERSION: &str = "2022-11-28";
/// How long a secondary rate limit without a `retry-after` is waited out (GitHub's advice:
/// at least a minute), bounded by [`RetryPolicy::max_wait`].
const SECONDARY_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// How calls to GitHub are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per call in all (first one included).
    pub attempts: u32,
    /// The wait after the first 5xx or transport failure, doubled after each next one.
    pub backoff: Duration,
    /// The longest rate-limit wait taken; a longer one fails the call at once with
    /// [`Error::GitHubRateLimited`] (a task waiting an hour on a reset is better told so).
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(90),
        }
    }
}

/// A response GitHub gave: its status and body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: String,
    /// The next page's path (from `Link: <...>; rel="next"`), only when it is on the same
    /// API base URL: the token is never sent anywhere else.
    pub(crate) next: Option<String>,
}

impl Reply {
    /// GitHub's `message` in an error body, or the body itself (shortened).
    pub(crate) fn message(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|value| {
                let message = value.get("message")?.as_str()?.to_owned();
                let errors = value
                    .get("errors")
                    .and_then(|errors| errors.as_array())
                    .map(|errors| {
                        errors
                            .iter()
                            .filter_map(|e| e.get("message").and_then(|m| m.as_str()))
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .unwrap_or_default();
                Some(if errors.is_empty() {
                    message
                } else {
                    format!("{message}: {errors}")
                })
            })
            .unwrap_or_else(|| self.body.chars().take(200).collect())
    }

    /// The body as `T`; `what` names the call in the error.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T> {
        serde_json::from_str(&self.body).map_err(|error| Error::GitHubResponse {
            what: what.to_owned(),
            reason: error.to_string(),
        })
    }

    /// An error for an answer the caller did not expect.
    pub(crate) fn unexpected(&self, what: &str) -> Error {
        Error::GitHubApi {
            what: what.to_owned(),
            status: self.status.as_u16(),
            message: self.message(),
        }
    }
}

/// A REST client of one GitHub API base URL.
#[derive(Debug)]
pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    breaker: Arc<Breaker>,
    retry: RetryPolicy,
}

impl Api {
    pub(crate) fn new(base: &str, breaker: Arc<Breaker>, retry: RetryPolicy) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            // A redirect could carry the token to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| Error::GitHubTransport { source })?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            breaker,
            retry,
        })
    }

    /// `method path` with `authorization` (a full header value) and an optional JSON body;
    /// answers whatever GitHub finally said, except that rate limits are waited out and 5xx
    /// retried (through the breaker) first.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        authorization: &str,
        body: Option<&serde_json::Value>,
        accept: &str,
    ) -> Result<Reply> {
        let mut attempt = 1;
        loop {
            let outcome = self
                .breaker
                .guard(
                    self.once(method.clone(), path, authorization, body, accept),
                    |error| {
                        matches!(
                            error,
                            Error::GitHubUnavailable(_) | Error::GitHubTransport { .. }
                        )
                    },
                    Error::GitHubCircuitOpen,
                )
                .await;
            let wait = match outcome {
                Ok((reply, headers)) => match rate_limit_wait(reply.status, &headers, &reply) {
                    None => return Ok(reply),
                    Some(wait) if wait > self.retry.max_wait || attempt >= self.retry.attempts => {
                        return Err(Error::GitHubRateLimited {
                            retry_in_secs: wait.as_secs(),
                        });
                    }
                    Some(wait) => {
                        tracing::warn!(%method, %path, wait_ms = wait.as_millis() as u64, "GitHub rate limit; waiting");
                        wait
                    }
                },
                Err(error @ (Error::GitHubUnavailable(_) | Error::GitHubTransport { .. }))
                    if attempt < self.retry.attempts =>
                {
                    let wait = self.retry.backoff * 2u32.saturating_pow(attempt - 1);
                    tracing::warn!(%method, %path, error = %cap_errors::Chain(&error), wait_ms = wait.as_millis() as u64, "GitHub failed; retrying");
                    wait
                }
                Err(error) => return Err(error),
            };
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// One request; a 5xx is [`Error::GitHubUnavailable`] so that the breaker counts it.
    async fn once(
        &self,
        method: Method,
        path: &str,
        authorization: &str,
        body: Option<&serde_json::Value>,
        accept: &str,
    ) -> Result<(Reply, HeaderMap)> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header(AUTHORIZATION, authorization)
            .header(ACCEPT, accept)
            .header(USER_AGENT, "coding-assistant")
            .header("x-github-api-version", API_VERSION);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|source| Error::GitHubTransport { source })?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .text()
            .await
            .map_err(|source| Error::GitHubTransport { source })?;
        let next = headers
            .get(reqwest::header::LINK)
            .and_then(|value| value.to_str().ok())
            .and_then(|links| next_link(links, &self.base));
        let reply = Reply { status, body, next };
        if status.is_server_error() {
            return Err(Error::GitHubUnavailable(format!(
                "{method} {path} answered {status}: {}",
                reply.message()
            )));
        }
        Ok((reply, headers))
    }
}

/// The path (after `base`) of the `rel="next"` link in a `Link` header.
pub(crate) fn next_link(links: &str, base: &str) -> Option<String> {
    links.split(',').find_map(|link| {
        let (target, params) = link.split_once(';')?;
        params
            .split(';')
            .any(|param| param.trim() == r#"rel="next""#)
            .then(|| target.trim().trim_start_matches('<').trim_end_matches('>'))?
            .strip_prefix(base)
            .filter(|path| path.starts_with('/'))
            .map(str::to_owned)
    })
}

/// How long to wait before trying again, when `status` and `headers` say a rate limit was
/// hit: `retry-after` first, then `x-ratelimit-reset` when `x-ratelimit-remaining` is 0, then
/// a minute for a secondary limit that names no time (a 429, or a 403 whose message says
/// so). `None`: not a rate limit.
pub(crate) fn rate_limit_wait(
    status: StatusCode,
    headers: &HeaderMap,
    reply: &Reply,
) -> Option<Duration> {
    if status != StatusCode::TOO_MANY_REQUESTS && status != StatusCode::FORBIDDEN {
        return None;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    };
    if let Some(seconds) = header("retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(seconds));
    }
    if header("x-ratelimit-remaining") == Some("0") {
        let reset = header("x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok())?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        // A second more than the reset: GitHub's clock and ours are not the same.
        return Some(Duration::from_secs(reset.saturating_sub(now) + 1));
    }
    // A 403 that is no rate limit (no permission) is the caller's to read.
    let secondary = status == StatusCode::TOO_MANY_REQUESTS
        || reply
            .message()
            .to_ascii_lowercase()
            .contains("secondary rate limit");
    secondary.then_some(SECONDARY_LIMIT_WAIT)
}
