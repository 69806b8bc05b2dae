//! Sessions, exec and file operations end to end against the fake API server: the requests
//! sent (the exec's command, container and stream flags, the tar on its stdin), the output
//! and exit status delivered, timeouts, and what is deleted when a session fails or ends.

use std::collections::BTreeMap;
use std::time::Duration;

use cap_sandbox::{DirEntry, FileChange, Listing};
use cap_sandbox_kube::{Error, ExecEvent, ExecSpec, KubeConfig, KubeSandbox};
use futures::StreamExt;
use http::Method;
use pretty_assertions::assert_eq;
use serde_json::json;

use super::fake_api::{ExecReply, FakeApi};
use super::repo;

const NS: &str = "sandboxes";
const UNPACK: &str = "tar -x -m -f - -C /workspace";

struct Setup {
    _dir: tempfile::TempDir,
    repo_url: String,
    sha: String,
    api: FakeApi,
    backend: KubeSandbox,
}

/// A backend over a fake whose execs of `tar -x` succeed and others are answered by `exec`.
async fn setup(
    exec: impl Fn(&[String], &[u8]) -> ExecReply + Send + Sync + 'static,
    configure: impl FnOnce(&mut KubeConfig),
) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (repo_url, sha) = repo::python_project(dir.path());
    let api = FakeApi::start(move |argv, stdin| {
        if argv.starts_with(&["tar".to_owned(), "-x".to_owned()]) {
            ExecReply::ok(b"")
        } else {
            exec(argv, stdin)
        }
    })
    .await;
    let mut config = KubeConfig::new(NS, "http://10.96.0.50:3128");
    config.image_prefix = "registry.internal:5000/".into();
    config.scratch_dir = dir.path().to_owned();
    configure(&mut config);
    let backend = KubeSandbox::new(api.client(), config);
    Setup {
        _dir: dir,
        repo_url,
        sha,
        api,
        backend,
    }
}

impl Setup {
    async fn session(&self) -> String {
        let info = self
            .backend
            .create_session(&self.repo_url, &self.sha, "")
            .await
            .unwrap();
        info.session_id.to_string()
    }
}

async fn run(backend: &KubeSandbox, session: &str, spec: ExecSpec) -> Vec<ExecEvent> {
    let stream = backend.exec(session, spec).await.unwrap();
    stream.collect().await
}

fn spec(command: &str) -> ExecSpec {
    ExecSpec {
        command: command.into(),
        ..ExecSpec::default()
    }
}

#[tokio::test]
async fn the_checkout_is_unpacked_into_the_pod_and_destroy_deletes_everything() {
    let setup = setup(|_, _| ExecReply::ok(b""), |_| {}).await;
    let info = setup
        .backend
        .create_session(&setup.repo_url, &setup.sha[..10], "")
        .await
        .unwrap();
    assert_eq!(info.image, "coding-assistant/python");
    assert_eq!(info.commit_sha, setup.sha);
    let name = format!("cap-sandbox-{}", info.session_id);
    let pods = format!("/api/v1/namespaces/{NS}/pods");
    let policies = format!("/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies");
    assert_eq!(
        setup.api.calls(),
        [
            format!("POST {policies}"),
            format!("POST {pods}"),
            format!("GET {pods}/{name}"),
            format!("GET {pods}/{name}/exec {UNPACK}"),
        ]
    );
    let requests = setup.api.requests();
    assert_eq!(
        requests[1].body["spec"]["containers"][0]["image"],
        json!("registry.internal:5000/coding-assistant/python")
    );
    let unpack = &requests[3];
    assert_eq!(unpack.param("container"), ["sandbox"]);
    assert_eq!(unpack.param("stdin"), ["true"]);
    assert_eq!(unpack.param("stdout"), ["true"]);
    assert_eq!(unpack.param("stderr"), ["true"]);
    // The tar that reached the pod: the tree, without `.git`.
    let mut archive = tar::Archive::new(unpack.stdin.as_slice());
    let mut files: Vec<(String, String)> = archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mut content = String::new();
            std::io::Read::read_to_string(&mut entry, &mut content).unwrap();
            (path, content)
        })
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            (
                "pyproject.toml".into(),
                "[project]\nname = \"demo\"\n".into()
            ),
            ("src/".into(), String::new()),
            ("src/app.py".into(), "print('hello')\n".into()),
        ]
    );
    assert_eq!(
        setup.api.objects(),
        [format!("networkpolicy/{name}"), format!("pod/{name}")]
    );
    // The host checkout is gone once the tree is in the pod.
    let left: Vec<_> = std::fs::read_dir(setup._dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("cap-kube-checkout-"))
        .collect();
    assert_eq!(left, Vec::<String>::new());

    let session = info.session_id.to_string();
    assert_eq!(
        setup.backend.sessions().await.unwrap(),
        std::slice::from_ref(&session)
    );
    setup.backend.destroy_session(&session).await.unwrap();
    let calls = setup.api.calls();
    assert_eq!(
        calls[calls.len() - 2..],
        [
            format!("DELETE {pods}/{name}"),
            format!("DELETE {policies}/{name}")
        ]
    );
    assert_eq!(setup.api.objects(), Vec::<String>::new());
    // Destroying again is not an error: there is nothing left to delete.
    setup.backend.destroy_session(&session).await.unwrap();
}

