//! Live delivery of stored events to the watchers of their task in this process: a run hands
//! each event to its task's watchers right after the store committed it, so a watcher does not
//! read the store again for what it is handed. The store stays the source of truth: a watcher
//! that missed something (it fell behind, or the event was written by another replica) reads
//! the store from its last sequence number.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

use crate::store::EventRecord;

/// Deliveries buffered per task; a watcher further behind reads the store instead.
const BUFFER: usize = 256;

/// What a task's watchers are told.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    /// The event just stored; `None` when only told to look in the store.
    pub(crate) record: Option<Arc<EventRecord>>,
    /// Whether the task ended with it: nothing follows.
    pub(crate) ended: bool,
}

/// One channel per watched task.
#[derive(Debug, Default)]
pub(crate) struct Live {
    channels: Mutex<HashMap<String, broadcast::Sender<Delivery>>>,
}

impl Live {
    /// A receiver of `task_id`'s deliveries from now on.
    pub(crate) fn subscribe(&self, task_id: &str) -> broadcast::Receiver<Delivery> {
        self.lock()
            .entry(task_id.to_owned())
            .or_insert_with(|| broadcast::channel(BUFFER).0)
            .subscribe()
    }

    /// Hands `delivery` to `task_id`'s watchers, if it has any.
    pub(crate) fn deliver(&self, task_id: &str, delivery: Delivery) {
        let mut channels = self.lock();
        if let Some(channel) = channels.get(task_id)
            && channel.send(delivery).is_err()
        {
            // Every watcher has left.
            channels.remove(task_id);
        }
    }

    /// Forgets `task_id`'s channel once its last watcher has left.
    pub(crate) fn leave(&self, task_id: &str) {
        let mut channels = self.lock();
        if channels
            .get(task_id)
            .is_some_and(|channel| channel.receiver_count() == 0)
        {
            channels.remove(task_id);
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, broadcast::Sender<Delivery>>> {
        crate::lock(&self.channels)
    }
}
