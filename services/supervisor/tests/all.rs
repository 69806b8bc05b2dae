//! The supervisor service's start.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use clap::Parser;

/// Flags for a supervisor whose data and certificates live in `dir`, the services it drives
/// on loopback ports nothing listens on (its clients connect lazily).
fn flags(dir: &std::path::Path, extra: &[&str]) -> cap_supervisor::Config {
    let data = dir.display().to_string();
    let pki = dir.join("pki").display().to_string();
    let mut args = vec![
        "cap-supervisor",
        "--data-dir",
        &data,
        "--pki-dir",
        &pki,
        "--sandbox-url",
        "https://127.0.0.1:9",
        "--github-url",
        "https://127.0.0.1:9",
        "--coding-agent-url",
        "https://127.0.0.1:9",
        "--testing-agent-url",
        "https://127.0.0.1:9",
    ];
    args.extend_from_slice(extra);
    cap_supervisor::Config::try_parse_from(args).unwrap()
}

#[tokio::test]
async fn start_fails_naming_redis_when_it_is_configured_and_does_not_answer() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let config = flags(dir.path(), &["--redis-url", &url]);
    assert_eq!(config.redis_url.as_deref(), Some(url.as_str()));
    let started = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        cap_supervisor::run(config),
    )
    .await
    .expect("the supervisor should stop at once, not serve");
    let message = format!("{:#}", started.unwrap_err());
    assert!(
        message.starts_with(&format!(
            "REDIS_URL: redis at 127.0.0.1:{port}: PING failed"
        )),
        "{message}"
    );
}

#[test]
fn a_task_run_has_an_hour_unless_told_otherwise_and_0_means_no_limit() {
    let dir = tempfile::tempdir().unwrap();
    let hour = std::time::Duration::from_secs(3600);
    assert_eq!(flags(dir.path(), &[]).task_time_budget(), Some(hour));
    let ten = flags(dir.path(), &["--task-timeout-minutes", "10"]);
    assert_eq!(ten.task_time_budget(), Some(hour / 6));
    let none = flags(dir.path(), &["--task-timeout-minutes", "0"]);
    assert_eq!(none.task_time_budget(), None);
}
