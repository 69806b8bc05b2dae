//! How supervisor replicas sharing a store coordinate: through the SQL store alone, or through
//! Redis when one is configured (`REDIS_URL`).
//!
//! With Redis:
//! - A task's lease is a Redis key (`SET owner NX PX`, renewed and released by scripts that
//!   check the owner). The claim in Redis decides; then the task's row is set to the owner, and
//!   the row stays the fencing record every write checks, so writes stay fenced even if Redis
//!   loses a key.
//! - After an event is stored its task id is published; every replica's watchers of that task
//!   wake at once, and their poll of the store is only a safety net.
//! - An interrupt asked through a replica that does not run the task is published too and
//!   reaches the running replica at once (and is kept in the task's row, read at each renewal,
//!   in case the message is missed).
//! - The latest checkpoint's state of each task is also kept in Redis with a TTL; a resume
//!   reads it first and uses it only if the SQL store has no checkpoint after it. The SQL
//!   store stays the durable record.
//!
//! When Redis stops answering mid-run, the replica running a task renews the task's lease in
//! its SQL row instead, so the run goes on and no other replica can take the task; claims
//! (new tasks, takeovers) wait until Redis answers again, the tasks staying `queued` or
//! `running` with their checkpoints, picked up by the next takeover scan; watchers poll the
//! store every 2 s again until the subscription is back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use deadpool_redis::redis;
use deadpool_redis::{Manager, Pool, Runtime};
use futures::StreamExt;
use tokio::sync::{broadcast, mpsc};

use crate::engine::{Engine, Inner, Run};
use crate::nodes::WorkflowState;
use crate::store::TaskRecord;
use crate::{Error, Result};

/// How often watchers read the store when nothing woke them: without Redis, for events
/// stored by another replica; with Redis, only a safety net for a missed message.
const SQL_WATCH_POLL: Duration = Duration::from_secs(2);

/// How long one Redis call may take before it counts as Redis being unreachable.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Messages waiting to be sent to Redis; more are dropped (watchers then wake at their poll).
const OUTBOX: usize = 4096;

/// Wake-ups from other replicas buffered per watcher.
const REMOTE_WAKE_BUFFER: usize = 1024;

/// The wake-up that concerns every task (the subscription was down for a while).
const EVERY_TASK: &str = "";

/// Claims `KEYS[1]` for `ARGV[1]` for `ARGV[2]` ms (a replica restarted under its name gets
/// its own claims back at once): `1` when `ARGV[1]` holds it, `0` when another owner does.
const CLAIM_SCRIPT: &str = r"
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if owner then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// Extends `ARGV[1]`'s claim on `KEYS[1]` by `ARGV[2]` ms: `1` done, `0` another owner holds
/// it, `2` nobody does (it expired, or Redis lost it): then the task's row decides, since the
/// run may have ended elsewhere meanwhile.
const RENEW_SCRIPT: &str = r"
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if owner then
  return 0
end
return 2
";

/// Deletes `KEYS[1]` if `ARGV[1]` holds it.
const RELEASE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Where the replicas coordinate.
#[derive(Debug, Clone, Default)]
pub enum Coordination {
    /// Through the SQL store alone: row leases, interrupts passed on at lease renewal,
    /// watchers polling the store for events stored by another replica.
    #[default]
    Sql,
    /// Through Redis, the SQL row staying the fencing record and the durable one.
    Redis(Arc<RedisCoordination>),
}

/// How to reach Redis and what to keep there.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Put before every key and channel name, so several deployments (or tests) can share
    /// one Redis.
    pub key_prefix: String,
    /// How often a watcher reads the store when no message woke it: only a safety net.
    pub safety_poll: Duration,
    /// How long a task's checkpoint copy is kept after its last update.
    pub checkpoint_ttl: Duration,
}

