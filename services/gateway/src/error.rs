//! The gateway's errors and their one mapping to HTTP.
//!
//! Every failure a client can see leaves through [`Error::into_response`] as
//! `{"error": {"code", "message", "field"}}`. Upstream gRPC statuses are translated in
//! [`upstream_response`] and nowhere else.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Errors of the gateway.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request input (body, path, query or header) was wrong.
    #[error("{message}")]
    Invalid {
        /// 400 for every bad input (malformed JSON, wrong type, missing or unknown field, bad
        /// value, bad path or query), 413 for an oversized body, 4xx from axum for an
        /// unreadable body.
        status: StatusCode,
        /// Machine-readable reason, e.g. `missing_field`.
        code: &'static str,
        /// What was wrong, naming the field.
        message: String,
        /// The offending field (`constraints.max_files_changed`, `task_id`, ...), if any.
        field: Option<String>,
    },
    /// The request body was not JSON.
    #[error("unsupported content type {found:?}; expected application/json")]
    UnsupportedMediaType {
        /// The `Content-Type` the client sent, if any.
        found: Option<String>,
    },
    /// No route matches the path.
    #[error("no route for {path}")]
    RouteNotFound {
        /// The requested path.
        path: String,
    },
    /// The route exists but not with this method.
    #[error("method {method} is not allowed here")]
    MethodNotAllowed {
        /// The requested method.
        method: String,
    },
    /// A WebSocket route was called without a valid upgrade request.
    #[error("a WebSocket upgrade is required")]
    WebSocketUpgrade {
        /// The status axum picked for the rejection (400, 405 or 426).
        status: StatusCode,
        /// Why the upgrade was refused.
        reason: String,
    },
    /// An upstream service answered a call with an error status.
    #[error("{service} {call} failed")]
    Upstream {
        /// `supervisor` or `github`.
        service: &'static str,
        /// The RPC, e.g. `GetTask`.
        call: &'static str,
        /// What the service answered.
        #[source]
        status: Box<tonic::Status>,
    },
    /// An upstream service answered with a message missing a required part.
    #[error("{service} {call} answered without {missing}")]
    UpstreamProtocol {
        /// `supervisor` or `github`.
        service: &'static str,
        /// The RPC.
        call: &'static str,
        /// What was missing.
        missing: &'static str,
    },
    /// An upstream URL flag is unusable.
    #[error("--{flag} {url:?} is not an https:// URL")]
    UpstreamUrl {
        /// The flag, e.g. `supervisor-url`.
        flag: &'static str,
        /// The value given.
        url: String,
    },
    /// No credential, or one that is refused: 401, saying why.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but may not do this: 403, naming what is missing.
    #[error("{0}")]
    Forbidden(String),
    /// Too many requests or pull requests: 429 with `Retry-After`.
    #[error("{message}")]
    TooManyRequests {
        /// What limit was reached and when the next request is allowed.
        message: String,
        /// Seconds until then.
        retry_after_s: u64,
    },
    /// GitHub sign-in is off: no OAuth client id is configured.
    #[error(
        "GitHub sign-in is not configured on this gateway: the operator sets \
         --github-oauth-client-id and the client secret (see the README)"
    )]
    OAuthNotConfigured,
    /// GitHub sign-in's flags are unusable (reported at start).
    #[error("{0}")]
    OAuthConfig(String),
    /// GitHub could not be reached or gave an unusable or refusing answer: 502.
    #[error("{message}")]
    GitHub {
        /// What failed, safe to show (no token, no secret).
        message: String,
        /// The transport or decoding error, for the log.
        #[source]
        source: Option<reqwest::Error>,
    },
    /// The gateway's own identity store failed.
    #[error("identity store")]
    Identity(#[source] cap_identity::Error),
    /// An Admin's action took effect but its audit record could not be written.
    #[error("audit log: {what} took effect but was not recorded")]
    Audit {
        /// The action.
        what: String,
        /// The cause.
        #[source]
        source: cap_audit::Error,
    },
    /// The mTLS channel to an upstream service could not be set up.
    #[error("cannot set up the channel to {service}")]
    Channel {
        /// `supervisor` or `github`.
        service: &'static str,
        /// The cause.
        #[source]
        source: cap_mtls::Error,
    },
}

impl From<cap_identity::Error> for Error {
    /// Refusals keep their message (they say what is wrong); store failures are internal.
    fn from(error: cap_identity::Error) -> Self {
        match error {
            cap_identity::Error::Unauthenticated(message) => Self::Unauthenticated(message),
            cap_identity::Error::Invalid(message) => {
                Self::bad_request("invalid_value", None, message)
            }
            cap_identity::Error::UserExists(_) => Self::Invalid {
                status: StatusCode::CONFLICT,
                code: "already_exists",
                message: error.to_string(),
                field: None,
            },
            cap_identity::Error::UnknownUser(_) | cap_identity::Error::UnknownToken(_) => {
                Self::Invalid {
                    status: StatusCode::NOT_FOUND,
                    code: "not_found",
                    message: error.to_string(),
                    field: None,
                }
            }
            other => Self::Identity(other),
        }
    }
}

