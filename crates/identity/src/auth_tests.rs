#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

async fn authenticator() -> (Authenticator, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = IdentityStore::open(&cap_storage::sqlite_url(&dir.path().join("gateway.db")))
        .await
        .unwrap();
    store
        .add_user(
            "alice",
            Role::Developer,
            Some("alice's long password"),
            "default",
        )
        .await
        .unwrap();
    (Authenticator::new(store, dir.path()).unwrap(), dir)
}

#[tokio::test]
async fn a_session_authenticates_until_signed_out() {
    let (auth, _dir) = authenticator().await;
    let session = auth
        .sign_in("alice", "alice's long password")
        .await
        .unwrap();
    let principal = auth.authenticate(&session.token).await.unwrap();
    assert_eq!(principal, session.principal);
    assert_eq!(principal.role, Role::Developer);

    auth.sign_out(&principal).await.unwrap();
    let error = auth
        .authenticate(&session.token)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("signed out or revoked"), "{error}");
    let error = auth.sign_in("alice", "not the password").await.unwrap_err();
    assert!(matches!(error, Error::Unauthenticated(_)));
}

#[tokio::test]
async fn a_demotion_or_a_disabled_account_takes_effect_at_once() {
    let (auth, _dir) = authenticator().await;
    let session = auth
        .sign_in("alice", "alice's long password")
        .await
        .unwrap();
    auth.store().set_role("alice", Role::Viewer).await.unwrap();
    assert_eq!(
        auth.authenticate(&session.token).await.unwrap().role,
        Role::Viewer
    );
    auth.store().set_disabled("alice", true).await.unwrap();
    let error = auth
        .authenticate(&session.token)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("disabled"), "{error}");
}

#[tokio::test]
async fn api_tokens_act_with_their_role_until_revoked_or_expired() {
    let (auth, _dir) = authenticator().await;
    let store = auth.store();
    let issued = store
        .create_token("alice", Role::Viewer, "ci", time::Duration::days(1))
        .await
        .unwrap();
    let principal = auth.authenticate(&issued.secret).await.unwrap();
    assert_eq!(principal.user, "alice");
    assert_eq!(principal.role, Role::Viewer);
    assert!(auth.sign_out(&principal).await.is_err());

    store.revoke_token(&issued.token.id).await.unwrap();
    let error = auth
        .authenticate(&issued.secret)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("revoked"), "{error}");

    let short = store
        .create_token(
            "alice",
            Role::Developer,
            "short",
            time::Duration::seconds(1),
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let error = auth
        .authenticate(&short.secret)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("expired"), "{error}");

    let error = auth
        .authenticate("cap_nonsense")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("not known"), "{error}");
}

#[tokio::test]
async fn a_key_rotated_while_running_signs_new_sessions_and_keeps_old_ones() {
    let (auth, dir) = authenticator().await;
    let before = auth
        .sign_in("alice", "alice's long password")
        .await
        .unwrap();
    crate::keys::SessionKeys::rotate(dir.path()).unwrap();
    let after = auth
        .sign_in("alice", "alice's long password")
        .await
        .unwrap();
    assert_ne!(kid(&before.token), kid(&after.token));
    auth.authenticate(&before.token).await.unwrap();
    // Another gateway replica that has not reloaded yet still accepts the new token.
    let other = Authenticator::new(auth.store().clone(), dir.path()).unwrap();
    other.authenticate(&after.token).await.unwrap();
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}
