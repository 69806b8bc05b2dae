//! The task queue: a fixed number of run slots, handed out by priority (`high`, `normal`,
//! `low`), first come first served within a priority.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// The slots. Cheap to share (`Arc`).
#[derive(Debug)]
pub(crate) struct Slots {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    free: usize,
    waiting: BinaryHeap<Waiter>,
    arrivals: u64,
}

#[derive(Debug)]
struct Waiter {
    rank: (u8, Reverse<u64>),
    /// The slot goes through the channel, so a waiter that leaves after it was sent one
    /// drops it, and the slot passes on.
    slot: oneshot::Sender<Slot>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        self.rank == other.rank
    }
}

impl Eq for Waiter {}

impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Waiter {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank.cmp(&other.rank)
    }
}

/// A run slot; given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    /// `None` once disarmed: a slot that came back unsent is not given back twice.
    slots: Option<Arc<Slots>>,
}

/// How urgent a task is; higher runs first.
pub(crate) fn rank(priority: &str) -> u8 {
    match priority {
        "high" => 2,
        "low" => 0,
        _ => 1,
    }
}

impl Slots {
    pub(crate) fn new(count: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                free: count.max(1),
                waiting: BinaryHeap::new(),
                arrivals: 0,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a slot; tasks of a higher `priority` rank get theirs first.
    pub(crate) async fn acquire(self: &Arc<Self>, priority: u8) -> Slot {
        let receiver = {
            let mut state = self.lock();
            if state.free > 0 && state.waiting.is_empty() {
                state.free -= 1;
                return Slot {
                    slots: Some(self.clone()),
                };
            }
            state.arrivals += 1;
            let (slot, receiver) = oneshot::channel();
            let rank = (priority, Reverse(state.arrivals));
            state.waiting.push(Waiter { rank, slot });
            receiver
        };
        match receiver.await {
            Ok(slot) => slot,
            // The queue drops a sender only after sending on it; should that change, wait
            // again rather than run without a slot.
            Err(_) => Box::pin(self.acquire(priority)).await,
        }
    }

    /// Tasks waiting for a slot.
    pub(crate) fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }

    fn give_back(self: &Arc<Self>) {
        let mut state = self.lock();
        while let Some(waiter) = state.waiting.pop() {
            let slot = Slot {
                slots: Some(self.clone()),
            };
            match waiter.slot.send(slot) {
                Ok(()) => return,
                // That waiter left: disarm the slot that came back and try the next one.
                Err(mut slot) => slot.slots = None,
            }
        }
        state.free += 1;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(slots) = self.slots.take() {
            slots.give_back();
        }
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
