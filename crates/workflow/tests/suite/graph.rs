//! Every edge of plan -> execute -> review (-> execute while tests fail), retries, interrupts
//! at each node, resume from each checkpoint, and the ways a task fails.

use cap_proto::agent::v1::task_event::Payload;
use cap_workflow::{Node, WorkflowState};
use pretty_assertions::assert_eq;
use tonic::Status;

use super::support::{BASE_SHA, CLONE_URL, Harness, Step, config};

const FIX: &str = "def add(a, b):\n    return a + b\n";

/// The checkpoints and end of a run that went plan -> execute -> review once.
fn straight_run() -> Vec<&'static str> {
    vec![
        "context:checkpoint:context_ready",
        "supervisor:checkpoint:node_completed",
        "coding:checkpoint:agent_finished",
        "supervisor:checkpoint:node_completed",
        "testing:checkpoint:tests_passed",
        "supervisor:checkpoint:human_approval_required",
        "supervisor:checkpoint:node_completed",
        "supervisor:status:completed",
    ]
}

#[tokio::test]
async fn plan_execute_review_opens_the_pull_request_and_releases_the_workspace() {
    let h = Harness::start(config()).await;
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::edit("calc.py", FIX)]);
    h.testing.script([Step::finish("tests_passed")]);
    let task = h.submit("Fix add in calc.py").await;
    let done = h.wait_for(&task.task_id, "completed").await;

    assert_eq!(h.trail(&task.task_id).await, straight_run());
    assert_eq!(done.progress_percentage, 100);
    assert_eq!(done.pull_request_id, "pr-1");
    assert!(
        done.branch.starts_with("coding-assistant/"),
        "{}",
        done.branch
    );
    // The commit carries exactly the workspace's change.
    let commits = h.github.commits.lock().unwrap().clone();
    assert_eq!(commits.len(), 1);
    assert_eq!(commits[0].changes.len(), 1);
    assert_eq!(commits[0].changes[0].path, "calc.py");
    // The agents worked in the session the plan made, which is gone afterwards.
    let session = h.coding.requests()[0]
        .repo
        .clone()
        .unwrap()
        .sandbox_session_id;
    assert!(!session.is_empty());
    assert_eq!(
        h.testing.requests()[0]
            .repo
            .clone()
            .unwrap()
            .sandbox_session_id,
        session
    );
    assert!(
        h.sandbox.sessions().is_empty(),
        "{:?}",
        h.sandbox.sessions()
    );
    // The stack trace in the request reaches the context agent, the plan the coding agent.
    let context = |agent: &super::support::StubAgent| agent.requests()[0].context.clone().unwrap();
    assert_eq!(context(&h.context).stack_trace, "Fix add in calc.py");
    assert!(!context(&h.coding).plan.is_empty());
}

