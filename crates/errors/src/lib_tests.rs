use pretty_assertions::assert_eq;

use super::*;

#[derive(Debug, thiserror::Error)]
#[error("outer")]
struct Outer(#[source] Middle);

#[derive(Debug, thiserror::Error)]
#[error("middle")]
struct Middle(#[source] std::io::Error);

fn outer() -> Outer {
    Outer(Middle(std::io::Error::other("inner")))
}

#[test]
fn an_error_without_causes_is_its_message() {
    assert_eq!(chain(&std::io::Error::other("alone")), "alone");
}

#[test]
fn causes_follow_nearest_first() {
    assert_eq!(chain(&outer()), "outer: middle: inner");
    assert_eq!(Chain(&outer()).to_string(), "outer: middle: inner");
    assert_eq!(format!("{:?}", Chain(&outer())), "outer: middle: inner");
    let error = outer();
    let names: Vec<String> = causes(&error).map(ToString::to_string).collect();
    assert_eq!(names, ["middle", "inner"]);
}

#[test]
fn describe_replaces_only_the_causes_it_knows() {
    let text = chain_with(&outer(), |cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .map(|io| format!("io({io})"))
    });
    assert_eq!(text, "outer: middle: io(inner)");
}

#[test]
fn describe_is_not_asked_about_the_error_itself() {
    let text = chain_with(&std::io::Error::other("top"), |_| {
        Some("replaced".to_owned())
    });
    assert_eq!(text, "top");
}