#[tokio::test]
async fn exec_streams_output_and_the_exit_status_in_order() {
    let setup = setup(
        |_, _| ExecReply::Exit {
            frames: vec![
                (1, b"hello\n".to_vec()),
                (2, b"warning\n".to_vec()),
                (1, b"bye\n".to_vec()),
            ],
            exit_code: 3,
        },
        |_| {},
    )
    .await;
    let session = setup.session().await;
    let events = run(
        &setup.backend,
        &session,
        ExecSpec {
            command: "pytest -q".into(),
            cwd: "src".into(),
            timeout: Some(Duration::from_secs(60)),
            env: BTreeMap::from([("CI".to_owned(), "1".to_owned())]),
        },
    )
    .await;
    // Each stream keeps its order; stdout and stderr are separate pipes, so their
    // interleaving is not kept (as with any process).
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    for event in &events[..events.len() - 1] {
        match event {
            ExecEvent::Stdout(bytes) => stdout.extend_from_slice(bytes),
            ExecEvent::Stderr(bytes) => stderr.extend_from_slice(bytes),
            ExecEvent::Exit(_) => panic!("exit before the end: {events:?}"),
        }
    }
    assert_eq!(
        (stdout.as_slice(), stderr.as_slice()),
        (&b"hello\nbye\n"[..], &b"warning\n"[..])
    );
    let Some(ExecEvent::Exit(exit)) = events.last() else {
        panic!("no exit: {events:?}")
    };
    assert_eq!(
        (exit.exit_code, exit.timed_out, exit.output_truncated),
        (3, false, false)
    );
    let request = setup.api.requests().pop().unwrap();
    assert_eq!(
        request.param("command"),
        [
            "/bin/sh",
            "-c",
            "cd \"$0\" && exec env \"$@\"",
            "/workspace/src",
            "CI=1",
            "/bin/sh",
            "-c",
            "pytest -q"
        ]
    );
    assert_eq!(request.param("container"), ["sandbox"]);
    assert_eq!(request.param("stdout"), ["true"]);
    assert_eq!(request.param("stderr"), ["true"]);
    // No stdin for a user command: nothing of the caller's reaches it unasked.
    assert!(
        request.param("stdin").iter().all(|v| *v == "false"),
        "{request:?}"
    );
}

