use std::time::Duration;

use pretty_assertions::assert_eq;

use super::*;

#[test]
fn budgets_read_as_people_say_them() {
    let cases = [
        (Duration::from_millis(300), "300 ms"),
        (Duration::from_secs(90), "90 s"),
        (Duration::from_secs(120), "2 min"),
        (Duration::from_secs(3600), "1 h"),
        (Duration::from_secs(5400), "1 h 30 min"),
    ];
    for (duration, said) in cases {
        assert_eq!(human_duration(duration), said);
    }
}

#[test]
fn the_steps_left_are_those_from_the_node_that_stopped() {
    let plan = "Plan for: x\nRepository a/b at 1 (2 files) on branch main.\n\
                1. Read the files.\n2. Make the change.\n3. Run the tests.\n4. Open a pull request.\n\
                Files:\n- a.py\n";
    assert_eq!(
        remaining_steps(plan, Node::Execute),
        [
            "2. Make the change.",
            "3. Run the tests.",
            "4. Open a pull request."
        ]
    );
    assert_eq!(
        remaining_steps(plan, Node::Review),
        ["3. Run the tests.", "4. Open a pull request."]
    );
    assert_eq!(
        remaining_steps("no steps", Node::Plan),
        Vec::<String>::new()
    );
}
