use std::collections::BTreeMap;
use std::time::Duration;

use cap_sandbox::{Error, ErrorKind, ExecEvent, ExecSpec, FileChange};
use futures::StreamExt;
use pretty_assertions::assert_eq;

use super::support::{fixture, fixture_with, host_processes_with, run, spec, spec_timeout};

#[tokio::test]
async fn output_is_streamed_and_the_exit_code_reported() {
    let fx = fixture().await;
    let id = fx.session().await;
    let ran = run(&fx.sandbox, &id, spec("echo hi; echo err >&2; exit 3")).await;
    assert_eq!(ran.stdout, "hi\n");
    assert_eq!(ran.stderr, "err\n");
    assert_eq!(ran.exit.exit_code, 3);
    assert!(!ran.exit.timed_out);
    assert!(!ran.exit.output_truncated);
}

#[tokio::test]
async fn output_arrives_while_the_command_is_still_running() {
    let fx = fixture().await;
    let id = fx.session().await;
    // The command waits for a file the test writes only after it has seen the first line:
    // without streaming this would end in the timeout.
    let mut events = fx
        .sandbox
        .exec(
            &id,
            spec_timeout(
                "echo first; while [ ! -e go ]; do sleep 0.05; done; echo second",
                120,
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        events.next().await,
        Some(ExecEvent::Stdout("first\n".into()))
    );
    fx.sandbox
        .write_files(
            &id,
            vec![FileChange {
                path: "go".into(),
                content: Some(Vec::new()),
            }],
        )
        .await
        .unwrap();
    assert_eq!(
        events.next().await,
        Some(ExecEvent::Stdout("second\n".into()))
    );
    match events.next().await {
        Some(ExecEvent::Exit(exit)) => {
            assert_eq!(exit.exit_code, 0);
            assert!(!exit.timed_out);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_timeout_kills_the_command_and_everything_it_started() {
    let fx = fixture().await;
    let id = fx.session().await;
    // A background child with its output redirected, so only the kill (not closed pipes)
    // can end it.
    let command = "sleep 4242.17 >/dev/null 2>&1 </dev/null & \
                   while [ \"$(cat /proc/$!/comm)\" != sleep ]; do :; done; echo started; sleep 100";
    let mut events = fx
        .sandbox
        .exec(&id, spec_timeout(command, 3))
        .await
        .unwrap();
    assert_eq!(
        events.next().await,
        Some(ExecEvent::Stdout("started\n".into()))
    );
    assert!(
        !host_processes_with("4242.17").is_empty(),
        "the background child runs before the timeout"
    );
    let exit = loop {
        match events.next().await {
            Some(ExecEvent::Exit(exit)) => break exit,
            Some(_) => {}
            None => panic!("no exit event"),
        }
    };
    assert!(exit.timed_out);
    assert_eq!(exit.exit_code, -1);
    assert_eq!(
        host_processes_with("4242.17"),
        Vec::<u32>::new(),
        "the background child is gone"
    );
    assert_eq!(host_processes_with("sleep 100"), Vec::<u32>::new());
}

#[tokio::test]
async fn destroying_the_session_kills_its_commands() {
    let fx = fixture().await;
    let id = fx.session().await;
    let mut events = fx
        .sandbox
        .exec(&id, spec_timeout("echo up; sleep 4343.5", 600))
        .await
        .unwrap();
    assert_eq!(events.next().await, Some(ExecEvent::Stdout("up\n".into())));
    fx.sandbox.destroy_session(&id).await.unwrap();
    let exit = loop {
        match events.next().await {
            Some(ExecEvent::Exit(exit)) => break exit,
            Some(_) => {}
            None => panic!("no exit event"),
        }
    };
    assert_eq!(exit.exit_code, -1);
    assert!(!exit.timed_out);
    assert_eq!(host_processes_with("4343.5"), Vec::<u32>::new());
}

#[tokio::test]
async fn output_beyond_the_cap_is_dropped() {
    let fx = fixture_with(|config| config.output_cap_bytes = 1000).await;
    let id = fx.session().await;
    let ran = run(
        &fx.sandbox,
        &id,
        spec("head -c 300000 /dev/zero | tr '\\0' a; echo tail >&2"),
    )
    .await;
    assert_eq!(ran.stdout.len() + ran.stderr.len(), 1000);
    assert!(ran.stdout.bytes().all(|b| b == b'a'));
    assert!(ran.exit.output_truncated);
    assert_eq!(ran.exit.exit_code, 0);
}

#[tokio::test]
async fn cwd_env_and_a_clean_environment() {
    let fx = fixture().await;
    let id = fx.session().await;
    let mut spec = spec("pwd; echo \"$GREETING\"; echo \"$HOME\"; env | grep -c CARGO || true");
    spec.cwd = "src".into();
    spec.env = BTreeMap::from([("GREETING".to_owned(), "hello there".to_owned())]);
    let ran = run(&fx.sandbox, &id, spec).await;
    assert_eq!(
        ran.stdout, "/workspace/src\nhello there\n/tmp\n0\n",
        "stderr: {}",
        ran.stderr
    );
}

#[tokio::test]
async fn bad_exec_requests_are_refused() {
    let fx = fixture().await;
    let id = fx.session().await;
    let cases: Vec<(ExecSpec, ErrorKind)> = vec![
        (
            ExecSpec {
                timeout: Some(Duration::ZERO),
                ..spec("true")
            },
            ErrorKind::InvalidArgument,
        ),
        (spec_timeout("true", 3601), ErrorKind::InvalidArgument),
        (spec(""), ErrorKind::InvalidArgument),
        (spec("echo \0"), ErrorKind::InvalidArgument),
        (
            ExecSpec {
                cwd: "../..".into(),
                ..spec("true")
            },
            ErrorKind::InvalidArgument,
        ),
        (
            ExecSpec {
                cwd: "/etc".into(),
                ..spec("true")
            },
            ErrorKind::InvalidArgument,
        ),
        (
            ExecSpec {
                cwd: "escape_dir".into(),
                ..spec("true")
            },
            ErrorKind::InvalidArgument,
        ),
        (
            ExecSpec {
                cwd: "README.md".into(),
                ..spec("true")
            },
            ErrorKind::InvalidArgument,
        ),
        (
            ExecSpec {
                cwd: "missing".into(),
                ..spec("true")
            },
            ErrorKind::NotFound,
        ),
        (
            ExecSpec {
                env: BTreeMap::from([("lower".to_owned(), "x".to_owned())]),
                ..spec("true")
            },
            ErrorKind::InvalidArgument,
        ),
        (
            ExecSpec {
                env: BTreeMap::from([("1X".to_owned(), "x".to_owned())]),
                ..spec("true")
            },
            ErrorKind::InvalidArgument,
        ),
    ];
    for (spec, kind) in cases {
        let described = format!("{spec:?}");
        let error = fx.sandbox.exec(&id, spec).await.unwrap_err();
        assert_eq!(error.kind(), kind, "{described}: {error}");
    }
    let error = fx
        .sandbox
        .exec(&id, spec_timeout("true", 3601))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidTimeout { .. }), "{error}");
    let missing = uuid_like();
    let error = fx.sandbox.exec(&missing, spec("true")).await.unwrap_err();
    assert!(matches!(error, Error::SessionNotFound { .. }), "{error}");
}

fn uuid_like() -> String {
    "00000000-0000-4000-8000-000000000000".to_owned()
}

#[tokio::test]
async fn pytest_runs_inside() {
    let fx = fixture().await;
    let id = fx.session().await;
    let ran = run(&fx.sandbox, &id, spec("python3 -m pytest -q")).await;
    assert_eq!(
        ran.exit.exit_code, 0,
        "stdout: {}\nstderr: {}",
        ran.stdout, ran.stderr
    );
    assert!(ran.stdout.contains("1 passed"), "{}", ran.stdout);

    fx.sandbox
        .write_files(
            &id,
            vec![FileChange {
                path: "test_fail.py".into(),
                content: Some(b"def test_fails():\n    assert 1 == 2\n".to_vec()),
            }],
        )
        .await
        .unwrap();
    let ran = run(&fx.sandbox, &id, spec("python3 -m pytest -q")).await;
    assert_eq!(ran.exit.exit_code, 1, "{}", ran.stdout);
    assert!(ran.stdout.contains("1 failed, 1 passed"), "{}", ran.stdout);
}
