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
