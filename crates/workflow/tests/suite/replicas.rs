//! Several supervisor replicas on one store: each task run by one replica at a time, a dead
//! replica's tasks taken over after its lease expires, nothing lost or repeated.

use std::time::Duration;

use cap_workflow::EngineConfig;
use pretty_assertions::assert_eq;

use super::support::{Harness, Step, config};

const FIX: &str = "def add(a, b):\n    return a + b\n";

fn replica(name: &str) -> EngineConfig {
    EngineConfig {
        replica_id: name.to_owned(),
        lease: Duration::from_millis(600),
        ..config()
    }
}

#[tokio::test]
async fn a_dead_replicas_task_is_taken_over_after_its_lease_without_repeats() {
    let h = Harness::start(replica("a")).await;
    let b = h.restart(replica("b"));
    h.context.script([Step::finish("context_ready")]);
    // On replica a the coding agent never finishes; on b it fixes the bug.
    h.coding.script([Step::Hang, Step::edit("calc.py", FIX)]);
    h.testing.script([Step::finish("tests_passed")]);
    let task = h.submit("Fix add").await;
    h.coding.started.notified().await;

    // While a holds the task, b does not touch it.
    assert_eq!(b.resume_unfinished().await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        b.resume_unfinished().await.unwrap(),
        0,
        "a renews its lease while it runs"
    );

    // a dies mid-execute; b's takeover scan finds the lease expired and resumes the task.
    h.engine.abort();
    b.spawn_takeover();
    let done = h.wait_for(&task.task_id, "completed").await;
    assert!(!done.pull_request_id.is_empty());
    let seqs: Vec<i64> = h
        .events(&task.task_id)
        .await
        .iter()
        .map(|record| record.seq)
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert_eq!(h.coding.requests().len(), 2, "execute ran again on b");
    assert_eq!(h.context.requests().len(), 1, "plan did not");
    assert_eq!(h.github.branches.lock().unwrap().len(), 1);
    assert_eq!(h.github.pull_requests.lock().unwrap().len(), 1);
    assert!(
        h.sandbox.sessions().is_empty(),
        "the workspace a made is released by b"
    );
}

#[tokio::test]
async fn tasks_are_shared_between_replicas_and_each_runs_once() {
    // Leases long enough that no renewal is missed on a loaded machine: a missed one hands
    // a live task to the other replica, which is right, but runs its node's agent again.
    let lease = Duration::from_secs(5);
    let h = Harness::start(EngineConfig {
        lease,
        ..replica("a")
    })
    .await;
    let b = h.restart(EngineConfig {
        lease,
        ..replica("b")
    });
    const TASKS: usize = 20;
    h.context
        .script((0..TASKS).map(|_| Step::finish("context_ready")));
    h.coding
        .script((0..TASKS).map(|_| Step::edit("calc.py", FIX)));
    h.testing
        .script((0..TASKS).map(|_| Step::finish("tests_passed")));
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let engine = if i % 2 == 0 { &h.engine } else { &b };
        tasks.push(
            engine
                .submit(cap_workflow::TaskSpec {
                    repository_id: super::support::REPO.into(),
                    prompt: format!("Fix add #{i}"),
                    ..Default::default()
                })
                .await
                .unwrap(),
        );
        // Both replicas scan for work all along.
        h.engine.resume_unfinished().await.unwrap();
        b.resume_unfinished().await.unwrap();
    }
    for task in &tasks {
        h.wait_for(&task.task_id, "completed").await;
    }
    assert_eq!(h.coding.requests().len(), TASKS, "no task ran twice");
    assert_eq!(h.github.pull_requests.lock().unwrap().len(), TASKS);
}

#[tokio::test]
async fn interrupt_and_resume_work_through_either_replica() {
    let h = Harness::start(replica("a")).await;
    let b = h.restart(replica("b"));
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::Hang, Step::edit("calc.py", FIX)]);
    h.testing.script([Step::finish("tests_passed")]);
    let task = h.submit("Fix add").await;
    h.coding.started.notified().await;

    // Asked of b, the interrupt reaches a's runner at its next lease renewal.
    assert!(b.interrupt(&task.task_id, "alice").await.unwrap());
    let paused = h.wait_for(&task.task_id, "paused").await;
    assert_eq!(paused.current_node, "execute");
    // Resumed through b, it runs on b.
    b.resume(&task.task_id, "alice").await.unwrap();
    h.wait_for(&task.task_id, "completed").await;
    assert_eq!(h.github.pull_requests.lock().unwrap().len(), 1);
}
