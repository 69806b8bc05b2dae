//! A circuit breaker in front of a remote service (the GitHub service, the model): after
//! `failures` calls in a row that failed for the service's own reasons (unreachable, timed
//! out, overloaded: the caller says which errors are those), calls fail at once, without
//! reaching it, for `open_for`; then one trial call goes through, and its outcome closes or
//! opens the circuit again. Many tasks retrying against a service that is down then cost
//! nothing, and the service is not flooded the moment it comes back.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

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

/// One service's circuit. Share it (an `Arc`) among every caller of the service.
#[derive(Debug)]
pub struct Breaker {
    service: &'static str,
    failures: u32,
    open_for: Duration,
    state: Mutex<State>,
}

impl Breaker {
    /// A closed circuit for `service`, opening after `failures` failures in a row (0: never).
    pub fn new(service: &'static str, failures: u32, open_for: Duration) -> Self {
        Self {
            service,
            failures,
            open_for,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// Runs `call` unless the circuit is open (then `open` makes the error from a message
    /// saying so), and counts its outcome: a failure when `is_failure` says the error is the
    /// service's own.
    pub async fn guard<T, E>(
        &self,
        call: impl Future<Output = Result<T, E>>,
        is_failure: impl Fn(&E) -> bool,
        open: impl FnOnce(String) -> E,
    ) -> Result<T, E> {
        self.admit().map_err(open)?;
        let outcome = call.await;
        self.count(outcome.as_ref().err().is_some_and(is_failure));
        outcome
    }

    fn admit(&self) -> Result<(), String> {
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
            State::Open { until } => Err(format!(
                "the {} circuit is open after {} failed calls in a row; the next call goes \
                 through in {} ms",
                self.service,
                self.failures,
                until.saturating_duration_since(Instant::now()).as_millis()
            )),
            State::Trial { .. } => Err(format!(
                "the {} circuit is open; a trial call is out",
                self.service
            )),
        }
    }

    fn count(&self, failed: bool) {
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
#[path = "lib_tests.rs"]
mod tests;