impl RedisConfig {
    /// Redis at `url` with the defaults: prefix `cap:supervisor:`, safety poll 10 s,
    /// checkpoints kept for a day.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: "cap:supervisor:".to_owned(),
            safety_poll: Duration::from_secs(10),
            checkpoint_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// Redis as the replicas' meeting point: a connection pool for leases and checkpoints, a
/// background sender for publications, and a subscription (started by the engine) that
/// wakes watchers and passes interrupts on.
pub struct RedisCoordination {
    pool: Pool,
    client: redis::Client,
    /// Host and port, for messages (the URL may hold a password).
    address: String,
    config: RedisConfig,
    /// Tells this process's publications from other replicas' (it need not wake itself).
    instance: String,
    outbox: mpsc::Sender<Outgoing>,
    /// Task ids whose events another replica stored.
    remote_events: broadcast::Sender<Arc<str>>,
    /// Whether the subscription is up (else watchers poll as without Redis).
    subscribed: AtomicBool,
    claim: redis::Script,
    renew: redis::Script,
    release: redis::Script,
}

impl std::fmt::Debug for RedisCoordination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCoordination")
            .field("address", &self.address)
            .field("key_prefix", &self.config.key_prefix)
            .finish_non_exhaustive()
    }
}

/// What a lease renewal in Redis found.
enum Renewal {
    /// The key was this replica's and is extended.
    Renewed,
    /// Another replica's key.
    HeldByAnother,
    /// No key.
    Unheld,
}

/// What the background sender sends.
enum Outgoing {
    /// The task stored an event or ended.
    Wake(Arc<str>),
    /// The checkpoint stored with the task's event `event_seq`.
    Checkpoint {
        task_id: Arc<str>,
        event_seq: i64,
        state_json: String,
    },
}

/// A task's checkpoint copy in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointCopy {
    /// The event stored with the checkpoint.
    pub event_seq: i64,
    /// The workflow state as JSON.
    pub state_json: String,
}

impl Coordination {
    /// Connects to Redis and checks it answers: an unreachable Redis is an error at start,
    /// naming its address, not a surprise at the first task.
    pub async fn connect(config: RedisConfig) -> Result<Self> {
        let client = redis::Client::open(config.url.as_str()).map_err(|source| Error::Redis {
            what: "URL is not valid (want redis://host:port)".to_owned(),
            source: Box::new(source),
        })?;
        let address = client.get_connection_info().addr().to_string();
        let connection = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        let manager =
            Manager::new_with_config(config.url.as_str(), connection).map_err(|source| {
                Error::Redis {
                    what: format!("at {address}: cannot be configured"),
                    source: Box::new(source),
                }
            })?;
        let pool = Pool::builder(manager)
            .max_size(16)
            .wait_timeout(Some(REDIS_TIMEOUT))
            .create_timeout(Some(REDIS_TIMEOUT))
            .recycle_timeout(Some(REDIS_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|source| Error::Redis {
                what: format!("at {address}: no connection pool"),
                source: Box::new(source),
            })?;
        let (outbox, outgoing) = mpsc::channel(OUTBOX);
        let redis = Arc::new(RedisCoordination {
            pool,
            client,
            address,
            instance: uuid::Uuid::new_v4().to_string(),
            outbox,
            remote_events: broadcast::channel(REMOTE_WAKE_BUFFER).0,
            subscribed: AtomicBool::new(false),
            claim: redis::Script::new(CLAIM_SCRIPT),
            renew: redis::Script::new(RENEW_SCRIPT),
            release: redis::Script::new(RELEASE_SCRIPT),
            config,
        });
        let pong: String = redis.call("PING", redis::cmd("PING")).await?;
        if pong != "PONG" {
            return Err(redis.error("PING", format!("answered {pong:?}")));
        }
        tokio::spawn(send_outgoing(Arc::downgrade(&redis), outgoing));
        Ok(Self::Redis(redis))
    }

    /// How long a watcher waits for a wake-up before it reads the store anyway.
    pub(crate) fn watch_poll(&self) -> Duration {
        match self {
            Self::Redis(redis) if redis.subscribed.load(Ordering::Relaxed) => {
                redis.config.safety_poll
            }
            Self::Redis(_) | Self::Sql => SQL_WATCH_POLL,
        }
    }

    /// Wake-ups for events other replicas stored, when they publish them.
    pub(crate) fn remote_wakeups(&self) -> Option<broadcast::Receiver<Arc<str>>> {
        match self {
            Self::Redis(redis) => Some(redis.remote_events.subscribe()),
            Self::Sql => None,
        }
    }

    /// Tells the other replicas' watchers of `task_id` that it stored an event or ended.
    pub(crate) fn publish_wake(&self, task_id: &str) {
        if let Self::Redis(redis) = self {
            redis.send(Outgoing::Wake(Arc::from(task_id)));
        }
    }
}

impl RedisCoordination {
    /// The Redis key or channel `name` under the configured prefix.
    fn key(&self, name: &str, task_id: &str) -> String {
        format!("{}{name}:{task_id}", self.config.key_prefix)
    }

