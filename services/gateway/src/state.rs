//! What every handler shares: the gRPC clients of the supervisor and the github service,
//! the read policies, and the shutdown signal for open WebSockets.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use std::num::NonZeroU32;

use cap_identity::{Authenticator, RateLimits};
use cap_mtls::ServiceTls;
use cap_proto::github::v1::git_hub_client::GitHubClient;
use cap_proto::supervisor::v1::task_service_client::TaskServiceClient;
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::error::{Error, Result};
use crate::oauth::GitHubOAuth;

/// Largest gRPC message the gateway accepts (a pull request carries its whole diff).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Requests a minute one user may send unless configured otherwise.
pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 600;

/// How `GET /api/v1/tasks/{id}/events` reads the upstream event stream.
///
/// The supervisor's `WatchTask` replays stored events and then stays open while the task
/// runs, so the handler stops at the first of: the stream ends (task finished), `max_events`
/// are read, no event arrives for `idle` (the stored ones are delivered), or `max_wait`
/// passes since the call started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventsPolicy {
    /// Quiet time after which the events read so far are returned.
    pub idle: Duration,
    /// Upper bound on one request's read.
    pub max_wait: Duration,
    /// Default and largest page size.
    pub max_events: usize,
}

impl Default for EventsPolicy {
    fn default() -> Self {
        Self {
            idle: Duration::from_millis(250),
            max_wait: Duration::from_secs(5),
            max_events: 1000,
        }
    }
}

/// The request-rate limits: per user on every authenticated route, per client address on
/// sign-in.
#[derive(Debug)]
pub struct Limits {
    requests: RateLimits,
    sign_in: RateLimits,
}

impl Limits {
    /// `per_minute` requests a minute per user (bursts of as many), and 10 sign-in attempts a
    /// minute per client address (bursts of 5).
    pub fn new(per_minute: NonZeroU32) -> Self {
        let ten = NonZeroU32::MIN.saturating_add(9);
        let five = NonZeroU32::MIN.saturating_add(4);
        Self {
            requests: RateLimits::per_minute(per_minute, per_minute),
            sign_in: RateLimits::per_minute(ten, five),
        }
    }

    pub(crate) fn request(&self, user: &str) -> Result<()> {
        self.requests
            .check(user)
            .map_err(|wait| too_many(format!("{user} sent too many requests"), wait))
    }

    pub(crate) fn sign_in(&self, client: &str) -> Result<()> {
        self.sign_in.check(client).map_err(|wait| {
            too_many(
                "too many sign-in attempts from this address".to_owned(),
                wait,
            )
        })
    }
}

fn too_many(what: String, wait: Duration) -> Error {
    let retry_after_s = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Error::TooManyRequests {
        message: format!("{what}; try again in {retry_after_s} s"),
        retry_after_s,
    }
}

/// Shared state of the HTTP app; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    tasks: TaskServiceClient<Channel>,
    github: GitHubClient<Channel>,
    auth: Authenticator,
    github_oauth: Option<Arc<GitHubOAuth>>,
    limits: Arc<Limits>,
    secure_cookies: bool,
    events: EventsPolicy,
    rpc_timeout: Duration,
    shutdown: Arc<watch::Sender<bool>>,
    /// Where Admins' changes and sign-ins are recorded (`cap-audit`, in the gateway's store).
    audit: Option<cap_audit::AuditLog>,
}

impl AppState {
    /// Clients for the supervisor and github services over mTLS as `tls`'s identity. The
    /// channels connect on first use, so the upstream services may start later.
    pub fn connect(
        tls: &ServiceTls,
        supervisor_url: &str,
        github_url: &str,
        auth: Authenticator,
    ) -> Result<Self> {
        let supervisor = channel(tls, "supervisor", "supervisor-url", supervisor_url)?;
        let github = channel(tls, "github", "github-url", github_url)?;
        Ok(Self::from_channels(supervisor, github, auth))
    }

