//! The tool-calling loop.

use cap_agent_server::Events as Emitter;
use cap_agent_server::Steering;
use cap_llm::{Message, ModelRouter, RoutedReply, ToolSpec};
use cap_proto::agent::v1::{CheckpointKind, TaskEvent, TaskRequest};
use cap_sandbox_client::Sandbox;
use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;

use crate::overlay::Overlay;
use crate::prompt::{SYSTEM_PROMPT, task_prompt};
use crate::tools::{TOOL_NAMES, ToolOutput, Toolbox, spec};
use crate::workspace::{SandboxWorkspace, Workspace};
use crate::{AGENT_NAME, AgentConfig, Error, Finish, Outcome, Result};

/// Told to the model when its reply was cut off at the token limit.
const CUT_OFF: &str = "Your reply was cut off at the output limit. Continue, with shorter \
steps: call one tool at a time, or give the final summary.";

/// Put before a constraint a human added while the task runs.
const HUMAN_CONSTRAINT: &str = "A human reviewer added a constraint to this task while you \
work. Follow it from now on, and undo earlier edits that break it:\n";

/// The coding agent: a model, tools and a sandbox.
#[derive(Debug, Clone)]
pub struct CodingAgent {
    config: AgentConfig,
    chat: ModelRouter,
    /// Writes the summaries of condensed turns (`AgentConfig::summariser`, else `chat`).
    summariser: Option<ModelRouter>,
    sandbox: Sandbox,
}