    fn channel(&self, name: &str) -> String {
        format!("{}{name}", self.config.key_prefix)
    }

    fn error(
        &self,
        what: &str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        Error::Redis {
            what: format!("at {}: {what} failed", self.address),
            source: source.into(),
        }
    }

    /// Runs one command on a pooled connection, within [`REDIS_TIMEOUT`].
    async fn call<T: redis::FromRedisValue>(&self, what: &str, cmd: redis::Cmd) -> Result<T> {
        let work = async {
            let mut connection = self.pool.get().await.map_err(|e| self.error(what, e))?;
            cmd.query_async(&mut *connection)
                .await
                .map_err(|e| self.error(what, e))
        };
        tokio::time::timeout(REDIS_TIMEOUT, work)
            .await
            .map_err(|elapsed| self.error(what, elapsed))?
    }

    async fn script(
        &self,
        what: &str,
        script: &redis::Script,
        key: &str,
        args: &[&str],
    ) -> Result<i64> {
        let work = async {
            let mut connection = self.pool.get().await.map_err(|e| self.error(what, e))?;
            let mut invocation = script.key(key);
            for arg in args {
                invocation.arg(*arg);
            }
            invocation
                .invoke_async(&mut *connection)
                .await
                .map_err(|e| self.error(what, e))
        };
        tokio::time::timeout(REDIS_TIMEOUT, work)
            .await
            .map_err(|elapsed| self.error(what, elapsed))?
    }

    fn send(&self, message: Outgoing) {
        // A full outbox means Redis is far behind: the watchers' poll covers the dropped wake,
        // the SQL store the dropped checkpoint copy.
        if self.outbox.try_send(message).is_err() {
            tracing::debug!("redis outbox full; message dropped");
        }
    }

    /// Claims (or extends) `task_id`'s lease for `owner`: whether `owner` holds it now.
    async fn claim(&self, task_id: &str, owner: &str, lease: Duration) -> Result<bool> {
        let ms = lease.as_millis().max(1).to_string();
        let key = self.key("lease", task_id);
        Ok(self
            .script("lease claim", &self.claim, &key, &[owner, &ms])
            .await?
            == 1)
    }

    /// Extends `owner`'s lease on `task_id`.
    async fn renew(&self, task_id: &str, owner: &str, lease: Duration) -> Result<Renewal> {
        let ms = lease.as_millis().max(1).to_string();
        let key = self.key("lease", task_id);
        Ok(
            match self
                .script("lease renewal", &self.renew, &key, &[owner, &ms])
                .await?
            {
                1 => Renewal::Renewed,
                0 => Renewal::HeldByAnother,
                _ => Renewal::Unheld,
            },
        )
    }

    async fn release(&self, task_id: &str, owner: &str) -> Result<()> {
        let key = self.key("lease", task_id);
        self.script("lease release", &self.release, &key, &[owner])
            .await
            .map(drop)
    }