    /// State over ready-made channels.
    pub fn from_channels(supervisor: Channel, github: Channel, auth: Authenticator) -> Self {
        Self {
            tasks: TaskServiceClient::new(supervisor).max_decoding_message_size(MAX_MESSAGE_BYTES),
            github: GitHubClient::new(github).max_decoding_message_size(MAX_MESSAGE_BYTES),
            auth,
            github_oauth: None,
            limits: Arc::new(Limits::new(
                NonZeroU32::new(DEFAULT_REQUESTS_PER_MINUTE).unwrap_or(NonZeroU32::MIN),
            )),
            secure_cookies: false,
            events: EventsPolicy::default(),
            rpc_timeout: Duration::from_secs(30),
            shutdown: Arc::new(watch::channel(false).0),
            audit: None,
        }
    }

    /// Records Admins' changes and sign-ins in `audit`.
    pub fn with_audit(mut self, audit: cap_audit::AuditLog) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Records that `actor` did `action`; an error when it took effect but could not be
    /// recorded (the whole record is then in the gateway's log).
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        details: serde_json::Value,
    ) -> crate::error::Result<()> {
        let Some(audit) = &self.audit else {
            return Ok(());
        };
        let entry = cap_audit::Entry::new(actor, action, "", details);
        audit
            .append_retrying(&[entry])
            .await
            .map(drop)
            .map_err(|source| crate::error::Error::Audit {
                what: action.to_owned(),
                source,
            })
    }

    /// Replaces the events read policy.
    pub fn with_events_policy(mut self, policy: EventsPolicy) -> Self {
        self.events = policy;
        self
    }

    /// Replaces the deadline of unary upstream calls (default 30 s).
    pub fn with_rpc_timeout(mut self, timeout: Duration) -> Self {
        self.rpc_timeout = timeout;
        self
    }

    /// Replaces the request-rate limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = Arc::new(limits);
        self
    }

    /// Marks session cookies `Secure` (the gateway is reached over HTTPS).
    pub fn with_secure_cookies(mut self, secure: bool) -> Self {
        self.secure_cookies = secure;
        self
    }

    /// Turns GitHub sign-in on (off without it).
    pub fn with_github_oauth(mut self, oauth: GitHubOAuth) -> Self {
        self.github_oauth = Some(Arc::new(oauth));
        self
    }

    /// GitHub sign-in, when configured.
    pub(crate) fn github_oauth(&self) -> Option<&GitHubOAuth> {
        self.github_oauth.as_deref()
    }

    /// Who is who: users, sessions, tokens.
    pub fn authenticator(&self) -> &Authenticator {
        &self.auth
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    pub(crate) fn secure_cookies(&self) -> bool {
        self.secure_cookies
    }

    /// Tells every open WebSocket to close (`1001 going away`); used on shutdown.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    pub(crate) fn tasks(&self) -> TaskServiceClient<Channel> {
        self.tasks.clone()
    }

    pub(crate) fn github(&self) -> GitHubClient<Channel> {
        self.github.clone()
    }

    pub(crate) fn events_policy(&self) -> EventsPolicy {
        self.events
    }

    /// Resolves once [`AppState::shutdown`] was called.
    pub(crate) fn shutting_down(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut receiver = self.shutdown.subscribe();
        async move {
            // The sender lives as long as any state clone, so an error cannot happen while
            // a WebSocket is open; never resolve on it rather than closing sockets early.
            if receiver.wait_for(|stopping| *stopping).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Runs one unary upstream call with the deadline, mapping its status to [`Error`].
    pub(crate) async fn call<T>(
        &self,
        service: &'static str,
        call: &'static str,
        future: impl Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.rpc_timeout, future).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(Error::upstream(service, call, status)),
            Err(_) => Err(Error::upstream(
                service,
                call,
                tonic::Status::deadline_exceeded(format!(
                    "no answer within {:?}",
                    self.rpc_timeout
                )),
            )),
        }
    }
}

fn channel(
    tls: &ServiceTls,
    service: &'static str,
    flag: &'static str,
    url: &str,
) -> Result<Channel> {
    if !url.starts_with("https://") {
        return Err(Error::UpstreamUrl {
            flag,
            url: url.to_owned(),
        });
    }
    tls.channel(url)
        .map_err(|source| Error::Channel { service, source })
}
