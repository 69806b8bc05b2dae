use std::time::Duration;

use super::*;

#[tokio::test]
async fn slots_go_by_priority_then_arrival_and_come_back_when_dropped() {
    let slots = Slots::new(1);
    let held = slots.acquire(rank("normal")).await;
    let (order, mut done) = tokio::sync::mpsc::unbounded_channel();
    for (name, priority) in [
        ("low", "low"),
        ("normal-1", "normal"),
        ("high", "high"),
        ("normal-2", "normal"),
    ] {
        let slots = slots.clone();
        let order = order.clone();
        tokio::spawn(async move {
            let slot = slots.acquire(rank(priority)).await;
            order.send(name).unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
            drop(slot);
        });
        // Arrival order is the spawn order.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(slots.waiting(), 4);
    drop(held);
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(done.recv().await.unwrap());
    }
    assert_eq!(seen, ["high", "normal-1", "normal-2", "low"]);
    assert_eq!(slots.waiting(), 0);
    // All four gave theirs back: the one slot is free again.
    let _again = tokio::time::timeout(Duration::from_secs(1), slots.acquire(0))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_waiter_that_leaves_does_not_take_a_slot_with_it() {
    let slots = Slots::new(1);
    let held = slots.acquire(1).await;
    let leaving = tokio::spawn({
        let slots = slots.clone();
        async move { slots.acquire(2).await }
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    leaving.abort();
    let _ = leaving.await;
    drop(held);
    let _next = tokio::time::timeout(Duration::from_secs(1), slots.acquire(1))
        .await
        .unwrap();
}
