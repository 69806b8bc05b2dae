//! Redaction of texts for events, logs and pull-request bodies.

use cap_secrets::{fingerprint, redact, redacted_form};

use super::support::{Gen, p};

#[test]
fn every_detected_secret_is_replaced_by_its_redacted_form() {
    let mut g = Gen::new(23);
    let github = p(&["gh", "p_"]) + &g.alnum(36);
    let password = g.password(18);
    let url_password = g.alnum(20);
    let key = g.pem_lines(&p(&["PRIV", "ATE KEY"]), 400);
    let text = format!(
        "tool edit_file({{\"content\": \"token={github}\"}})\n\
         DB_PASSWORD={password}\n\
         connecting to postgres://app:{url_password}@db:5432/app\n\
         {}\n\
         done\n",
        key.join("\n")
    );
    let redacted = redact(&text);
    for secret in [&github, &password, &url_password] {
        assert!(!redacted.contains(secret.as_str()), "{redacted}");
    }
    for line in &key[1..key.len() - 1] {
        assert!(!redacted.contains(line.as_str()), "{redacted}");
    }
    assert!(redacted.contains(&redacted_form(&github)), "{redacted}");
    assert!(redacted.contains(&format!(
        "postgres://app:{}@db:5432/app",
        redacted_form(&url_password)
    )));
    assert!(redacted.contains(&fingerprint(&password)));
    assert!(redacted.starts_with("tool edit_file({\"content\": \"token="));
    assert!(redacted.ends_with("done\n"));
    // The redacted text scans clean: redacting twice changes nothing.
    assert_eq!(redact(&redacted), redacted);
}

#[test]
fn text_without_secrets_is_unchanged() {
    let text = "max_tokens = 4096\npassword = os.environ[\"PW\"]\nünïcödé ✓\n";
    assert_eq!(redact(text), text);
}