    /// Who holds each task's lease (`None`: nobody).
    async fn holders(&self, task_ids: &[&str]) -> Result<Vec<Option<String>>> {
        if task_ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = task_ids.iter().map(|id| self.key("lease", id)).collect();
        self.call("lease lookup", redis::cmd("MGET").arg(keys).to_owned())
            .await
    }

    /// The task's checkpoint copy, if Redis has one.
    pub async fn checkpoint_copy(&self, task_id: &str) -> Result<Option<CheckpointCopy>> {
        let fields: HashMap<String, String> = self
            .call(
                "checkpoint read",
                redis::cmd("HGETALL")
                    .arg(self.key("checkpoint", task_id))
                    .to_owned(),
            )
            .await?;
        let (Some(seq), Some(state_json)) = (fields.get("event_seq"), fields.get("state")) else {
            return Ok(None);
        };
        let event_seq = seq.parse().map_err(|e| self.error("checkpoint read", e))?;
        Ok(Some(CheckpointCopy {
            event_seq,
            state_json: state_json.clone(),
        }))
    }

    /// Overwrites the task's checkpoint copy (tests use it to tell which copy a resume read).
    pub async fn put_checkpoint_copy(&self, task_id: &str, copy: &CheckpointCopy) -> Result<()> {
        let mut pipe = redis::pipe();
        self.add_checkpoint(&mut pipe, task_id, copy.event_seq, &copy.state_json);
        self.run("checkpoint write", pipe.atomic()).await
    }

    /// Adds the commands that store a checkpoint copy, with its TTL, to `pipe`.
    fn add_checkpoint(
        &self,
        pipe: &mut redis::Pipeline,
        task_id: &str,
        event_seq: i64,
        state_json: &str,
    ) {
        let key = self.key("checkpoint", task_id);
        let ttl = i64::try_from(self.config.checkpoint_ttl.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        pipe.hset_multiple(
            &key,
            &[
                ("event_seq", event_seq.to_string()),
                ("state", state_json.to_owned()),
            ],
        )
        .ignore()
        .pexpire(&key, ttl)
        .ignore();
    }

    /// Runs `pipe` on a pooled connection, within [`REDIS_TIMEOUT`].
    async fn run(&self, what: &str, pipe: &redis::Pipeline) -> Result<()> {
        let work = async {
            let mut connection = self.pool.get().await.map_err(|e| self.error(what, e))?;
            pipe.query_async::<()>(&mut *connection)
                .await
                .map_err(|e| self.error(what, e))
        };
        tokio::time::timeout(REDIS_TIMEOUT, work)
            .await
            .map_err(|elapsed| self.error(what, elapsed))?
    }

    /// Deletes the task's checkpoint copy (a resume then reads the store's).
    pub async fn forget_checkpoint_copy(&self, task_id: &str) -> Result<()> {
        self.call(
            "checkpoint delete",
            redis::cmd("DEL")
                .arg(self.key("checkpoint", task_id))
                .to_owned(),
        )
        .await
        .map(|_: i64| ())
    }

    /// Milliseconds the task's checkpoint copy is still kept (negative: none, as Redis says).
    pub async fn checkpoint_ttl_ms(&self, task_id: &str) -> Result<i64> {
        self.call(
            "checkpoint TTL",
            redis::cmd("PTTL")
                .arg(self.key("checkpoint", task_id))
                .to_owned(),
        )
        .await
    }

    /// Whether this replica follows the other replicas' messages now.
    pub fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
    }

