//! A circuit breaker in front of a service the workflow calls (the GitHub service): after
//! `failures` calls in a row that failed for the service's own reasons (unreachable, timed
//! out, broken connection), calls fail at once, without reaching it, for `open_for`; then one
//! trial call goes through, and its outcome closes or opens the circuit again. Many tasks
//! retrying against a service that is down then cost nothing, and the service is not flooded
//! the moment it comes back. The failure it returns is `UNAVAILABLE`, so the node's own retry
//! with backoff takes it.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tonic::{Code, Status};

/// Where the circuit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Calls go through; this many failed in a row.
    Closed { failures: u32 },
    /// Calls fail at once until then.
    Open { until: Instant },
    /// One trial call is out since then; the others fail at once (another trial goes after
    /// `open_for`, should this one never end).
    Trial { since: Instant },
}

/// One service's circuit.
#[derive(Debug)]
pub(crate) struct Breaker {
    service: &'static str,
    failures: u32,
    open_for: Duration,
    state: Mutex<State>,
}

impl Breaker {
    /// A closed circuit for `service`, opening after `failures` failures in a row (0: never).
    pub(crate) fn new(service: &'static str, failures: u32, open_for: Duration) -> Self {
        Self {
            service,
            failures,
            open_for,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// Runs `call` unless the circuit is open, and counts its outcome.
    pub(crate) async fn guard<T>(
        &self,
        call: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        self.admit()?;
        let outcome = call.await;
        self.count(outcome.as_ref().err());
        outcome
    }

    fn admit(&self) -> Result<(), Status> {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } if Instant::now() >= until => {
                *state = State::Trial {
                    since: Instant::now(),
                };
                Ok(())
            }
            State::Trial { since } if since.elapsed() >= self.open_for => {
                *state = State::Trial {
                    since: Instant::now(),
                };
                Ok(())
            }
            State::Open { until } => Err(Status::unavailable(format!(
                "the {} circuit is open after {} failed calls in a row; the next call goes \
                 through in {} ms",
                self.service,
                self.failures,
                until.saturating_duration_since(Instant::now()).as_millis()
            ))),
            State::Trial { .. } => Err(Status::unavailable(format!(
                "the {} circuit is open; a trial call is out",
                self.service
            ))),
        }
    }

    fn count(&self, error: Option<&Status>) {
        let failed = error.is_some_and(|status| {
            matches!(
                status.code(),
                Code::Unavailable
                    | Code::DeadlineExceeded
                    | Code::Unknown
                    | Code::ResourceExhausted
            )
        });
        let mut state = self.lock();
        *state = match (*state, failed) {
            (_, false) => State::Closed { failures: 0 },
            (State::Closed { failures }, true)
                if self.failures == 0 || failures + 1 < self.failures =>
            {
                State::Closed {
                    failures: failures + 1,
                }
            }
            (State::Closed { .. } | State::Trial { .. } | State::Open { .. }, true) => {
                tracing::warn!(
                    service = self.service,
                    open_ms = self.open_for.as_millis() as u64,
                    "circuit opened"
                );
                State::Open {
                    until: Instant::now() + self.open_for,
                }
            }
        };
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is one value, consistent whatever a panicking holder did.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
#[path = "breaker_tests.rs"]
mod tests;