impl CodingAgent {
    /// An agent using `config`'s model and `sandbox` (the sandbox service, in production).
    pub fn new(config: AgentConfig, sandbox: Sandbox) -> Result<Self> {
        if config.max_steps == 0 {
            return Err(Error::Config {
                reason: "max_steps must be at least 1".to_owned(),
                source: None,
            });
        }
        if config.max_command_timeout < config.command_timeout || config.command_timeout.is_zero() {
            return Err(Error::Config {
                reason:
                    "the command timeout must be positive and at most the maximum command timeout"
                        .to_owned(),
                source: None,
            });
        }
        let chat =
            ModelRouter::new(config.model.clone(), config.fallbacks.clone()).map_err(|source| {
                Error::Config {
                    reason: "the model endpoint settings are not usable".to_owned(),
                    source: Some(source),
                }
            })?;
        let summariser = config
            .summariser
            .clone()
            .map(|summariser| ModelRouter::new(summariser, Vec::new()))
            .transpose()
            .map_err(|source| Error::Config {
                reason: "the summarising model's settings are not usable".to_owned(),
                source: Some(source),
            })?;
        Ok(Self {
            config,
            chat,
            summariser,
            sandbox,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// Checks that `request` can be run: an objective, a sandbox session, known tools.
    pub fn validate(request: &TaskRequest) -> Result<()> {
        let invalid = |reason: String| Err(Error::InvalidRequest { reason });
        if request.task_id.trim().is_empty() {
            return invalid("task_id is empty".to_owned());
        }
        if request.objective.trim().is_empty() {
            return invalid("objective is empty".to_owned());
        }
        let session = request
            .repo
            .as_ref()
            .map_or("", |repo| repo.sandbox_session_id.as_str());
        if session.trim().is_empty() {
            return invalid("repo.sandbox_session_id is empty".to_owned());
        }
        for tool in &request.tools {
            if !TOOL_NAMES.contains(&tool.name.as_str()) {
                return invalid(format!(
                    "unknown tool {:?} requested; the coding agent's tools are: {}",
                    tool.name,
                    TOOL_NAMES.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Runs `request` in its sandbox session until the model finishes, the step limit is
    /// reached or `cancel` fires, sending the events to `events`. Constraints that come
    /// through `steering` are given to the model before its next step.
    pub async fn run(
        &self,
        request: TaskRequest,
        events: Sender<TaskEvent>,
        cancel: CancellationToken,
        steering: Steering,
    ) -> Result<Outcome> {
        Self::validate(&request)?;
        let session = request
            .repo
            .as_ref()
            .map(|repo| repo.sandbox_session_id.clone())
            .unwrap_or_default();
        let ws = SandboxWorkspace::new(self.sandbox.clone(), session);
        self.run_in(&ws, request, events, cancel, steering).await
    }

    /// [`CodingAgent::run`] against any [`Workspace`].
    pub async fn run_in<W: Workspace>(
        &self,
        ws: &W,
        request: TaskRequest,
        events: Sender<TaskEvent>,
        cancel: CancellationToken,
        mut steering: Steering,
    ) -> Result<Outcome> {
        Self::validate(&request)?;
        tracing::info!(task_id = %request.task_id, "coding task started");
        let emitter = Emitter::new(AGENT_NAME, events);
        let mut overlay = Overlay::default();
        let result = self
            .drive(ws, &request, &emitter, &mut overlay, &cancel, &mut steering)
            .await;
        match &result {
            Ok(outcome) => tracing::info!(
                task_id = %request.task_id,
                finish = ?outcome.finish,
                steps = outcome.steps,
                files = outcome.files_changed.len(),
                "coding task ended"
            ),
            Err(error) => {
                tracing::warn!(task_id = %request.task_id, error = %error.chain(), "coding task failed");
                // Keep the work done so far: the workspace is what a retry starts from.
                if overlay.is_dirty()
                    && let Err(flush) = overlay.flush(ws).await
                {
                    tracing::warn!(error = %flush.chain(), "staged edits could not be written");
                }
            }
        }
        result
    }

    async fn drive<W: Workspace>(
        &self,
        ws: &W,
        request: &TaskRequest,
        emitter: &Emitter,
        overlay: &mut Overlay,
        cancel: &CancellationToken,
        steering: &mut Steering,
    ) -> Result<Outcome> {
        let session_id = request
            .repo
            .as_ref()
            .map(|repo| repo.sandbox_session_id.clone())
            .unwrap_or_default();
        if let Err(error) = ws.list_directory("", false).await {
            let recoverable = error.is_fatal();
            let error = Error::Session {
                session_id,
                source: Box::new(error),
            };
            emitter.error("error", error.chain(), recoverable).await?;
            return Err(error);
        }
        let tools = offered_tools(request);
        let test_command = request
            .repo
            .as_ref()
            .map(|repo| repo.test_command.trim())
            .filter(|command| !command.is_empty());
        let mut messages = vec![
            Message::system(SYSTEM_PROMPT),
            Message::user(task_prompt(request)),
        ];
        let mut steps = 0u32;
        // Which endpoint answered last (0: the primary), to report each hand-over once.
        let mut answering = 0usize;
        let mut weight = crate::condense::Weight::default();
        loop {
            if steps >= self.config.max_steps {
                return self.step_limit(ws, emitter, overlay, steps).await;
            }
            for constraint in steering.take_new() {
                emitter
                    .checkpoint(
                        CheckpointKind::ConstraintAdded,
                        constraint.clone(),
                        serde_json::json!({ "step": steps }).to_string(),
                    )
                    .await?;
                messages.push(Message::user(format!("{HUMAN_CONSTRAINT}{constraint}")));
            }
            self.keep_in_window(&mut messages, &mut weight, emitter)
                .await?;
            let reply = tokio::select! {
                biased;
                () = cancel.cancelled() => None,
                reply = self.chat.chat(&messages, &tools, &self.config.retry) => Some(reply),
            };
            let Some(reply) = reply else {
                return interrupted(ws, emitter, overlay, steps).await;
            };
            steps += 1;
            let reply = match reply {
                Ok(routed) => {
                    if routed.endpoint != answering {
                        answering = routed.endpoint;
                        let message = self.hand_over(&routed);
                        emitter.error("warning", message, true).await?;
                    }
                    routed.reply
                }
                Err(source) => {
                    let error = Error::Model { source };
                    let recoverable =
                        matches!(&error, Error::Model { source } if source.is_retryable());
                    emitter.error("error", error.chain(), recoverable).await?;
                    return Err(error);
                }
            };
            messages.push(Message::from(&reply));
            if let Some(usage) = reply.usage {
                let tokens = usage.prompt_tokens + usage.completion_tokens;
                weight.reported(tokens, messages.len());
            }
            let text = reply
                .content
                .as_deref()
                .map(str::trim)
                .filter(|text| !text.is_empty());
            if reply.tool_calls.is_empty() {
                if reply.finish_reason.as_deref() == Some("length") {
                    if let Some(text) = text {
                        emitter.thought(text).await?;
                    }
                    messages.push(Message::user(CUT_OFF));
                    continue;
                }
                let summary = text.unwrap_or_default().to_owned();
                return finished(ws, emitter, overlay, steps, summary).await;
            }
            if let Some(text) = text {
                emitter.thought(text).await?;
            }
            for call in &reply.tool_calls {
                emitter
                    .action(&call.id, &call.name, &call.arguments)
                    .await?;
                let output = if tools.iter().any(|tool| tool.name == call.name) {
                    let mut toolbox = Toolbox {
                        ws,
                        overlay: &mut *overlay,
                        config: &self.config,
                        test_command,
                    };
                    let result = tokio::select! {
                        biased;
                        () = cancel.cancelled() => None,
                        result = toolbox.call(&call.name, &call.arguments) => Some(result),
                    };
                    match result {
                        None => return interrupted(ws, emitter, overlay, steps).await,
                        Some(Ok(output)) => output,
                        Some(Err(error)) => {
                            let output =
                                ToolOutput::error(format!("the sandbox failed: {}", error.chain()));
                            observe(emitter, &call.id, &call.name, &output).await?;
                            emitter.error("error", error.chain(), true).await?;
                            return Err(error);
                        }
                    }
                } else {
                    let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_str()).collect();
                    ToolOutput::error(format!(
                        "unknown tool {:?}; the tools are: {}",
                        call.name,
                        names.join(", ")
                    ))
                };
                observe(emitter, &call.id, &call.name, &output).await?;
                if output.refused {
                    // What the model tried is a reviewer's business, not only the model's.
                    let message = format!(
                        "the {} call was refused: {}",
                        call.name,
                        output.content.trim_start_matches("Error: ")
                    );
                    emitter.error("warning", message, true).await?;
                }
                messages.push(Message::tool(&call.id, &output.content));
            }
        }
    }

    /// Condenses the conversation when it would pass its share of the context window, and
    /// says so in a `context_condensed` checkpoint.
    async fn keep_in_window(
        &self,
        messages: &mut Vec<Message>,
        weight: &mut crate::condense::Weight,
        emitter: &Emitter,
    ) -> Result<()> {
        let window = self.config.context_window;
        let tokens = weight.of(messages);
        if window == 0 || (tokens as f64) <= crate::condense::CONDENSE_AT * f64::from(window) {
            return Ok(());
        }
        let Some(done) = crate::condense::condense(
            self.summariser.as_ref().unwrap_or(&self.chat),
            &self.config.retry,
            messages,
            tokens,
        )
        .await
        else {
            return Ok(());
        };
        weight.reset();
        let mut description = format!(
            "the conversation (about {} tokens of a {window}-token window) was condensed: {} \
             earlier messages replaced by a summary, about {} tokens now",
            done.tokens_before, done.messages_replaced, done.tokens_after
        );
        if let Some(why) = &done.summariser_failed {
            description.push_str(&format!(
                "; the model could not summarise ({why}), so the summary lists the tool calls"
            ));
        }
        let state = serde_json::json!({
            "tokens_before": done.tokens_before,
            "tokens_after": done.tokens_after,
            "messages_replaced": done.messages_replaced,
            "summary": done.summary,
        });
        emitter
            .checkpoint(
                CheckpointKind::ContextCondensed,
                description,
                state.to_string(),
            )
            .await?;
        Ok(())
    }

    /// What a reviewer reads when another model endpoint than the last one answered.
    fn hand_over(&self, routed: &RoutedReply) -> String {
        let name = |index: usize| {
            self.chat
                .configs()
                .nth(index)
                .map(cap_llm::ModelConfig::endpoint_name)
                .unwrap_or_default()
        };
        let failures: Vec<String> = routed
            .failed
            .iter()
            .map(|(endpoint, error)| format!("{endpoint}: {}", cap_errors::chain(error)))
            .collect();
        if failures.is_empty() {
            format!("the model endpoint {} answers again", name(routed.endpoint))
        } else {
            format!(
                "{} failed, so {} answers: {}",
                if failures.len() == 1 {
                    "the model endpoint before it"
                } else {
                    "the model endpoints before it"
                },
                name(routed.endpoint),
                failures.join("; ")
            )
        }
    }

    async fn step_limit<W: Workspace>(
        &self,
        ws: &W,
        emitter: &Emitter,
        overlay: &mut Overlay,
        steps: u32,
    ) -> Result<Outcome> {
        flush(ws, emitter, overlay).await?;
        let max = self.config.max_steps;
        emitter
            .error(
                "warning",
                format!(
                    "the step limit of {max} model turns was reached before the model finished"
                ),
                true,
            )
            .await?;
        let outcome = Outcome {
            finish: Finish::StepLimitReached,
            summary: String::new(),
            steps,
            files_changed: overlay.files_changed(),
        };
        emitter
            .checkpoint(
                CheckpointKind::StepLimitReached,
                format!("coding agent stopped at the step limit after {steps} steps"),
                state_json(&outcome),
            )
            .await?;
        Ok(outcome)
    }
}

/// The tools offered for `request`: those it names, or all.
fn offered_tools(request: &TaskRequest) -> Vec<ToolSpec> {
    if request.tools.is_empty() {
        return crate::tool_specs();
    }
    TOOL_NAMES
        .iter()
        .filter(|name| request.tools.iter().any(|tool| tool.name == **name))
        .filter_map(|name| spec(name))
        .collect()
}

fn state_json(outcome: &Outcome) -> String {
    serde_json::json!({
        "summary": outcome.summary,
        "steps": outcome.steps,
        "files_changed": outcome.files_changed,
    })
    .to_string()
}

/// Streams what a tool call returned.
async fn observe(emitter: &Emitter, call_id: &str, tool: &str, output: &ToolOutput) -> Result<()> {
    let content = output.content.clone();
    Ok(emitter
        .observation(
            call_id,
            tool,
            output.is_error,
            content,
            output.detail.clone(),
        )
        .await?)
}

/// Writes the staged edits; a failure is reported and ends the task.
async fn flush<W: Workspace>(ws: &W, emitter: &Emitter, overlay: &mut Overlay) -> Result<()> {
    if let Err(error) = overlay.flush(ws).await {
        emitter
            .error(
                "error",
                format!("the staged edits could not be written: {}", error.chain()),
                true,
            )
            .await?;
        return Err(error);
    }
    Ok(())
}

async fn finished<W: Workspace>(
    ws: &W,
    emitter: &Emitter,
    overlay: &mut Overlay,
    steps: u32,
    summary: String,
) -> Result<Outcome> {
    if !summary.is_empty() {
        emitter.thought(&summary).await?;
    }
    flush(ws, emitter, overlay).await?;
    let outcome = Outcome {
        finish: Finish::Finished,
        summary,
        steps,
        files_changed: overlay.files_changed(),
    };
    emitter
        .checkpoint(
            CheckpointKind::AgentFinished,
            format!("coding agent finished after {steps} steps"),
            state_json(&outcome),
        )
        .await?;
    Ok(outcome)
}

async fn interrupted<W: Workspace>(
    ws: &W,
    emitter: &Emitter,
    overlay: &mut Overlay,
    steps: u32,
) -> Result<Outcome> {
    // The edits so far are kept in the workspace, so a resumed task sees them.
    if let Err(error) = overlay.flush(ws).await {
        tracing::warn!(error = %error.chain(), "staged edits could not be written at the interrupt");
    }
    let outcome = Outcome {
        finish: Finish::Interrupted,
        summary: String::new(),
        steps,
        files_changed: overlay.files_changed(),
    };
    emitter
        .checkpoint(
            CheckpointKind::Interrupted,
            format!("coding agent interrupted after {steps} steps"),
            state_json(&outcome),
        )
        .await?;
    Ok(outcome)
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
