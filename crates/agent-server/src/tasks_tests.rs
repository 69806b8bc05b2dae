use pretty_assertions::assert_eq;

use super::*;

#[test]
fn registers_interrupts_and_counts() {
    let tasks = RunningTasks::new("testing");
    let (token, guard) = tasks.register("b").unwrap();
    let (_other, other_guard) = tasks.register("a").unwrap();
    assert_eq!(
        tasks.register("b").unwrap_err().to_string(),
        "task b is already running on the testing agent"
    );
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
