//! The tasks an agent service is running: registered when `ExecuteTask` starts, interrupted
//! by `InterruptTask`, listed by `GetAgentStatus`, removed when the work ends however it ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cap_proto::agent::v1::{Ack, AgentStatus};
use tokio_util::sync::CancellationToken;

/// A task with this id is already running here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task {0} is already running")]
pub struct AlreadyRunning(pub String);

/// The running tasks of one agent service. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct RunningTasks {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    running: Mutex<HashMap<String, CancellationToken>>,
    finished: AtomicU64,
}

/// Unregisters its task when dropped, counting it as finished.
#[derive(Debug)]
pub struct RunningGuard {
    tasks: RunningTasks,
    task_id: String,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.tasks.lock().remove(&self.task_id);
        self.tasks.inner.finished.fetch_add(1, Ordering::Relaxed);
    }
}

impl RunningTasks {
    /// No tasks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `task_id`; the token is cancelled by [`RunningTasks::interrupt`], the guard
    /// unregisters the task when the work ends.
    pub fn register(
        &self,
        task_id: &str,
    ) -> Result<(CancellationToken, RunningGuard), AlreadyRunning> {
        let mut running = self.lock();
        if running.contains_key(task_id) {
            return Err(AlreadyRunning(task_id.to_owned()));
        }
        let token = CancellationToken::new();
        running.insert(task_id.to_owned(), token.clone());
        let guard = RunningGuard {
            tasks: self.clone(),
            task_id: task_id.to_owned(),
        };
        Ok((token, guard))
    }

    /// Cancels a running task's token; false when the task is not running here. A task that
    /// has not reached its first wait yet still sees the cancellation: tokens stay cancelled.
    pub fn interrupt(&self, task_id: &str) -> bool {
        match self.lock().get(task_id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
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

    /// `GetAgentStatus`'s answer for the agent named `agent`.
    pub fn status(&self, agent: &str) -> AgentStatus {
        let running_task_ids = self.ids();
        let state = if running_task_ids.is_empty() {
            "idle"
        } else {
            "busy"
        };
        AgentStatus {
            agent: agent.to_owned(),
            state: state.to_owned(),
            running_task_ids,
            tasks_completed: self.finished(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    /// Interrupts `task_id` and says so, as `InterruptTask` answers for the agent `agent`.
    pub fn interrupt_ack(&self, task_id: &str, agent: &str) -> Ack {
        if self.interrupt(task_id) {
            Ack {
                accepted: true,
                message: format!("interrupting task {task_id}"),
            }
        } else {
            Ack {
                accepted: false,
                message: format!("task {task_id} is not running on the {agent} agent"),
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, CancellationToken>> {
        // Entries are inserted and removed whole: the map is consistent whatever a panicking
        // holder did.
        self.inner
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_interrupts_and_counts() {
        let tasks = RunningTasks::new();
        let (token, guard) = tasks.register("b").unwrap();
        let (_other, other_guard) = tasks.register("a").unwrap();
        assert_eq!(tasks.register("b").unwrap_err(), AlreadyRunning("b".into()));
        assert_eq!(tasks.ids(), vec!["a".to_owned(), "b".to_owned()]);
        assert!(tasks.interrupt("b"));
        assert!(token.is_cancelled());
        assert!(!tasks.interrupt("missing"));
        drop(guard);
        drop(other_guard);
        assert!(tasks.ids().is_empty());
        assert_eq!(tasks.finished(), 2);
        // The id can run again once its first run ended.
        tasks.register("b").unwrap();
    }
}
