use super::*;
use cap_proto::agent::v1::Thought;
use cap_proto::agent::v1::task_event::Payload;
use pretty_assertions::assert_eq;

/// The PostgreSQL the machine runs for tests.
const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn spec() -> TaskSpec {
    TaskSpec {
        repository_id: "acme/widgets".into(),
        prompt: "Fix the bug".into(),
        avoid_files: vec!["legacy/".into()],
        max_files_changed: 3,
        priority: "normal".into(),
        test_command: String::new(),
        requested_by: "alice".into(),
    }
}

fn thought(text: &str) -> TaskEvent {
    TaskEvent {
        payload: Some(Payload::Thought(Thought {
            reasoning: text.into(),
        })),
        agent: "coding".into(),
        created_at_ms: 1,
    }
}

async fn exercise(store: Store) {
    let mut task = store.create_task(spec()).await.unwrap();
    assert_eq!(store.get_task(&task.task_id).await.unwrap(), task);

    let first = store
        .record_event(&task.task_id, "", &thought("one"), "plan", "event", "{}")
        .await
        .unwrap();
    let second = store
        .record_event(
            &task.task_id,
            "",
            &thought("two"),
            "plan",
            "event",
            "{\"a\":1}",
        )
        .await
        .unwrap();
    assert_eq!((first, second), (1, 2));
    let events = store.events_after(&task.task_id, 1, 10).await.unwrap();
    assert_eq!(
        events,
        vec![EventRecord {
            seq: 2,
            event: thought("two")
        }]
    );

    store
        .save_checkpoint(&task.task_id, "", "plan", "node_completed", "{\"b\":2}")
        .await
        .unwrap();
    let latest = store
        .latest_checkpoint(&task.task_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (latest.seq, latest.kind.as_str(), latest.event_seq),
        (3, "node_completed", 2)
    );
    assert_eq!(store.checkpoints(&task.task_id).await.unwrap().len(), 3);

    task.status = TaskStatus::Running;
    task.progress_percentage = 40;
    task.current_agent = "CodingAssistant".into();
    store.update_task(&mut task, "").await.unwrap();
    assert_eq!(store.get_task(&task.task_id).await.unwrap(), task);
    assert!(
        store
            .claimable_tasks("")
            .await
            .unwrap()
            .iter()
            .any(|t| t.task_id == task.task_id)
    );

    // Only one of two concurrent transitions wins.
    let from = [TaskStatus::Running];
    assert!(
        store
            .transition(&task.task_id, &from, TaskStatus::Paused)
            .await
            .unwrap()
    );
    assert!(
        !store
            .transition(&task.task_id, &from, TaskStatus::Paused)
            .await
            .unwrap()
    );
    task = store.get_task(&task.task_id).await.unwrap();
    assert_eq!(task.status, TaskStatus::Paused);

    task.status = TaskStatus::Completed;
    store.update_task(&mut task, "").await.unwrap();
    assert!(
        !store
            .claimable_tasks("")
            .await
            .unwrap()
            .iter()
            .any(|t| t.task_id == task.task_id)
    );

    let missing = store
        .get_task("00000000-0000-0000-0000-000000000000")
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::TaskNotFound(_)), "{missing:?}");
}

