//! `cargo bench -p cap-workflow --bench workflows -- [workflows] [agent delay ms]`: runs many
//! workflows at once through the engine (defaults: 200, each agent call taking 200 ms like a
//! model's answer; three agent calls a workflow), against the in-memory sandbox and stub
//! agents and GitHub service on loopback gRPC, on SQLite and on PostgreSQL
//! (127.0.0.1:5432/test), with a watcher on every task. Prints workflows completed per
//! minute, the engine's own overhead per workflow and per node (wall time minus the agents'
//! delay), the latency from an event's creation to its watcher (p50, p99), and resident
//! memory per workflow; and, as the baseline measured in the same run, one workflow alone.
//! Then the same on PostgreSQL with two replicas coordinating through Redis
//! (127.0.0.1:6379): the workflows run on one, their watchers are on the other.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[allow(dead_code)]
#[path = "../tests/suite/support.rs"]
mod support;

use std::time::{Duration, Instant};

use cap_workflow::{Coordination, Engine, EngineConfig, RedisConfig};
use futures::StreamExt as _;
use support::{Harness, POSTGRES_URL, Step};

/// Agent calls a workflow makes: context, coding, testing.
const AGENT_CALLS: u32 = 3;
/// Graph nodes a workflow runs: plan, execute, review.
const NODES: f64 = 3.0;

struct Figures {
    wall: Duration,
    overhead_ms: Vec<f64>,
    latency_ms: Vec<f64>,
    rss_per_workflow_kib: f64,
}

fn rss_kib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0.0)
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let index = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[index]
}

/// The Redis the machine runs for tests.
const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Two replicas coordinating through Redis under a prefix of their own: one runs the
/// workflows, the other serves their watchers.
async fn replicas_through_redis(h: &Harness, config: &EngineConfig) -> (Engine, Engine) {
    let redis = RedisConfig {
        key_prefix: format!("cap-bench:{}:", uuid::Uuid::new_v4()),
        ..RedisConfig::new(REDIS_URL)
    };
    let mut engines = Vec::new();
    for name in ["runner", "watcher"] {
        let coordination = Coordination::connect(redis.clone()).await.unwrap();
        let replica = EngineConfig {
            replica_id: name.to_owned(),
            ..config.clone()
        };
        let engine = h.replica_with(replica, coordination);
        while !engine.redis().unwrap().is_subscribed() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        engines.push(engine);
    }
    let watcher = engines.pop().unwrap();
    (engines.pop().unwrap(), watcher)
}

async fn run(
    database_url: Option<&str>,
    redis: bool,
    workflows: usize,
    delay: Duration,
) -> Figures {
    let config = EngineConfig {
        max_concurrent_tasks: workflows,
        retry_backoff: Duration::from_millis(100),
        ..EngineConfig::default()
    };
    let h = Harness::start_on(database_url, config.clone()).await;
    let (runner, watcher) = if redis {
        replicas_through_redis(&h, &config).await
    } else {
        (h.engine.clone(), h.engine.clone())
    };
    for agent in [&h.context, &h.coding, &h.testing] {
        agent.set_delay(delay);
    }
    h.context
        .script((0..workflows).map(|_| Step::finish("context_ready")));
    h.coding.script(
        (0..workflows).map(|_| Step::edit("calc.py", "def add(a, b):\n    return a + b\n")),
    );
    h.testing
        .script((0..workflows).map(|_| Step::finish("tests_passed")));

    let rss_before = rss_kib();
    let peak = std::sync::Arc::new(std::sync::Mutex::new(rss_before));
    let sampler = tokio::spawn({
        let peak = peak.clone();
        async move {
            loop {
                let now = rss_kib();
                {
                    let mut peak = peak.lock().unwrap();
                    *peak = peak.max(now);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let started = Instant::now();
    let runs = (0..workflows).map(|i| {
        let (h, runner, watcher) = (&h, &runner, &watcher);
        async move {
            let begun = Instant::now();
            let task = runner
                .submit(cap_workflow::TaskSpec {
                    repository_id: support::REPO.into(),
                    prompt: format!("Fix add #{i}"),
                    ..Default::default()
                })
                .await
                .unwrap();
            let mut watch = watcher.watch(&task.task_id, 0).await.unwrap();
            let mut latency = Vec::new();
            while let Some(record) = watch.next().await {
                let record = record.unwrap();
                let now = cap_storage::now_ms();
                latency.push((now - record.event.created_at_ms) as f64);
            }
            let done = h.wait_for(&task.task_id, "completed").await;
            assert!(!done.pull_request_id.is_empty());
            let wall = begun.elapsed();
            let overhead = wall.saturating_sub(delay * AGENT_CALLS);
            (overhead.as_secs_f64() * 1000.0, latency)
        }
    });
    let results = futures::future::join_all(runs).await;
    let wall = started.elapsed();
    sampler.abort();
    let peak = *peak.lock().unwrap();
    let mut overhead_ms = Vec::new();
    let mut latency_ms = Vec::new();
    for (overhead, latency) in results {
        overhead_ms.push(overhead);
        latency_ms.extend(latency);
    }
    Figures {
        wall,
        overhead_ms,
        latency_ms,
        rss_per_workflow_kib: (peak - rss_before).max(0.0) / workflows as f64,
    }
}

fn report(store: &str, workflows: usize, mut figures: Figures, baseline_overhead: f64) {
    let per_minute = workflows as f64 / figures.wall.as_secs_f64() * 60.0;
    let overhead_p50 = percentile(&mut figures.overhead_ms, 0.5);
    let overhead_p99 = percentile(&mut figures.overhead_ms, 0.99);
    let latency_p50 = percentile(&mut figures.latency_ms, 0.5);
    let latency_p99 = percentile(&mut figures.latency_ms, 0.99);
    println!(
        "{store:<9} {workflows:>4} workflows: {:>6.2} s, {per_minute:>8.0} workflows/min; \
         overhead per workflow p50 {overhead_p50:.0} ms, p99 {overhead_p99:.0} ms \
         ({:.0} ms per node at p50; {:.1}x one workflow alone); event to watcher p50 \
         {latency_p50:.0} ms, p99 {latency_p99:.0} ms; memory {:.0} KiB per workflow",
        figures.wall.as_secs_f64(),
        overhead_p50 / NODES,
        overhead_p50 / baseline_overhead.max(1.0),
        figures.rss_per_workflow_kib,
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let numbers: Vec<u64> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .filter_map(|arg| arg.parse().ok())
        .collect();
    let workflows = numbers.first().copied().unwrap_or(200) as usize;
    let delay = Duration::from_millis(numbers.get(1).copied().unwrap_or(200));
    println!(
        "{workflows} workflows at once, each agent call taking {} ms ({AGENT_CALLS} calls a \
         workflow), a watcher on every task",
        delay.as_millis()
    );
    for (store, url, redis) in [
        ("sqlite", None, false),
        ("postgres", Some(POSTGRES_URL), false),
        ("pg+redis", Some(POSTGRES_URL), true),
    ] {
        let mut alone = run(url, redis, 1, delay).await;
        let baseline = percentile(&mut alone.overhead_ms, 0.5);
        println!(
            "{store:<9}    1 workflow alone (baseline): overhead {baseline:.0} ms ({:.0} ms per node)",
            baseline / NODES
        );
        let figures = run(url, redis, workflows, delay).await;
        report(store, workflows, figures, baseline);
    }
}