#[tokio::test]
async fn failing_tests_send_the_task_back_to_execute_with_the_failure() {
    let h = Harness::start(config()).await;
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([
        Step::edit("calc.py", "def add(a, b):\n    return b\n"),
        Step::edit("calc.py", FIX),
    ]);
    h.testing
        .script([Step::finish("tests_failed"), Step::finish("tests_passed")]);
    let task = h.submit("Fix add").await;
    h.wait_for(&task.task_id, "completed").await;

    let contexts: Vec<_> = h
        .coding
        .requests()
        .into_iter()
        .map(|request| request.context.unwrap())
        .collect();
    assert_eq!(contexts.len(), 2);
    assert_eq!(contexts[0].attempt, 1);
    assert_eq!(contexts[0].previous_test_failure, "");
    assert_eq!(contexts[1].attempt, 2);
    assert!(
        contexts[1]
            .previous_test_failure
            .contains("testing did its part"),
        "{:?}",
        contexts[1]
    );
    assert_eq!(h.testing.requests().len(), 2);
    assert_eq!(h.github.pull_requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn tests_failing_after_the_last_attempt_ask_a_human_who_can_guide_another_round() {
    let h = Harness::start(config()).await;
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([
        Step::edit("calc.py", "x\n"),
        Step::edit("calc.py", "y\n"),
        Step::edit("calc.py", FIX),
    ]);
    h.testing.script([
        Step::finish("tests_failed"),
        Step::finish("tests_failed"),
        Step::finish("tests_passed"),
    ]);
    let task = h.submit("Fix add").await;
    let paused = h.wait_for(&task.task_id, "paused").await;
    assert_eq!(paused.current_node, "review");
    let asked = h
        .events(&task.task_id)
        .await
        .into_iter()
        .rev()
        .find_map(|record| match record.event.payload? {
            Payload::Checkpoint(c) if c.kind().name() == "human_approval_required" => {
                Some(c.description)
            }
            _ => None,
        })
        .unwrap();
    assert!(
        asked.starts_with("the repository's tests still fail after 2 attempts"),
        "{asked}"
    );
    assert!(h.github.pull_requests.lock().unwrap().is_empty());
    assert_eq!(
        h.sandbox.sessions().len(),
        1,
        "the workspace waits with the task"
    );

    // A human guides the agent and resumes: a fresh round of attempts, from execute.
    h.engine
        .add_constraint(&task.task_id, "add() must return a + b", "alice")
        .await
        .unwrap();
    h.engine.resume(&task.task_id, "alice").await.unwrap();
    h.wait_for(&task.task_id, "completed").await;
    let third = &h.coding.requests()[2];
    let context = third.context.as_ref().unwrap();
    assert_eq!(context.attempt, 1);
    assert_eq!(context.human_constraints, ["add() must return a + b"]);
}

#[tokio::test]
async fn no_tests_counts_as_passing_and_an_unknown_ending_fails() {
    let h = Harness::start(config()).await;
    h.context
        .script([Step::finish("context_ready"), Step::finish("context_ready")]);
    h.coding
        .script([Step::edit("calc.py", FIX), Step::edit("calc.py", FIX)]);
    h.testing
        .script([Step::finish("no_tests"), Step::finish("step_limit_reached")]);
    let passed = h.submit("Fix add").await;
    h.wait_for(&passed.task_id, "completed").await;
    let odd = h.submit("Fix add again").await;
    let failed = h.wait_for(&odd.task_id, "failed").await;
    assert!(
        failed
            .error_message
            .starts_with("the testing agent ended with \"step_limit_reached\""),
        "{}",
        failed.error_message
    );
}

#[tokio::test]
async fn a_coding_agent_that_changes_nothing_or_breaks_a_constraint_fails_the_task() {
    let h = Harness::start(config()).await;
    h.context
        .script([Step::finish("context_ready"), Step::finish("context_ready")]);
    h.coding.script([
        Step::finish("agent_finished"),
        Step::edit("test_calc.py", "x\n"),
    ]);
    let nothing = h.submit("Fix add").await;
    let failed = h.wait_for(&nothing.task_id, "failed").await;
    assert_eq!(
        failed.error_message,
        "the coding agent finished without changing any file through its edit tools"
    );

    let avoided = h
        .engine
        .submit(cap_workflow::TaskSpec {
            repository_id: super::support::REPO.into(),
            prompt: "Fix add".into(),
            avoid_files: vec!["test_calc.py".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let failed = h.wait_for(&avoided.task_id, "failed").await;
    assert!(
        failed.error_message.contains("test_calc.py"),
        "{}",
        failed.error_message
    );
    assert!(h.testing.requests().is_empty());
}

// Real time with a short backoff, not paused time: under paused time the clock jumps while
// the store waits on SQLite's worker thread, and sqlx's pool timeouts fire at once.
#[tokio::test]
async fn transient_failures_are_retried_with_doubling_backoff() {
    let h = Harness::start(config()).await;
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([
        Step::Fail(Status::unavailable("coding agent restarting")),
        Step::Fail(Status::unavailable("coding agent restarting")),
        Step::edit("calc.py", FIX),
    ]);
    h.testing.script([Step::finish("tests_passed")]);
    let task = h.submit("Fix add").await;
    h.wait_for(&task.task_id, "completed").await;

    let warnings: Vec<String> = h
        .events(&task.task_id)
        .await
        .into_iter()
        .filter_map(|record| match record.event.payload? {
            Payload::Error(e) if e.severity == "warning" => Some(e.message),
            _ => None,
        })
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(warnings[0].contains("retry 1 in 200 ms"), "{}", warnings[0]);
    assert!(warnings[1].contains("retry 2 in 400 ms"), "{}", warnings[1]);
    assert!(
        warnings[0].contains("coding agent restarting"),
        "{}",
        warnings[0]
    );
}

#[tokio::test]
async fn retries_run_out_and_permanent_failures_are_not_retried() {
    let h = Harness::start(config()).await;
    h.context
        .script([Step::finish("context_ready"), Step::finish("context_ready")]);
    let down = || Step::Fail(Status::unavailable("down"));
    h.coding.script([down(), down(), down()]);
    let task = h.submit("Fix add").await;
    let failed = h.wait_for(&task.task_id, "failed").await;
    assert!(
        failed.error_message.contains("down"),
        "{}",
        failed.error_message
    );
    assert_eq!(h.coding.requests().len(), 3, "one try and two retries");

    h.coding
        .script([Step::Fail(Status::invalid_argument("objective is empty"))]);
    let task = h.submit("Fix add again").await;
    let failed = h.wait_for(&task.task_id, "failed").await;
    assert!(
        failed.error_message.contains("objective is empty"),
        "{}",
        failed.error_message
    );
    assert_eq!(h.coding.requests().len(), 4, "not retried");
}

#[tokio::test]
async fn a_forge_failure_after_the_commit_is_retried_without_repeating_the_commit() {
    let h = Harness::start(config()).await;
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::edit("calc.py", FIX)]);
    h.testing
        .script([Step::finish("tests_passed"), Step::finish("tests_passed")]);
    h.github
        .fail("OpenPullRequest", Status::unavailable("forge restarting"));
    let task = h.submit("Fix add").await;
    let done = h.wait_for(&task.task_id, "completed").await;
    assert_eq!(done.pull_request_id, "pr-1");
    assert_eq!(h.testing.requests().len(), 2, "review ran again");
    assert_eq!(h.github.branches.lock().unwrap().len(), 1);
    assert_eq!(h.github.commits.lock().unwrap().len(), 1);
    assert_eq!(h.github.pull_requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_sandbox_that_loses_the_workspace_fails_the_task() {
    let h = Harness::start(config()).await;
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::edit("calc.py", FIX)]);
    h.sandbox
        .fail("GetChanges", Status::not_found("session not found"));
    let task = h.submit("Fix add").await;
    let failed = h.wait_for(&task.task_id, "failed").await;
    assert!(
        failed
            .error_message
            .contains("sandbox service: session not found"),
        "{}",
        failed.error_message
    );
}

#[tokio::test]
async fn an_unknown_repository_fails_the_task_at_plan() {
    let h = Harness::start(config()).await;
    let task = h
        .engine
        .submit(cap_workflow::TaskSpec {
            repository_id: "acme/missing".into(),
            prompt: "Fix add".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let failed = h.wait_for(&task.task_id, "failed").await;
    assert!(
        failed.error_message.contains("acme/missing"),
        "{}",
        failed.error_message
    );
    assert!(h.coding.requests().is_empty());
    assert!(h.sandbox.sessions().is_empty());
}

#[tokio::test]
async fn a_failing_context_agent_only_warns_and_the_plan_goes_on() {
    let h = Harness::start(config()).await;
    h.context
        .script([Step::Fail(Status::internal("index corrupt"))]);
    h.coding.script([Step::edit("calc.py", FIX)]);
    h.testing.script([Step::finish("tests_passed")]);
    let task = h.submit("Fix add").await;
    h.wait_for(&task.task_id, "completed").await;
    let trail = h.trail(&task.task_id).await;
    assert_eq!(trail[0], "supervisor:error:warning");
}

/// Interrupting while `node`'s agent runs pauses the task there with its workspace kept;
/// resuming runs that node again and finishes.
async fn interrupt_and_resume_at(node: Node) {
    let h = Harness::start(config()).await;
    let hang_at = |at: Node| if node == at { vec![Step::Hang] } else { vec![] };
    let mut context = hang_at(Node::Plan);
    context.push(Step::finish("context_ready"));
    h.context.script(context);
    let mut coding = hang_at(Node::Execute);
    coding.push(Step::edit("calc.py", FIX));
    h.coding.script(coding);
    let mut testing = hang_at(Node::Review);
    testing.push(Step::finish("tests_passed"));
    h.testing.script(testing);
    let hanging = match node {
        Node::Plan => h.context.started.clone(),
        Node::Execute => h.coding.started.clone(),
        Node::Review => h.testing.started.clone(),
    };
    let task = h.submit("Fix add").await;
    hanging.notified().await;
    assert!(h.engine.interrupt(&task.task_id, "alice").await.unwrap());
    let paused = h.wait_for(&task.task_id, "paused").await;
    assert_eq!(paused.current_node, node.name());
    let trail = h.trail(&task.task_id).await;
    assert_eq!(
        trail[trail.len() - 2..],
        ["supervisor:checkpoint:paused", "supervisor:status:paused"],
        "{trail:#?}"
    );
    assert_eq!(
        h.sandbox.sessions().len(),
        1,
        "the paused task keeps its workspace"
    );

    let err = h
        .engine
        .interrupt(&task.task_id, "alice")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("paused and cannot be interrupted"),
        "{err}"
    );
    h.engine.resume(&task.task_id, "alice").await.unwrap();
    let done = h.wait_for(&task.task_id, "completed").await;
    assert_eq!(done.pull_request_id, "pr-1");
    assert!(h.sandbox.sessions().is_empty());
}

#[tokio::test]
async fn interrupt_during_plan_pauses_and_resume_finishes() {
    interrupt_and_resume_at(Node::Plan).await;
}

#[tokio::test]
async fn interrupt_during_execute_pauses_and_resume_finishes() {
    interrupt_and_resume_at(Node::Execute).await;
}

#[tokio::test]
async fn interrupt_during_review_pauses_and_resume_finishes() {
    interrupt_and_resume_at(Node::Review).await;
}

#[tokio::test]
async fn only_paused_or_failed_tasks_resume() {
    let h = Harness::start(config()).await;
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::edit("calc.py", FIX)]);
    h.testing.script([Step::finish("tests_passed")]);
    let task = h.submit("Fix add").await;
    h.wait_for(&task.task_id, "completed").await;
    let err = h.engine.resume(&task.task_id, "alice").await.unwrap_err();
    assert!(
        err.to_string().contains("only paused or failed tasks"),
        "{err}"
    );
}

/// A supervisor that stopped after `node` completed: a new engine over the same store
/// resumes the task from that checkpoint and runs only what is left.
async fn resume_after(node: Node) {
    let h = Harness::start(config()).await;
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::edit("calc.py", FIX)]);
    h.testing.script([Step::finish("tests_passed")]);
    let task = h.submit("Fix add").await;
    h.wait_for(&task.task_id, "completed").await;

    // Rewind: the task as it was right after `node` completed, still `running`.
    let checkpoints = h.store.checkpoints(&task.task_id).await.unwrap();
    let after_node = checkpoints
        .iter()
        .filter_map(|c| {
            let state: WorkflowState = serde_json::from_str(&c.state_json).ok()?;
            (c.kind == "node_completed" && state.next_node == next_of(node)).then_some(state)
        })
        .next()
        .unwrap_or_else(|| panic!("no checkpoint after {node:?}: {checkpoints:#?}"));
    let rewound = h.store.create_task(task.spec.clone()).await.unwrap();
    h.store
        .save_checkpoint(
            &rewound.task_id,
            "",
            node.name(),
            "node_completed",
            &serde_json::to_string(&after_node).unwrap(),
        )
        .await
        .unwrap();
    // Its session as the crashed run left it.
    let session = &after_node.session_id;
    assert!(h.sandbox.restore_session(session, CLONE_URL, BASE_SHA));
    if node == Node::Execute {
        h.sandbox.put_file(session, "calc.py", FIX);
    }

    let (context_calls, coding_calls, testing_calls) = (
        h.context.requests().len(),
        h.coding.requests().len(),
        h.testing.requests().len(),
    );
    h.coding.script([Step::edit("calc.py", FIX)]);
    h.testing.script([Step::finish("tests_passed")]);
    let restarted = h.restart(config());
    assert_eq!(restarted.resume_unfinished().await.unwrap(), 1);
    let done = h.wait_for(&rewound.task_id, "completed").await;
    assert!(!done.pull_request_id.is_empty());
    assert_eq!(
        h.context.requests().len(),
        context_calls,
        "plan is not run again"
    );
    let ran_execute = h.coding.requests().len() - coding_calls;
    let ran_review = h.testing.requests().len() - testing_calls;
    match node {
        Node::Plan => assert_eq!((ran_execute, ran_review), (1, 1)),
        Node::Execute => assert_eq!((ran_execute, ran_review), (0, 1)),
        Node::Review => unreachable!("review is the last node"),
    }
}

