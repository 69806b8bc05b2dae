#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

#[test]
fn a_hash_verifies_its_password_only() {
    let password = generate().unwrap();
    let stored = hash(&password).unwrap();
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    assert!(verify(&password, &stored));
    assert!(!verify("another password entirely", &stored));
    assert!(!verify(&password, "not a phc string"));
    // Salted: the same password hashes differently each time.
    assert_ne!(stored, hash(&password).unwrap());
}

#[test]
fn short_and_long_passwords_are_refused() {
    assert!(hash("short").unwrap_err().to_string().contains("too short"));
    let long = "x".repeat(MAX_PASSWORD_CHARS + 1);
    assert!(hash(&long).unwrap_err().to_string().contains("too long"));
}
