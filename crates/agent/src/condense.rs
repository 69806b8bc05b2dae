//! Keeping the conversation inside the model's context window.
//!
//! Before a request whose conversation would pass [`CONDENSE_AT`] of the window, the older
//! turns are replaced by a summary: the system prompt and the task stay first, the latest
//! turns (each tool call with its result) stay last, and what lies between is summarised by
//! the model (without tools), or listed turn by turn when the model cannot. Files the summary
//! mentions can be read again with the tools, so their contents need not survive in it.

use cap_llm::{Message, RetryPolicy};

/// The share of the window past which the conversation is condensed.
pub(crate) const CONDENSE_AT: f64 = 0.75;

/// The model's latest turns kept whole (with their tool results).
const RECENT_TURNS: usize = 2;

/// What opens the user message holding the summary.
pub(crate) const SUMMARY_HEADER: &str = "Summary of the earlier turns of this task (they were condensed to keep the conversation \
     inside the model's context window; read files again with the tools when you need their \
     contents):\n\n";

/// Characters of one turn shown to the summariser.
const TURN_CHARS: usize = 4_000;

/// Characters of the summary kept.
const SUMMARY_CHARS: usize = 8_000;

/// A rough token count of `messages`: four characters a token, plus each message's framing.
/// Used where the endpoint did not report its count.
pub(crate) fn estimate_tokens(messages: &[Message]) -> u64 {
    messages
        .iter()
        .map(|message| {
            let chars = match message {
                Message::System { content } | Message::User { content } => content.len(),
                Message::Tool { content, .. } => content.len(),
                Message::Assistant {
                    content,
                    tool_calls,
                } => {
                    content.as_ref().map_or(0, String::len)
                        + tool_calls
                            .iter()
                            .map(|call| call.name.len() + call.arguments.len())
                            .sum::<usize>()
                }
            };
            (chars as u64).div_ceil(4) + 4
        })
        .sum()
}

/// What the conversation is known to weigh: the endpoint's own count for everything up to
/// its last reply, estimated for what came after.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Weight {
    /// Tokens of the last request and its reply, as the endpoint counted them, and how many
    /// messages that covered.
    reported: Option<(u64, usize)>,
}

impl Weight {
    /// Records the endpoint's count for a conversation of `messages` (the reply included).
    pub(crate) fn reported(&mut self, tokens: u64, messages: usize) {
        self.reported = Some((tokens, messages));
    }

    /// Forgets the count (the conversation was rewritten).
    pub(crate) fn reset(&mut self) {
        self.reported = None;
    }

    /// The conversation's tokens now.
    pub(crate) fn of(&self, messages: &[Message]) -> u64 {
        match self.reported {
            Some((tokens, covered)) if covered <= messages.len() => {
                tokens + estimate_tokens(&messages[covered..])
            }
            _ => estimate_tokens(messages),
        }
    }
}

/// The range of `messages` to summarise: after the system prompt and the task, up to the
/// start of the model's last [`RECENT_TURNS`] turns (so a tool call never loses its result).
/// `None` when nothing lies between.
pub(crate) fn condensable(messages: &[Message]) -> Option<std::ops::Range<usize>> {
    let turns: Vec<usize> = messages
        .iter()
        .enumerate()
        .filter(|(_, message)| matches!(message, Message::Assistant { .. }))
        .map(|(index, _)| index)
        .collect();
    let keep_from = *turns.iter().rev().nth(RECENT_TURNS - 1)?;
    (keep_from > 2).then_some(2..keep_from)
}

/// The turns of `messages` as text for the summariser (each shortened).
fn transcript(messages: &[Message]) -> String {
    let mut text = String::new();
    for message in messages {
        let (who, body) = match message {
            Message::System { content } => ("system", content.clone()),
            Message::User { content } => ("user", content.clone()),
            Message::Tool { content, .. } => ("tool result", content.clone()),
            Message::Assistant {
                content,
                tool_calls,
            } => {
                let mut body = content.clone().unwrap_or_default();
                for call in tool_calls {
                    body.push_str(&format!("\n[called {} {}]", call.name, call.arguments));
                }
                ("assistant", body)
            }
        };
        text.push_str(&format!(
            "--- {who} ---\n{}\n",
            shorten(body.trim(), TURN_CHARS)
        ));
    }
    text
}

/// A summary made without the model: each tool call of the turns, in order.
fn listed(messages: &[Message]) -> String {
    let calls: Vec<String> = messages
        .iter()
        .filter_map(|message| match message {
            Message::Assistant { tool_calls, .. } => Some(tool_calls),
            _ => None,
        })
        .flatten()
        .map(|call| format!("- called {} {}", call.name, shorten(&call.arguments, 300)))
        .collect();
    format!(
        "The model could not summarise them; the tool calls they made were:\n{}",
        calls.join("\n")
    )
}

fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// What a condensation did, for its event.
#[derive(Debug)]
pub(crate) struct Condensed {
    pub(crate) tokens_before: u64,
    pub(crate) tokens_after: u64,
    pub(crate) messages_replaced: usize,
    pub(crate) summary: String,
    /// Why the model's summary was not used, when it was not.
    pub(crate) summariser_failed: Option<String>,
}

/// Replaces the condensable turns of `messages` by a summary the `router` writes (listed
/// turns when it cannot). `None` when nothing can be condensed.
pub(crate) async fn condense(
    router: &cap_llm::ModelRouter,
    policy: &RetryPolicy,
    messages: &mut Vec<Message>,
    tokens_before: u64,
) -> Option<Condensed> {
    let range = condensable(messages)?;
    let older = &messages[range.clone()];
    let request = [
        Message::system(
            "You summarise the earlier part of a coding agent's work on a task, for the agent \
             itself to continue from. Keep: what was found (files, functions, causes), what \
             was changed and where, what was tried and failed, test results, and what remains \
             to do. Leave out file contents that can be read again. Answer with the summary \
             only.",
        ),
        Message::user(transcript(older)),
    ];
    let (summary, summariser_failed) = match router.chat(&request, &[], policy).await {
        Ok(routed) => match routed.reply.content.filter(|text| !text.trim().is_empty()) {
            Some(text) => (shorten(text.trim(), SUMMARY_CHARS), None),
            None => (listed(older), Some("it answered without text".to_owned())),
        },
        Err(error) => (listed(older), Some(cap_errors::chain(&error))),
    };
    let messages_replaced = range.len();
    messages.splice(range, [Message::user(format!("{SUMMARY_HEADER}{summary}"))]);
    Some(Condensed {
        tokens_before,
        tokens_after: estimate_tokens(messages),
        messages_replaced,
        summary,
        summariser_failed,
    })
}

#[cfg(test)]
#[path = "condense_tests.rs"]
mod tests;
