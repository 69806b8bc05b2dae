//! Many workflows at once on one engine: none lost, none stuck, every log whole.

use cap_workflow::EngineConfig;

use super::support::{Harness, POSTGRES_URL, Step, config};

const WORKFLOWS: usize = 200;

async fn many_workflows_complete(database_url: Option<&str>) {
    let h = Harness::start_on(
        database_url,
        EngineConfig {
            max_concurrent_tasks: WORKFLOWS,
            ..config()
        },
    )
    .await;
    h.context
        .script((0..WORKFLOWS).map(|_| Step::finish("context_ready")));
    h.coding.script(
        (0..WORKFLOWS).map(|_| Step::edit("calc.py", "def add(a, b):\n    return a + b\n")),
    );
    h.testing
        .script((0..WORKFLOWS).map(|_| Step::finish("tests_passed")));
    let tasks = futures::future::join_all((0..WORKFLOWS).map(|i| {
        let h = &h;
        async move { h.submit(&format!("Fix add #{i}")).await }
    }))
    .await;

    for task in &tasks {
        let done = h.wait_for(&task.task_id, "completed").await;
        assert!(!done.pull_request_id.is_empty(), "{done:?}");
        let seqs: Vec<i64> = h
            .events(&task.task_id)
            .await
            .iter()
            .map(|record| record.seq)
            .collect();
        let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
        assert_eq!(
            seqs, expected,
            "task {}: sequence numbers not contiguous",
            task.task_id
        );
    }
    let pull_requests = h.github.pull_requests.lock().unwrap().clone();
    assert_eq!(pull_requests.len(), WORKFLOWS, "one pull request per task");
    let mut owners: Vec<&str> = pull_requests.iter().map(|pr| pr.task_id.as_str()).collect();
    owners.sort_unstable();
    owners.dedup();
    assert_eq!(owners.len(), WORKFLOWS, "no task has two pull requests");
    assert!(h.sandbox.sessions().is_empty(), "every workspace released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_workflows_complete_on_sqlite() {
    many_workflows_complete(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_workflows_complete_on_postgres() {
    many_workflows_complete(Some(POSTGRES_URL)).await;
}

/// The store locked by another writer for longer than SQLite's busy timeout, while an agent
/// reports: the runner's writes fail, the run waits the store out and goes on, and the task
/// completes with its log whole (no silent death, no lost or repeated event).
#[tokio::test]
async fn a_store_locked_past_its_busy_timeout_is_waited_out() {
    use sqlx::Connection as _;

    let h = Harness::start(config()).await;
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    h.context.script([Step::finish("context_ready")]);
    let edit = || Step::edit("calc.py", "def add(a, b):\n    return a + b\n");
    h.coding.script([
        Step::EditWhenOpened {
            gate: gate.clone(),
            path: "calc.py",
            content: "def add(a, b):\n    return a + b\n",
        },
        edit(),
        edit(),
        edit(),
    ]);
    h.testing.script([Step::finish("tests_passed")]);
    let task = h.submit("Fix add").await;
    h.coding.started.notified().await;

    // Another process holding the write lock for 7 s (SQLite's busy timeout is 5 s).
    let mut other = sqlx::SqliteConnection::connect(&h.url).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut other)
        .await
        .unwrap();
    gate.notify_one();
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();

    let done = h.wait_for(&task.task_id, "completed").await;
    assert_eq!(done.error_message, "");
    let seqs: Vec<i64> = h
        .events(&task.task_id)
        .await
        .iter()
        .map(|record| record.seq)
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert_eq!(h.github.pull_requests.lock().unwrap().len(), 1);
    assert!(h.sandbox.sessions().is_empty());
}

/// One slot: queued tasks run `high` first, then `normal`, then `low`.
#[tokio::test]
async fn queued_tasks_run_by_priority() {
    let h = Harness::start(EngineConfig {
        max_concurrent_tasks: 1,
        ..config()
    })
    .await;
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let fix = "def add(a, b):\n    return a + b\n";
    h.context
        .script((0..4).map(|_| Step::finish("context_ready")));
    h.coding.script([
        Step::EditWhenOpened {
            gate: gate.clone(),
            path: "calc.py",
            content: fix,
        },
        Step::edit("calc.py", fix),
        Step::edit("calc.py", fix),
        Step::edit("calc.py", fix),
    ]);
    h.testing
        .script((0..4).map(|_| Step::finish("tests_passed")));
    let first = h.submit("first").await;
    h.coding.started.notified().await;
    let mut queued = Vec::new();
    for priority in ["low", "normal", "high"] {
        let task = h
            .engine
            .submit(cap_workflow::TaskSpec {
                repository_id: super::support::REPO.into(),
                prompt: priority.into(),
                priority: priority.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        queued.push(task);
    }
    for _ in 0..500 {
        if h.engine.queue_depth() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(h.engine.queue_depth(), 3);
    gate.notify_one();
    h.wait_for(&first.task_id, "completed").await;
    for task in &queued {
        h.wait_for(&task.task_id, "completed").await;
    }
    let order: Vec<String> = h
        .coding
        .requests()
        .into_iter()
        .map(|request| request.objective)
        .collect();
    assert_eq!(order, ["first", "high", "normal", "low"]);
    assert_eq!(h.engine.queue_depth(), 0);
}
