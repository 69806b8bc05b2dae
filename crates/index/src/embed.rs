//! A client of an OpenAI-compatible embeddings endpoint (`POST {base_url}/embeddings`), for the
//! vector half of `semantic_search`. Blocking, like the rest of the crate: callers already run
//! indexing off the async runtime.

use std::time::Duration;

use crate::{Error, Result};

/// Inputs per request unless configured otherwise: well under the limits of the common servers
/// (OpenAI takes 2048, llama.cpp and Ollama batch internally).
pub const DEFAULT_BATCH_SIZE: usize = 64;

/// How long one request may take; a local model embedding a full batch needs seconds.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Where and how chunks are embedded.
#[derive(Clone)]
pub struct EmbeddingsConfig {
    /// The API's base URL, ending before `/embeddings` (e.g. `http://127.0.0.1:8080/v1`).
    pub base_url: String,
    /// The embedding model's name.
    pub model: String,
    /// A bearer token, when the endpoint needs one.
    pub api_key: Option<String>,
    /// Chunks per request.
    pub batch_size: usize,
}

impl std::fmt::Debug for EmbeddingsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs.
        f.debug_struct("EmbeddingsConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

impl EmbeddingsConfig {
    /// Checks the configuration without calling the endpoint.
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason: &str| Err(Error::InvalidEmbeddingsConfig(reason.to_owned()));
        let base = self.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return invalid("the base URL must start with http:// or https://");
        }
        if self.model.trim().is_empty() {
            return invalid("the model name is empty");
        }
        if self.batch_size == 0 {
            return invalid("the batch size must be at least 1");
        }
        Ok(())
    }

    /// An endpoint with the default batch size and no key.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }
}

/// A checked configuration with its HTTP client.
pub(crate) struct Embedder {
    config: EmbeddingsConfig,
    url: String,
    client: reqwest::blocking::Client,
}

#[derive(serde::Deserialize)]
struct Response {
    data: Vec<Datum>,
}

#[derive(serde::Deserialize)]
struct Datum {
    index: usize,
    embedding: Vec<f32>,
}

impl Embedder {
    pub(crate) fn new(config: EmbeddingsConfig) -> Result<Self> {
        config.validate()?;
        let base = config.base_url.trim_end_matches('/');
        let client = reqwest::blocking::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| Error::InvalidEmbeddingsConfig(format!("no HTTP client: {e}")))?;
        Ok(Self {
            url: format!("{base}/embeddings"),
            config,
            client,
        })
    }

    pub(crate) fn model(&self) -> &str {
        &self.config.model
    }

    pub(crate) fn batch_size(&self) -> usize {
        self.config.batch_size
    }

    /// One vector per text, in order.
    pub(crate) fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let failed = |reason: String| Error::Embeddings {
            endpoint: self.url.clone(),
            reason,
        };
        let mut request = self.client.post(&self.url).json(&serde_json::json!({
            "model": self.config.model,
            "input": texts,
        }));
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        let response = request
            .send()
            .map_err(|e| failed(format!("request failed: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().unwrap_or_default();
            let body: String = body.chars().take(200).collect();
            return Err(failed(format!("HTTP {status}: {body}")));
        }
        let parsed: Response = response
            .json()
            .map_err(|e| failed(format!("the answer is not an embeddings list: {e}")))?;
        if parsed.data.len() != texts.len() {
            return Err(failed(format!(
                "{} vectors for {} inputs",
                parsed.data.len(),
                texts.len()
            )));
        }
        let mut vectors = vec![Vec::new(); texts.len()];
        for datum in parsed.data {
            match vectors.get_mut(datum.index) {
                Some(slot) if slot.is_empty() => *slot = datum.embedding,
                _ => return Err(failed(format!("bad or repeated index {}", datum.index))),
            }
        }
        let dims = vectors.first().map_or(0, Vec::len);
        if dims == 0 || vectors.iter().any(|v| v.len() != dims) {
            return Err(failed(
                "vectors are empty or of different lengths".to_owned(),
            ));
        }
        Ok(vectors)
    }
}