#[tokio::test]
async fn output_beyond_the_cap_is_dropped_and_reported() {
    let setup = setup(
        |_, _| ExecReply::Exit {
            frames: vec![(1, b"0123456789".to_vec()), (2, b"abcdef".to_vec())],
            exit_code: 0,
        },
        |config| config.output_cap_bytes = 12,
    )
    .await;
    let session = setup.session().await;
    let events = run(&setup.backend, &session, spec("yes")).await;
    let kept: Vec<u8> = events
        .iter()
        .flat_map(|event| match event {
            ExecEvent::Stdout(b) | ExecEvent::Stderr(b) => b.to_vec(),
            ExecEvent::Exit(_) => Vec::new(),
        })
        .collect();
    assert_eq!(kept, b"0123456789ab");
    assert!(
        matches!(events.last(), Some(ExecEvent::Exit(exit)) if exit.output_truncated && exit.exit_code == 0)
    );
}

#[tokio::test]
async fn a_command_past_its_timeout_is_killed_and_reported() {
    let setup = setup(
        |argv, _| match argv.first().map(String::as_str) {
            Some("kill") => ExecReply::ok(b""),
            _ => ExecReply::Hang,
        },
        |_| {},
    )
    .await;
    let session = setup.session().await;
    let events = run(
        &setup.backend,
        &session,
        ExecSpec {
            timeout: Some(Duration::from_millis(300)),
            ..spec("sleep infinity")
        },
    )
    .await;
    assert!(
        matches!(events.as_slice(), [ExecEvent::Exit(exit)] if exit.timed_out && exit.exit_code == -1),
        "{events:?}"
    );
    let last = setup.api.calls().pop().unwrap();
    assert!(last.ends_with("/exec kill -KILL -1"), "{last}");
}

#[tokio::test]
async fn dropping_the_stream_kills_the_command() {
    let setup = setup(
        |argv, _| match argv.first().map(String::as_str) {
            Some("kill") => ExecReply::ok(b""),
            _ => ExecReply::Hang,
        },
        |_| {},
    )
    .await;
    let session = setup.session().await;
    let stream = setup
        .backend
        .exec(&session, spec("sleep infinity"))
        .await
        .unwrap();
    drop(stream);
    // The kill is sent in the background once the backend notices the caller is gone.
    while !setup
        .api
        .calls()
        .iter()
        .any(|c| c.ends_with("kill -KILL -1"))
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn bad_exec_requests_are_refused_before_the_api() {
    let setup = setup(
        |_, _| ExecReply::ok(b""),
        |config| {
            config.max_timeout = Duration::from_secs(60);
        },
    )
    .await;
    let session = setup.session().await;
    let before = setup.api.calls().len();
    for (timeout, seconds) in [(Duration::ZERO, 0), (Duration::from_secs(61), 61)] {
        let error = setup
            .backend
            .exec(
                &session,
                ExecSpec {
                    timeout: Some(timeout),
                    ..spec("true")
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::InvalidTimeout { seconds: s, max_seconds: 60 } if s == seconds),
            "{error}"
        );
    }
    let error = setup.backend.exec("../x", spec("true")).await.unwrap_err();
    assert!(matches!(error, Error::InvalidSessionId(_)), "{error}");
    assert_eq!(
        setup.api.calls().len(),
        before,
        "a refused request reached the API"
    );

    // A session that does not exist is told apart from an API failure.
    let missing = uuid::Uuid::new_v4();
    let error = setup
        .backend
        .exec(&missing.to_string(), spec("true"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::SessionNotFound { id } if id == missing),
        "{error}"
    );
    setup.api.fail(Method::GET, "/exec", 403);
    let error = setup
        .backend
        .exec(&session, spec("true"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Api {
                operation: "exec",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.chain().contains("Forbidden"), "{}", error.chain());
}

#[tokio::test]
async fn a_pod_that_never_runs_fails_within_the_ready_timeout_and_is_deleted() {
    let setup = setup(
        |_, _| ExecReply::ok(b""),
        |config| {
            config.ready_timeout = Duration::from_millis(600);
        },
    )
    .await;
    setup
        .api
        .pod_statuses((0..1000).map(|_| json!({"phase": "Pending"})));
    let error = setup
        .backend
        .create_session(&setup.repo_url, &setup.sha, "")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::NotReady { reason, .. } if reason.contains("still pending")),
        "{error}"
    );
    let calls = setup.api.calls();
    assert!(calls.iter().all(|c| !c.contains("/exec")), "{calls:?}");
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("DELETE")).count(),
        2,
        "{calls:?}"
    );
    assert_eq!(setup.api.objects(), Vec::<String>::new());
}

