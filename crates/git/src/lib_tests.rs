use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Instant;

use pretty_assertions::assert_eq;

use super::*;

const IDENTITY: [(&str, &str); 4] = [
    ("GIT_AUTHOR_NAME", "test"),
    ("GIT_AUTHOR_EMAIL", "test@example.com"),
    ("GIT_COMMITTER_NAME", "test"),
    ("GIT_COMMITTER_EMAIL", "test@example.com"),
];

fn identity(git: Git) -> Git {
    IDENTITY
        .iter()
        .fold(git, |git, (key, value)| git.env(key, value))
}

/// A work tree at `dir` with one commit of `file.txt` (and whatever `extra` adds).
async fn repo_with_commit(dir: &Path, extra: &[(&str, &str)]) {
    Git::new()
        .args(["init", "--quiet", "--initial-branch=main"])
        .args([dir])
        .run()
        .await
        .unwrap();
    std::fs::write(dir.join("file.txt"), "hello\n").unwrap();
    for (path, content) in extra {
        std::fs::write(dir.join(path), content).unwrap();
    }
    Git::new()
        .current_dir(dir)
        .args(["add", "--all"])
        .run()
        .await
        .unwrap();
    identity(Git::new().current_dir(dir))
        .args(["commit", "--quiet", "-m", "first"])
        .run()
        .await
        .unwrap();
}

