//! The chat-completions wire format: what is sent and what is accepted back.

use serde::{Deserialize, Serialize};

use crate::{AssistantReply, Error, Message, Result, ToolCall, ToolSpec, Usage};

/// The request body.
#[derive(Debug, Serialize)]
pub(crate) struct ChatRequest<'a> {
    model: &'a str,
    messages: &'a [Message],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'static str>,
    stream: bool,
}

impl<'a> ChatRequest<'a> {
    pub(crate) fn new(model: &'a str, messages: &'a [Message], tools: &'a [ToolSpec]) -> Self {
        let tools: Vec<WireTool<'a>> = tools
            .iter()
            .map(|function| WireTool {
                kind: "function",
                function,
            })
            .collect();
        let tool_choice = (!tools.is_empty()).then_some("auto");
        Self {
            model,
            messages,
            tools,
            tool_choice,
            stream: false,
        }
    }
}

#[derive(Debug, Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: &'a ToolSpec,
}

/// A tool call as the API spells it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireToolCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(rename = "type", default = "function_kind")]
    kind: String,
    function: WireFunction,
}

fn function_kind() -> String {
    "function".to_owned()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct WireFunction {
    name: String,
    /// A string of JSON text per the API; some servers (Ollama) send an object instead.
    #[serde(default)]
    arguments: serde_json::Value,
}

impl From<ToolCall> for WireToolCall {
    fn from(call: ToolCall) -> Self {
        Self {
            id: Some(call.id),
            kind: function_kind(),
            function: WireFunction {
                name: call.name,
                arguments: serde_json::Value::String(call.arguments),
            },
        }
    }
}

impl From<WireToolCall> for ToolCall {
    fn from(call: WireToolCall) -> Self {
        let arguments = match call.function.arguments {
            serde_json::Value::String(text) => text,
            // No arguments at all: an empty object, so tools without required
            // parameters still work.
            serde_json::Value::Null => "{}".to_owned(),
            other => other.to_string(),
        };
        Self {
            id: call.id.unwrap_or_default(),
            name: call.function.name,
            arguments,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ChatResponse {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    message: ResponseMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ResponseMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

/// Parses a successful response body.
pub(crate) fn parse_response(body: &[u8]) -> Result<AssistantReply> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let response: ChatResponse =
        serde_path_to_error::deserialize(&mut de).map_err(|source| Error::Decode { source })?;
    let choice = response
        .choices
        .into_iter()
        .next()
        .ok_or(Error::NoChoices)?;
    let tool_calls = choice
        .message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(index, call)| {
            let mut call = ToolCall::from(call);
            if call.id.is_empty() {
                call.id = format!("call_{index}");
            }
            call
        })
        .collect();
    let content = choice.message.content.filter(|text| !text.is_empty());
    Ok(AssistantReply {
        content,
        tool_calls,
        finish_reason: choice.finish_reason,
        usage: response.usage,
    })
}

/// The most useful short text of an error body: `error.message` when it is OpenAI-shaped,
/// else the body itself, shortened.
pub(crate) fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: ErrorDetail,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ErrorDetail {
        Object { message: String },
        Text(String),
    }
    let text = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody {
            error: ErrorDetail::Object { message } | ErrorDetail::Text(message),
        }) => message,
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    shorten(text.trim(), 500)
}

fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}
