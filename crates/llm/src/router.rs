//! A primary model endpoint and its fallbacks, tried in order.
//!
//! Each endpoint keeps its own retries and circuit breaker ([`ChatClient::chat_with_retry`]):
//! a request goes to the first endpoint whose circuit is closed; when that endpoint fails
//! after its retries (or its circuit is open), the next one is asked. An endpoint whose
//! circuit opened is skipped at once until the circuit lets a trial request through, so a
//! failing primary costs one fast refusal per request, not its retries.

use crate::{
    AssistantReply, ChatClient, Error, Message, ModelConfig, Result, RetryPolicy, ToolSpec,
};

/// The endpoints of one role, primary first.
#[derive(Debug, Clone)]
pub struct ModelRouter {
    endpoints: Vec<ChatClient>,
}

/// A reply, with which endpoint gave it and how the ones before it failed.
#[derive(Debug)]
pub struct RoutedReply {
    /// The model's answer.
    pub reply: AssistantReply,
    /// The endpoint that answered (its index: 0 is the primary).
    pub endpoint: usize,
    /// The endpoints asked before it (`model at base URL`) and how each failed.
    pub failed: Vec<(String, Error)>,
}

impl ModelRouter {
    /// A router over `primary` then `fallbacks`; fails when one of them is not usable.
    pub fn new(primary: ModelConfig, fallbacks: Vec<ModelConfig>) -> Result<Self> {
        let endpoints = std::iter::once(primary)
            .chain(fallbacks)
            .map(ChatClient::new)
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { endpoints })
    }

    /// The endpoints' configurations, primary first.
    pub fn configs(&self) -> impl Iterator<Item = &ModelConfig> {
        self.endpoints.iter().map(ChatClient::config)
    }

    /// Asks the endpoints in order until one answers. With a single endpoint its own error
    /// comes back as is; with several, [`Error::AllEndpointsFailed`] lists each failure.
    pub async fn chat(
        &self,
        messages: &[Message],
        tools: &[ToolSpec],
        policy: &RetryPolicy,
    ) -> Result<RoutedReply> {
        let mut failed = Vec::new();
        for (endpoint, client) in self.endpoints.iter().enumerate() {
            match client.chat_with_retry(messages, tools, policy).await {
                Ok(reply) => {
                    return Ok(RoutedReply {
                        reply,
                        endpoint,
                        failed,
                    });
                }
                Err(error) => {
                    let name = client.config().endpoint_name();
                    tracing::warn!(
                        endpoint = %name,
                        error = &error as &dyn std::error::Error,
                        "model endpoint failed"
                    );
                    failed.push((name, error));
                }
            }
        }
        if failed.len() == 1
            && let Some((_, error)) = failed.pop()
        {
            return Err(error);
        }
        Err(Error::AllEndpointsFailed { failures: failed })
    }
}
