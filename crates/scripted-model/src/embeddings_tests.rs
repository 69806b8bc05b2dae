use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use crate::ScriptedModel;

async fn post(model: &ScriptedModel, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/embeddings", model.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn concepts_give_deterministic_unit_vectors_in_input_order() {
    let model = ScriptedModel::start(Vec::new()).await.unwrap();
    model.set_embedding_concepts(&[&["delete", "purge"], &["user"]]);
    let (status, body) = post(
        &model,
        json!({"model": "e", "input": ["purgeUser", "delete delete", "nothing here"]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["model"], "e");
    let half = std::f64::consts::FRAC_1_SQRT_2;
    let vector = |i: usize| -> Vec<f64> {
        body["data"][i]["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| (x.as_f64().unwrap() * 1e6).round() / 1e6)
            .collect()
    };
    assert_eq!(vector(0), [(half * 1e6).round() / 1e6; 2]);
    assert_eq!(vector(1), [1.0, 0.0]);
    assert_eq!(vector(2), [0.0, 0.0]);
    assert_eq!(body["data"][2]["index"], 2);
    assert_eq!(
        model.embedding_inputs(),
        [vec![
            "purgeUser".to_owned(),
            "delete delete".to_owned(),
            "nothing here".to_owned()
        ]]
    );
    // Chat completions are untouched: the empty script is still exhausted.
    assert_eq!(model.remaining(), 0);
}

#[tokio::test]
async fn without_concepts_words_are_hashed_and_a_single_string_is_accepted() {
    let model = ScriptedModel::start(Vec::new()).await.unwrap();
    let (status, body) = post(&model, json!({"model": "e", "input": "find user"})).await;
    assert_eq!(status, 200);
    let vector = body["data"][0]["embedding"].as_array().unwrap();
    assert_eq!(vector.len(), crate::HASHED_DIMENSIONS);
    let (_, again) = post(&model, json!({"model": "e", "input": "find user"})).await;
    assert_eq!(again["data"][0]["embedding"], body["data"][0]["embedding"]);
}

#[tokio::test]
async fn bad_requests_and_scripted_failures_are_errors() {
    let model = ScriptedModel::start(Vec::new()).await.unwrap();
    let (status, body) = post(&model, json!({"model": "e", "input": [1, 2]})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "`input` must be a string or an array of strings"
    );
    let (status, body) = post(&model, json!({"input": "x"})).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["message"], "request has no `model`");
    model.fail_embeddings(Some(503));
    let (status, _) = post(&model, json!({"model": "e", "input": "x"})).await;
    assert_eq!(status, 503);
    model.fail_embeddings(None);
    let (status, _) = post(&model, json!({"model": "e", "input": "x"})).await;
    assert_eq!(status, 200);
}
