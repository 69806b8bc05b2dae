use pretty_assertions::assert_eq;

use super::*;

#[test]
fn the_body_goes_under_the_summary_heading_and_hints_go() {
    let template =
        "## Summary\n<!-- What does this change? -->\n\n## Checklist\n- [ ] Tests added\n";
    assert_eq!(
        fill(template, "Fixes `add`.\n\nTests: 3 passed."),
        "## Summary\n\nFixes `add`.\n\nTests: 3 passed.\n\n## Checklist\n- [ ] Tests added\n"
    );
}

#[test]
fn without_such_a_heading_the_body_goes_first() {
    assert_eq!(
        fill("- [ ] I ran the tests\n", "Body"),
        "Body\n\n- [ ] I ran the tests\n"
    );
    assert_eq!(fill("<!-- unclosed", "Body"), "Body\n\n");
}
