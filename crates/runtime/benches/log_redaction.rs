//! `cargo bench -p cap-runtime --bench log_redaction -- [events]`: what redacting every log
//! line costs.
//!
//! Logs the same events (default 200,000) through the services' fmt layout twice in one run,
//! once to a plain writer and once through [`RedactingMakeWriter`], both into `io::sink`, and
//! prints the time per line of each and their ratio. The events are like a service's: most
//! hold no keyword of the secret rules, one in 20 holds one (`token`, `key`, a URL), one in
//! 1,000 carries a credential.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use cap_runtime::RedactingMakeWriter;

/// Runs of each variant; the fastest is reported (the least disturbed by other work).
const RUNS: usize = 5;

fn log_events(count: usize, credential: &str) {
    for i in 0..count {
        match i % 1000 {
            0 => tracing::warn!(%credential, "upstream refused the key"),
            n if n % 20 == 0 => tracing::info!(
                url = "https://forge.internal/api/v1/tasks",
                tokens = i,
                "model answered"
            ),
            n if n % 2 == 0 => tracing::info!(task_id = i, node = "execute", "node finished"),
            _ => tracing::debug!(session = i, bytes = 4096, "workspace changes read"),
        }
    }
}

fn time(count: usize, credential: &str, redacting: bool) -> Duration {
    let builder = || {
        tracing_subscriber::fmt()
            .with_target(false)
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
    };
    let mut best = Duration::MAX;
    for _ in 0..RUNS {
        let started = Instant::now();
        if redacting {
            let subscriber = builder()
                .with_writer(RedactingMakeWriter::new(std::io::sink))
                .finish();
            tracing::subscriber::with_default(subscriber, || log_events(count, credential));
        } else {
            let subscriber = builder().with_writer(std::io::sink).finish();
            tracing::subscriber::with_default(subscriber, || log_events(count, credential));
        }
        best = best.min(started.elapsed());
    }
    best
}

fn main() {
    let count: usize = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .map_or(200_000, |arg| arg.parse().expect("events: a number"));
    // A GitHub-style token, assembled here so the repository holds none.
    let body: String = (0..36)
        .map(|i| char::from(b"aZ7qW3eR9tY1uI5oP2sD8fG4hJ6kL0"[(i * 7 + 3) % 30]))
        .collect();
    let credential = format!("{}{body}", ["gh", "p_"].concat());
    // Builds the scanner before timing (it is built once per process).
    let _ = cap_secrets::redact("warm up");

    let plain = time(count, &credential, false);
    let redacted = time(count, &credential, true);
    let per_line = |d: Duration| d.as_nanos() as f64 / count as f64;
    println!("log lines: {count}, best of {RUNS} runs");
    println!("plain writer:      {:8.0} ns/line", per_line(plain));
    println!("redacting writer:  {:8.0} ns/line", per_line(redacted));
    println!(
        "ratio:             {:8.2}x",
        redacted.as_secs_f64() / plain.as_secs_f64()
    );
}
