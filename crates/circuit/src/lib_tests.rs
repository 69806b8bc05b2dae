use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

/// An error of the guarded service: its own failure, a plain answer, or the open circuit.
#[derive(Debug, PartialEq)]
enum Failure {
    Down,
    NotFound,
    Open(String),
}

async fn call(
    breaker: &Breaker,
    calls: &AtomicU32,
    answer: Result<(), Failure>,
) -> Result<(), Failure> {
    breaker
        .guard(
            async {
                calls.fetch_add(1, Ordering::Relaxed);
                answer
            },
            |failure| *failure == Failure::Down,
            Failure::Open,
        )
        .await
}

#[tokio::test(start_paused = true)]
async fn opens_after_failures_in_a_row_fails_fast_then_lets_one_trial_through() {
    let breaker = Breaker::new("github", 3, Duration::from_secs(30));
    let calls = AtomicU32::new(0);

    // An answer that is not the service failing does not count.
    call(&breaker, &calls, Err(Failure::NotFound))
        .await
        .unwrap_err();
    for _ in 0..2 {
        call(&breaker, &calls, Err(Failure::Down))
            .await
            .unwrap_err();
    }
    call(&breaker, &calls, Ok(())).await.unwrap();
    for _ in 0..3 {
        call(&breaker, &calls, Err(Failure::Down))
            .await
            .unwrap_err();
    }
    assert_eq!(calls.load(Ordering::Relaxed), 7);

    // Open: fails at once, without calling.
    let Err(Failure::Open(message)) = call(&breaker, &calls, Ok(())).await else {
        panic!("the open circuit let the call through")
    };
    assert!(
        message.starts_with("the github circuit is open after 3 failed calls"),
        "{message}"
    );
    assert_eq!(calls.load(Ordering::Relaxed), 7);

    // After the wait one trial goes through; failing, it opens the circuit again.
    tokio::time::advance(Duration::from_secs(31)).await;
    call(&breaker, &calls, Err(Failure::Down))
        .await
        .unwrap_err();
    assert_eq!(calls.load(Ordering::Relaxed), 8);
    call(&breaker, &calls, Ok(())).await.unwrap_err();
    assert_eq!(calls.load(Ordering::Relaxed), 8);

    // A trial that succeeds closes it.
    tokio::time::advance(Duration::from_secs(31)).await;
    call(&breaker, &calls, Ok(())).await.unwrap();
    call(&breaker, &calls, Ok(())).await.unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), 10);
}

#[tokio::test(start_paused = true)]
async fn a_trial_that_never_ends_does_not_hold_the_circuit_open_for_ever() {
    let breaker = Breaker::new("model", 1, Duration::from_secs(10));
    let calls = AtomicU32::new(0);
    call(&breaker, &calls, Err(Failure::Down))
        .await
        .unwrap_err();
    tokio::time::advance(Duration::from_secs(11)).await;
    // The trial is admitted, then dropped before it ends.
    drop(breaker.guard(async { Ok::<(), Failure>(()) }, |_| false, Failure::Open));
    let trial = breaker.guard(
        std::future::pending::<Result<(), Failure>>(),
        |_| false,
        Failure::Open,
    );
    tokio::select! {
        _ = trial => unreachable!(),
        () = tokio::time::sleep(Duration::from_millis(1)) => {}
    }
    assert!(matches!(
        call(&breaker, &calls, Ok(())).await,
        Err(Failure::Open(_))
    ));
    tokio::time::advance(Duration::from_secs(11)).await;
    call(&breaker, &calls, Ok(())).await.unwrap();
}
