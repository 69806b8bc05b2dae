//! The tasks an agent service is running: registered when `ExecuteTask` starts, interrupted
//! by `InterruptTask`, steered by `AddConstraint`, listed by `GetAgentStatus`, removed when the
//! work ends however it ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cap_proto::agent::v1::{Ack, AgentStatus};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::Error;

/// The running tasks of one agent. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RunningTasks {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    agent: &'static str,
    running: Mutex<HashMap<String, Running>>,
    finished: AtomicU64,
}

/// One running task's switches.
#[derive(Debug)]
struct Running {
    cancel: CancellationToken,
    /// Every constraint added while it runs, oldest first.
    constraints: watch::Sender<Vec<String>>,
}

/// Unregisters its task when dropped, counting it as finished.
#[derive(Debug)]
pub struct RunningGuard {
    tasks: RunningTasks,
    task_id: String,
    constraints: watch::Receiver<Vec<String>>,
}

impl RunningGuard {
    /// The constraints humans add to the task while it runs.
    pub fn steering(&self) -> Steering {
        Steering {
            constraints: Some(self.constraints.clone()),
            seen: 0,
        }
    }
}

/// The constraints humans add to a running task (`AddConstraint`), for the role to follow from
/// its next step.
#[derive(Debug)]
pub struct Steering {
    constraints: Option<watch::Receiver<Vec<String>>>,
    seen: usize,
}

impl Steering {
    /// Steering that never brings anything (a run outside the server, tests).
    pub fn none() -> Self {
        Self {
            constraints: None,
            seen: 0,
        }
    }

    /// Waits until a constraint the last [`Steering::take_new`] did not return is there;
    /// never returns when none can come any more.
    pub async fn changed(&mut self) {
        let Some(constraints) = &mut self.constraints else {
            return std::future::pending().await;
        };
        loop {
            if constraints.borrow().len() > self.seen {
                return;
            }
            if constraints.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// The constraints added since the last call, oldest first.
    pub fn take_new(&mut self) -> Vec<String> {
        let Some(constraints) = &mut self.constraints else {
            return Vec::new();
        };
        let all = constraints.borrow_and_update();
        let new = all.get(self.seen..).unwrap_or_default().to_vec();
        self.seen = all.len();
        new
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.tasks.lock().remove(&self.task_id);
        self.tasks.inner.finished.fetch_add(1, Ordering::Relaxed);
    }
}

impl RunningTasks {
    /// No tasks yet, of the agent named `agent`.
    pub fn new(agent: &'static str) -> Self {
        Self {
            inner: Arc::new(Inner {
                agent,
                running: Mutex::default(),
                finished: AtomicU64::new(0),
            }),
        }
    }

    /// Registers `task_id`; the token is cancelled by [`RunningTasks::interrupt`], the guard
    /// unregisters the task when the work ends. [`Error::AlreadyRunning`] when it runs.
    pub fn register(&self, task_id: &str) -> Result<(CancellationToken, RunningGuard), Error> {
        let mut running = self.lock();
        if running.contains_key(task_id) {
            return Err(Error::AlreadyRunning {
                task_id: task_id.to_owned(),
                agent: self.inner.agent,
            });
        }
        let token = CancellationToken::new();
        let (constraints, steering) = watch::channel(Vec::new());
        running.insert(
            task_id.to_owned(),
            Running {
                cancel: token.clone(),
                constraints,
            },
        );
        let guard = RunningGuard {
            tasks: self.clone(),
            task_id: task_id.to_owned(),
            constraints: steering,
        };
        Ok((token, guard))
    }

    /// Cancels a running task's token; false when the task is not running here. A task that
    /// has not reached its first wait yet still sees the cancellation: tokens stay cancelled.
    pub fn interrupt(&self, task_id: &str) -> bool {
        match self.lock().get(task_id) {
            Some(running) => {
                running.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Adds a constraint to a running task, for its role to follow from its next step; says
    /// so, as `AddConstraint` answers.
    pub fn add_constraint(&self, task_id: &str, text: &str) -> Ack {
        match self.lock().get(task_id) {
            Some(running) => {
                running
                    .constraints
                    .send_modify(|constraints| constraints.push(text.to_owned()));
                Ack {
                    accepted: true,
                    message: format!("task {task_id} follows the constraint from its next step"),
                }
            }
            None => Ack {
                accepted: false,
                message: format!(
                    "task {task_id} is not running on the {} agent",
                    self.inner.agent
                ),
            },
        }
    }

    /// The running tasks' ids, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.lock().keys().cloned().collect();
        ids.sort_unstable();
        ids
    }

    /// How many tasks ended since the service started.
    pub fn finished(&self) -> u64 {
        self.inner.finished.load(Ordering::Relaxed)
    }

    /// `GetAgentStatus`'s answer: `idle` or `busy`, the running tasks, the finished count.
    pub fn status(&self) -> AgentStatus {
        let running_task_ids = self.ids();
        let state = if running_task_ids.is_empty() {
            "idle"
        } else {
            "busy"
        };
        AgentStatus {
            agent: self.inner.agent.to_owned(),
            state: state.to_owned(),
            running_task_ids,
            tasks_completed: self.finished(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    /// Interrupts `task_id` and says so, as `InterruptTask` answers.
    pub fn interrupt_ack(&self, task_id: &str) -> Ack {
        if self.interrupt(task_id) {
            Ack {
                accepted: true,
                message: format!("interrupting task {task_id}"),
            }
        } else {
            Ack {
                accepted: false,
                message: format!(
                    "task {task_id} is not running on the {} agent",
                    self.inner.agent
                ),
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Running>> {
        // Entries are inserted and removed whole: the map is consistent whatever a panicking
        // holder did.
        self.inner
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[path = "tasks_tests.rs"]
mod tests;
