use pretty_assertions::assert_eq;
use serde_json::json;

use super::*;

fn read_file_tool() -> ToolSpec {
    ToolSpec {
        name: "read_file".into(),
        description: "Reads a file.".into(),
        parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
    }
}

#[test]
fn the_conversation_maps_to_alternating_messages_of_blocks() {
    let messages = vec![
        Message::system("be brief"),
        Message::system("stay in the workspace"),
        Message::user("fix it"),
        Message::Assistant {
            content: Some("Reading.".into()),
            tool_calls: vec![
                ToolCall {
                    id: "toolu_1".into(),
                    name: "read_file".into(),
                    arguments: "{\"path\":\"a.py\"}".into(),
                },
                ToolCall {
                    id: "call_2".into(),
                    name: "read_file".into(),
                    arguments: "{oops".into(),
                },
            ],
        },
        Message::tool("toolu_1", "1\tx = 1"),
        Message::tool("call_2", "Error: invalid JSON"),
        Message::user("a human constraint"),
        Message::Assistant {
            content: None,
            tool_calls: Vec::new(),
        },
    ];
    let tools = [read_file_tool()];
    let body =
        serde_json::to_value(MessagesRequest::new("claude", 1024, &messages, &tools)).unwrap();
    assert_eq!(
        body,
        json!({
            "model": "claude",
            "max_tokens": 1024,
            "system": "be brief\n\nstay in the workspace",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "fix it"}]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Reading."},
                    {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "a.py"}},
                    {"type": "tool_use", "id": "call_2", "name": "read_file", "input": {}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "1\tx = 1"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "Error: invalid JSON"},
                    {"type": "text", "text": "a human constraint"},
                ]},
                {"role": "assistant", "content": [{"type": "text", "text": "(no answer)"}]},
            ],
            "tools": [{
                "name": "read_file",
                "description": "Reads a file.",
                "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
            }],
        })
    );
}

#[test]
fn a_reply_with_text_and_tool_use_parses_into_the_crates_shapes() {
    let body = json!({
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "x"},
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_9", "name": "read_file", "input": {"path": "a.py"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": null,
        "usage": {"input_tokens": 100, "output_tokens": 20, "cache_read_input_tokens": 5}
    });
    let reply = parse_response(body.to_string().as_bytes()).unwrap();
    assert_eq!(
        reply,
        AssistantReply {
            content: Some("Let me look.".into()),
            tool_calls: vec![ToolCall {
                id: "toolu_9".into(),
                name: "read_file".into(),
                arguments: "{\"path\":\"a.py\"}".into(),
            }],
            finish_reason: Some("tool_calls".into()),
            usage: Some(Usage {
                prompt_tokens: 105,
                completion_tokens: 20,
                total_tokens: 125,
            }),
        }
    );
    let ended = json!({"content": [{"type": "text", "text": "Done."}], "stop_reason": "end_turn"});
    let reply = parse_response(ended.to_string().as_bytes()).unwrap();
    assert_eq!(reply.finish_reason.as_deref(), Some("stop"));
    assert_eq!(reply.usage, None);
}

#[test]
fn a_body_that_is_not_a_message_is_a_decode_error_naming_where() {
    let error = parse_response(br#"{"content": [{"type": "text"}]}"#).unwrap_err();
    assert!(matches!(error, Error::Decode { .. }), "{error}");
    let Error::Decode { source } = &error else {
        unreachable!()
    };
    assert_eq!(source.path().to_string(), "content[0]");
    assert!(!error.is_retryable());
}