#[tokio::test]
async fn a_failed_unpack_is_reported_and_everything_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (repo_url, sha) = repo::python_project(dir.path());
    let api = FakeApi::start(|_, _| ExecReply::Exit {
        frames: vec![(2, b"tar: write error: No space left on device\n".to_vec())],
        exit_code: 2,
    })
    .await;
    let mut config = KubeConfig::new(NS, "http://10.96.0.50:3128");
    config.scratch_dir = dir.path().to_owned();
    let backend = KubeSandbox::new(api.client(), config);
    let error = backend
        .create_session(&repo_url, &sha, "")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::PodCommand { operation: "unpacking the repository", exit_code: 2, detail }
            if detail.contains("No space left")),
        "{error}"
    );
    assert_eq!(api.objects(), Vec::<String>::new());
    let calls = api.calls();
    assert!(calls[calls.len() - 2].starts_with("DELETE"), "{calls:?}");
}

#[tokio::test]
async fn bad_sessions_requests_fail_before_any_object_is_made() {
    let setup = setup(|_, _| ExecReply::ok(b""), |_| {}).await;
    type Case = (&'static str, &'static str, &'static str, fn(&Error) -> bool);
    let cases: [Case; 4] = [
        ("--upload-pack=x", "abcdef1", "", |e| {
            matches!(e, Error::Local(cap_sandbox::Error::InvalidRepoUrl { .. }))
        }),
        ("/repo.git", "main", "", |e| {
            matches!(e, Error::Local(cap_sandbox::Error::InvalidCommitSha { .. }))
        }),
        ("/repo.git", "abcdef1", "ubuntu:latest", |e| {
            matches!(e, Error::UnknownImage(_))
        }),
        ("/no/such/repo.git", "abcdef1", "", |e| {
            matches!(e, Error::Local(cap_sandbox::Error::Clone { .. }))
        }),
    ];
    for (url, sha, image, expected) in cases {
        let error = setup
            .backend
            .create_session(url, sha, image)
            .await
            .unwrap_err();
        assert!(expected(&error), "{url} {sha} {image}: {}", error.chain());
    }
    let error = setup
        .backend
        .create_session(&setup.repo_url, "abcdef1234", "")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Local(cap_sandbox::Error::CommitNotFound { .. })
        ),
        "{error}"
    );
    assert_eq!(setup.api.calls(), Vec::<String>::new());
}

#[tokio::test]
async fn files_are_read_through_exec_with_clear_errors() {
    let setup = setup(
        |argv, _| match argv[4].as_str() {
            "src/app.py" => ExecReply::ok(b"print('hello')\n"),
            "missing.txt" => ExecReply::Exit {
                frames: vec![],
                exit_code: 3,
            },
            "src" => ExecReply::Exit {
                frames: vec![],
                exit_code: 4,
            },
            _ => ExecReply::Exit {
                frames: vec![],
                exit_code: 5,
            },
        },
        |_| {},
    )
    .await;
    let session = setup.session().await;
    let content = setup
        .backend
        .read_file(&session, "./src/app.py")
        .await
        .unwrap();
    assert_eq!(content, b"print('hello')\n");
    let request = setup.api.requests().pop().unwrap();
    let command = request.param("command");
    assert_eq!(command[..2], ["/bin/sh", "-c"]);
    assert_eq!(command[3..], ["sh", "src/app.py", "3145728"]);
    let error = setup
        .backend
        .read_file(&session, "missing.txt")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::PathNotFound { .. }), "{error}");
    let error = setup.backend.read_file(&session, "src").await.unwrap_err();
    assert!(matches!(error, Error::WrongFileType { .. }), "{error}");
    let error = setup
        .backend
        .read_file(&session, "big.bin")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::FileTooLarge { .. }), "{error}");
    let error = setup
        .backend
        .read_file(&session, "../etc/passwd")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidPath { .. }), "{error}");
}

