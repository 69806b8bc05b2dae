//! Anthropic's wire format and the router's fallbacks and breakers, against stand-ins over
//! real HTTP on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cap_llm::{Error, Message, ModelConfig, ModelRouter, Provider, RetryPolicy, ToolSpec};
use cap_testkit::{ScriptStep, ScriptedModel};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

/// What the stand-in does with each request.
#[derive(Debug, Clone)]
enum Behaviour {
    /// Answers with this status and an error body in the provider's shape.
    Fail(u16),
    /// Never answers.
    Hang,
    /// Answers this body, 200.
    Answer(Value),
}

#[derive(Debug, Default)]
struct Seen {
    headers: Vec<HeaderMap>,
    bodies: Vec<Value>,
}

#[derive(Clone)]
struct StandIn {
    behaviour: Arc<Mutex<Behaviour>>,
    seen: Arc<Mutex<Seen>>,
}

impl StandIn {
    /// Serves `behaviour` at `/v1/chat/completions` and `/v1/messages`; returns the base URL.
    async fn start(behaviour: Behaviour) -> (Self, String) {
        let stand_in = Self {
            behaviour: Arc::new(Mutex::new(behaviour)),
            seen: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/v1/chat/completions", axum::routing::post(answer))
            .route("/v1/messages", axum::routing::post(answer))
            .with_state(stand_in.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (stand_in, format!("http://{addr}/v1"))
    }

    fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    fn requests(&self) -> usize {
        self.seen.lock().unwrap().bodies.len()
    }
}

async fn answer(State(stand_in): State<StandIn>, headers: HeaderMap, body: String) -> Response {
    {
        let mut seen = stand_in.seen.lock().unwrap();
        seen.headers.push(headers);
        seen.bodies
            .push(serde_json::from_str(&body).unwrap_or(Value::Null));
    }
    let behaviour = stand_in.behaviour.lock().unwrap().clone();
    match behaviour {
        Behaviour::Fail(status) => {
            let status = StatusCode::from_u16(status).unwrap();
            let body = json!({"type": "error", "error": {"type": "overloaded_error", "message": format!("stand-in says {status}")}});
            (status, axum::Json(body)).into_response()
        }
        Behaviour::Hang => {
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
        Behaviour::Answer(body) => axum::Json(body).into_response(),
    }
}

fn endpoint(provider: Provider, base_url: String, model: &str) -> ModelConfig {
    ModelConfig {
        provider,
        base_url,
        api_key: Some("test-key-not-secret".to_owned()),
        model: model.to_owned(),
        timeout: Duration::from_millis(500),
        ..ModelConfig::default()
    }
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
    }
}

fn tools() -> Vec<ToolSpec> {
    vec![ToolSpec {
        name: "read_file".to_owned(),
        description: "Reads a file.".to_owned(),
        parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
    }]
}

fn anthropic_tool_use() -> Value {
    json!({
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [
            {"type": "text", "text": "Reading calc.py."},
            {"type": "tool_use", "id": "toolu_01", "name": "read_file", "input": {"path": "calc.py"}}
        ],
        "stop_reason": "tool_use",
        "stop_sequence": null,
        "usage": {"input_tokens": 321, "output_tokens": 45}
    })
}

#[tokio::test]
async fn anthropic_requests_and_replies_use_its_documented_shapes() {
    let (stand_in, base_url) = StandIn::start(Behaviour::Answer(anthropic_tool_use())).await;
    let router = ModelRouter::new(
        endpoint(Provider::Anthropic, base_url, "claude-test"),
        Vec::new(),
    )
    .unwrap();
    let messages = [
        Message::system("You fix bugs."),
        Message::user("Fix add()."),
    ];
    let routed = router
        .chat(&messages, &tools(), &fast_retries())
        .await
        .unwrap();
    assert_eq!(routed.endpoint, 0);
    assert_eq!(routed.reply.content.as_deref(), Some("Reading calc.py."));
    assert_eq!(routed.reply.tool_calls[0].id, "toolu_01");
    assert_eq!(
        routed.reply.tool_calls[0].arguments,
        r#"{"path":"calc.py"}"#
    );
    assert_eq!(routed.reply.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(routed.reply.usage.unwrap().total_tokens, 366);

    let seen = stand_in.seen.lock().unwrap();
    let headers = &seen.headers[0];
    assert_eq!(headers["x-api-key"], "test-key-not-secret");
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    assert!(headers.get("authorization").is_none());
    let body = &seen.bodies[0];
    assert_eq!(body["model"], "claude-test");
    assert_eq!(body["max_tokens"], 4096);
    assert_eq!(body["system"], "You fix bugs.");
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "Fix add()."}]}])
    );
    assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
}

