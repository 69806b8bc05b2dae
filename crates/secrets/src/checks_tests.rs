use super::*;

#[test]
fn entropy_of_uniform_and_repeated_strings() {
    assert_eq!(entropy(b"aaaa"), 0.0);
    assert!((entropy(b"abcd") - 2.0).abs() < 1e-9);
    assert_eq!(entropy(b""), 0.0);
}

#[test]
fn names_split_into_words_and_judged() {
    assert!(is_secret_name("password"));
    assert!(is_secret_name("DB_PASSWORD"));
    assert!(is_secret_name("clientSecret"));
    assert!(is_secret_name("apiKey"));
    assert!(is_secret_name("self.config.api_key"));
    assert!(is_secret_name("AWS_SECRET_ACCESS_KEY"));
    assert!(is_secret_name("authtoken"));
    assert!(!is_secret_name("password_hash"));
    assert!(!is_secret_name("max_tokens"));
    assert!(!is_secret_name("token_url"));
    assert!(!is_secret_name("secretKeyRef"));
    assert!(!is_secret_name("is_secret"));
    assert!(!is_secret_name("monkey"));
    assert!(!is_secret_name("keyboard"));
    assert!(!is_secret_name("api_key_id"));
    assert!(!is_secret_name("The_Secret_Saturdays"));
    assert!(is_secret_name("SECRET_KEY_BASE"));
    assert!(is_secret_name("client-key-data"));
    assert!(is_secret_name("password2"));
}

#[test]
fn values_that_are_references_or_words_are_rejected() {
    for value in [
        "settings.API_KEY",
        "process.env.TOKEN",
        "access_token",
        "DEFAULT_TOKEN",
        "/etc/ssl/private/server.key",
        "./secrets.json",
        "12345678901",
        "1.2.3-beta",
        "secret2024",
        "ENC[AES256_GCM,data]",
        "arn:aws:secretsmanager:eu-west-1:000000000000:secret:db",
    ] {
        assert!(!is_secret_value(value, false), "{value}");
    }
    // `(` in a quoted value is a literal character, not a call.
    assert!(is_secret_value("q7(Zr2#vL9!xw", true));
    assert!(is_secret_value("Tr0ub4dor&3x!", true));
}

#[test]
fn placeholders_digests_and_uuids_are_recognised() {
    assert!(is_placeholder("${DB_PASSWORD}"));
    assert!(is_placeholder("<your-api-key>"));
    assert!(is_placeholder("xxxxxxxxxxxx"));
    assert!(is_placeholder("changeme"));
    assert!(is_placeholder("0000000000000000"));
    assert!(is_uuid("123e4567-e89b-12d3-a456-426614174000"));
    assert!(!is_uuid("123e4567-e89b-12d3-a456-42661417400"));
    assert!(is_integrity_hash("sha512-AbC"));
    assert!(is_hex_digest(&"ab".repeat(20)));
    assert!(!is_hex_digest(&"ab".repeat(19)));
}

#[test]
fn url_passwords_skip_templates_and_documentation_hosts() {
    assert!(is_url_password("app", "Zk8w2Lq9", "db.internal"));
    assert!(!is_url_password("app", "${PG_PASSWORD}", "db.internal"));
    assert!(!is_url_password("user", "Zk8w2Lq9", "db.example.com"));
    assert!(!is_url_password("user", "password", "localhost"));
}
