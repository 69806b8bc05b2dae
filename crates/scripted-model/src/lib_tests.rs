use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::*;

async fn post(model: &ScriptedModel, body: Value) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("{}/chat/completions", model.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn request(stream: bool) -> Value {
    json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn plays_the_script_in_order_then_reports_exhaustion() {
    let model = ScriptedModel::start(vec![
        ScriptStep::tool_call("read_file", "{\"path\": \"a.txt\"}").with_content("looking"),
        ScriptStep::text("all done"),
        ScriptStep::http_error(503),
        ScriptStep::malformed("{not json"),
    ])
    .await
    .unwrap();
    assert!(model.base_url().starts_with("http://127.0.0.1:"));
    assert!(model.base_url().ends_with("/v1"));

    let (status, body) = post(&model, request(false)).await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "m");
    assert_eq!(
        body["choices"][0],
        json!({"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "looking", "tool_calls": [{
                "id": "call_0_0", "type": "function",
                "function": {"name": "read_file", "arguments": "{\"path\": \"a.txt\"}"}}]}})
    );
    assert!(body["usage"]["total_tokens"].as_u64().unwrap() > 0);

    let (status, body) = post(&model, request(false)).await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "all done");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");

    let (status, body) = post(&model, request(false)).await;
    assert_eq!(status, 503);
    assert!(body.contains("scripted HTTP 503"), "{body}");

    let (status, body) = post(&model, request(false)).await;
    assert_eq!((status, body.as_str()), (200, "{not json"));

    assert_eq!(model.remaining(), 0);
    let (status, body) = post(&model, request(false)).await;
    assert_eq!(status, 500);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["message"], "script exhausted");

    let requests = model.requests();
    assert_eq!(requests.len(), 5);
    assert_eq!(requests[0], request(false));
}

#[tokio::test]
async fn a_bad_request_does_not_consume_a_step() {
    let model = ScriptedModel::start(vec![ScriptStep::text("kept")])
        .await
        .unwrap();
    let response = reqwest::Client::new()
        .post(format!("{}/chat/completions", model.base_url()))
        .body("garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert!(response.text().await.unwrap().contains("not JSON"));
    let (status, body) = post(&model, json!({"model": "m"})).await;
    assert_eq!(status, 400);
    assert!(body.contains("messages"), "{body}");
    assert_eq!(model.remaining(), 1);
    assert_eq!(model.requests()[0], Value::String("garbage".to_owned()));
}

#[tokio::test]
async fn streams_tool_call_deltas_and_done() {
    let args = "{\"path\": \"src/some/long/path.py\", \"recursive\": true}";
    let model = ScriptedModel::start(vec![ScriptStep::tool_calls([
        ("list_directory", args),
        ("read_file", "{\"path\":\"x\"}"),
    ])])
    .await
    .unwrap();
    let mut body = request(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, text) = post(&model, body).await;
    assert_eq!(status, 200);
    let frames: Vec<&str> = text
        .split("\n\n")
        .filter(|frame| !frame.is_empty())
        .map(|frame| frame.strip_prefix("data: ").unwrap())
        .collect();
    assert_eq!(frames.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = frames[..frames.len() - 1]
        .iter()
        .map(|f| serde_json::from_str(f).unwrap())
        .collect();
    // Reassemble the calls the way a streaming client does.
    let mut calls: Vec<(String, String, String)> = Vec::new();
    let mut finish = None;
    let mut usage = None;
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        if let Some(u) = chunk.get("usage") {
            usage = Some(u.clone());
        }
        let Some(choice) = chunk["choices"].get(0) else {
            continue;
        };
        if let Some(reason) = choice["finish_reason"].as_str() {
            finish = Some(reason.to_owned());
        }
        for delta in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let index = delta["index"].as_u64().unwrap() as usize;
            if calls.len() <= index {
                calls.push(Default::default());
            }
            if let Some(id) = delta["id"].as_str() {
                calls[index].0 = id.to_owned();
            }
            if let Some(name) = delta["function"]["name"].as_str() {
                calls[index].1 = name.to_owned();
            }
            calls[index]
                .2
                .push_str(delta["function"]["arguments"].as_str().unwrap());
        }
    }
    assert_eq!(
        calls,
        vec![
            (
                "call_0_0".to_owned(),
                "list_directory".to_owned(),
                args.to_owned()
            ),
            (
                "call_0_1".to_owned(),
                "read_file".to_owned(),
                "{\"path\":\"x\"}".to_owned()
            ),
        ]
    );
    // The long arguments arrive in several pieces.
    assert!(chunks.len() > 6, "{}", chunks.len());
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    assert!(usage.unwrap()["completion_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn streams_text_and_errors() {
    let model = ScriptedModel::start(vec![
        ScriptStep::text("héllo wörld, a longer answer"),
        ScriptStep::HttpError {
            status: 429,
            message: Some("slow down".to_owned()),
        },
        ScriptStep::HttpError {
            status: 1000,
            message: None,
        },
    ])
    .await
    .unwrap();
    let (status, text) = post(&model, request(true)).await;
    assert_eq!(status, 200);
    let mut content = String::new();
    for frame in text.split("\n\n").filter(|f| !f.is_empty()) {
        let data = frame.strip_prefix("data: ").unwrap();
        if data == "[DONE]" {
            continue;
        }
        let chunk: Value = serde_json::from_str(data).unwrap();
        if let Some(piece) = chunk["choices"][0]["delta"]["content"].as_str() {
            content.push_str(piece);
        }
    }
    assert_eq!(content, "héllo wörld, a longer answer");
    let (status, body) = post(&model, request(true)).await;
    assert_eq!(status, 429);
    assert!(body.contains("slow down"));
    let (status, body) = post(&model, request(false)).await;
    assert_eq!(status, 500);
    assert!(body.contains("invalid HTTP status 1000"), "{body}");
}

#[tokio::test]
async fn shutdown_stops_listening() {
    let model = ScriptedModel::start(vec![ScriptStep::text("x")])
        .await
        .unwrap();
    let addr = model.addr();
    let (status, _) = post(&model, request(false)).await;
    assert_eq!(status, 200);
    model.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[test]
fn scripts_round_trip_through_json() {
    let script = vec![
        ScriptStep::tool_call("edit_file", "{bad json"),
        ScriptStep::text("done"),
        ScriptStep::http_error(500),
        ScriptStep::malformed("<html>"),
    ];
    let text = serde_json::to_string(&script).unwrap();
    let back: Vec<ScriptStep> = serde_json::from_str(&text).unwrap();
    assert_eq!(back, script);
    let written: Vec<ScriptStep> = serde_json::from_value(json!([
        {"type": "tool_calls", "calls": [{"name": "read_file", "arguments": "{}", "id": "x"}]},
        {"type": "text", "content": "bye", "finish_reason": "length"}
    ]))
    .unwrap();
    assert_eq!(
        written[0],
        ScriptStep::ToolCalls {
            calls: vec![ScriptToolCall {
                name: "read_file".into(),
                arguments: "{}".into(),
                id: Some("x".into())
            }],
            content: None
        }
    );

    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let path = dir.join("script.json");
    std::fs::write(&path, &text).unwrap();
    assert_eq!(load_script(&path).unwrap(), script);
    std::fs::write(&path, "{}").unwrap();
    assert!(
        load_script(&path)
            .unwrap_err()
            .to_string()
            .contains("not a JSON array")
    );
    assert!(
        load_script(&dir.join("missing.json"))
            .unwrap_err()
            .to_string()
            .contains("cannot read")
    );
}