/// An executable shell script at `path` that creates `marker`.
fn script(path: &Path, marker: &Path) {
    std::fs::write(
        path,
        format!("#!/bin/sh\ntouch '{}'\ncat >/dev/null\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Plain git, as a careless caller would run it: the control that shows a trap is armed.
fn plain_git(dir: &Path, args: &[&str], env: &[(&str, &Path)]) {
    let mut command = std::process::Command::new("git");
    command.current_dir(dir).args(args);
    for (key, value) in IDENTITY {
        command.env(key, value);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{output:?}");
}

#[tokio::test]
async fn the_repositorys_hooks_and_fsmonitor_do_not_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (work, marker) = (tmp.path().join("work"), tmp.path().join("marker"));
    std::fs::create_dir(&work).unwrap();
    repo_with_commit(&work, &[]).await;
    let hooks = work.join(".git/hooks");
    let elsewhere = tmp.path().join("hooks");
    std::fs::create_dir(&elsewhere).unwrap();
    for name in [
        "pre-commit",
        "post-commit",
        "post-checkout",
        "reference-transaction",
    ] {
        script(&hooks.join(name), &marker);
        script(&elsewhere.join(name), &marker);
    }
    script(&tmp.path().join("fsmonitor"), &marker);

    // The control: plain git runs the hooks.
    plain_git(&work, &["checkout", "--quiet", "-b", "control"], &[]);
    assert!(marker.exists(), "the hooks are not armed");
    std::fs::remove_file(&marker).unwrap();

    // The repository's own configuration points elsewhere too.
    let git = || Git::new().current_dir(&work);
    git()
        .args(["config", "core.hooksPath"])
        .args([&elsewhere])
        .run()
        .await
        .unwrap();
    git()
        .args(["config", "core.fsmonitor"])
        .args([tmp.path().join("fsmonitor")])
        .run()
        .await
        .unwrap();
    std::fs::write(work.join("file.txt"), "changed\n").unwrap();
    git().args(["status", "--porcelain"]).run().await.unwrap();
    git().args(["add", "file.txt"]).run().await.unwrap();
    identity(git())
        .args(["commit", "--quiet", "-m", "second"])
        .run()
        .await
        .unwrap();
    git()
        .args(["checkout", "--quiet", "-b", "topic"])
        .run()
        .await
        .unwrap();
    git()
        .args(["update-ref", "refs/heads/other", "HEAD"])
        .run()
        .await
        .unwrap();
    assert!(!marker.exists(), "a hook or the fsmonitor ran");
}

#[tokio::test]
async fn outside_configuration_and_filter_drivers_do_not_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let (work, marker) = (tmp.path().join("work"), tmp.path().join("marker"));
    std::fs::create_dir(&work).unwrap();
    // The tree names a filter and a diff driver; a host's configuration defines them.
    repo_with_commit(&work, &[(".gitattributes", "* filter=evil diff=evil\n")]).await;
    let driver = tmp.path().join("driver");
    script(&driver, &marker);
    let global = tmp.path().join("gitconfig");
    std::fs::write(
        &global,
        format!(
            "[filter \"evil\"]\n\tsmudge = {0}\n\tclean = {0}\n[diff \"evil\"]\n\ttextconv = {0}\n\tcommand = {0}\n",
            driver.display()
        ),
    )
    .unwrap();
    std::fs::remove_file(work.join("file.txt")).unwrap();

    // The control: plain git with that configuration runs the driver.
    plain_git(
        &work,
        &["checkout", "--quiet", "--", "file.txt"],
        &[("GIT_CONFIG_GLOBAL", &global)],
    );
    assert!(marker.exists(), "the filter is not armed");
    std::fs::remove_file(&marker).unwrap();
    std::fs::remove_file(work.join("file.txt")).unwrap();

    // A caller's environment cannot bring the configuration back.
    let git = || {
        Git::new()
            .current_dir(&work)
            .env("GIT_CONFIG_GLOBAL", &global)
            .env("GIT_CONFIG_NOSYSTEM", "0")
    };
    git()
        .args(["checkout", "--quiet", "--", "file.txt"])
        .run()
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(work.join("file.txt")).unwrap(),
        "hello\n"
    );
    std::fs::write(work.join("file.txt"), "changed\n").unwrap();
    git().args(["diff"]).run().await.unwrap();
    git().args(["add", "file.txt"]).run().await.unwrap();
    assert!(!marker.exists(), "a filter or diff driver ran");
}

#[tokio::test]
async fn options_before_the_subcommand_are_refused() {
    for args in [&["-c", "core.hooksPath=/tmp/hooks", "status"][..], &[]] {
        let error = Git::new().args(args).output().await.unwrap_err();
        assert!(
            matches!(error, Error::InvalidCommand { .. }),
            "{args:?}: {error:?}"
        );
    }
}

#[tokio::test]
async fn transports_are_refused_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    std::fs::create_dir(&origin).unwrap();
    repo_with_commit(&origin, &[]).await;
    let clone = |to: &str| {
        Git::new()
            .args(["clone", "--quiet", "--no-hardlinks", "--"])
            .args([origin.as_os_str(), tmp.path().join(to).as_os_str()])
    };

    let refused = clone("refused").output().await.unwrap();
    assert!(!refused.success(), "a local clone went through by default");
    assert!(
        refused
            .stderr_tail(3)
            .contains("transport 'file' not allowed"),
        "{}",
        refused.stderr_tail(3)
    );

    clone("allowed")
        .allow_protocols(&[Protocol::File])
        .run()
        .await
        .unwrap();
    assert!(tmp.path().join("allowed/file.txt").is_file());

    let ext = Git::new()
        .allow_protocols(&Protocol::ALL)
        .args(["clone", "--quiet", "ext::sh -c touch% /tmp/cap-git-ext"])
        .args([tmp.path().join("ext")])
        .output()
        .await
        .unwrap();
    assert!(!ext.success());
    assert!(ext.stderr_tail(3).contains("not allowed"), "{ext:?}");
}

