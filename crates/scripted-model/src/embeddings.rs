//! `POST /v1/embeddings` of the scripted model server: deterministic vectors a test can reason
//! about. Each dimension is a *concept*, a set of words the test names; a text's vector counts
//! how often each concept's words occur in it (lower-cased substrings, so `purgeUser` holds
//! `purge`), normalised to length 1. Texts sharing no word but the same concept are close, which
//! is what a real embedding model gives and full-text ranking cannot. Without concepts every
//! word is hashed into one of [`HASHED_DIMENSIONS`] dimensions.

use std::sync::{Mutex, PoisonError};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::{ScriptState, error_response};

/// Dimensions of the hashed space used when no concepts are set.
pub const HASHED_DIMENSIONS: usize = 16;

/// How the server embeds, and whether it fails on purpose.
#[derive(Debug, Default)]
pub(crate) struct EmbeddingState {
    concepts: Mutex<Vec<Vec<String>>>,
    failure: Mutex<Option<u16>>,
    inputs: Mutex<Vec<Vec<String>>>,
}

impl EmbeddingState {
    pub(crate) fn set_concepts(&self, concepts: Vec<Vec<String>>) {
        *self.concepts.lock().unwrap_or_else(PoisonError::into_inner) = concepts;
    }

    pub(crate) fn set_failure(&self, status: Option<u16>) {
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = status;
    }

    pub(crate) fn inputs(&self) -> Vec<Vec<String>> {
        self.inputs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn embed(&self, text: &str) -> Vec<f32> {
        let text = text.to_lowercase();
        let concepts = self.concepts.lock().unwrap_or_else(PoisonError::into_inner);
        let mut vector: Vec<f32> = if concepts.is_empty() {
            let mut v = vec![0.0; HASHED_DIMENSIONS];
            for word in text
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
            {
                // FNV-1a: stable across runs and platforms.
                let hash = word.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                });
                v[usize::try_from(hash % HASHED_DIMENSIONS as u64).unwrap_or(0)] += 1.0;
            }
            v
        } else {
            concepts
                .iter()
                .map(|words| {
                    let n: usize = words.iter().map(|w| text.matches(w.as_str()).count()).sum();
                    n as f32
                })
                .collect()
        };
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            vector.iter_mut().for_each(|x| *x /= norm);
        }
        vector
    }
}

/// Answers an OpenAI-compatible embeddings request: `{"model", "input": string | [string]}`.
pub(crate) async fn embeddings(
    State(state): State<std::sync::Arc<ScriptState>>,
    body: Bytes,
) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(error) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &format!("request body is not JSON: {error}"),
                "invalid_request_error",
            );
        }
    };
    let inputs: Option<Vec<String>> = match request.get("input") {
        Some(Value::String(text)) => Some(vec![text.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    };
    let Some(inputs) = inputs else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "`input` must be a string or an array of strings",
            "invalid_request_error",
        );
    };
    let Some(model) = request.get("model").and_then(Value::as_str) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "request has no `model`",
            "invalid_request_error",
        );
    };
    let embedding = &state.embeddings;
    embedding
        .inputs
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(inputs.clone());
    let failure = *embedding
        .failure
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(status) = failure {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return error_response(code, &format!("scripted HTTP {status}"), "scripted_error");
    }
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| json!({"object": "embedding", "index": i, "embedding": embedding.embed(text)}))
        .collect();
    let tokens: usize = inputs.iter().map(|t| t.len() / 4).sum();
    axum::Json(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response()
}

#[cfg(test)]
#[path = "embeddings_tests.rs"]
mod tests;
