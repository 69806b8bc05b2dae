#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt as _;

use base64::Engine as _;

use super::*;

fn now_s() -> i64 {
    cap_storage::now_ms() / 1000
}

#[test]
fn the_key_file_is_created_private_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let first = SessionKeys::load_or_create(dir.path()).unwrap();
    let mode = std::fs::metadata(dir.path().join(KEY_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = SessionKeys::load_or_create(dir.path()).unwrap();
    assert_eq!(first.current_kid(), again.current_kid());
}

#[test]
fn a_signed_token_verifies_and_a_tampered_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let keys = SessionKeys::load_or_create(dir.path()).unwrap();
    let claims = SessionKeys::claims("alice", Role::Developer, "s1", now_s()).unwrap();
    let token = keys.sign(&claims).unwrap();
    assert_eq!(keys.verify(&token).unwrap(), claims);

    // Claims changed (role raised to admin) under the old signature.
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    let mut raised = claims.clone();
    raised.role = Role::Admin;
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        engine.encode(serde_json::to_vec(&raised).unwrap()),
        parts[2]
    );
    let error = keys.verify(&forged).unwrap_err().to_string();
    assert!(error.contains("signature does not match"), "{error}");

    assert!(
        keys.verify("garbage")
            .unwrap_err()
            .to_string()
            .contains("malformed")
    );
}

#[test]
fn tokens_of_another_installation_and_expired_ones_are_refused() {
    let ours = SessionKeys::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
    let theirs = SessionKeys::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
    let claims = SessionKeys::claims("alice", Role::Admin, "s1", now_s()).unwrap();
    let error = ours
        .verify(&theirs.sign(&claims).unwrap())
        .unwrap_err()
        .to_string();
    assert!(error.contains("key this gateway does not have"), "{error}");

    let old = SessionKeys::claims("alice", Role::Admin, "s1", now_s() - 90_000).unwrap();
    let error = ours
        .verify(&ours.sign(&old).unwrap())
        .unwrap_err()
        .to_string();
    assert!(error.contains("expired"), "{error}");
}

#[test]
fn rotation_signs_with_a_new_key_and_still_verifies_the_old_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let before = SessionKeys::load_or_create(dir.path()).unwrap();
    let claims = SessionKeys::claims("alice", Role::Viewer, "s1", now_s()).unwrap();
    let old_token = before.sign(&claims).unwrap();
    let after = SessionKeys::rotate(dir.path()).unwrap();
    assert_ne!(before.current_kid(), after.current_kid());
    assert_eq!(after.verify(&old_token).unwrap(), claims);
    let new_token = after.sign(&claims).unwrap();
    // The old key set does not know the new key.
    assert!(before.verify(&new_token).is_err());
}