#[tokio::test]
async fn writes_go_as_one_tar_and_deletions_as_arguments() {
    let setup = setup(|_, _| ExecReply::ok(b""), |_| {}).await;
    let session = setup.session().await;
    let written = setup
        .backend
        .write_files(
            &session,
            vec![
                FileChange {
                    path: "src/new.py".into(),
                    content: Some(b"x = 1\n".to_vec()),
                },
                FileChange {
                    path: "old.txt".into(),
                    content: None,
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(written, 2);
    let request = setup.api.requests().pop().unwrap();
    let command = request.param("command");
    assert_eq!(
        command[3..],
        ["sh", "/workspace", "1", "src/new.py", "old.txt"]
    );
    assert_eq!(request.param("stdin"), ["true"]);
    let mut archive = tar::Archive::new(request.stdin.as_slice());
    let entries: Vec<(String, u32, String)> = archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mode = entry.header().mode().unwrap();
            let mut content = String::new();
            std::io::Read::read_to_string(&mut entry, &mut content).unwrap();
            (path, mode, content)
        })
        .collect();
    assert_eq!(
        entries,
        [("src/new.py".to_owned(), 0o644, "x = 1\n".to_owned())]
    );
    // One bad path refuses the whole request before anything is sent.
    let before = setup.api.calls().len();
    let error = setup
        .backend
        .write_files(
            &session,
            vec![
                FileChange {
                    path: "ok.txt".into(),
                    content: Some(Vec::new()),
                },
                FileChange {
                    path: "/etc/passwd".into(),
                    content: Some(Vec::new()),
                },
            ],
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidPath { .. }), "{error}");
    assert_eq!(setup.api.calls().len(), before);
}

#[tokio::test]
async fn listings_come_from_find_in_the_pod() {
    let setup = setup(
        |argv, _| match argv[4].as_str() {
            "src" => ExecReply::ok(b"f 15 app.py\0d 4096 pkg\0"),
            _ => ExecReply::Exit {
                frames: vec![],
                exit_code: 3,
            },
        },
        |_| {},
    )
    .await;
    let session = setup.session().await;
    let listing = setup
        .backend
        .list_directory(&session, "src/", false)
        .await
        .unwrap();
    assert_eq!(
        listing,
        Listing {
            entries: vec![
                DirEntry {
                    path: "src/app.py".into(),
                    is_dir: false,
                    size: 15
                },
                DirEntry {
                    path: "src/pkg".into(),
                    is_dir: true,
                    size: 0
                },
            ],
            truncated: false,
        }
    );
    let command = setup
        .api
        .requests()
        .pop()
        .unwrap()
        .param("command")
        .join(" ");
    assert!(command.contains("-maxdepth 1"), "{command}");
    let error = setup
        .backend
        .list_directory(&session, "nope", true)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::PathNotFound { .. }), "{error}");
}

#[tokio::test]
async fn a_caller_leaving_during_creation_leaves_nothing_behind() {
    let setup = setup(|_, _| ExecReply::ok(b""), |_| {}).await;
    // Pending for a while, so the caller can leave once the pod exists.
    setup
        .api
        .pod_statuses((0..4).map(|_| json!({"phase": "Pending"})));
    let creating = tokio::spawn({
        let backend = setup.backend.clone();
        let (url, sha) = (setup.repo_url.clone(), setup.sha.clone());
        async move { backend.create_session(&url, &sha, "").await }
    });
    while !setup
        .api
        .objects()
        .iter()
        .any(|name| name.starts_with("pod/"))
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    creating.abort();
    assert!(creating.await.unwrap_err().is_cancelled());
    // The creation goes on in the background, then deletes what it made.
    while !setup.api.objects().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let calls = setup.api.calls();
    assert!(calls.iter().any(|c| c.ends_with(UNPACK)), "{calls:?}");
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("DELETE")).count(),
        2,
        "{calls:?}"
    );
}

