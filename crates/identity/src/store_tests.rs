#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

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

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

#[tokio::test]
async fn users_are_added_once_and_checked_by_password() {
    let (stores, _dir) = stores().await;
    for store in stores {
        let name = unique("alice");
        let user = store
            .add_user(
                &name,
                Role::Developer,
                Some("correct horse battery"),
                "default",
            )
            .await
            .unwrap();
        assert_eq!(store.user(&name).await.unwrap(), Some(user.clone()));
        let again = store.add_user(&name, Role::Viewer, None, "default").await;
        assert!(matches!(again, Err(Error::UserExists(_))));

        assert_eq!(
            store
                .check_password(&name, "correct horse battery")
                .await
                .unwrap(),
            user
        );
        let wrong = store.check_password(&name, "wrong horse battery").await;
        let unknown = store
            .check_password(&unique("nobody"), "whatever at all")
            .await;
        // The same answer, so a caller cannot tell which names exist.
        assert_eq!(
            wrong.unwrap_err().to_string(),
            unknown.unwrap_err().to_string()
        );

        store.set_disabled(&name, true).await.unwrap();
        let disabled = store.check_password(&name, "correct horse battery").await;
        assert!(disabled.unwrap_err().to_string().contains("disabled"));
        assert!(matches!(
            store.set_role(&unique("ghost"), Role::Admin).await,
            Err(Error::UnknownUser(_))
        ));
    }
}

#[tokio::test]
async fn the_first_admin_is_made_once_with_a_private_password_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = IdentityStore::open(&cap_storage::sqlite_url(&dir.path().join("g.db")))
        .await
        .unwrap();
    let password = store.ensure_first_admin(dir.path()).await.unwrap().unwrap();
    let file = dir.path().join(INITIAL_PASSWORD_FILE);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), password);
    assert_eq!(
        store.check_password("admin", &password).await.unwrap().role,
        Role::Admin
    );
    assert_eq!(store.ensure_first_admin(dir.path()).await.unwrap(), None);

    // Changing the password retires the file.
    store
        .set_password("admin", "a new long password", dir.path())
        .await
        .unwrap();
    assert!(!file.exists());
}

#[tokio::test]
async fn tokens_are_stored_hashed_bounded_by_the_users_role_and_revocable() {
    let (stores, _dir) = stores().await;
    for store in stores {
        let name = unique("ci");
        store
            .add_user(&name, Role::Developer, None, "default")
            .await
            .unwrap();
        let refused = store
            .create_token(&name, Role::Admin, "too much", time::Duration::days(1))
            .await;
        assert!(
            refused
                .unwrap_err()
                .to_string()
                .contains("more rights than its user")
        );

        let issued = store
            .create_token(&name, Role::Viewer, "dashboards", time::Duration::days(30))
            .await
            .unwrap();
        assert!(issued.secret.starts_with("cap_"));
        assert_eq!(
            store.token_by_secret(&issued.secret).await.unwrap(),
            Some(issued.token.clone())
        );
        assert_eq!(store.token_by_secret("cap_unknown").await.unwrap(), None);
        let listed = store.tokens(Some(&name)).await.unwrap();
        assert_eq!(listed, vec![issued.token.clone()]);

        let revoked = store.revoke_token(&issued.token.id).await.unwrap();
        assert!(revoked.revoked_at_ms.is_some());
        assert!(matches!(
            store.revoke_token("no-such-token").await,
            Err(Error::UnknownToken(_))
        ));
    }
}

#[tokio::test]
async fn the_allow_list_matches_globs_per_organisation() {
    let (stores, _dir) = stores().await;
    for store in stores {
        let org = unique("org");
        let entry = |pattern: &str, allow_self_approval| AllowedRepository {
            organisation: org.clone(),
            pattern: pattern.to_owned(),
            allow_self_approval,
        };
        store
            .allow_repository(&entry("demo/*", false))
            .await
            .unwrap();
        store
            .allow_repository(&entry("team/app", true))
            .await
            .unwrap();
        assert_eq!(
            store
                .repository_entries(&org, "demo/calculator")
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            store
                .repository_entries(&org, "other/x")
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .repository_entries("elsewhere", "demo/calculator")
                .await
                .unwrap()
                .is_empty()
        );
        assert!(store.repository_entries(&org, "team/app").await.unwrap()[0].allow_self_approval);

        // Updating an entry keeps one row.
        store
            .allow_repository(&entry("demo/*", true))
            .await
            .unwrap();
        assert_eq!(store.allowed_repositories(&org).await.unwrap().len(), 2);
        assert!(store.disallow_repository(&org, "demo/*").await.unwrap());
        assert!(!store.disallow_repository(&org, "demo/*").await.unwrap());
        assert!(store.allow_repository(&entry("[", false)).await.is_err());
    }
}

#[tokio::test]
async fn the_daily_limit_counts_a_rolling_day_and_says_when_the_next_is_allowed() {
    let (stores, _dir) = stores().await;
    for store in stores {
        let org = unique("org");
        let user = unique("dev");
        store
            .add_user(&user, Role::Developer, None, &org)
            .await
            .unwrap();
        store.set_daily_pull_requests(&org, 2).await.unwrap();
        let now = cap_storage::now_ms();
        let day = 86_400_000;
        // One too old to count, two inside the window.
        store
            .record_submission(&user, &unique("t"), now - day - 1)
            .await
            .unwrap();
        assert_eq!(
            store
                .submission_refused_until(&user, &org, now)
                .await
                .unwrap(),
            None
        );
        store
            .record_submission(&user, &unique("t"), now - 5000)
            .await
            .unwrap();
        store
            .record_submission(&user, &unique("t"), now - 1000)
            .await
            .unwrap();
        assert_eq!(
            store
                .submission_refused_until(&user, &org, now)
                .await
                .unwrap(),
            Some((2, now - 5000 + day))
        );
        assert!(store.set_daily_pull_requests(&org, 0).await.is_err());
    }
}