    /// Publishes an interrupt request for whichever replica runs the task.
    async fn publish_interrupt(&self, task_id: &str) -> Result<()> {
        let receivers: i64 = self
            .call(
                "interrupt publish",
                redis::cmd("PUBLISH")
                    .arg(self.channel("interrupts"))
                    .arg(task_id)
                    .to_owned(),
            )
            .await?;
        tracing::debug!(%task_id, receivers, "interrupt published");
        Ok(())
    }
}

/// Sends the outbox to Redis in batches: the newest checkpoint copy of each task, then the
/// wake-ups, in one pipeline. Ends when the coordination is dropped.
async fn send_outgoing(redis: Weak<RedisCoordination>, mut outgoing: mpsc::Receiver<Outgoing>) {
    let mut failing = false;
    let mut batch = Vec::new();
    while outgoing.recv_many(&mut batch, 256).await > 0 {
        let Some(redis) = redis.upgrade() else { return };
        let mut checkpoints: HashMap<Arc<str>, (i64, String)> = HashMap::new();
        let mut wakes: Vec<Arc<str>> = Vec::new();
        for message in batch.drain(..) {
            match message {
                Outgoing::Wake(task_id) => {
                    if !wakes.contains(&task_id) {
                        wakes.push(task_id);
                    }
                }
                Outgoing::Checkpoint {
                    task_id,
                    event_seq,
                    state_json,
                } => {
                    checkpoints.insert(task_id, (event_seq, state_json));
                }
            }
        }
        let mut pipe = redis::pipe();
        for (task_id, (event_seq, state_json)) in &checkpoints {
            redis.add_checkpoint(&mut pipe, task_id, *event_seq, state_json);
        }
        let channel = redis.channel("events");
        for task_id in &wakes {
            pipe.publish(&channel, format!("{} {task_id}", redis.instance))
                .ignore();
        }
        match redis.run("publish", &pipe).await {
            Ok(()) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("redis answers again; events and checkpoints are shared");
                }
            }
            Err(error) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(
                        error = %cap_errors::chain(&error),
                        "cannot publish to redis; other replicas' watchers poll the store until \
                         redis answers (the checkpoint copies left there are behind the store, \
                         and a resume, which checks each against it, reads the store's)"
                    );
                }
            }
        }
    }
}