#[tokio::test]
async fn the_timeout_kills_a_hung_git_and_what_it_started() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    repo_with_commit(&work, &[]).await;
    let pid_file = tmp.path().join("pid");
    // A repository-local alias stands in for a git stuck on a remote: a shell that sleeps.
    Git::new()
        .current_dir(&work)
        .args([
            "config",
            "alias.hang",
            &format!("!echo $$ > '{}'; exec sleep 60", pid_file.display()),
        ])
        .run()
        .await
        .unwrap();

    let started = Instant::now();
    let error = Git::new()
        .current_dir(&work)
        .args(["hang"])
        .timeout(Duration::from_millis(1500))
        .output()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::TimedOut { command, after }
            if command == "hang" && *after == Duration::from_millis(1500)),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let stat = Path::new("/proc").join(pid.trim()).join("stat");
    let deadline = Instant::now() + Duration::from_secs(5);
    // Gone, or a zombie waiting for its new parent to reap it.
    while std::fs::read_to_string(&stat).is_ok_and(|stat| !stat.contains(") Z ")) {
        assert!(Instant::now() < deadline, "the hung sleep is still alive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn stdin_env_and_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = tmp.path().join("repo.git");
    Git::new()
        .args(["init", "--quiet", "--bare"])
        .arg_pair("--initial-branch", "trunk")
        .args([&bare])
        .run()
        .await
        .unwrap();
    let head = Git::with_git_dir(&bare)
        .args(["symbolic-ref", "HEAD"])
        .text()
        .await
        .unwrap();
    assert_eq!(head, "refs/heads/trunk");
    let sha = Git::with_git_dir(&bare)
        .args(["hash-object", "-w", "--no-filters", "--stdin"])
        .stdin(b"hello\n".to_vec())
        .text()
        .await
        .unwrap();
    assert_eq!(sha, "ce013625030ba8dba906f756967f9e9ca394464a");
    let index = tmp.path().join("index");
    Git::with_git_dir(&bare)
        .env("GIT_INDEX_FILE", &index)
        .args(["update-index", "--add", "--cacheinfo"])
        .args([format!("100644,{sha},hello.txt")])
        .run()
        .await
        .unwrap();
    assert!(index.is_file(), "GIT_INDEX_FILE was not used");
    let tree = Git::with_git_dir(&bare)
        .env("GIT_INDEX_FILE", &index)
        .args(["write-tree"])
        .text()
        .await
        .unwrap();
    let listing = Git::with_git_dir(&bare)
        .args(["ls-tree", "--name-only", &tree])
        .text()
        .await
        .unwrap();
    assert_eq!(listing, "hello.txt");

    let failed = Git::with_git_dir(&bare)
        .args(["rev-parse", "--verify", "no-such-ref"])
        .output()
        .await
        .unwrap();
    assert!(!failed.success());
    assert_eq!(failed.code(), Some(128));
    assert_eq!(failed.stderr_tail(1), "fatal: Needed a single revision");
    let error = Git::with_git_dir(&bare)
        .args(["rev-parse", "--verify", "no-such-ref"])
        .run()
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "`git rev-parse --verify no-such-ref` failed (exit status: 128): fatal: Needed a single revision"
    );
}

#[tokio::test]
async fn a_missing_git_dir_is_a_failure_not_a_search_upwards() {
    let tmp = tempfile::tempdir().unwrap();
    let output = Git::with_git_dir(tmp.path().join("none"))
        .args(["rev-parse", "HEAD"])
        .output()
        .await
        .unwrap();
    assert!(!output.success());
}

#[tokio::test]
async fn an_http_header_reaches_git_through_its_environment_and_nowhere_else() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = tmp.path().join("r.git");
    Git::new()
        .args(["init", "--bare", "-q"])
        .arg_pair("--initial-branch", "main")
        .args([bare.as_os_str()])
        .run()
        .await
        .unwrap();
    let git = Git::with_git_dir(&bare)
        .http_header("Authorization: Basic c2VjcmV0")
        .args(["config", "--get-all", "http.extraHeader"]);
    assert!(!format!("{git:?}").contains("c2VjcmV0"));
    assert!(!git.command_line().contains("c2VjcmV0"));
    assert_eq!(git.text().await.unwrap(), "Authorization: Basic c2VjcmV0");
    let redirects = Git::with_git_dir(&bare)
        .http_header("X: y")
        .args(["config", "--get", "http.followRedirects"])
        .text()
        .await
        .unwrap();
    assert_eq!(redirects, "false");
    // Nothing was written into the repository's configuration.
    let config = std::fs::read_to_string(bare.join("config")).unwrap();
    assert!(!config.contains("extraHeader"));
    // A caller's own environment cannot smuggle configuration in the same way.
    let smuggled = Git::with_git_dir(&bare)
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "core.hooksPath")
        .env("GIT_CONFIG_VALUE_0", "/tmp")
        .args(["config", "--get", "core.hooksPath"])
        .text()
        .await
        .unwrap();
    assert_eq!(smuggled, "/dev/null");
}