#[tokio::test]
async fn sqlite_store_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let url = cap_storage::sqlite_url(&dir.path().join("supervisor.db"));
    exercise(Store::open(&url).await.unwrap()).await;
    // Reopening runs the migrations again without harm and keeps the data.
    let store = Store::open(&url).await.unwrap();
    assert_eq!(store.list_tasks(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn postgres_store_round_trips() {
    exercise(Store::open(POSTGRES_URL).await.unwrap()).await;
}

/// A log that a supervisor before the versioned schema began: its rows read alongside new ones.
#[tokio::test]
async fn a_log_begun_by_the_previous_schema_reads_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&cap_storage::sqlite_url(&dir.path().join("supervisor.db")))
        .await
        .unwrap();
    let task = store.create_task(spec()).await.unwrap();
    sqlx::query(
        "INSERT INTO task_events (task_id, seq, event_json, created_at_ms) VALUES ($1, 1, $2, 1)",
    )
    .bind(&task.task_id)
    .bind(r#"{"agent":"coding","created_at_ms":1,"payload":{"Thought":{"reasoning":"old row"}}}"#)
    .execute(&store.pool)
    .await
    .unwrap();
    let seq = store
        .record_event(
            &task.task_id,
            "",
            &thought("new row"),
            "plan",
            "event",
            "{}",
        )
        .await
        .unwrap();
    assert_eq!(seq, 2);
    let events: Vec<TaskEvent> = store
        .events_after(&task.task_id, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.event)
        .collect();
    assert_eq!(events, [thought("old row"), thought("new row")]);
}

/// A replica whose lease another took over after it expired can no longer write the task.
#[tokio::test]
async fn leases_are_exclusive_and_fence_a_replica_that_lost_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&cap_storage::sqlite_url(&dir.path().join("supervisor.db")))
        .await
        .unwrap();
    let task = store.create_task(spec()).await.unwrap();
    let long = std::time::Duration::from_secs(60);
    assert!(store.claim(&task.task_id, "a", long).await.unwrap());
    assert!(
        !store.claim(&task.task_id, "b", long).await.unwrap(),
        "a holds it"
    );
    assert!(
        store.claim(&task.task_id, "a", long).await.unwrap(),
        "a restarted"
    );
    assert!(store.claimable_tasks("b").await.unwrap().is_empty());
    store
        .record_event(&task.task_id, "a", &thought("by a"), "plan", "event", "{}")
        .await
        .unwrap();

    assert_eq!(
        store.renew(&task.task_id, "a", long).await.unwrap(),
        Some(false)
    );
    assert!(store.request_interrupt(&task.task_id).await.unwrap());
    // a stops renewing (its last lease ends now); b claims the task.
    assert_eq!(
        store
            .renew(&task.task_id, "a", std::time::Duration::ZERO)
            .await
            .unwrap(),
        Some(true),
        "the owner sees an interrupt asked elsewhere"
    );
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(store.claimable_tasks("b").await.unwrap().len(), 1);
    assert!(store.claim(&task.task_id, "b", long).await.unwrap());
    assert_eq!(store.renew(&task.task_id, "a", long).await.unwrap(), None);
    let fenced = store
        .record_event(
            &task.task_id,
            "a",
            &thought("late a"),
            "plan",
            "event",
            "{}",
        )
        .await
        .unwrap_err();
    assert!(matches!(fenced, Error::LeaseLost(_)), "{fenced:?}");
    let mut stale = store.get_task(&task.task_id).await.unwrap();
    assert!(matches!(
        store.update_task(&mut stale, "a").await.unwrap_err(),
        Error::LeaseLost(_)
    ));
    store
        .record_event(&task.task_id, "b", &thought("by b"), "plan", "event", "{}")
        .await
        .unwrap();
    let events: Vec<i64> = store
        .events_after(&task.task_id, 0, 10)
        .await
        .unwrap()
        .iter()
        .map(|record| record.seq)
        .collect();
    assert_eq!(events, [1, 2]);
    store.release(&task.task_id, "b").await.unwrap();
    assert!(store.claim(&task.task_id, "c", long).await.unwrap());
}

/// Writes asked at once are committed together: each task's log stays contiguous, a write
/// refused by its fence or naming no task fails alone, and the rest of its batch commits.
async fn batched_writes(store: Store) {
    let long = std::time::Duration::from_secs(60);
    let held = store.create_task(spec()).await.unwrap();
    let lost = store.create_task(spec()).await.unwrap();
    assert!(store.claim(&held.task_id, "a", long).await.unwrap());
    assert!(store.claim(&lost.task_id, "b", long).await.unwrap());
    let mut task = held.clone();
    task.progress_percentage = 50;
    let writes = (0..40).map(|i| {
        let store = store.clone();
        let (held, lost) = (held.task_id.clone(), lost.task_id.clone());
        let mut task = task.clone();
        async move {
            let text = format!("event {i}");
            match i % 4 {
                0 => store
                    .record_event(&lost, "a", &thought(&text), "plan", "event", "{}")
                    .await
                    .map(|_| ()),
                1 => store
                    .record_event("no-such-task", "a", &thought(&text), "plan", "event", "{}")
                    .await
                    .map(|_| ()),
                2 => {
                    let checkpoint = CheckpointOf {
                        node: "plan",
                        kind: "event",
                        state_json: "{}",
                    };
                    store
                        .append_event(
                            &held,
                            "a",
                            &thought(&text),
                            Some(checkpoint),
                            Some(&mut task),
                        )
                        .await
                        .map(|_| ())
                }
                _ => store
                    .record_event(&held, "a", &thought(&text), "plan", "event", "{}")
                    .await
                    .map(|_| ()),
            }
        }
    });
    let outcomes = futures::future::join_all(writes).await;
    for (i, outcome) in outcomes.iter().enumerate() {
        match i % 4 {
            0 => assert!(matches!(outcome, Err(Error::LeaseLost(_))), "{outcome:?}"),
            1 => assert!(
                matches!(outcome, Err(Error::TaskNotFound(_))),
                "{outcome:?}"
            ),
            _ => assert!(outcome.is_ok(), "{outcome:?}"),
        }
    }
    let seqs: Vec<i64> = store
        .events_after(&held.task_id, 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|record| record.seq)
        .collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
    let checkpoints: Vec<(i64, i64)> = store
        .checkpoints(&held.task_id)
        .await
        .unwrap()
        .iter()
        .map(|c| (c.seq, c.event_seq))
        .collect();
    assert_eq!(checkpoints, (1..=20).map(|n| (n, n)).collect::<Vec<_>>());
    assert!(
        store
            .events_after(&lost.task_id, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .get_task(&held.task_id)
            .await
            .unwrap()
            .progress_percentage,
        50
    );
}

#[tokio::test]
async fn sqlite_batches_writes_and_fences_each() {
    let dir = tempfile::tempdir().unwrap();
    let url = cap_storage::sqlite_url(&dir.path().join("supervisor.db"));
    batched_writes(Store::open(&url).await.unwrap()).await;
}

#[tokio::test]
async fn postgres_batches_writes_and_fences_each() {
    batched_writes(Store::open(POSTGRES_URL).await.unwrap()).await;
}