#[tokio::test]
async fn a_pod_that_stops_reading_the_tree_fails_the_session_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // A tree far larger than every buffer between the packer and the pod.
    let (repo_url, sha) = repo::project_with_large_file(dir.path(), 8 << 20);
    let api = FakeApi::start(|_, _| ExecReply::ExitBeforeStdin {
        stderr: b"tar: /workspace: Cannot open: Read-only file system\n".to_vec(),
        exit_code: 2,
    })
    .await;
    let mut config = KubeConfig::new(NS, "http://10.96.0.50:3128");
    config.scratch_dir = dir.path().to_owned();
    let backend = KubeSandbox::new(api.client(), config);
    let error = backend
        .create_session(&repo_url, &sha, "")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::PodCommand { exit_code: 2, detail, .. } if detail.contains("Read-only")),
        "{error}"
    );
    assert_eq!(api.objects(), Vec::<String>::new());
}

const PACK: &str = "tar -c -f - --exclude=./.cap-write.* -C /workspace .";

/// The tree `dir` as the Pod's GNU tar sends it.
fn gnu_tar(dir: &std::path::Path) -> Vec<u8> {
    let output = std::process::Command::new("tar")
        .args(["-c", "-f", "-", "-C"])
        .arg(dir)
        .arg(".")
        .output()
        .unwrap();
    assert!(output.status.success(), "tar: {output:?}");
    output.stdout
}

#[tokio::test]
async fn search_and_changes_equal_the_local_engines_on_the_pod_workspace() {
    // The Pod's workspace after some edits, sent back by the fake as GNU tar would.
    let pod_dir = tempfile::tempdir().unwrap();
    let workspace = pod_dir.path().join("workspace");
    let sent = workspace.clone();
    let setup = setup(
        move |argv, _| {
            assert_eq!(argv.join(" "), PACK);
            ExecReply::ok(&gnu_tar(&sent))
        },
        |_| {},
    )
    .await;
    let session = setup.session().await;
    let base_dir = tempfile::tempdir().unwrap();
    let base = base_dir.path().join("base");
    let full_sha = cap_sandbox::Checkouts::open(base_dir.path())
        .unwrap()
        .link(&setup.repo_url, &setup.sha, &base)
        .await
        .unwrap();
    assert_eq!(full_sha, setup.sha);
    let copied = std::process::Command::new("cp")
        .arg("-R")
        .arg(base.join("."))
        .arg(&workspace)
        .status()
        .unwrap();
    assert!(copied.success());
    std::fs::remove_dir_all(workspace.join(".git")).unwrap();
    std::fs::write(
        workspace.join("src/app.py"),
        "print('hello')\nprint('bye')\n",
    )
    .unwrap();
    std::fs::write(workspace.join("src/new.py"), "print('new')\n").unwrap();
    std::fs::remove_file(workspace.join("pyproject.toml")).unwrap();
    std::fs::write(workspace.join(".gitignore"), "build/\n").unwrap();
    std::fs::create_dir(workspace.join("build")).unwrap();
    std::fs::write(workspace.join("build/out.py"), "print('ignored')\n").unwrap();
    std::fs::write(workspace.join("data.bin"), b"print\0binary").unwrap();
    std::os::unix::fs::symlink("src/app.py", workspace.join("link")).unwrap();

    let local = cap_sandbox::Workspace::open(&workspace).unwrap();
    for glob in [None, Some("*.py"), Some("src/new.py")] {
        let found = setup
            .backend
            .search_files(&session, "print\\('(hello|new|ignored)'\\)", glob)
            .await
            .unwrap();
        let (matches, truncated) = cap_sandbox::search_workspace(
            &local,
            "print\\('(hello|new|ignored)'\\)",
            glob,
            cap_sandbox::MAX_SEARCH_MATCHES,
        )
        .unwrap();
        assert_eq!(found, cap_sandbox::SearchResult { matches, truncated });
    }
    let found = setup
        .backend
        .search_files(&session, "print", None)
        .await
        .unwrap();
    let paths: Vec<&str> = found.matches.iter().map(|m| m.path.as_str()).collect();
    // `.gitignore`d and binary files are not searched; the symlink is not followed.
    assert_eq!(paths, ["src/app.py", "src/app.py", "src/new.py"]);

    let changes = setup.backend.get_changes(&session).await.unwrap();
    assert_eq!(
        changes,
        cap_sandbox::workspace_changes(&base, &local).unwrap()
    );
    let changed: Vec<(&str, bool)> = changes
        .changes
        .iter()
        .map(|change| (change.path.as_str(), change.content.is_some()))
        .collect();
    assert_eq!(
        changed,
        [
            (".gitignore", true),
            ("data.bin", true),
            ("link", true),
            ("pyproject.toml", false),
            ("src/app.py", true),
            ("src/new.py", true),
        ]
    );
    assert!(changes.diff.contains("+print('bye')"), "{}", changes.diff);

    let name = format!("cap-sandbox-{session}");
    let calls = setup.api.calls();
    let pods = format!("/api/v1/namespaces/{NS}/pods");
    assert_eq!(
        calls[calls.len() - 3..],
        [
            format!("GET {pods}/{name}/exec {PACK}"),
            format!("GET {pods}/{name}"),
            format!("GET {pods}/{name}/exec {PACK}"),
        ]
    );
    // The copies on the host are gone; only the cache and the repository remain.
    let mut left: Vec<String> = std::fs::read_dir(setup._dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("cap-kube-"))
        .collect();
    left.sort();
    assert_eq!(left, Vec::<String>::new());
}

