use cap_sandbox::{Error, ErrorKind, Sandbox, SandboxConfig};
use pretty_assertions::assert_eq;

use super::support::{fixture, git};

#[tokio::test]
async fn create_checks_out_the_commit_and_copies_it_without_git() {
    let fx = fixture().await;
    let info = fx
        .sandbox
        .create_session(&fx.url(), &fx.commit[..10], "")
        .await
        .unwrap();
    // The abbreviated sha is resolved; the image is detected from requirements.txt.
    assert_eq!(info.commit_sha, fx.commit);
    assert_eq!(info.image, "coding-assistant/python");
    let dir = fx.root().join(info.session_id.to_string());
    assert!(dir.join("source/.git").is_dir());
    assert_eq!(git(&dir.join("source"), &["rev-parse", "HEAD"]), fx.commit);
    assert!(!dir.join("workspace/.git").exists());
    assert_eq!(
        std::fs::read_to_string(dir.join("workspace/src/app.py")).unwrap(),
        std::fs::read_to_string(dir.join("source/src/app.py")).unwrap()
    );
    // Symlinks stay symlinks, the executable bit stays.
    assert_eq!(
        std::fs::read_link(dir.join("workspace/escape"))
            .unwrap()
            .to_str(),
        Some("/etc/passwd")
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("workspace/run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
    }
    // The remote's hooks never ran on the host.
    assert!(!fx.dir.path().join("HOOK_RAN").exists());
}

#[tokio::test]
async fn an_older_commit_and_an_explicit_image() {
    let fx = fixture().await;
    let info = fx
        .sandbox
        .create_session(&fx.url(), &fx.first_commit, "coding-assistant/node:18")
        .await
        .unwrap();
    assert_eq!(info.image, "coding-assistant/node:18");
    let listing = fx
        .sandbox
        .list_directory(&info.session_id.to_string(), "", false)
        .await
        .unwrap();
    let paths: Vec<_> = listing.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["README.md"]);
    // Nothing in the first commit marks a toolchain.
    let base = fx
        .sandbox
        .create_session(&fx.url(), &fx.first_commit, "")
        .await
        .unwrap();
    assert_eq!(base.image, "coding-assistant/base");
}

#[tokio::test]
async fn bad_requests_are_refused_and_leave_nothing_behind() {
    let fx = fixture().await;
    let url = fx.url();
    let cases: Vec<(&str, &str, &str, ErrorKind)> = vec![
        (
            "ext::sh -c touch% /tmp/pwned",
            &fx.commit,
            "",
            ErrorKind::InvalidArgument,
        ),
        (
            "--upload-pack=touch /tmp/pwned",
            &fx.commit,
            "",
            ErrorKind::InvalidArgument,
        ),
        ("", &fx.commit, "", ErrorKind::InvalidArgument),
        (&url, "not-a-sha", "", ErrorKind::InvalidArgument),
        (&url, "HEAD", "", ErrorKind::InvalidArgument),
        (&url, &fx.commit, "ubuntu:22.04", ErrorKind::InvalidArgument),
        (
            &url,
            "0123456789abcdef0123456789abcdef01234567",
            "",
            ErrorKind::FailedPrecondition,
        ),
        (
            "/nonexistent/repo.git",
            &fx.commit,
            "",
            ErrorKind::FailedPrecondition,
        ),
    ];
    for (repo, sha, image, kind) in cases {
        let error = fx
            .sandbox
            .create_session(repo, sha, image)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), kind, "{repo} {sha} {image}: {error}");
    }
    let error = fx
        .sandbox
        .create_session(&url, "0123456789abcdef0123456789abcdef01234567", "")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::CommitNotFound { .. }), "{error}");
    let error = fx
        .sandbox
        .create_session("/nonexistent/repo.git", &fx.commit, "")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Clone { .. }), "{error}");
    assert!(
        error.to_string().contains("/nonexistent/repo.git"),
        "{error}"
    );
    // No session and no staging directory is left.
    assert_eq!(std::fs::read_dir(fx.root()).unwrap().count(), 0);
}

#[tokio::test]
async fn destroy_removes_the_session_and_unknown_ids_are_errors() {
    let fx = fixture().await;
    let id = fx.session().await;
    fx.sandbox.destroy_session(&id).await.unwrap();
    assert_eq!(std::fs::read_dir(fx.root()).unwrap().count(), 0);
    let again = fx.sandbox.destroy_session(&id).await.unwrap_err();
    assert!(matches!(again, Error::SessionNotFound { .. }), "{again}");
    assert_eq!(again.kind(), ErrorKind::NotFound);
    let read = fx.sandbox.read_file(&id, "README.md").await.unwrap_err();
    assert!(matches!(read, Error::SessionNotFound { .. }), "{read}");
    for malformed in ["", "../../etc", "not-a-uuid"] {
        let error = fx.sandbox.get_changes(malformed).await.unwrap_err();
        assert!(matches!(error, Error::InvalidSessionId { .. }), "{error}");
        assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    }
}

#[tokio::test]
async fn a_new_sandbox_over_the_same_root_serves_existing_sessions() {
    let fx = fixture().await;
    let id = fx.session().await;
    let restarted = Sandbox::new(SandboxConfig::new(fx.root())).await.unwrap();
    assert_eq!(
        restarted.read_file(&id, "README.md").await.unwrap(),
        b"# Demo\n\nA tiny project.\n"
    );
}

#[tokio::test]
async fn a_missing_bubblewrap_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SandboxConfig::new(dir.path());
    config.bwrap = dir.path().join("no-bwrap");
    let error = Sandbox::new(config).await.unwrap_err();
    assert!(
        matches!(error, Error::BubblewrapUnavailable { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("not found"), "{error}");
    // Something that exists but is not bubblewrap.
    let mut config = SandboxConfig::new(dir.path());
    config.bwrap = "/bin/false".into();
    let error = Sandbox::new(config).await.unwrap_err();
    assert!(
        matches!(error, Error::BubblewrapUnavailable { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn unusable_cgroups_and_zero_limits_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SandboxConfig::new(dir.path().join("sessions"));
    config.cgroup_root = Some(dir.path().join("no-cgroups"));
    let error = Sandbox::new(config).await.unwrap_err();
    assert!(matches!(error, Error::CgroupsUnavailable { .. }), "{error}");
    assert_eq!(error.kind(), cap_sandbox::ErrorKind::FailedPrecondition);
    let mut config = SandboxConfig::new(dir.path().join("sessions"));
    config.limits.memory_bytes = 0;
    let error = Sandbox::new(config).await.unwrap_err();
    assert!(matches!(error, Error::InvalidConfig(_)), "{error}");
    // Without cgroups the sandbox still runs, with its other walls.
    let mut config = SandboxConfig::new(dir.path().join("sessions"));
    config.cgroup_root = None;
    Sandbox::new(config).await.unwrap();
}

#[tokio::test]
async fn inconsistent_configuration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SandboxConfig::new(dir.path());
    config.default_timeout = config.max_timeout * 2;
    assert!(matches!(
        Sandbox::new(config).await,
        Err(Error::InvalidConfig(_))
    ));
    let mut config = SandboxConfig::new(dir.path());
    config.output_cap_bytes = 0;
    assert!(matches!(
        Sandbox::new(config).await,
        Err(Error::InvalidConfig(_))
    ));
}
