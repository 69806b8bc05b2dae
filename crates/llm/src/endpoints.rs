//! The operator's fallback endpoints, from a TOML file:
//!
//! ```toml
//! [[fallback]]
//! provider = "anthropic"              # or "openai" (the default)
//! base_url = "https://models.example/v1"
//! model = "claude-sonnet-4-5"
//! api_key_env = "ANTHROPIC_API_KEY"   # the variable holding the key; never the key itself
//! max_output_tokens = 8192            # optional
//! timeout_seconds = 120               # optional
//! ```
//!
//! Keys stay out of the file (it is configuration, copied and reviewed): each endpoint names
//! the environment variable that holds its key.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::{Error, ModelConfig, Provider, Result};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    fallback: Vec<Endpoint>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Endpoint {
    #[serde(default)]
    provider: Provider,
    base_url: String,
    model: String,
    #[serde(default)]
    api_key_env: Option<String>,
    /// Present only to refuse it with a clear message.
    #[serde(default)]
    api_key: Option<toml::Value>,
    #[serde(default)]
    max_output_tokens: Option<u32>,
    #[serde(default)]
    timeout_seconds: Option<u64>,
}

/// Reads the fallback endpoints of `path`, in order; what the file does not set comes from
/// `defaults` (the primary's timeout, output and circuit settings). `env` looks a variable
/// up (the process environment in production).
pub fn load_fallbacks(
    path: &Path,
    defaults: &ModelConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<ModelConfig>> {
    let invalid = |reason: String| Error::InvalidConfig {
        reason: format!("model endpoints file {}: {reason}", path.display()),
    };
    let text = std::fs::read_to_string(path).map_err(|error| invalid(error.to_string()))?;
    let file: File = toml::from_str(&text).map_err(|error| invalid(error.to_string()))?;
    file.fallback
        .into_iter()
        .enumerate()
        .map(|(index, endpoint)| {
            let at = format!("fallback #{}", index + 1);
            if endpoint.api_key.is_some() {
                return Err(invalid(format!(
                    "{at} holds api_key; keys are never written in the file, name the \
                     environment variable holding it with api_key_env"
                )));
            }
            let api_key = match &endpoint.api_key_env {
                Some(variable) => {
                    Some(env(variable).filter(|key| !key.is_empty()).ok_or_else(|| {
                        invalid(format!(
                            "{at}: the environment variable {variable} is not set"
                        ))
                    })?)
                }
                None => None,
            };
            let config = ModelConfig {
                provider: endpoint.provider,
                base_url: endpoint.base_url,
                api_key,
                model: endpoint.model,
                timeout: endpoint
                    .timeout_seconds
                    .map_or(defaults.timeout, Duration::from_secs),
                max_output_tokens: endpoint
                    .max_output_tokens
                    .unwrap_or(defaults.max_output_tokens),
                circuit_failures: defaults.circuit_failures,
                circuit_open_for: defaults.circuit_open_for,
            };
            // The same checks as the client's, named by the endpoint's place in the file.
            crate::ChatClient::new(config.clone())
                .map_err(|error| invalid(format!("{at}: {error}")))?;
            Ok(config)
        })
        .collect()
}

#[cfg(test)]
#[path = "endpoints_tests.rs"]
mod tests;
