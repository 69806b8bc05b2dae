use std::time::Duration;

use pretty_assertions::assert_eq;
use serde_json::json;

use super::*;

fn config() -> ModelConfig {
    ModelConfig {
        base_url: "http://127.0.0.1:9/v1/".to_owned(),
        api_key: Some("sk-secret-value".to_owned()),
        model: "qwen2.5-coder".to_owned(),
        timeout: Duration::from_secs(5),
        ..ModelConfig::default()
    }
}

#[test]
fn debug_redacts_the_api_key() {
    let shown = format!("{:?}", config());
    assert!(!shown.contains("sk-secret-value"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
    let client = ChatClient::new(config()).unwrap();
    assert!(!format!("{client:?}").contains("sk-secret-value"));
}

#[test]
fn new_rejects_bad_configuration() {
    let cases = [
        (
            ModelConfig {
                base_url: "not a url".to_owned(),
                ..config()
            },
            "not a URL",
        ),
        (
            ModelConfig {
                base_url: "ftp://host/v1".to_owned(),
                ..config()
            },
            "http or https",
        ),
        (
            ModelConfig {
                model: " ".to_owned(),
                ..config()
            },
            "model name is empty",
        ),
        (
            ModelConfig {
                timeout: Duration::ZERO,
                ..config()
            },
            "timeout",
        ),
    ];
    for (cfg, expected) in cases {
        let err = ChatClient::new(cfg).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig { .. }));
        assert!(
            err.to_string().contains(expected),
            "{err} should mention {expected}"
        );
        assert!(!err.is_retryable());
    }
}

#[test]
fn messages_serialize_in_the_openai_shape() {
    let messages = vec![
        Message::system("be brief"),
        Message::user("fix it"),
        Message::Assistant {
            content: None,
            tool_calls: vec![ToolCall {
                id: "call_1".to_owned(),
                name: "read_file".to_owned(),
                arguments: "{\"path\":".to_owned(),
            }],
        },
        Message::tool("call_1", "error: bad JSON"),
        Message::Assistant {
            content: Some("done".to_owned()),
            tool_calls: vec![],
        },
    ];
    let tools = vec![ToolSpec {
        name: "read_file".to_owned(),
        description: "reads".to_owned(),
        parameters: json!({"type": "object"}),
    }];
    let body = serde_json::to_value(wire::ChatRequest::new("m", &messages, &tools)).unwrap();
    assert_eq!(
        body,
        json!({
            "model": "m",
            "stream": false,
            "tool_choice": "auto",
            "tools": [{"type": "function", "function": {
                "name": "read_file", "description": "reads", "parameters": {"type": "object"}}}],
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "fix it"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "read_file", "arguments": "{\"path\":"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "error: bad JSON"},
                {"role": "assistant", "content": "done"},
            ]
        })
    );
    let no_tools = serde_json::to_value(wire::ChatRequest::new("m", &messages[..1], &[])).unwrap();
    assert_eq!(no_tools.get("tools"), None);
    assert_eq!(no_tools.get("tool_choice"), None);
}

#[test]
fn parse_response_reads_tool_calls_leniently() {
    let body = json!({
        "choices": [{
            "message": {"role": "assistant", "content": "", "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "x", "arguments": "{\"k\":1}"}},
                {"function": {"name": "y", "arguments": {"k": 2}}},
                {"id": "", "function": {"name": "z"}}
            ]},
            "finish_reason": "tool_calls"
        }],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    });
    let reply = wire::parse_response(body.to_string().as_bytes()).unwrap();
    assert_eq!(
        reply,
        AssistantReply {
            content: None,
            tool_calls: vec![
                ToolCall {
                    id: "a".into(),
                    name: "x".into(),
                    arguments: "{\"k\":1}".into()
                },
                ToolCall {
                    id: "call_1".into(),
                    name: "y".into(),
                    arguments: "{\"k\":2}".into()
                },
                ToolCall {
                    id: "call_2".into(),
                    name: "z".into(),
                    arguments: "{}".into()
                },
            ],
            finish_reason: Some("tool_calls".into()),
            usage: Some(Usage {
                prompt_tokens: 3,
                completion_tokens: 4,
                total_tokens: 7
            }),
        }
    );
}

