use std::time::Duration;

use super::{Coordination, RedisConfig};

#[test]
fn watchers_poll_every_two_seconds_without_redis() {
    assert_eq!(Coordination::Sql.watch_poll(), Duration::from_secs(2));
    assert!(Coordination::Sql.remote_wakeups().is_none());
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_at_connect_naming_its_address() {
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = Coordination::connect(RedisConfig::new(format!("redis://127.0.0.1:{port}")))
        .await
        .unwrap_err();
    let message = cap_errors::chain(&error);
    assert!(
        message.starts_with(&format!("redis at 127.0.0.1:{port}: PING failed")),
        "{message}"
    );
}

#[tokio::test]
async fn a_url_that_is_not_redis_is_refused_at_connect() {
    let error = Coordination::connect(RedisConfig::new("http://127.0.0.1:6379"))
        .await
        .unwrap_err();
    let message = cap_errors::chain(&error);
    assert!(message.starts_with("redis URL is not valid"), "{message}");
}
