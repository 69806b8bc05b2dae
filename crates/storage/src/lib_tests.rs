use super::*;

#[test]
fn redacts_passwords_only() {
    assert_eq!(
        redact("postgres://u:secret@h:5432/db"),
        "postgres://u:***@h:5432/db"
    );
    assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
}

#[test]
fn names_unsupported_urls() {
    let err = Backend::of_url("mysql://u:pw@h/db").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported database URL \"mysql://u:***@h/db\": expected sqlite:// or postgres://"
    );
}

/// A server shutting down (or an administrator ending the session) answers a query in flight
/// with `57P01 admin_shutdown`: the server comes back, so the store's caller waits it out.
#[tokio::test]
async fn a_server_ending_the_session_is_transient() {
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect("postgres://postgres@127.0.0.1:5432/test")
        .await
        .unwrap();
    let error = sqlx::query("SELECT pg_terminate_backend(pg_backend_pid())")
        .execute(&mut connection)
        .await
        .unwrap_err();
    let code = error
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("57P01"), "{error:?}");
    assert!(is_transient(&error), "{error:?}");
}
