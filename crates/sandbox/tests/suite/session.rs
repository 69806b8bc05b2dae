use cap_sandbox::{Error, ErrorKind, Sandbox, SandboxConfig};
use pretty_assertions::assert_eq;

use super::support::{fixture, git, session_entries, wait_removed};

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
    // No session and no staging directory is left, nor a half-made checkout.
    assert_eq!(session_entries(&fx.root()), Vec::<String>::new());
    let cache: Vec<_> = std::fs::read_dir(fx.root().join(".cache"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(cache.is_empty(), "{cache:?}");
}

#[tokio::test]
async fn destroy_removes_the_session_and_unknown_ids_are_errors() {
    let fx = fixture().await;
    let id = fx.session().await;
    fx.sandbox.destroy_session(&id).await.unwrap();
    // Unusable at once; the files go in the background.
    assert!(!fx.root().join(&id).exists());
    wait_removed(&fx.root()).await;
    assert_eq!(session_entries(&fx.root()), Vec::<String>::new());
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

#[tokio::test]
async fn sessions_of_a_commit_share_one_checkout_and_keep_their_own_workspace() {
    let fx = fixture().await;
    let first = fx.session().await;
    let second = fx.session().await;
    let source = |id: &str| std::fs::read_link(fx.root().join(id).join("source")).unwrap();
    assert_eq!(source(&first), source(&second));
    // The second session did not clone: it is made even once the remote is gone.
    std::fs::rename(&fx.bare, fx.dir.path().join("moved.git")).unwrap();
    let third = fx.session().await;
    assert_eq!(source(&third), source(&first));
    // An abbreviated sha is not trusted to the cache: it needs the remote.
    let error = fx
        .sandbox
        .create_session(&fx.url(), &fx.commit[..10], "")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Clone { .. }), "{error}");
    // Each workspace is the session's own.
    fx.sandbox
        .write_files(
            &first,
            vec![cap_sandbox::FileChange {
                path: "README.md".into(),
                content: Some(b"changed".to_vec()),
            }],
        )
        .await
        .unwrap();
    assert_eq!(
        fx.sandbox.read_file(&second, "README.md").await.unwrap(),
        b"# Demo\n\nA tiny project.\n"
    );
    let changes = fx.sandbox.get_changes(&second).await.unwrap();
    assert!(changes.changes.is_empty(), "{changes:?}");
    // Destroying a session leaves the checkout the others use.
    fx.sandbox.destroy_session(&first).await.unwrap();
    wait_removed(&fx.root()).await;
    assert!(fx.root().join(&second).join("source/.git").is_dir());
    assert_eq!(
        fx.sandbox.read_file(&second, "README.md").await.unwrap(),
        b"# Demo\n\nA tiny project.\n"
    );
}

/// The key a session root's cgroup instances are named by.
fn root_key(root: &std::path::Path) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(root.as_os_str().as_encoded_bytes())
        .iter()
        .take(16)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The `cap-sandbox` directories of the host's cgroup hierarchy (v2, or each v1 controller).
fn cgroup_tops() -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        return vec![root.join("cap-sandbox")];
    }
    ["pids", "memory", "cpu", "cpu,cpuacct"]
        .iter()
        .map(|controller| root.join(controller).join("cap-sandbox"))
        .filter(|top| top.is_dir())
        .collect()
}

#[tokio::test]
async fn a_restarted_service_sweeps_what_a_crashed_one_left() {
    let fx = fixture().await;
    let root = fx.root().canonicalize().unwrap();
    let key = root_key(&root);
    // A crashed service's instance (its pid no longer exists), with a process still running
    // in its group; and a live process's instance, which must be left alone.
    let mut survivor = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    let tops = cgroup_tops();
    assert!(!tops.is_empty());
    let stale = format!("{key}-99999999-crashed");
    let live = format!("{key}-1-live");
    for top in &tops {
        std::fs::create_dir_all(top.join(&stale).join("group")).unwrap();
        std::fs::write(
            top.join(&stale).join("group/cgroup.procs"),
            survivor.id().to_string(),
        )
        .unwrap();
        std::fs::create_dir_all(top.join(&live).join("group")).unwrap();
    }
    // Half-made and half-removed sessions and checkouts.
    for leftover in [".staging-a", ".trash-b", ".cache/.staging-c"] {
        std::fs::create_dir_all(root.join(leftover).join("sub")).unwrap();
    }

    let restarted = Sandbox::new(SandboxConfig::new(&root)).await.unwrap();
    let status = survivor.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{status:?}");
    for top in &tops {
        assert!(!top.join(&stale).exists(), "{}", top.display());
        assert!(top.join(&live).join("group").is_dir(), "{}", top.display());
        std::fs::remove_dir(top.join(&live).join("group")).unwrap();
        std::fs::remove_dir(top.join(&live)).unwrap();
    }
    assert_eq!(session_entries(&root), Vec::<String>::new());
    assert_eq!(
        std::fs::read_dir(root.join(".cache")).unwrap().count(),
        0,
        "a half-made checkout is left"
    );
    drop(restarted);
}

#[tokio::test]
async fn concurrent_first_sessions_of_a_commit_end_up_sharing_one_checkout() {
    let fx = fixture().await;
    let url = fx.url();
    let (first, second) = tokio::join!(
        fx.sandbox.create_session(&url, &fx.commit, ""),
        fx.sandbox.create_session(&url, &fx.commit, ""),
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    let source =
        |id: uuid::Uuid| std::fs::read_link(fx.root().join(id.to_string()).join("source")).unwrap();
    assert_eq!(source(first.session_id), source(second.session_id));
    // One checkout, and nothing half-made left by the one that lost the race.
    let cache: Vec<String> = std::fs::read_dir(fx.root().join(".cache"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(cache.len(), 1, "{cache:?}");
    assert!(cache[0].ends_with(&fx.commit), "{cache:?}");
}

#[tokio::test]
async fn ready_launchers_wait_in_their_cgroups_and_go_with_the_sandbox() {
    let fx = fixture().await;
    let root = fx.root().canonicalize().unwrap();
    let key = root_key(&root);
    let ours = format!("{key}-{}-", std::process::id());
    let tops = cgroup_tops();
    let instance = |top: &std::path::Path| {
        std::fs::read_dir(top)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| {
                path.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&ours)
            })
    };
    // Groups with a process in them.
    let occupied = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .map(|entry| entry.unwrap().path())
                    .filter(|path| {
                        std::fs::read_to_string(path.join("cgroup.procs"))
                            .is_ok_and(|procs| !procs.trim().is_empty())
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    // Processes whose command line names the instance (the launchers name their groups).
    let launchers = |name: &str| {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|entry| {
                std::fs::read(entry.path().join("cmdline"))
                    .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(name))
            })
            .count()
    };
    // The default two launchers get ready, each waiting in its own group.
    let dir = instance(&tops[0]).expect("the sandbox's cgroup instance");
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    while occupied(&dir) < 2 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(launchers(&name), 2);
    // A command uses one; it runs, and the pool is refilled.
    let id = fx.session().await;
    let ran = super::support::run(&fx.sandbox, &id, super::support::spec("echo ran")).await;
    assert_eq!(ran.stdout, "ran\n");
    drop(fx.sandbox);
    // Nothing of the sandbox is left: no launcher, no group, no instance. (A refill still
    // running holds the pool until it is done, so this may take a moment.)
    while dir.exists() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(launchers(&name), 0);
    for top in &tops {
        assert!(!top.join(&name).exists(), "{}", top.join(&name).display());
    }
}
