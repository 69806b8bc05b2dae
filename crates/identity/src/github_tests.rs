#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::DEFAULT_ORGANISATION;

const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A store on a fresh SQLite file, and one on the shared PostgreSQL database.
async fn stores() -> (Vec<IdentityStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = IdentityStore::open(&cap_storage::sqlite_url(&dir.path().join("gateway.db")))
        .await
        .unwrap();
    let postgres = IdentityStore::open(POSTGRES_URL).await.unwrap();
    (vec![sqlite, postgres], dir)
}

/// A GitHub account no other test (or earlier run on the shared database) has used.
fn account(login_prefix: &str) -> GitHubAccount {
    let random = u64::from_le_bytes(crate::keys::random::<8>().unwrap());
    GitHubAccount {
        id: i64::try_from(random >> 2).unwrap(),
        login: format!(
            "{login_prefix}{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        ),
    }
}

#[tokio::test]
async fn a_github_account_is_one_user_across_renames() {
    let (stores, _dir) = stores().await;
    for store in stores {
        let first = account("Octo");
        let user = store
            .github_user(&first, Role::Viewer, DEFAULT_ORGANISATION)
            .await
            .unwrap();
        assert_eq!(
            user.name,
            format!("gh-{}", first.login.to_ascii_lowercase())
        );
        assert_eq!(user.role, Role::Viewer);
        assert_eq!(user.github_login.as_deref(), Some(first.login.as_str()));

        let renamed = GitHubAccount {
            id: first.id,
            login: format!("{}-renamed", first.login),
        };
        let again = store
            .github_user(&renamed, Role::Admin, DEFAULT_ORGANISATION)
            .await
            .unwrap();
        assert_eq!(again.name, user.name, "linked by id, not by login");
        assert_eq!(
            again.role,
            Role::Viewer,
            "the role for new users is not applied again"
        );
        assert_eq!(again.github_login.as_deref(), Some(renamed.login.as_str()));
        assert_eq!(
            store.github_account_of(&user.name).await.unwrap(),
            Some(renamed)
        );
    }
}

#[tokio::test]
async fn a_github_login_never_takes_over_an_account_of_the_same_name() {
    let (stores, _dir) = stores().await;
    for store in stores {
        let github = account("mallory");
        let local = format!("gh-{}", github.login);
        store
            .add_user(
                &local,
                Role::Admin,
                Some("a long local password"),
                "default",
            )
            .await
            .unwrap();
        let user = store
            .github_user(&github, Role::Viewer, DEFAULT_ORGANISATION)
            .await
            .unwrap();
        assert_eq!(user.name, format!("{local}-{}", github.id));
        assert_eq!(user.role, Role::Viewer);
        assert_eq!(store.github_account_of(&local).await.unwrap(), None);
        assert_eq!(store.user(&local).await.unwrap().unwrap().role, Role::Admin);

        // The account whose old login a renamed user left behind.
        let newcomer = GitHubAccount {
            id: github.id + 1,
            login: github.login.clone(),
        };
        store
            .add_user(
                &format!("{local}-{}", newcomer.id),
                Role::Viewer,
                None,
                "default",
            )
            .await
            .unwrap();
        let error = store
            .github_user(&newcomer, Role::Viewer, DEFAULT_ORGANISATION)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("both taken"), "{error}");
    }
}

#[tokio::test]
async fn a_disabled_github_user_cannot_sign_in_and_odd_logins_are_refused() {
    let (stores, _dir) = stores().await;
    for store in stores {
        let github = account("dora");
        let user = store
            .github_user(&github, Role::Developer, DEFAULT_ORGANISATION)
            .await
            .unwrap();
        store.set_disabled(&user.name, true).await.unwrap();
        let error = store
            .github_user(&github, Role::Developer, DEFAULT_ORGANISATION)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("disabled"), "{error}");

        let odd = GitHubAccount {
            id: github.id + 7,
            login: "no spaces/here".into(),
        };
        let error = store
            .github_user(&odd, Role::Viewer, DEFAULT_ORGANISATION)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a usable name"), "{error}");
    }
}

#[tokio::test]
async fn a_state_is_used_once_and_only_in_time() {
    let (stores, _dir) = stores().await;
    for store in stores {
        let state = uuid::Uuid::new_v4().to_string();
        store
            .issue_oauth_state(&state, now_ms() + 60_000)
            .await
            .unwrap();
        assert_eq!(
            store.use_oauth_state(&state).await.unwrap(),
            OAuthState::Fresh
        );
        assert!(matches!(
            store.use_oauth_state(&state).await.unwrap(),
            OAuthState::Used(_)
        ));
        let never = uuid::Uuid::new_v4().to_string();
        assert_eq!(
            store.use_oauth_state(&never).await.unwrap(),
            OAuthState::Unknown
        );
        let late = uuid::Uuid::new_v4().to_string();
        let expired_at = now_ms() - 1;
        store.issue_oauth_state(&late, expired_at).await.unwrap();
        assert_eq!(
            store.use_oauth_state(&late).await.unwrap(),
            OAuthState::Expired(expired_at)
        );
    }
}

#[tokio::test]
async fn a_sealed_token_opens_only_for_its_session_and_goes_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let vault = TokenVault::load_or_create(dir.path()).unwrap();
    let token = format!("gho_{}", uuid::Uuid::new_v4().simple());
    let sealed = vault.seal("session-a", &token).unwrap();
    assert!(!sealed.contains(&token));
    assert_eq!(vault.open("session-a", &sealed).unwrap(), token);
    assert!(
        vault.open("session-b", &sealed).is_err(),
        "bound to the session"
    );
    let mut altered = sealed.clone().into_bytes();
    altered[20] = if altered[20] == b'A' { b'B' } else { b'A' };
    assert!(
        vault
            .open("session-a", &String::from_utf8(altered).unwrap())
            .is_err()
    );
    // The key is kept: a restarted gateway opens what it sealed before.
    let reloaded = TokenVault::load_or_create(dir.path()).unwrap();
    assert_eq!(reloaded.open("session-a", &sealed).unwrap(), token);
    let other = tempfile::tempdir().unwrap();
    let error = TokenVault::load_or_create(other.path())
        .unwrap()
        .open("session-a", &sealed)
        .unwrap_err()
        .to_string();
    assert!(error.contains("does not open"), "{error}");

    let (stores, _dir) = stores().await;
    for store in stores {
        let user = store
            .github_user(&account("tess"), Role::Developer, DEFAULT_ORGANISATION)
            .await
            .unwrap();
        let session = store
            .open_session(&user.name, now_ms() + 60_000)
            .await
            .unwrap();
        store
            .keep_github_token(&session, 1, &sealed, now_ms() + 60_000)
            .await
            .unwrap();
        assert_eq!(
            store.github_token(&session).await.unwrap(),
            Some(sealed.clone())
        );
        store.revoke_session(&session).await.unwrap();
        assert_eq!(store.github_token(&session).await.unwrap(), None);

        let session = store
            .open_session(&user.name, now_ms() + 60_000)
            .await
            .unwrap();
        store
            .keep_github_token(&session, 1, &sealed, now_ms() + 60_000)
            .await
            .unwrap();
        store.revoke_sessions_of(&user.name).await.unwrap();
        assert_eq!(store.github_token(&session).await.unwrap(), None);

        let expired = store.open_session(&user.name, now_ms() - 1).await.unwrap();
        store
            .keep_github_token(&expired, 1, &sealed, now_ms() - 1)
            .await
            .unwrap();
        assert_eq!(store.github_token(&expired).await.unwrap(), None);
    }
}
