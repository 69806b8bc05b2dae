//! Time travel: a task's checkpoints, and forks from them that leave the task as it was.

use cap_workflow::{CheckpointInfo, Error, TaskRecord};
use pretty_assertions::assert_eq;

use super::support::{Harness, POSTGRES_URL, Step, config};

const FIX: &str = "def add(a, b):\n    return a + b\n";
const OTHER_FIX: &str = "def add(a, b):\n    return b + a\n";

/// The checkpoint taken when plan finished (the fork then starts at execute).
fn after_plan(checkpoints: &[CheckpointInfo]) -> CheckpointInfo {
    checkpoints
        .iter()
        .find(|c| c.kind == "node_completed" && c.node == "execute")
        .cloned()
        .unwrap_or_else(|| panic!("no node_completed checkpoint after plan: {checkpoints:#?}"))
}

async fn completed_task(h: &Harness) -> TaskRecord {
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::edit("calc.py", FIX)]);
    h.testing.script([Step::finish("tests_passed")]);
    let task = h.submit("Fix add").await;
    h.wait_for(&task.task_id, "completed").await
}

async fn forks_from_a_checkpoint_keep_the_earlier_history(database_url: Option<&str>) {
    let h = Harness::start_on(database_url, config()).await;
    let parent = completed_task(&h).await;
    let parent_events = h.events(&parent.task_id).await;
    let parent_checkpoints = h.engine.list_checkpoints(&parent.task_id).await.unwrap();
    assert_eq!(
        parent_checkpoints.iter().map(|c| c.seq).collect::<Vec<_>>(),
        (1..=parent_checkpoints.len() as i64).collect::<Vec<_>>()
    );
    let chosen = after_plan(&parent_checkpoints);
    assert_eq!(
        chosen.checkpoint_id,
        format!("{}:{}", parent.task_id, chosen.seq)
    );
    assert!(chosen.event_seq > 0, "{chosen:?}");
    let parent_session = h.coding.requests()[0]
        .repo
        .clone()
        .unwrap()
        .sandbox_session_id;
    let parent_plan = h.coding.requests()[0].context.clone().unwrap().plan;

    // The fork starts at execute: no context agent, the parent's plan.
    h.coding.script([Step::edit("calc.py", OTHER_FIX)]);
    h.testing.script([Step::finish("tests_passed")]);
    let fork = h
        .engine
        .rollback(&parent.task_id, &chosen.checkpoint_id, "bob")
        .await
        .unwrap();
    assert_eq!(fork.status.as_str(), "queued");
    assert_eq!(fork.parent_task_id, parent.task_id);
    assert_eq!(fork.forked_from_checkpoint, chosen.checkpoint_id);
    assert_eq!(fork.spec.requested_by, "bob");
    assert_eq!(fork.spec.prompt, parent.spec.prompt);
    assert_ne!(fork.task_id, parent.task_id);
    let fork = h.wait_for(&fork.task_id, "completed").await;
    assert_eq!(h.context.requests().len(), 1, "the fork did not plan again");

    let request = h.coding.requests()[1].clone();
    assert_eq!(request.task_id, fork.task_id);
    assert_eq!(request.context.unwrap().plan, parent_plan);
    let fork_session = request.repo.unwrap().sandbox_session_id;
    assert_ne!(
        fork_session, parent_session,
        "the fork has a workspace of its own"
    );

    // Its own events from 1, its own branch and pull request; the parent as it was.
    let fork_events = h.events(&fork.task_id).await;
    assert_eq!(
        fork_events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=fork_events.len() as i64).collect::<Vec<_>>()
    );
    assert_eq!(h.events(&parent.task_id).await, parent_events);
    assert_eq!(
        h.engine.list_checkpoints(&parent.task_id).await.unwrap(),
        parent_checkpoints
    );
    assert_eq!(h.store.get_task(&parent.task_id).await.unwrap(), parent);
    assert_ne!(fork.pull_request_id, parent.pull_request_id);
    assert_ne!(fork.branch, parent.branch);
    assert!(
        fork.branch.starts_with("coding-assistant/")
            && fork
                .branch
                .ends_with(&format!("-fork-{}", &fork.task_id[..8])),
        "{}",
        fork.branch
    );
    let fork_checkpoints = h.engine.list_checkpoints(&fork.task_id).await.unwrap();
    assert_eq!(
        (
            fork_checkpoints[0].kind.as_str(),
            fork_checkpoints[0].node.as_str(),
            fork_checkpoints[0].event_seq
        ),
        ("forked", "execute", 0)
    );
    let commits = h.github.commits.lock().unwrap().clone();
    assert_eq!(commits.len(), 2);
    assert_eq!(commits[1].branch, fork.branch);

    // A second rollback from the same checkpoint is a second, independent fork.
    h.coding.script([Step::edit("calc.py", FIX)]);
    h.testing.script([Step::finish("tests_passed")]);
    let again = h
        .engine
        .rollback(&parent.task_id, &chosen.checkpoint_id, "bob")
        .await
        .unwrap();
    let again = h.wait_for(&again.task_id, "completed").await;
    assert_ne!(again.task_id, fork.task_id);
    assert_eq!(again.parent_task_id, parent.task_id);
    assert_ne!(again.branch, fork.branch);
    assert_ne!(again.pull_request_id, fork.pull_request_id);
    assert_eq!(h.events(&parent.task_id).await, parent_events);
    assert_eq!(h.events(&again.task_id).await[0].seq, 1);

    // Recorded on the parent, twice, naming each fork; each fork's submission too.
    let records = h
        .store
        .audit()
        .records(Some(&parent.task_id), 1000)
        .await
        .unwrap();
    let rolled_back: Vec<serde_json::Value> = records
        .iter()
        .filter(|r| r.action == "task.rolled_back")
        .map(|r| {
            assert_eq!(r.actor, "bob");
            serde_json::from_str(&r.details_json).unwrap()
        })
        .collect();
    assert_eq!(rolled_back.len(), 2);
    assert_eq!(rolled_back[0]["fork_task_id"], fork.task_id.as_str());
    assert_eq!(
        rolled_back[0]["checkpoint_id"],
        chosen.checkpoint_id.as_str()
    );
    assert_eq!(rolled_back[1]["fork_task_id"], again.task_id.as_str());
    let submitted = h
        .store
        .audit()
        .records(Some(&fork.task_id), 1000)
        .await
        .unwrap();
    assert_eq!(submitted[0].action, "task.submitted");
    let details: serde_json::Value = serde_json::from_str(&submitted[0].details_json).unwrap();
    assert_eq!(details["parent_task_id"], parent.task_id.as_str());
}