#[tokio::test]
async fn an_overloaded_anthropic_endpoint_is_a_retryable_error_with_its_message() {
    let (stand_in, base_url) = StandIn::start(Behaviour::Fail(529)).await;
    let router =
        ModelRouter::new(endpoint(Provider::Anthropic, base_url, "c"), Vec::new()).unwrap();
    let error = router
        .chat(&[Message::user("hi")], &[], &fast_retries())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Status { status: 529, message } if message.contains("stand-in says 529")),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert_eq!(stand_in.requests(), 2, "retried once per the policy");
}

#[tokio::test]
async fn a_primary_answering_429_500_or_hanging_hands_over_to_the_fallback() {
    for (behaviour, expected) in [
        (Behaviour::Fail(429), "HTTP 429"),
        (Behaviour::Fail(500), "HTTP 500"),
        (Behaviour::Hang, "timed out"),
    ] {
        let (primary, primary_url) = StandIn::start(behaviour.clone()).await;
        let fallback = ScriptedModel::start(vec![ScriptStep::text("From the fallback.")])
            .await
            .unwrap();
        let router = ModelRouter::new(
            endpoint(Provider::OpenAi, primary_url, "primary"),
            vec![endpoint(Provider::OpenAi, fallback.base_url(), "fallback")],
        )
        .unwrap();
        let routed = router
            .chat(&[Message::user("hi")], &[], &fast_retries())
            .await
            .unwrap();
        assert_eq!(routed.endpoint, 1, "{behaviour:?}");
        assert_eq!(routed.reply.content.as_deref(), Some("From the fallback."));
        assert_eq!(routed.failed.len(), 1);
        assert!(
            routed.failed[0]
                .0
                .starts_with("primary at http://127.0.0.1:")
        );
        let why = routed.failed[0].1.to_string();
        assert!(why.contains(expected), "{behaviour:?}: {why}");
        assert_eq!(primary.requests(), 2, "{behaviour:?}: retried, then left");
    }
}

#[tokio::test]
async fn when_every_endpoint_fails_the_error_names_each() {
    let (_a, a_url) = StandIn::start(Behaviour::Fail(500)).await;
    let (_b, b_url) = StandIn::start(Behaviour::Fail(503)).await;
    let router = ModelRouter::new(
        endpoint(Provider::OpenAi, a_url, "a"),
        vec![endpoint(Provider::Anthropic, b_url, "b")],
    )
    .unwrap();
    let error = router
        .chat(&[Message::user("hi")], &[], &fast_retries())
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with("every model endpoint failed: a at http://")
            && text.contains("(openai): model endpoint answered HTTP 500")
            && text.contains("; b at http://")
            && text.contains("(anthropic): model endpoint answered HTTP 503"),
        "{text}"
    );
    assert!(error.is_retryable(), "later, one may answer");
}

#[tokio::test]
async fn a_failing_primarys_circuit_opens_skips_it_and_closes_when_it_answers_again() {
    let (primary, primary_url) = StandIn::start(Behaviour::Fail(500)).await;
    let fallback = ScriptedModel::start(vec![
        ScriptStep::text("fallback 1"),
        ScriptStep::text("fallback 2"),
        ScriptStep::text("fallback 3"),
    ])
    .await
    .unwrap();
    let open_for = Duration::from_millis(300);
    let router = ModelRouter::new(
        ModelConfig {
            circuit_failures: 2,
            circuit_open_for: open_for,
            ..endpoint(Provider::OpenAi, primary_url, "primary")
        },
        vec![endpoint(Provider::OpenAi, fallback.base_url(), "fallback")],
    )
    .unwrap();
    let once = RetryPolicy {
        max_attempts: 1,
        ..fast_retries()
    };
    let hi = [Message::user("hi")];
    let ask = || router.chat(&hi, &[], &once);

    // Two failures in a row open the primary's circuit.
    assert_eq!(ask().await.unwrap().endpoint, 1);
    assert_eq!(ask().await.unwrap().endpoint, 1);
    assert_eq!(primary.requests(), 2);
    // Open: the primary is not asked at all, the fallback answers.
    let routed = ask().await.unwrap();
    assert_eq!(routed.endpoint, 1);
    assert!(
        matches!(routed.failed[0].1, Error::CircuitOpen { .. }),
        "{:?}",
        routed.failed
    );
    assert_eq!(primary.requests(), 2, "skipped while open");

    // The primary recovers; after the open period its trial request succeeds and it serves
    // again.
    primary.set(Behaviour::Answer(json!({
        "choices": [{"message": {"role": "assistant", "content": "primary again"}, "finish_reason": "stop"}]
    })));
    tokio::time::sleep(open_for + Duration::from_millis(50)).await;
    let routed = ask().await.unwrap();
    assert_eq!(routed.endpoint, 0);
    assert_eq!(routed.reply.content.as_deref(), Some("primary again"));
    assert_eq!(ask().await.unwrap().endpoint, 0);
    assert_eq!(primary.requests(), 4);
}