/// A tar with one regular file whose name is written raw, as a hostile Pod could.
fn tar_with_raw_name(name: &str) -> Vec<u8> {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(1);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, &b"x"[..]).unwrap();
    builder.into_inner().unwrap()
}

#[tokio::test]
async fn hostile_or_huge_workspace_archives_are_refused_with_clear_errors() {
    let setup = setup(
        |argv, _| match argv.join(" ").as_str() {
            PACK => ExecReply::ok(&tar_with_raw_name("../../escape")),
            _ => ExecReply::ok(b""),
        },
        |_| {},
    )
    .await;
    let session = setup.session().await;
    let error = setup
        .backend
        .search_files(&session, "x", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::UnsafeArchive { entry, reason } if entry == "../../escape" && *reason == "contains `..`"),
        "{}",
        error.chain()
    );
    assert!(!setup._dir.path().join("escape").exists());

    let huge = vec![b'x'; 200 * 1024];
    let setup = setup_with_pack(move || ExecReply::ok(&huge), 64 * 1024).await;
    let session = setup.session().await;
    let error = setup.backend.get_changes(&session).await.unwrap_err();
    assert!(
        matches!(error, Error::WorkspaceTooLarge { max_bytes: 65536 }),
        "{}",
        error.chain()
    );
    assert_eq!(
        error.to_string(),
        "the workspace is larger than 65536 bytes, the most searched or diffed"
    );

    let setup = setup_with_pack(
        || ExecReply::Exit {
            frames: vec![(2, b"tar: ./x: Cannot open: Permission denied".to_vec())],
            exit_code: 2,
        },
        64 * 1024,
    )
    .await;
    let session = setup.session().await;
    let error = setup
        .backend
        .search_files(&session, "x", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::PodCommand { exit_code: 2, detail, .. } if detail.contains("Permission denied")),
        "{}",
        error.chain()
    );
}

/// A backend whose `tar -c` of the workspace is answered by `pack`, copies bounded by
/// `max_workspace_bytes`.
async fn setup_with_pack(
    pack: impl Fn() -> ExecReply + Send + Sync + 'static,
    max_workspace_bytes: u64,
) -> Setup {
    setup(
        move |argv, _| {
            assert_eq!(argv.join(" "), PACK);
            pack()
        },
        move |config| config.max_workspace_bytes = max_workspace_bytes,
    )
    .await
}

