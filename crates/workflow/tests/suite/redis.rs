//! Replicas coordinating through the real Redis at 127.0.0.1:6379 (each test under a key prefix
//! of its own), or through a private `redis-server` a test stops and starts again.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cap_workflow::{CheckpointCopy, Coordination, Engine, EngineConfig, RedisConfig, TaskRecord};
use deadpool_redis::redis;
use futures::StreamExt;
use pretty_assertions::assert_eq;
use tokio::sync::Notify;

use super::support::{Harness, REPO, Step, config};

const FIX: &str = "def add(a, b):\n    return a + b\n";

/// The Redis the machine runs for tests.
const REDIS_URL: &str = "redis://127.0.0.1:6379";

fn replica(name: &str, lease: Duration) -> EngineConfig {
    EngineConfig {
        replica_id: name.to_owned(),
        lease,
        ..config()
    }
}

/// Redis settings under a prefix no other test uses.
fn redis_config(url: &str) -> RedisConfig {
    RedisConfig {
        key_prefix: format!("cap-test:{}:", uuid::Uuid::new_v4()),
        ..RedisConfig::new(url)
    }
}

async fn connect(config: &RedisConfig) -> Coordination {
    Coordination::connect(config.clone()).await.unwrap()
}

/// Two replicas `a` and `b` over one store, coordinating through one Redis (each with its own
/// connection, as two processes would).
async fn two_replicas(lease: Duration, redis: &RedisConfig) -> (Harness, Engine, Engine) {
    let h = Harness::start(replica("unused", lease)).await;
    let a = h.replica_with(replica("a", lease), connect(redis).await);
    let b = h.replica_with(replica("b", lease), connect(redis).await);
    (h, a, b)
}

