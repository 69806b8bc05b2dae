//! Detection and test runs through the real sandbox service (bubblewrap), served in-process
//! over mutual TLS on port 0, on a real git repository with a real pytest suite.

// Setup helpers outside `#[test]` functions panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use cap_mtls::Pki;
use cap_proto::sandbox::v1::{CreateSessionRequest, GetChangesRequest};
use cap_sandbox_client::{GrpcSandbox, MAX_MESSAGE_BYTES, SandboxApi as _};
use cap_testkit::git::BareRepo;
use cap_testrun::{Framework, Outcome, TestPlan};
use pretty_assertions::assert_eq;

const CALC: &str = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a + b\n";

const CALC_TESTS: &str = "from calc import add, sub\n\n\n\
                          def test_add():\n    assert add(2, 3) == 5\n\n\n\
                          def test_sub():\n    assert sub(3, 1) == 2, \"sub is wrong\"\n";

struct Harness {
    _dir: tempfile::TempDir,
    sandbox: GrpcSandbox,
    session_id: String,
}

impl Harness {
    /// A sandbox service and a session on a repository holding `files`.
    async fn start(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = BareRepo::new(dir.path(), files);
        let (repo_url, commit_sha) = (repo.url(), repo.commit);
        let pki = Pki::ensure_dev(dir.path().join("pki")).unwrap();
        let (sandbox_url, _sandbox_server) =
            cap_sandbox_server::spawn_local(dir.path().join("sessions"), &pki)
                .await
                .unwrap();
        let client_tls = pki.service("coding-agent").unwrap();
        let sandbox =
            GrpcSandbox::new(client_tls.channel(&sandbox_url).unwrap(), MAX_MESSAGE_BYTES);
        let session_id = sandbox
            .create_session(CreateSessionRequest {
                image: String::new(),
                repo_url,
                commit_sha,
            })
            .await
            .unwrap()
            .session_id;
        Self {
            _dir: dir,
            sandbox,
            session_id,
        }
    }
}

const TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn detects_and_runs_a_real_pytest_suite() {
    let h = Harness::start(&[("calc.py", CALC), ("tests/test_calc.py", CALC_TESTS)]).await;
    let plan = cap_testrun::detect(&h.sandbox, &h.session_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        plan,
        TestPlan {
            framework: Framework::Pytest,
            command: "python3 -m pytest".into()
        }
    );

    let run = cap_testrun::run(&h.sandbox, &h.session_id, &plan, None, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(run.outcome, Outcome::Failed, "{run:#?}");
    assert_eq!((run.exit_code, run.timed_out), (1, false));
    assert_eq!(
        (run.passed, run.failed, run.errors, run.skipped),
        (1, 1, 0, 0)
    );
    let cases: Vec<(&str, &str, &str)> = run
        .cases
        .iter()
        .map(|c| (c.name.as_str(), c.file.as_str(), c.outcome.as_str()))
        .collect();
    assert_eq!(
        cases,
        [
            ("tests.test_calc.test_add", "tests/test_calc.py", "passed"),
            ("tests.test_calc.test_sub", "tests/test_calc.py", "failed"),
        ]
    );
    assert!(
        run.cases[1].message.contains("sub is wrong"),
        "{}",
        run.cases[1].message
    );
    assert!(
        run.output_tail.contains("1 failed, 1 passed"),
        "{}",
        run.output_tail
    );
    assert!(
        !run.output_tail.contains("=====cap-testrun"),
        "{}",
        run.output_tail
    );

    // The run leaves nothing behind in the workspace (no cache, bytecode or report).
    let changes = h
        .sandbox
        .get_changes(GetChangesRequest {
            session_id: h.session_id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(changes.changes, vec![], "{}", changes.diff);
}

#[tokio::test]
async fn a_pattern_limits_the_run() {
    let h = Harness::start(&[("calc.py", CALC), ("tests/test_calc.py", CALC_TESTS)]).await;
    let plan = TestPlan::standard(Framework::Pytest);
    let run = cap_testrun::run(&h.sandbox, &h.session_id, &plan, Some("add"), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(run.command, "python3 -m pytest -k add");
    assert_eq!(
        (run.outcome, run.passed, run.failed),
        (Outcome::Passed, 1, 0)
    );

    let run = cap_testrun::run(
        &h.sandbox,
        &h.session_id,
        &plan,
        Some("no_such_test"),
        TIMEOUT,
    )
    .await
    .unwrap();
    assert_eq!((run.outcome, run.exit_code), (Outcome::NoTests, 5));

    let err = cap_testrun::run(&h.sandbox, &h.session_id, &plan, Some("a\nb"), TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid test pattern \"a\\nb\": it contains a line break"
    );
}

#[tokio::test]
async fn timeouts_missing_runners_and_unknown_sessions() {
    let h = Harness::start(&[("README.md", "nothing to test\n")]).await;
    assert_eq!(
        cap_testrun::detect(&h.sandbox, &h.session_id)
            .await
            .unwrap(),
        None
    );

    let slow = TestPlan::custom("echo started; sleep 30");
    let run = cap_testrun::run(
        &h.sandbox,
        &h.session_id,
        &slow,
        None,
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    assert_eq!(
        (run.outcome, run.timed_out, run.exit_code),
        (Outcome::TimedOut, true, -1)
    );
    assert!(
        run.output_tail.starts_with("started\n"),
        "{}",
        run.output_tail
    );

    let missing = TestPlan::custom("no-such-test-runner --all");
    let run = cap_testrun::run(&h.sandbox, &h.session_id, &missing, None, TIMEOUT)
        .await
        .unwrap();
    assert_eq!((run.outcome, run.exit_code), (Outcome::Error, 127));
    assert!(
        run.output_tail.contains("not found in the sandbox"),
        "{}",
        run.output_tail
    );

    let err = cap_testrun::detect(&h.sandbox, "00000000-0000-0000-0000-000000000000")
        .await
        .unwrap_err();
    assert_eq!(err.sandbox_code(), Some(tonic::Code::NotFound), "{err:?}");
    let plan = TestPlan::standard(Framework::Pytest);
    let err = cap_testrun::run(&h.sandbox, "not-a-session", &plan, None, TIMEOUT)
        .await
        .unwrap_err();
    assert!(err.sandbox_code().is_some(), "{err:?}");
    let err = cap_testrun::run(&h.sandbox, "", &plan, None, TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "sandbox session id is empty");
}