/// Runs a `write_files` exec on the host as the Pod would, on `workspace` instead of
/// `/workspace`: the real script, with the real `tar`, `mv` and `mkdir`.
fn run_in(workspace: &std::path::Path, argv: &[String], stdin: &[u8]) -> ExecReply {
    use std::io::Write as _;
    assert_eq!(argv[4], "/workspace");
    let mut child = std::process::Command::new(&argv[0])
        .args(&argv[1..4])
        .arg(workspace)
        .args(&argv[5..])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    ExecReply::Exit {
        frames: vec![(1, output.stdout), (2, output.stderr)],
        exit_code: output.status.code().unwrap_or(-1),
    }
}

/// Every file under `dir` with its content, sorted.
fn snapshot(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(next).unwrap() {
            let path = entry.unwrap().path();
            let name = path.strip_prefix(dir).unwrap().display().to_string();
            if path.is_dir() {
                files.push((format!("{name}/"), String::new()));
                pending.push(path);
            } else {
                files.push((name, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[tokio::test]
async fn writes_in_the_pod_are_all_or_nothing() {
    let pod_dir = tempfile::tempdir().unwrap();
    let workspace = pod_dir.path().to_owned();
    std::fs::create_dir_all(workspace.join("src")).unwrap();
    std::fs::create_dir_all(workspace.join("docs")).unwrap();
    std::fs::write(workspace.join("src/app.py"), "old\n").unwrap();
    std::fs::write(workspace.join("gone.txt"), "bye\n").unwrap();
    std::fs::write(workspace.join("docs/keep.md"), "keep\n").unwrap();
    let ran_in = workspace.clone();
    let setup = setup(move |argv, stdin| run_in(&ran_in, argv, stdin), |_| {}).await;
    let session = setup.session().await;
    let change = |path: &str, content: Option<&str>| FileChange {
        path: path.into(),
        content: content.map(|text| text.as_bytes().to_vec()),
    };
    let before = snapshot(&workspace);

    // The last change cannot be made (a directory where a file goes): the ones before it,
    // already in place, are undone.
    let error = setup
        .backend
        .write_files(
            &session,
            vec![
                change("src/app.py", Some("new\n")),
                change("src/added/deep.py", Some("deep\n")),
                change("gone.txt", None),
                change("docs", Some("not a directory\n")),
            ],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::PodCommand { exit_code: 1, detail, .. } if detail == "docs is a directory"),
        "{}",
        error.chain()
    );
    let mut after = snapshot(&workspace);
    // Directories made on the way may stay (empty), as in no file's content.
    after.retain(|(path, _)| !path.starts_with("src/added"));
    assert_eq!(after, before);

    // Changing one path twice is refused before the Pod is asked.
    let calls = setup.api.calls().len();
    let error = setup
        .backend
        .write_files(
            &session,
            vec![change("a.txt", Some("1")), change("./a.txt", None)],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::InvalidPath { reason, .. } if *reason == "is changed twice in one write"),
        "{error}"
    );
    assert_eq!(setup.api.calls().len(), calls);

    // A write that can be made is made whole, with nothing left behind.
    let written = setup
        .backend
        .write_files(
            &session,
            vec![
                change("src/app.py", Some("new\n")),
                change("src/added/deep.py", Some("deep\n")),
                change("gone.txt", None),
                change("-dash.txt", Some("dash\n")),
            ],
        )
        .await
        .unwrap();
    assert_eq!(written, 4);
    assert_eq!(
        snapshot(&workspace),
        [
            ("-dash.txt".to_owned(), "dash\n".to_owned()),
            ("docs/".to_owned(), String::new()),
            ("docs/keep.md".to_owned(), "keep\n".to_owned()),
            ("src/".to_owned(), String::new()),
            ("src/added/".to_owned(), String::new()),
            ("src/added/deep.py".to_owned(), "deep\n".to_owned()),
            ("src/app.py".to_owned(), "new\n".to_owned()),
        ]
    );
}