async fn submit(engine: &Engine, prompt: &str) -> TaskRecord {
    engine
        .submit(cap_workflow::TaskSpec {
            repository_id: REPO.into(),
            prompt: prompt.into(),
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn assert_contiguous(h: &Harness, task_id: &str) {
    let seqs: Vec<i64> = h
        .events(task_id)
        .await
        .iter()
        .map(|record| record.seq)
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
}

/// Waits (at most 10 s) until `engine` follows the other replicas' messages, so a test does
/// not race its subscription.
async fn wait_subscribed(engine: &Engine) {
    let redis = engine.redis().unwrap();
    for _ in 0..1000 {
        if redis.is_subscribed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the replica never subscribed to redis");
}

#[tokio::test]
async fn tasks_are_shared_through_redis_leases_and_each_runs_once() {
    let redis = redis_config(REDIS_URL);
    let (h, a, b) = two_replicas(Duration::from_millis(600), &redis).await;
    const TASKS: usize = 20;
    h.context
        .script((0..TASKS).map(|_| Step::finish("context_ready")));
    h.coding
        .script((0..TASKS).map(|_| Step::edit("calc.py", FIX)));
    h.testing
        .script((0..TASKS).map(|_| Step::finish("tests_passed")));
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let engine = if i % 2 == 0 { &a } else { &b };
        tasks.push(submit(engine, &format!("Fix add #{i}")).await);
        // Both replicas scan for work all along.
        a.resume_unfinished().await.unwrap();
        b.resume_unfinished().await.unwrap();
    }
    for task in &tasks {
        h.wait_for(&task.task_id, "completed").await;
        assert_contiguous(&h, &task.task_id).await;
    }
    assert_eq!(h.coding.requests().len(), TASKS, "no task ran twice");
    assert_eq!(h.github.pull_requests.lock().unwrap().len(), TASKS);
}

#[tokio::test]
async fn a_dead_replicas_redis_lease_expires_and_the_task_is_taken_over_without_repeats() {
    let redis = redis_config(REDIS_URL);
    let (h, a, b) = two_replicas(Duration::from_millis(600), &redis).await;
    h.context.script([Step::finish("context_ready")]);
    // On a the coding agent never finishes; on b it fixes the bug.
    h.coding.script([Step::Hang, Step::edit("calc.py", FIX)]);
    h.testing.script([Step::finish("tests_passed")]);
    let task = submit(&a, "Fix add").await;
    h.coding.started.notified().await;

    // While a renews its lease in Redis, b does not touch the task, though the lease in the
    // task's row (set at the claim, not renewed there) has long expired.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(b.resume_unfinished().await.unwrap(), 0);

    // a dies mid-execute; its key expires; b's takeover scan claims the task.
    a.abort();
    b.spawn_takeover();
    let done = h.wait_for(&task.task_id, "completed").await;
    assert!(!done.pull_request_id.is_empty());
    assert_contiguous(&h, &task.task_id).await;
    assert_eq!(h.coding.requests().len(), 2, "execute ran again on b");
    assert_eq!(h.context.requests().len(), 1, "plan did not");
    assert_eq!(h.github.branches.lock().unwrap().len(), 1);
    assert_eq!(h.github.pull_requests.lock().unwrap().len(), 1);
    assert!(h.sandbox.sessions().is_empty());
}

#[tokio::test]
async fn an_interrupt_through_another_replica_arrives_at_once_and_the_checkpoint_is_in_redis() {
    let redis = redis_config(REDIS_URL);
    // A long lease: the renewal (every 10 s) would pass the interrupt on far too late.
    let (h, a, b) = two_replicas(Duration::from_secs(30), &redis).await;
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::Hang, Step::edit("calc.py", FIX)]);
    h.testing.script([Step::finish("tests_passed")]);
    wait_subscribed(&a).await;
    let task = submit(&a, "Fix add").await;
    h.coding.started.notified().await;

    let asked = Instant::now();
    assert!(b.interrupt(&task.task_id, "alice").await.unwrap());
    let paused = h.wait_for(&task.task_id, "paused").await;
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(2), "the interrupt took {took:?}");
    assert_eq!(paused.current_node, "execute");

    // The paused task's last checkpoint is in Redis too, as the store has it.
    let latest = h
        .store
        .latest_checkpoint(&task.task_id)
        .await
        .unwrap()
        .unwrap();
    let mut copy = None;
    for _ in 0..200 {
        copy = b
            .redis()
            .unwrap()
            .checkpoint_copy(&task.task_id)
            .await
            .unwrap();
        if copy.as_ref().map(|copy| copy.event_seq) == Some(latest.event_seq) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        copy,
        Some(CheckpointCopy {
            event_seq: latest.event_seq,
            state_json: latest.state_json,
        })
    );
    let ttl_ms = b
        .redis()
        .unwrap()
        .checkpoint_ttl_ms(&task.task_id)
        .await
        .unwrap();
    assert!(
        ttl_ms > 0 && ttl_ms <= redis.checkpoint_ttl.as_millis() as i64,
        "{ttl_ms}"
    );

    // Resumed through b, it runs on b to the end.
    b.resume(&task.task_id, "alice").await.unwrap();
    h.wait_for(&task.task_id, "completed").await;
    assert_contiguous(&h, &task.task_id).await;
    assert_eq!(h.github.pull_requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_lease_key_redis_loses_lets_another_replica_take_over_and_the_row_fences_the_first() {
    let redis = redis_config(REDIS_URL);
    let lease = Duration::from_millis(600);
    let (h, a, b) = two_replicas(lease, &redis).await;
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::Hang, Step::edit("calc.py", FIX)]);
    h.testing.script([Step::finish("tests_passed")]);
    let task = submit(&a, "Fix add").await;
    h.coding.started.notified().await;
    // The row's lease, set at the claim, has expired; only Redis says a holds the task.
    tokio::time::sleep(lease * 3 / 2).await;
    let mut connection = redis::Client::open(REDIS_URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = format!("{}lease:{}", redis.key_prefix, task.task_id);
    let holder: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(holder.as_deref(), Some("a"));

    // Redis loses the key (as a restart without persistence would); b claims the task before
    // a renews.
    let () = redis::cmd("DEL")
        .arg(&key)
        .query_async::<i64>(&mut connection)
        .await
        .map(drop)
        .unwrap();
    assert_eq!(b.resume_unfinished().await.unwrap(), 1);

    // a finds b in Redis and in the row at its next renewal and stops; b runs to the end.
    let done = h.wait_for(&task.task_id, "completed").await;
    assert!(!done.pull_request_id.is_empty());
    for _ in 0..200 {
        if a.running_tasks().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(a.running_tasks().is_empty(), "a stopped running the task");
    assert_contiguous(&h, &task.task_id).await;
    assert_eq!(h.coding.requests().len(), 2);
    assert_eq!(h.github.branches.lock().unwrap().len(), 1);
    assert_eq!(h.github.pull_requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_resume_reads_the_redis_copy_when_current_and_the_store_when_it_is_behind() {
    let redis = redis_config(REDIS_URL);
    let (h, a, b) = two_replicas(Duration::from_secs(30), &redis).await;
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::Hang]);
    let task = submit(&a, "Fix add").await;
    h.coding.started.notified().await;
    a.interrupt(&task.task_id, "alice").await.unwrap();
    h.wait_for(&task.task_id, "paused").await;
    let latest = h
        .store
        .latest_checkpoint(&task.task_id)
        .await
        .unwrap()
        .unwrap();
    let stored: cap_workflow::WorkflowState = serde_json::from_str(&latest.state_json).unwrap();
    let copies = b.redis().unwrap();

    // A current copy (of the newest checkpoint) is what a resume starts from.
    let mut marked = stored.clone();
    marked.plan = "the plan as Redis has it".into();
    let current = CheckpointCopy {
        event_seq: latest.event_seq,
        state_json: serde_json::to_string(&marked).unwrap(),
    };
    copies
        .put_checkpoint_copy(&task.task_id, &current)
        .await
        .unwrap();
    assert_eq!(b.resume_state(&task.task_id).await.unwrap(), Some(marked));

    // A copy behind the store (a later checkpoint exists) is not: it would repeat steps.
    let behind = CheckpointCopy {
        event_seq: latest.event_seq - 1,
        ..current
    };
    copies
        .put_checkpoint_copy(&task.task_id, &behind)
        .await
        .unwrap();
    assert_eq!(
        b.resume_state(&task.task_id).await.unwrap(),
        Some(stored.clone())
    );

    // No copy at all: the store's.
    copies.forget_checkpoint_copy(&task.task_id).await.unwrap();
    assert_eq!(b.resume_state(&task.task_id).await.unwrap(), Some(stored));
}

#[tokio::test]
async fn a_watcher_on_another_replica_sees_events_at_once_not_at_its_poll() {
    let mut redis = redis_config(REDIS_URL);
    // Were the watcher on b only polling, it would see nothing for a minute.
    redis.safety_poll = Duration::from_secs(60);
    let (h, a, b) = two_replicas(Duration::from_secs(30), &redis).await;
    let gate = Arc::new(Notify::new());
    h.context.script([Step::finish("context_ready")]);
    h.coding.script([Step::EditWhenOpened {
        gate: gate.clone(),
        path: "calc.py",
        content: FIX,
    }]);
    h.testing.script([Step::finish("tests_passed")]);
    wait_subscribed(&b).await;
    let task = submit(&a, "Fix add").await;
    let mut watch = b.watch(&task.task_id, 0).await.unwrap();
    h.coding.started.notified().await;
    // Let the watcher catch up and wait, so what follows reaches it only through Redis.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let opened = Instant::now();
    let opened_ms = cap_storage::now_ms();
    gate.notify_one();

    let mut lags = Vec::new();
    let started = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(record) = watch.next().await {
            let record = record.unwrap();
            // Events the supervisor made since carry the time it stored them.
            if record.event.agent == "supervisor" && record.event.created_at_ms >= opened_ms {
                lags.push(cap_storage::now_ms() - record.event.created_at_ms);
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the watch did not end after the task did");
    let took = opened.elapsed();
    let done = h.store.get_task(&task.task_id).await.unwrap();
    assert_eq!(done.status.as_str(), "completed");
    assert!(
        took < Duration::from_secs(2),
        "the rest of the run reached b's watcher in {took:?} (started {:?} ago)",
        started.elapsed()
    );
    let worst = lags.iter().copied().max().unwrap();
    eprintln!(
        "b's watcher: {} supervisor events after the gate, worst lag {worst} ms, rest of run \
         seen in {took:?}",
        lags.len()
    );
    assert!(lags.len() >= 5, "{lags:?}");
    assert!(
        worst < 500,
        "an event reached b's watcher {worst} ms after it was stored"
    );
    assert_eq!(
        watch_all(&h, &task.task_id).await,
        h.events(&task.task_id).await.len()
    );
}

/// How many events a fresh watch of the ended task replays.
async fn watch_all(h: &Harness, task_id: &str) -> usize {
    h.engine
        .watch(task_id, 0)
        .await
        .unwrap()
        .collect::<Vec<_>>()
        .await
        .len()
}

/// A `redis-server` of the test's own, on a free port, without persistence.
struct PrivateRedis {
    port: u16,
    child: Child,
}

impl PrivateRedis {
    fn start(port: Option<u16>) -> Self {
        let port = port.unwrap_or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        });
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (the Redis package) must be installed for this test");
        Self { port, child }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&self) {
        for _ in 0..500 {
            if Coordination::connect(RedisConfig::new(self.url()))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("redis-server on port {} did not start", self.port);
    }

    fn stop(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn when_redis_stops_the_running_task_goes_on_on_its_sql_lease_and_new_ones_wait() {
    let mut server = PrivateRedis::start(None);
    server.wait_ready().await;
    let redis = redis_config(&server.url());
    let lease = Duration::from_millis(600);
    let (h, a, b) = two_replicas(lease, &redis).await;
    b.spawn_takeover();
    let gate = Arc::new(Notify::new());
    h.context
        .script([Step::finish("context_ready"), Step::finish("context_ready")]);
    h.coding.script([
        Step::EditWhenOpened {
            gate: gate.clone(),
            path: "calc.py",
            content: FIX,
        },
        Step::edit("calc.py", FIX),
    ]);
    h.testing
        .script([Step::finish("tests_passed"), Step::finish("tests_passed")]);
    let running = submit(&a, "Fix add").await;
    h.coding.started.notified().await;

    // Redis goes away mid-execute, for several leases.
    server.stop();
    tokio::time::sleep(lease * 3).await;
    // A task submitted meanwhile cannot be claimed: it waits, queued.
    let waiting = submit(&b, "Fix add again").await;
    tokio::time::sleep(lease * 2).await;
    assert_eq!(
        h.store
            .get_task(&waiting.task_id)
            .await
            .unwrap()
            .status
            .as_str(),
        "queued"
    );
    // a kept the running task on its lease in the store; b did not take it.
    gate.notify_one();
    let done = h.wait_for(&running.task_id, "completed").await;
    assert!(!done.pull_request_id.is_empty());
    assert_contiguous(&h, &running.task_id).await;
    assert_eq!(h.coding.requests().len(), 1, "only a ran the first task");

    // Redis is back (empty): b's takeover scan claims the waiting task and runs it.
    let _server = PrivateRedis::start(Some(server.port));
    h.wait_for(&waiting.task_id, "completed").await;
    assert_contiguous(&h, &waiting.task_id).await;
    assert_eq!(h.coding.requests().len(), 2);
    assert_eq!(h.github.pull_requests.lock().unwrap().len(), 2);
}