#[tokio::test]
async fn forks_from_a_checkpoint_keep_the_earlier_history_on_sqlite() {
    forks_from_a_checkpoint_keep_the_earlier_history(None).await;
}

#[tokio::test]
async fn forks_from_a_checkpoint_keep_the_earlier_history_on_postgres() {
    forks_from_a_checkpoint_keep_the_earlier_history(Some(POSTGRES_URL)).await;
}

#[tokio::test]
async fn a_fork_from_review_makes_the_change_again_and_asks_every_gate_again() {
    let h = Harness::start(config()).await;
    let parent = completed_task(&h).await;
    let checkpoints = h.engine.list_checkpoints(&parent.task_id).await.unwrap();
    let at_review = checkpoints
        .iter()
        .find(|c| c.kind == "node_completed" && c.node == "review")
        .unwrap();
    h.coding.script([Step::edit("calc.py", OTHER_FIX)]);
    h.testing.script([Step::finish("tests_passed")]);
    let fork = h
        .engine
        .rollback(&parent.task_id, &at_review.checkpoint_id, "bob")
        .await
        .unwrap();
    let fork = h.wait_for(&fork.task_id, "completed").await;
    // The workspace held no change: execute ran again, as the same attempt.
    let request = h.coding.requests()[1].clone();
    assert_eq!(request.task_id, fork.task_id);
    assert_eq!(request.context.unwrap().attempt, 1);
    let commits = h.github.commits.lock().unwrap().clone();
    assert_eq!(commits[1].branch, fork.branch);
    let content = match &commits[1].changes[0].change {
        Some(cap_proto::common::v1::file_change::Change::Content(content)) => content.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(String::from_utf8(content).unwrap(), OTHER_FIX);
}

#[tokio::test]
async fn rollback_refuses_running_tasks_unknown_and_foreign_checkpoints_and_ended_graphs() {
    let h = Harness::start(config()).await;
    let parent = completed_task(&h).await;
    let checkpoints = h.engine.list_checkpoints(&parent.task_id).await.unwrap();

    // Another task, left running in execute.
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::Hang]);
    let running = h.submit("Fix add again").await;
    // (`started` still holds the permit of the first task's call.)
    while h.coding.requests().len() < 2 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    h.wait_for(&running.task_id, "running").await;
    let chosen = after_plan(&checkpoints);
    let refused = h
        .engine
        .rollback(&running.task_id, &chosen.checkpoint_id, "bob")
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Conflict(_)), "{refused}");
    assert_eq!(
        refused.to_string(),
        format!(
            "task {} is running; only a paused, failed or completed task can be rolled back \
             (interrupt it first)",
            running.task_id
        )
    );

    // Another task's checkpoint, an unknown one, and no checkpoint id at all.
    h.engine.interrupt(&running.task_id, "bob").await.unwrap();
    h.wait_for(&running.task_id, "paused").await;
    let running_checkpoints = h.engine.list_checkpoints(&running.task_id).await.unwrap();
    let foreign = &running_checkpoints[0].checkpoint_id;
    for bad in [
        foreign.clone(),
        format!("{}:9999", parent.task_id),
        "7".to_owned(),
    ] {
        let refused = h
            .engine
            .rollback(&parent.task_id, &bad, "bob")
            .await
            .unwrap_err();
        assert!(
            matches!(refused, Error::CheckpointNotFound { .. }),
            "{refused}"
        );
        assert_eq!(
            refused.to_string(),
            format!(
                "checkpoint {bad:?} not found among task {}'s checkpoints",
                parent.task_id
            )
        );
    }
    let empty = h
        .engine
        .rollback(&parent.task_id, " ", "bob")
        .await
        .unwrap_err();
    assert_eq!(empty.to_string(), "checkpoint_id: must not be empty");
    let unknown = "0b1f6c1e-8a39-4c43-9c0e-1d2e3f4a5b6c";
    let missing = h
        .engine
        .rollback(unknown, &format!("{unknown}:1"), "bob")
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::TaskNotFound(_)), "{missing}");
    assert!(matches!(
        h.engine.list_checkpoints(unknown).await.unwrap_err(),
        Error::TaskNotFound(_)
    ));

    // The checkpoint taken once the graph had ended leaves nothing to run.
    let last = checkpoints.last().unwrap();
    assert_eq!(last.node, "done");
    let ended = h
        .engine
        .rollback(&parent.task_id, &last.checkpoint_id, "bob")
        .await
        .unwrap_err();
    assert!(matches!(ended, Error::Conflict(_)), "{ended}");
    assert!(
        ended.to_string().contains("choose an earlier checkpoint"),
        "{ended}"
    );

    // Nothing was made by the refusals; the paused task forks, and stays paused with its
    // workspace.
    assert_eq!(h.engine.list(50).await.unwrap().len(), 2);
    let paused_session = h.coding.requests()[1]
        .repo
        .clone()
        .unwrap()
        .sandbox_session_id;
    h.coding.script([Step::edit("calc.py", FIX)]);
    h.testing.script([Step::finish("tests_passed")]);
    let fork = h
        .engine
        .rollback(
            &running.task_id,
            &after_plan(&running_checkpoints).checkpoint_id,
            "bob",
        )
        .await
        .unwrap();
    h.wait_for(&fork.task_id, "completed").await;
    assert_eq!(
        h.store
            .get_task(&running.task_id)
            .await
            .unwrap()
            .status
            .as_str(),
        "paused"
    );
    assert!(h.sandbox.sessions().contains(&paused_session));
}