fn next_of(node: Node) -> Option<Node> {
    match node {
        Node::Plan => Some(Node::Execute),
        Node::Execute => Some(Node::Review),
        Node::Review => None,
    }
}

#[tokio::test]
async fn a_restarted_supervisor_resumes_after_plan() {
    resume_after(Node::Plan).await;
}

#[tokio::test]
async fn a_restarted_supervisor_resumes_after_execute() {
    resume_after(Node::Execute).await;
}

/// A supervisor that stopped inside review, after the commit: the restarted one runs the
/// tests again and opens the pull request without a second branch or commit.
#[tokio::test]
async fn a_restarted_supervisor_resumes_after_the_commit_without_repeating_it() {
    let h = Harness::start(config()).await;
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::edit("calc.py", FIX)]);
    h.testing.script([Step::finish("tests_passed")]);
    let task = h.submit("Fix add").await;
    h.wait_for(&task.task_id, "completed").await;

    let committed: WorkflowState = h
        .store
        .checkpoints(&task.task_id)
        .await
        .unwrap()
        .iter()
        .find(|c| c.kind == "committed")
        .map(|c| serde_json::from_str(&c.state_json).unwrap())
        .expect("a committed checkpoint");
    assert_eq!(committed.next_node, Some(Node::Review));
    assert!(committed.branch_created && !committed.head_sha.is_empty());
    let rewound = h.store.create_task(task.spec.clone()).await.unwrap();
    h.store
        .save_checkpoint(
            &rewound.task_id,
            "",
            "review",
            "committed",
            &serde_json::to_string(&committed).unwrap(),
        )
        .await
        .unwrap();
    assert!(
        h.sandbox
            .restore_session(&committed.session_id, CLONE_URL, BASE_SHA)
    );
    h.testing.script([Step::finish("tests_passed")]);
    assert_eq!(h.restart(config()).resume_unfinished().await.unwrap(), 1);
    let done = h.wait_for(&rewound.task_id, "completed").await;
    assert_eq!(done.pull_request_id, "pr-2");
    assert_eq!(
        h.github.branches.lock().unwrap().len(),
        1,
        "no second branch"
    );
    assert_eq!(
        h.github.commits.lock().unwrap().len(),
        1,
        "no second commit"
    );
    assert_eq!(h.github.pull_requests.lock().unwrap().len(), 2);
}