/// Result of the gateway.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Bad input, optionally naming a field: 400.
    pub fn bad_request(
        code: &'static str,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
            field: field.map(str::to_owned),
        }
    }

    /// Bad input in `field` (a JSON path such as `comments[0].line`; empty for the whole
    /// body): 400.
    pub fn invalid(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
            field: (!field.is_empty()).then(|| field.to_owned()),
        }
    }

    /// An upstream call failed with `status`.
    pub fn upstream(service: &'static str, call: &'static str, status: tonic::Status) -> Self {
        Self::Upstream {
            service,
            call,
            status: Box::new(status),
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    /// The `error.code` this error is answered with.
    pub fn code(&self) -> &'static str {
        self.parts().1
    }

    fn parts(&self) -> (StatusCode, &'static str, String, Option<String>) {
        match self {
            Self::Invalid {
                status,
                code,
                message,
                field,
            } => (*status, code, message.clone(), field.clone()),
            Self::UnsupportedMediaType { .. } => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                self.to_string(),
                Some("content-type".to_owned()),
            ),
            Self::RouteNotFound { .. } => (
                StatusCode::NOT_FOUND,
                "route_not_found",
                self.to_string(),
                None,
            ),
            Self::MethodNotAllowed { .. } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                self.to_string(),
                None,
            ),
            Self::WebSocketUpgrade { status, reason } => (
                *status,
                "websocket_upgrade_required",
                format!("a WebSocket upgrade is required: {reason}"),
                None,
            ),
            Self::Upstream { status, .. } => {
                let (http, code, message) = upstream_response(status);
                (http, code, message, None)
            }
            Self::UpstreamProtocol { service, .. } => (
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                format!("the {service} service gave an unusable answer"),
                None,
            ),
            Self::Unauthenticated(message) => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                message.clone(),
                None,
            ),
            Self::Forbidden(message) => (StatusCode::FORBIDDEN, "forbidden", message.clone(), None),
            Self::TooManyRequests { message, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                message.clone(),
                None,
            ),
            Self::Identity(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the gateway's identity store failed; try again".to_owned(),
                None,
            ),
            Self::Audit { what, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!(
                    "{what} took effect, but the audit log could not record it; the gateway's \
                     log holds the record"
                ),
                None,
            ),
            Self::OAuthNotConfigured => (
                StatusCode::NOT_FOUND,
                "oauth_not_configured",
                self.to_string(),
                None,
            ),
            Self::GitHub { message, .. } => (
                StatusCode::BAD_GATEWAY,
                "github_error",
                message.clone(),
                None,
            ),
            Self::UpstreamUrl { .. } | Self::OAuthConfig(_) | Self::Channel { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the gateway is misconfigured".to_owned(),
                None,
            ),
        }
    }
}

/// The one translation of an upstream gRPC status into HTTP.
///
/// Client-facing statuses the fleet's own services produce (not found, invalid argument,
/// conflicts) keep their message: it names what was wrong. Everything else gets a short
/// message; the details go to the log.
pub fn upstream_response(status: &tonic::Status) -> (StatusCode, &'static str, String) {
    use tonic::Code;
    match status.code() {
        Code::NotFound => (
            StatusCode::NOT_FOUND,
            "not_found",
            status.message().to_owned(),
        ),
        Code::InvalidArgument => (
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            status.message().to_owned(),
        ),
        Code::FailedPrecondition => (
            StatusCode::CONFLICT,
            "failed_precondition",
            status.message().to_owned(),
        ),
        Code::AlreadyExists => (
            StatusCode::CONFLICT,
            "already_exists",
            status.message().to_owned(),
        ),
        Code::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_unavailable",
            "an upstream service is unavailable; try again".to_owned(),
        ),
        Code::Ok
        | Code::Cancelled
        | Code::Unknown
        | Code::DeadlineExceeded
        | Code::PermissionDenied
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unimplemented
        | Code::Internal
        | Code::DataLoss
        | Code::Unauthenticated => (
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "an upstream service failed".to_owned(),
        ),
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
    field: Option<&'a str>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code, message, field) = self.parts();
        match &self {
            Self::Upstream {
                service,
                call,
                status: upstream,
            } => {
                tracing::warn!(
                    service,
                    call,
                    grpc_code = ?upstream.code(),
                    grpc_message = upstream.message(),
                    http_status = status.as_u16(),
                    "upstream call failed"
                );
            }
            Self::UpstreamProtocol { .. }
            | Self::UpstreamUrl { .. }
            | Self::OAuthConfig(_)
            | Self::GitHub { .. }
            | Self::Channel { .. }
            | Self::Audit { .. }
            | Self::Identity(_) => {
                tracing::error!(error = %cap_errors::Chain(&self), "request failed");
            }
            Self::Invalid { .. }
            | Self::UnsupportedMediaType { .. }
            | Self::RouteNotFound { .. }
            | Self::MethodNotAllowed { .. }
            | Self::WebSocketUpgrade { .. }
            | Self::Unauthenticated(_)
            | Self::OAuthNotConfigured
            | Self::Forbidden(_)
            | Self::TooManyRequests { .. } => {
                tracing::debug!(code, %message, "rejected request");
            }
        }
        let body = Body {
            error: Detail {
                code,
                message: &message,
                field: field.as_deref(),
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Self::TooManyRequests { retry_after_s, .. } = &self {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(*retry_after_s),
            );
        }
        response
    }
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
