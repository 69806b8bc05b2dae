//! Request-rate limits per user (and per client address before sign-in), as GCRA buckets.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Per-key request-rate limits.
#[derive(Debug)]
pub struct RateLimits {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl RateLimits {
    /// `per_minute` requests a minute per key, in bursts of at most `burst`.
    pub fn per_minute(per_minute: NonZeroU32, burst: NonZeroU32) -> Self {
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        Self {
            limiter: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one request of `key`; `Err(wait)` when over the limit, with the time until the
    /// next one is allowed.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let result = self.limiter.check_key(&key.to_owned());
        // Buckets of keys that came back to full are forgotten now and then, so a flood of
        // distinct keys does not grow memory for ever.
        if self.limiter.len() > 10_000 {
            self.limiter.retain_recent();
        }
        result.map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}