/// A supervisor that stops during plan, after its workspace was made: the restarted one goes
/// on in that workspace rather than leaving it behind and making a second one.
#[tokio::test]
async fn a_supervisor_stopped_during_plan_resumes_into_the_workspace_it_made() {
    let h = Harness::start(config()).await;
    h.context
        .script([Step::Hang, Step::finish("context_ready")]);
    h.coding.script([Step::edit("calc.py", FIX)]);
    h.testing.script([Step::finish("tests_passed")]);
    let task = h.submit("Fix add").await;
    h.context.started.notified().await;
    let made = h.sandbox.sessions();
    assert_eq!(made.len(), 1);
    // Kept before anything else happens in it, not only with the plan's later events.
    let kept = h.store.checkpoints(&task.task_id).await.unwrap();
    let created = kept
        .iter()
        .find(|checkpoint| checkpoint.kind == "session_created")
        .unwrap_or_else(|| panic!("no session_created checkpoint: {kept:#?}"));
    let state: WorkflowState = serde_json::from_str(&created.state_json).unwrap();
    assert_eq!(state.session_id, made[0]);

    h.engine.abort();
    let restarted = h.restart(config());
    assert_eq!(restarted.resume_unfinished().await.unwrap(), 1);
    h.wait_for(&task.task_id, "completed").await;
    let session = |agent: &super::support::StubAgent| {
        agent.requests()[0].repo.clone().unwrap().sandbox_session_id
    };
    assert_eq!(session(&h.coding), made[0], "the first workspace went on");
    assert!(
        h.sandbox.sessions().is_empty(),
        "no workspace is left behind: {:?}",
        h.sandbox.sessions()
    );
}
