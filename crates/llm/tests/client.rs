//! The client against the scripted model server over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::time::Duration;

use cap_llm::{ChatClient, Error, Message, ModelConfig, RetryPolicy, ToolCall, ToolSpec};
use cap_testkit::{ScriptStep, ScriptedModel};
use pretty_assertions::assert_eq;
use serde_json::json;

fn client(base_url: String, api_key: Option<&str>) -> ChatClient {
    ChatClient::new(ModelConfig {
        base_url,
        api_key: api_key.map(str::to_owned),
        model: "qwen2.5-coder".to_owned(),
        timeout: Duration::from_secs(10),
        ..ModelConfig::default()
    })
    .unwrap()
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
    }
}

fn tools() -> Vec<ToolSpec> {
    vec![ToolSpec {
        name: "read_file".to_owned(),
        description: "Reads a file.".to_owned(),
        parameters: json!({"type": "object", "properties": {"path": {"type": "string"}},
                           "required": ["path"]}),
    }]
}

#[tokio::test]
async fn parses_tool_calls_and_sends_the_conversation() -> anyhow::Result<()> {
    let model = ScriptedModel::start(vec![
        ScriptStep::tool_calls([
            ("read_file", "{\"path\": \"a.py\"}"),
            ("read_file", "{oops"),
        ])
        .with_content("Let me look."),
        ScriptStep::text("Finished."),
    ])
    .await?;
    let client = client(model.base_url(), Some("sk-test"));
    let mut messages = vec![Message::system("sys"), Message::user("do it")];

    let reply = client.chat(&messages, &tools()).await?;
    assert_eq!(reply.content.as_deref(), Some("Let me look."));
    assert_eq!(reply.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(
        reply.tool_calls,
        vec![
            ToolCall {
                id: "call_0_0".into(),
                name: "read_file".into(),
                arguments: "{\"path\": \"a.py\"}".into()
            },
            ToolCall {
                id: "call_0_1".into(),
                name: "read_file".into(),
                arguments: "{oops".into()
            },
        ]
    );
    assert!(reply.usage.is_some());

    messages.push(Message::from(&reply));
    messages.push(Message::tool("call_0_0", "1\tprint()"));
    messages.push(Message::tool("call_0_1", "error: invalid JSON"));
    let reply = client.chat(&messages, &tools()).await?;
    assert_eq!(reply.content.as_deref(), Some("Finished."));
    assert!(reply.tool_calls.is_empty());

    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0]["model"], "qwen2.5-coder");
    assert_eq!(requests[0]["tools"][0]["function"]["name"], "read_file");
    assert_eq!(
        requests[1]["messages"][2]["tool_calls"][1]["function"]["arguments"],
        "{oops"
    );
    assert_eq!(requests[1]["messages"][4]["tool_call_id"], "call_0_1");
    Ok(())
}

#[tokio::test]
async fn retries_a_503_then_succeeds() -> anyhow::Result<()> {
    let model =
        ScriptedModel::start(vec![ScriptStep::http_error(503), ScriptStep::text("ok")]).await?;
    let client = client(model.base_url(), None);
    let reply = client
        .chat_with_retry(&[Message::user("hi")], &[], &fast_retries())
        .await?;
    assert_eq!(reply.content.as_deref(), Some("ok"));
    assert_eq!(model.requests().len(), 2);
    Ok(())
}

#[tokio::test]
async fn gives_up_after_three_retryable_failures() -> anyhow::Result<()> {
    let model = ScriptedModel::start(vec![
        ScriptStep::http_error(500),
        ScriptStep::http_error(429),
        ScriptStep::http_error(502),
        ScriptStep::text("never reached"),
    ])
    .await?;
    let client = client(model.base_url(), None);
    let err = client
        .chat_with_retry(&[Message::user("hi")], &[], &fast_retries())
        .await;
    let Err(Error::Status { status: 502, .. }) = err else {
        panic!("{err:?}")
    };
    assert_eq!(model.requests().len(), 3);
    assert_eq!(model.remaining(), 1);
    Ok(())
}

