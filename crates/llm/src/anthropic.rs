//! Anthropic's Messages API wire format (`POST {base_url}/messages`): the conversation in its
//! shapes, and its reply back in the crate's.
//!
//! The conversation maps as the API asks: system messages become the top-level `system`;
//! roles alternate, so consecutive messages of one role (tool results, then a human
//! constraint) merge into one message of content blocks; a tool call is a `tool_use` block
//! whose `input` is an object, a tool result a `tool_result` block in a user message.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{AssistantReply, Error, Message, Result, ToolCall, ToolSpec, Usage};

/// The `anthropic-version` header every request carries.
pub(crate) const API_VERSION: &str = "2023-06-01";

/// The request body.
#[derive(Debug, Serialize)]
pub(crate) struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "String::is_empty")]
    system: String,
    messages: Vec<WireMessage>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
}

#[derive(Debug, Serialize)]
struct WireMessage {
    role: &'static str,
    content: Vec<Value>,
}

#[derive(Debug, Serialize)]
struct WireTool<'a> {
    name: &'a str,
    description: &'a str,
    input_schema: &'a Value,
}

impl<'a> MessagesRequest<'a> {
    pub(crate) fn new(
        model: &'a str,
        max_tokens: u32,
        messages: &[Message],
        tools: &'a [ToolSpec],
    ) -> Self {
        let mut system = Vec::new();
        let mut wire: Vec<WireMessage> = Vec::new();
        for message in messages {
            let (role, blocks) = match message {
                Message::System { content } => {
                    system.push(content.as_str());
                    continue;
                }
                Message::User { content } => ("user", vec![text_block(content)]),
                Message::Tool {
                    tool_call_id,
                    content,
                } => (
                    "user",
                    vec![serde_json::json!({
                        "type": "tool_result",
                        "tool_use_id": tool_call_id,
                        "content": content,
                    })],
                ),
                Message::Assistant {
                    content,
                    tool_calls,
                } => {
                    let mut blocks: Vec<Value> = content
                        .iter()
                        .filter(|text| !text.trim().is_empty())
                        .map(|text| text_block(text))
                        .collect();
                    blocks.extend(tool_calls.iter().map(tool_use_block));
                    if blocks.is_empty() {
                        // The API refuses an empty turn; the model did answer, with nothing.
                        blocks.push(text_block("(no answer)"));
                    }
                    ("assistant", blocks)
                }
            };
            match wire.last_mut() {
                Some(last) if last.role == role => last.content.extend(blocks),
                _ => wire.push(WireMessage {
                    role,
                    content: blocks,
                }),
            }
        }
        let tools = tools
            .iter()
            .map(|tool| WireTool {
                name: &tool.name,
                description: &tool.description,
                input_schema: &tool.parameters,
            })
            .collect();
        Self {
            model,
            max_tokens,
            system: system.join("\n\n"),
            messages: wire,
            tools,
        }
    }
}

fn text_block(text: &str) -> Value {
    serde_json::json!({"type": "text", "text": text})
}

/// A tool call as a `tool_use` block. Arguments that are not a JSON object (a model of
/// another provider wrote them, invalid) go as an empty object: the tool's error about them
/// already follows in the conversation.
fn tool_use_block(call: &ToolCall) -> Value {
    let input = match serde_json::from_str::<Value>(&call.arguments) {
        Ok(object @ Value::Object(_)) => object,
        _ => Value::Object(serde_json::Map::new()),
    };
    serde_json::json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input})
}

#[derive(Debug, Deserialize)]
struct MessagesResponse {
    content: Vec<ContentBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    /// Blocks this client does not use (thinking, ...).
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
}

/// Parses a successful response body.
pub(crate) fn parse_response(body: &[u8]) -> Result<AssistantReply> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let response: MessagesResponse =
        serde_path_to_error::deserialize(&mut de).map_err(|source| Error::Decode { source })?;
    let mut texts = Vec::new();
    let mut tool_calls = Vec::new();
    for block in response.content {
        match block {
            ContentBlock::Text { text } => texts.push(text),
            ContentBlock::ToolUse { id, name, input } => {
                let arguments = match input {
                    Value::Null => "{}".to_owned(),
                    other => other.to_string(),
                };
                tool_calls.push(ToolCall {
                    id,
                    name,
                    arguments,
                });
            }
            ContentBlock::Other => {}
        }
    }
    let content = Some(texts.join("\n")).filter(|text| !text.is_empty());
    // Named as chat completions name them, so callers read one vocabulary.
    let finish_reason = response.stop_reason.map(|reason| {
        match reason.as_str() {
            "tool_use" => "tool_calls",
            "end_turn" | "stop_sequence" => "stop",
            "max_tokens" => "length",
            other => other,
        }
        .to_owned()
    });
    let usage = response.usage.map(|usage| {
        let prompt_tokens =
            usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens;
        Usage {
            prompt_tokens,
            completion_tokens: usage.output_tokens,
            total_tokens: prompt_tokens + usage.output_tokens,
        }
    });
    Ok(AssistantReply {
        content,
        tool_calls,
        finish_reason,
        usage,
    })
}

#[cfg(test)]
#[path = "anthropic_tests.rs"]
mod tests;