/// Follows the replicas' publications: wakes this replica's watchers for events stored
/// elsewhere and passes interrupts to the tasks running here. Reconnects until the engine is
/// gone.
async fn follow_publications(redis: Arc<RedisCoordination>, engine: Weak<Inner>) {
    let events = redis.channel("events");
    let interrupts = redis.channel("interrupts");
    let mut retry = Duration::from_millis(200);
    loop {
        if engine.strong_count() == 0 {
            return;
        }
        let subscribed = async {
            let mut pubsub = redis.client.get_async_pubsub().await?;
            pubsub.subscribe(&events).await?;
            pubsub.subscribe(&interrupts).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let mut pubsub = match tokio::time::timeout(REDIS_TIMEOUT, subscribed).await {
            Ok(Ok(pubsub)) => pubsub,
            outcome => {
                if retry == Duration::from_millis(200) {
                    let error = match outcome {
                        Ok(Err(error)) => redis.error("subscribe", error),
                        _ => redis.error("subscribe", "timed out"),
                    };
                    tracing::warn!(error = %cap_errors::chain(&error), "watchers poll the store until redis answers");
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        retry = Duration::from_millis(200);
        redis.subscribed.store(true, Ordering::Relaxed);
        // Events stored while nobody listened: every watcher reads the store once more.
        let _ = redis.remote_events.send(Arc::from(EVERY_TASK));
        let mut messages = pubsub.on_message();
        loop {
            let message = tokio::select! {
                message = messages.next() => message,
                // Notice an engine that is gone even when nothing is published.
                () = tokio::time::sleep(Duration::from_secs(5)) => {
                    if engine.strong_count() == 0 {
                        return;
                    }
                    continue;
                }
            };
            let Some(message) = message else { break };
            let Ok(payload) = message.get_payload::<String>() else {
                continue;
            };
            if message.get_channel_name() == events {
                match payload.split_once(' ') {
                    Some((instance, _)) if instance == redis.instance => {}
                    Some((_, task_id)) => {
                        let _ = redis.remote_events.send(Arc::from(task_id));
                    }
                    None => {}
                }
            } else if message.get_channel_name() == interrupts {
                let Some(inner) = engine.upgrade() else {
                    return;
                };
                Engine::from_inner(inner).interrupt_here(&payload);
            }
        }
        redis.subscribed.store(false, Ordering::Relaxed);
        tracing::warn!(address = %redis.address, "lost the redis subscription; watchers poll the store until it is back");
    }
}

/// Returns when another replica stored an event of `task_id` or ended it (or messages were
/// missed, so it may have); never without Redis.
pub(crate) async fn woken_remotely(
    wake: &mut Option<broadcast::Receiver<Arc<str>>>,
    task_id: &str,
) {
    let Some(wake) = wake else {
        return std::future::pending().await;
    };
    loop {
        match wake.recv().await {
            Ok(id) if &*id == task_id || &*id == EVERY_TASK => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            // The coordination is gone; the poll ends the wait.
            Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

/// The coordination parts of the engine: leases, interrupts through other replicas, resume
/// state.
impl Engine {
    /// Starts following the other replicas' publications, when coordinating through Redis.
    pub(crate) fn start_coordination(&self) {
        if let Coordination::Redis(redis) = &self.inner.coordination {
            tokio::spawn(follow_publications(
                redis.clone(),
                Arc::downgrade(&self.inner),
            ));
        }
    }

    /// Claims `task_id` for this replica: in Redis first when configured (which decides),
    /// then in the task's row, the record that fences every write.
    pub(crate) async fn claim_lease(&self, task_id: &str) -> Result<bool> {
        let (replica, lease) = (&self.inner.config.replica_id, self.inner.config.lease);
        let Coordination::Redis(redis) = &self.inner.coordination else {
            return self.inner.store.claim(task_id, replica, lease).await;
        };
        if !redis.claim(task_id, replica, lease).await? {
            return Ok(false);
        }
        // The row refuses while another replica renews it there (it lost Redis and runs the
        // task on its SQL lease): then Redis' word is not enough.
        if self.inner.store.claim(task_id, replica, lease).await? {
            // An interrupt asked before this replica listened is in the row.
            if self.inner.store.interrupt_requested(task_id).await? {
                self.interrupt_here(task_id);
            }
            return Ok(true);
        }
        if let Err(error) = redis.release(task_id, replica).await {
            tracing::warn!(%task_id, error = %cap_errors::chain(&error), "could not release the redis lease; it expires");
        }
        Ok(false)
    }

    /// Extends this replica's lease on `task_id`: `None` when it lost it, else whether an
    /// interrupt was asked in the task's row. With Redis, the lease is renewed there; when
    /// Redis does not answer, or says another replica holds it, the row decides (renewed
    /// there, so no replica takes the task while Redis is away).
    pub(crate) async fn renew_lease(&self, task_id: &str) -> Result<Option<bool>> {
        let (replica, lease) = (&self.inner.config.replica_id, self.inner.config.lease);
        let Coordination::Redis(redis) = &self.inner.coordination else {
            return self.inner.store.renew(task_id, replica, lease).await;
        };
        match redis.renew(task_id, replica, lease).await {
            Ok(Renewal::Renewed) => Ok(Some(self.inner.store.interrupt_requested(task_id).await?)),
            // Another replica claimed it in Redis; it runs the task only once the row is its.
            Ok(Renewal::HeldByAnother) => self.inner.store.renew(task_id, replica, lease).await,
            Ok(Renewal::Unheld) => {
                let renewed = self.inner.store.renew(task_id, replica, lease).await?;
                // Still this replica's in the row: take the key again.
                if renewed.is_some() && !redis.claim(task_id, replica, lease).await? {
                    return self.inner.store.renew(task_id, replica, lease).await;
                }
                Ok(renewed)
            }
            Err(error) => {
                tracing::warn!(%task_id, error = %cap_errors::chain(&error), "redis did not renew the lease; renewing it in the store");
                self.inner.store.renew(task_id, replica, lease).await
            }
        }
    }

    /// Gives up this replica's lease on `task_id` (its run ended here).
    pub(crate) async fn release_lease(&self, task_id: &str) -> Result<()> {
        let replica = &self.inner.config.replica_id;
        self.inner.store.release(task_id, replica).await?;
        if let Coordination::Redis(redis) = &self.inner.coordination {
            redis.release(task_id, replica).await?;
        }
        Ok(())
    }

    /// Keeps the tasks nobody holds in Redis (or this replica does); all of them without
    /// Redis, whose row leases the store already checked.
    pub(crate) async fn unclaimed(&self, tasks: Vec<TaskRecord>) -> Result<Vec<TaskRecord>> {
        let Coordination::Redis(redis) = &self.inner.coordination else {
            return Ok(tasks);
        };
        let ids: Vec<&str> = tasks.iter().map(|task| task.task_id.as_str()).collect();
        let holders = redis.holders(&ids).await?;
        let replica = &self.inner.config.replica_id;
        Ok(tasks
            .into_iter()
            .zip(holders)
            .filter(|(_, holder)| holder.as_ref().is_none_or(|holder| holder == replica))
            .map(|(task, _)| task)
            .collect())
    }

    /// Asks the task to stop at its next step, through whichever replica runs it: kept in the
    /// task's row and, with Redis, published so the running replica hears it at once.
    pub(crate) async fn interrupt_elsewhere(&self, task_id: &str) -> Result<bool> {
        let asked = self.inner.store.request_interrupt(task_id).await?;
        if asked
            && let Coordination::Redis(redis) = &self.inner.coordination
            && let Err(error) = redis.publish_interrupt(task_id).await
        {
            tracing::warn!(%task_id, error = %cap_errors::chain(&error), "could not publish the interrupt; the running replica reads it at its next lease renewal");
        }
        Ok(asked)
    }

    /// The state a resume of `task_id` starts from: with Redis, its copy there when the store
    /// has no checkpoint after it (a copy that is behind would repeat steps already made);
    /// else the store's last checkpoint; `None` when the task has none.
    pub async fn resume_state(&self, task_id: &str) -> Result<Option<WorkflowState>> {
        if let Coordination::Redis(redis) = &self.inner.coordination {
            match redis.checkpoint_copy(task_id).await {
                Ok(Some(copy)) => {
                    // The copy is the checkpoint stored with its event; any later one (with
                    // an event or not) has an event_seq at least as high.
                    let since = self
                        .inner
                        .store
                        .checkpoints_since_event(task_id, copy.event_seq)
                        .await?;
                    if since == 1 {
                        return Ok(Some(serde_json::from_str(&copy.state_json)?));
                    }
                    tracing::debug!(%task_id, "redis' checkpoint is behind the store's");
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%task_id, error = %cap_errors::chain(&error), "could not read the checkpoint from redis; reading the store's")
                }
            }
        }
        match self.inner.store.latest_checkpoint(task_id).await? {
            Some(checkpoint) => Ok(Some(serde_json::from_str(&checkpoint.state_json)?)),
            None => Ok(None),
        }
    }

    /// The Redis coordination, when configured.
    pub fn redis(&self) -> Option<&RedisCoordination> {
        match &self.inner.coordination {
            Coordination::Redis(redis) => Some(redis),
            Coordination::Sql => None,
        }
    }
}

impl Run {
    /// Shares the checkpoint just stored with event `event_seq` through Redis, when configured.
    pub(crate) fn share_checkpoint(&self, event_seq: i64) {
        let Coordination::Redis(redis) = &self.inner.coordination else {
            return;
        };
        match self.state_json() {
            Ok(state_json) => redis.send(Outgoing::Checkpoint {
                task_id: Arc::from(self.task.task_id.as_str()),
                event_seq,
                state_json,
            }),
            Err(error) => {
                tracing::warn!(task_id = %self.task.task_id, error = %cap_errors::chain(&error), "checkpoint not shared")
            }
        }
    }
}

#[cfg(test)]
#[path = "coordination_tests.rs"]
mod tests;