#[tokio::test]
async fn does_not_retry_a_400() -> anyhow::Result<()> {
    let model = ScriptedModel::start(vec![
        ScriptStep::HttpError {
            status: 400,
            message: Some("context too long".into()),
        },
        ScriptStep::text("never reached"),
    ])
    .await?;
    let client = client(model.base_url(), None);
    let err = client
        .chat_with_retry(&[Message::user("hi")], &[], &fast_retries())
        .await;
    let Err(err) = err else {
        panic!("expected an error")
    };
    assert!(!err.is_retryable());
    assert_eq!(
        err.to_string(),
        "model endpoint answered HTTP 400: context too long"
    );
    assert_eq!(model.requests().len(), 1);
    Ok(())
}

#[tokio::test]
async fn malformed_body_is_a_permanent_error() -> anyhow::Result<()> {
    let model = ScriptedModel::start(vec![
        ScriptStep::malformed("{\"choices\": [{\"message\": {\"content\": 42}}]}"),
        ScriptStep::malformed("this is not json"),
        ScriptStep::text("never reached"),
    ])
    .await?;
    let client = client(model.base_url(), None);
    for _ in 0..2 {
        let err = client
            .chat_with_retry(&[Message::user("hi")], &[], &fast_retries())
            .await;
        let Err(err @ Error::Decode { .. }) = err else {
            panic!("{err:?}")
        };
        assert!(!err.is_retryable());
    }
    assert_eq!(model.requests().len(), 2);
    Ok(())
}

#[tokio::test]
async fn exhausted_script_and_refused_connections_are_retryable() -> anyhow::Result<()> {
    let model = ScriptedModel::start(vec![]).await?;
    let exhausted = client(model.base_url(), None);
    let err = exhausted
        .chat(&[Message::user("hi")], &[])
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    assert!(err.to_string().contains("script exhausted"), "{err}");

    let addr = model.addr();
    model.shutdown().await;
    let refused = client(format!("http://{addr}/v1"), None);
    let err = refused.chat(&[Message::user("hi")], &[]).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.is_retryable());
    Ok(())
}

#[tokio::test]
async fn a_silent_server_times_out() -> anyhow::Result<()> {
    // Accepts connections but never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let _hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let client = ChatClient::new(ModelConfig {
        base_url: format!("http://{addr}/v1"),
        api_key: None,
        model: "m".to_owned(),
        timeout: Duration::from_millis(200),
        ..ModelConfig::default()
    })?;
    let err = client.chat(&[Message::user("hi")], &[]).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(err.is_retryable());
    Ok(())
}

/// After `CIRCUIT_FAILURES` requests in a row that failed for the endpoint's own reasons, the
/// next ones fail at once without reaching it (clones share the circuit); a bad request
/// (HTTP 400) does not count.
#[tokio::test]
async fn a_failing_endpoint_opens_the_circuit_for_every_clone() -> anyhow::Result<()> {
    let failures = cap_llm::CIRCUIT_FAILURES as usize;
    let mut steps = vec![ScriptStep::http_error(400)];
    steps.extend((0..failures).map(|_| ScriptStep::http_error(503)));
    steps.push(ScriptStep::text("never reached"));
    let model = ScriptedModel::start(steps).await?;
    let client = client(model.base_url(), None);
    let once = RetryPolicy {
        max_attempts: 1,
        ..fast_retries()
    };
    let ask = |client: ChatClient| {
        let policy = once.clone();
        async move {
            client
                .chat_with_retry(&[Message::user("hi")], &[], &policy)
                .await
        }
    };
    assert!(matches!(
        ask(client.clone()).await,
        Err(Error::Status { status: 400, .. })
    ));
    for _ in 0..failures {
        assert!(matches!(
            ask(client.clone()).await,
            Err(Error::Status { status: 503, .. })
        ));
    }
    let open = ask(client.clone()).await;
    let Err(Error::CircuitOpen { message }) = open else {
        panic!("{open:?}")
    };
    assert!(
        message.starts_with("the model circuit is open"),
        "{message}"
    );
    assert!(!Error::CircuitOpen { message }.is_retryable());
    assert_eq!(model.requests().len(), failures + 1);
    assert_eq!(model.remaining(), 1);
    Ok(())
}
