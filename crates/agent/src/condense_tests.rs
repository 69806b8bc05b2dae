use cap_llm::ToolCall;
use pretty_assertions::assert_eq;

use super::*;

fn turn(id: &str) -> [Message; 2] {
    [
        Message::Assistant {
            content: None,
            tool_calls: vec![ToolCall {
                id: id.to_owned(),
                name: "read_file".to_owned(),
                arguments: format!("{{\"path\": \"{id}.py\"}}"),
            }],
        },
        Message::tool(id, "x".repeat(400)),
    ]
}

fn conversation(turns: usize) -> Vec<Message> {
    let mut messages = vec![Message::system("sys"), Message::user("task")];
    for n in 0..turns {
        messages.extend(turn(&format!("t{n}")));
    }
    messages
}

#[test]
fn only_turns_between_the_task_and_the_last_two_are_condensable() {
    assert_eq!(condensable(&conversation(0)), None);
    assert_eq!(condensable(&conversation(2)), None);
    // Turns at 2, 4, 6: the last two start at 4.
    assert_eq!(condensable(&conversation(3)), Some(2..4));
    assert_eq!(condensable(&conversation(5)), Some(2..8));
}

#[test]
fn the_estimate_counts_four_characters_a_token_and_framing() {
    assert_eq!(estimate_tokens(&[Message::user("abcdefgh")]), 2 + 4);
    let one_turn = estimate_tokens(&turn("t0"));
    // The call's name and arguments (26 characters), then its 400-character result.
    assert_eq!(one_turn, (7 + 4) + (100 + 4));
}

#[test]
fn the_reported_count_is_used_for_what_it_covered() {
    let messages = conversation(2);
    let mut weight = Weight::default();
    assert_eq!(weight.of(&messages), estimate_tokens(&messages));
    weight.reported(1_000, 4);
    assert_eq!(
        weight.of(&messages),
        1_000 + estimate_tokens(&messages[4..])
    );
    // A count for a longer conversation than there is (it was rewritten) is not used.
    weight.reported(1_000, 40);
    assert_eq!(weight.of(&messages), estimate_tokens(&messages));
    weight.reset();
    assert_eq!(weight.of(&messages), estimate_tokens(&messages));
}
