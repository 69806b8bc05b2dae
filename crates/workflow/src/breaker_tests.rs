use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

async fn call(
    breaker: &Breaker,
    calls: &AtomicU32,
    answer: Result<(), Status>,
) -> Result<(), Status> {
    breaker
        .guard(async {
            calls.fetch_add(1, Ordering::Relaxed);
            answer
        })
        .await
}

#[tokio::test(start_paused = true)]
async fn opens_after_failures_in_a_row_fails_fast_then_lets_one_trial_through() {
    let breaker = Breaker::new("github", 3, Duration::from_secs(30));
    let calls = AtomicU32::new(0);
    let down = || Err(Status::unavailable("connection refused"));

    // An answer that is not the service failing does not count.
    call(
        &breaker,
        &calls,
        Err(Status::not_found("no such repository")),
    )
    .await
    .unwrap_err();
    for _ in 0..2 {
        call(&breaker, &calls, down()).await.unwrap_err();
    }
    call(&breaker, &calls, Ok(())).await.unwrap();
    for _ in 0..3 {
        call(&breaker, &calls, down()).await.unwrap_err();
    }
    assert_eq!(calls.load(Ordering::Relaxed), 7);

    // Open: fails at once, without calling.
    let fast = call(&breaker, &calls, Ok(())).await.unwrap_err();
    assert_eq!(fast.code(), Code::Unavailable);
    assert!(
        fast.message()
            .starts_with("the github circuit is open after 3 failed calls"),
        "{}",
        fast.message()
    );
    assert_eq!(calls.load(Ordering::Relaxed), 7);

    // After the wait one trial goes through; failing, it opens the circuit again.
    tokio::time::advance(Duration::from_secs(31)).await;
    call(&breaker, &calls, down()).await.unwrap_err();
    assert_eq!(calls.load(Ordering::Relaxed), 8);
    call(&breaker, &calls, Ok(())).await.unwrap_err();
    assert_eq!(calls.load(Ordering::Relaxed), 8);

    // A trial that succeeds closes it.
    tokio::time::advance(Duration::from_secs(31)).await;
    call(&breaker, &calls, Ok(())).await.unwrap();
    call(&breaker, &calls, Ok(())).await.unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), 10);
}