#[test]
fn parse_response_accepts_null_tool_calls_and_rejects_garbage() {
    let body = json!({"choices": [{"message": {"content": "hi", "tool_calls": null}}]});
    let reply = wire::parse_response(body.to_string().as_bytes()).unwrap();
    assert_eq!(reply.content.as_deref(), Some("hi"));
    assert!(reply.tool_calls.is_empty());
    assert_eq!(reply.finish_reason, None);

    let err = wire::parse_response(b"{\"choices\": []}").unwrap_err();
    assert!(matches!(err, Error::NoChoices), "{err:?}");

    let err = wire::parse_response(b"<html>oops</html>").unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    assert!(!err.is_retryable());

    let err = wire::parse_response(b"{\"choices\": [{\"message\": 5}]}").unwrap_err();
    let Error::Decode { source } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(source.path().to_string(), "choices[0].message");
}

#[test]
fn error_message_prefers_the_openai_error_field() {
    assert_eq!(
        wire::error_message(br#"{"error":{"message":"slow down"}}"#),
        "slow down"
    );
    assert_eq!(wire::error_message(br#"{"error":"plain"}"#), "plain");
    assert_eq!(wire::error_message(b"  Bad Gateway \n"), "Bad Gateway");
    let long = "x".repeat(2000);
    assert_eq!(wire::error_message(long.as_bytes()).len(), 503);
}

#[test]
fn retryability_follows_the_status() {
    let status = |status| Error::Status {
        status,
        message: String::new(),
    };
    assert!(status(429).is_retryable());
    assert!(status(500).is_retryable());
    assert!(status(503).is_retryable());
    assert!(!status(400).is_retryable());
    assert!(!status(401).is_retryable());
    assert!(!status(404).is_retryable());
    assert!(!Error::NoChoices.is_retryable());
}

#[test]
fn backoff_doubles_and_is_bounded() {
    let policy = RetryPolicy {
        max_attempts: 5,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(300),
    };
    assert_eq!(policy.backoff(1), Duration::from_millis(100));
    assert_eq!(policy.backoff(2), Duration::from_millis(200));
    assert_eq!(policy.backoff(3), Duration::from_millis(300));
    assert_eq!(policy.backoff(40), Duration::from_millis(300));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn retry_stops_at_the_attempt_limit_and_on_permanent_errors() {
    let policy = RetryPolicy::default();
    let mut calls = 0;
    let err = retry(&policy, || {
        calls += 1;
        async {
            Err::<(), _>(Error::Status {
                status: 503,
                message: String::new(),
            })
        }
    })
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Status { status: 503, .. }));
    // PRD 14: the first try and at most three retries, waiting 1 s, 2 s, 4 s.
    assert_eq!(calls, 4);
    assert_eq!(
        (1..=4).map(|n| policy.backoff(n)).collect::<Vec<_>>(),
        [1, 2, 4, 8].map(Duration::from_secs)
    );

    let mut calls = 0;
    let err = retry(&policy, || {
        calls += 1;
        async {
            Err::<(), _>(Error::Status {
                status: 400,
                message: String::new(),
            })
        }
    })
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Status { status: 400, .. }));
    assert_eq!(calls, 1);

    let mut calls = 0;
    let value = retry(&policy, || {
        calls += 1;
        let result = if calls < 3 {
            Err(Error::NoChoices)
        } else {
            Ok(7)
        };
        async move { result }
    })
    .await;
    assert!(matches!(value, Err(Error::NoChoices)));
    assert_eq!(calls, 1);
}
