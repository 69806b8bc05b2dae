//! The testing agent's role: runs a repository's own tests in the sandbox and decides the
//! verdict. [`cap_agent_server::AgentServer`] serves it as `AgentOrchestrator`.
//!
//! `ExecuteTask` takes the task's sandbox session, picks the test command (the repository's
//! configured one, else the one [`cap_testrun::detect`] finds), runs it through the sandbox
//! and streams what it did: a Thought (which command and why), an Action (`run_tests`), an
//! Observation with the command's result and a final Checkpoint (`tests_passed`,
//! `tests_failed` or `no_tests`, with the [`cap_testrun::TestRun`] as its state, plus
//! `problem`, the category of a broken run: `timed_out`, `runner_missing`, `runner_failed`,
//! `report_missing`, `report_malformed` or `no_tests`, and `framework`, the runner used).
//!
//! On a full run whose tests pass, three more steps may follow, each an Action and an
//! Observation, each adding a field to the state:
//! - `measure_coverage` (`coverage`): before (the base checkout) and after (the workspace),
//!   per file and overall, when the repository sets a threshold or the context asks
//!   (`coverage`: `true`/`false`); a drop below the threshold makes it `tests_failed` (FR-006);
//! - `prove_regression` (`regression`): with `regression_test_files` (and optionally
//!   `regression_test_pattern`) in the context, the UC-03 proof that the regression tests fail
//!   before the fix and pass after it; no proof makes it `tests_failed`;
//! - `run_linter` (`lint`): the formatters the repository configures are applied to the
//!   changed files (FR-005), then its linters run on them; violations make it `tests_failed`
//!   with the findings in the description, so they go back to the coding agent.
//!
//! Failing tests are a result, not an error: the stream ends OK. Only infrastructure failures (the
//! sandbox unreachable, an unknown session) end it with an error status, after an
//! ErrorReport event (the adapter's). `InterruptTask` stops a running task at once: the sandbox `Exec` stream
//! is dropped and the task ends with an `interrupted` Checkpoint.

use std::sync::Arc;
use std::time::Duration;

use cap_agent_server::{Events, Reported, Role, RoleError, error_chain};
use cap_proto::agent::v1::observation::Detail;
use cap_proto::agent::v1::task_event::Payload;
use cap_proto::agent::v1::{
    Action, CheckpointKind, CommandExecuted, Observation, TaskEvent, TaskRequest, Thought,
};
use cap_proto::common::v1::file_change;
use cap_proto::sandbox::v1::GetChangesRequest;
use cap_sandbox_client::{Sandbox, SandboxApi};
use cap_testrun::coverage::{self, CoverageDelta, Tree};
use cap_testrun::lint::{self, LintRun};
use cap_testrun::{Framework, Outcome, Problem, RegressionProof, RunReport, TestPlan, TestRun};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::Code;

pub mod contract;

/// The name this agent signs its events with and answers to in `GetAgentStatus`.
pub const AGENT_NAME: &str = contract::AGENT_NAME;

/// What can go wrong running a task.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request lacks something the agent needs.
    #[error("invalid task request: {0}")]
    InvalidRequest(&'static str),
    /// Detecting or running the tests failed (not the tests themselves).
    #[error("the tests could not be run")]
    Tests(#[source] cap_testrun::Error),
    /// The receiver of the task's events went away.
    #[error(transparent)]
    EventsClosed(#[from] cap_agent_server::EventsClosed),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl RoleError for Error {
    fn code(&self) -> Code {
        match self {
            Error::InvalidRequest(_) => Code::InvalidArgument,
            Error::EventsClosed(_) => Code::Cancelled,
            Error::Tests(inner) => match inner {
                cap_testrun::Error::Sandbox { source, .. } => match source.code() {
                    // An unknown session: the caller named something that is not there.
                    Code::NotFound => Code::NotFound,
                    Code::InvalidArgument | Code::FailedPrecondition => Code::FailedPrecondition,
                    Code::DeadlineExceeded => Code::DeadlineExceeded,
                    Code::Cancelled => Code::Cancelled,
                    // Transport failures surface as Unavailable or Unknown.
                    _ => Code::Unavailable,
                },
                cap_testrun::Error::InvalidPattern { .. }
                | cap_testrun::Error::EmptySessionId
                | cap_testrun::Error::EmptyCommand
                | cap_testrun::Error::InvalidPath { .. } => Code::InvalidArgument,
                cap_testrun::Error::MissingExitStatus => Code::Unavailable,
                cap_testrun::Error::MalformedJunit(_)
                | cap_testrun::Error::NotJunit(_)
                | cap_testrun::Error::MalformedJson(_)
                | cap_testrun::Error::MalformedCoverage { .. } => Code::Internal,
                cap_testrun::Error::CoverageUnavailable { .. } => Code::FailedPrecondition,
            },
        }
    }

    fn reported(&self) -> Reported {
        let recoverable = match self {
            Error::Tests(inner) => {
                matches!(
                    inner.sandbox_code(),
                    Some(Code::Unavailable | Code::Unknown | Code::DeadlineExceeded)
                ) || matches!(inner, cap_testrun::Error::MissingExitStatus)
            }
            Error::InvalidRequest(_) | Error::EventsClosed(_) => false,
        };
        Reported::ByAdapter { recoverable }
    }
}

/// The testing agent. Cheap to clone.
#[derive(Clone)]
pub struct TestingAgent {
    inner: Arc<Inner>,
}

struct Inner {
    sandbox: Sandbox,
    timeout: Duration,
}

impl TestingAgent {
    /// An agent running tests through `sandbox`, each run limited to `timeout`.
    pub fn new(sandbox: Sandbox, timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner { sandbox, timeout }),
        }
    }
}

impl Role for TestingAgent {
    const AGENT: &'static str = AGENT_NAME;
    type Job = Job;
    type Error = Error;

    fn accept(&self, request: TaskRequest) -> Result<Job> {
        Job::from_request(request)
    }

    /// The steps end at once on an interrupt: the sandbox `Exec` stream is dropped. A test
    /// run does not change course mid-run: constraints reach it with its next task.
    async fn run(
        &self,
        job: Job,
        events: mpsc::Sender<TaskEvent>,
        cancel: CancellationToken,
        _steering: cap_agent_server::Steering,
    ) -> Result<()> {
        let events = Events::new(AGENT_NAME, events);
        tokio::select! {
            result = self.work(&job, &events) => result,
            () = cancel.cancelled() => {
                tracing::info!(task_id = %job.task_id, "task interrupted");
                let state = serde_json::json!({ "task_id": job.task_id });
                events
                    .checkpoint(
                        CheckpointKind::Interrupted,
                        "interrupted on request; the test run was stopped".to_owned(),
                        state.to_string(),
                    )
                    .await?;
                Ok(())
            }
        }
    }
}

/// A validated task.
#[derive(Debug)]
pub struct Job {
    task_id: String,
    session_id: String,
    test_command: String,
    pattern: Option<String>,
    /// `Some(true/false)` when the caller asked for or against coverage.
    coverage: Option<bool>,
    /// The regression test files to prove (UC-03); empty when none.
    regression_files: Vec<String>,
    /// Their test pattern.
    regression_pattern: Option<String>,
}

impl Job {
    fn from_request(request: TaskRequest) -> Result<Self> {
        if request.task_id.trim().is_empty() {
            return Err(Error::InvalidRequest("task_id is empty"));
        }
        let repo = request.repo.ok_or(Error::InvalidRequest(
            "repo is missing; the testing agent needs repo.sandbox_session_id",
        ))?;
        if repo.sandbox_session_id.trim().is_empty() {
            return Err(Error::InvalidRequest("repo.sandbox_session_id is empty"));
        }
        let context = request.context.unwrap_or_default();
        let non_empty = |text: String| Some(text.trim().to_owned()).filter(|t| !t.is_empty());
        let pattern = non_empty(context.test_pattern);
        let coverage = context.coverage;
        let regression_files: Vec<String> = context
            .regression_test_files
            .into_iter()
            .filter_map(non_empty)
            .collect();
        let regression_pattern = non_empty(context.regression_test_pattern);
        Ok(Self {
            coverage,
            regression_files,
            regression_pattern,
            task_id: request.task_id,
            session_id: repo.sandbox_session_id,
            test_command: repo.test_command.trim().to_owned(),
            pattern,
        })
    }
}

impl TestingAgent {
    /// The task's steps; dropping this future stops them (and the sandbox `Exec` stream).
    async fn work(&self, job: &Job, events: &Events) -> Result<()> {
        let sandbox = &*self.inner.sandbox;
        let (plan, why) = if job.test_command.is_empty() {
            match cap_testrun::detect(sandbox, &job.session_id).await {
                Ok(Some(plan)) => {
                    let why = format!(
                        "it is the {} runner detected from the repository's files",
                        plan.framework
                    );
                    (plan, why)
                }
                Ok(None) => return self.no_runner(events).await,
                Err(error) => return Err(Error::Tests(error)),
            }
        } else {
            let plan = TestPlan::custom(job.test_command.clone());
            (
                plan,
                "it is the test command configured for the repository".to_owned(),
            )
        };
        let pattern = job.pattern.as_deref();
        let command = plan.command_for(pattern);
        let limited = pattern
            .map(|p| format!(", limited to tests matching {p:?}"))
            .unwrap_or_default();
        events
            .send(Payload::Thought(Thought {
                reasoning: format!("I will run `{command}` because {why}{limited}."),
            }))
            .await?;
        let call_id = format!("{}:run_tests", job.task_id);
        let arguments = serde_json::json!({ "test_pattern": pattern });
        events
            .send(Payload::Action(Action {
                call_id: call_id.clone(),
                tool: "run_tests".to_owned(),
                arguments_json: arguments.to_string(),
            }))
            .await?;
        let report = match cap_testrun::run_detailed(
            sandbox,
            &job.session_id,
            &plan,
            pattern,
            self.inner.timeout,
        )
        .await
        {
            Ok(report) => report,
            Err(error) => return Err(Error::Tests(error)),
        };
        let run = &report.run;
        tracing::info!(task_id = %job.task_id, outcome = %run.outcome, passed = run.passed,
            failed = run.failed, errors = run.errors, "tests ran");
        let mut summary = run.summary();
        if let Some(problem) = report.problem {
            summary.push_str(&format!("\nproblem: {problem}"));
        }
        events
            .send(Payload::Observation(Observation {
                call_id,
                tool: "run_tests".to_owned(),
                is_error: run.outcome == Outcome::Error,
                content: format!("{summary}\n\n{}", run.output_tail),
                detail: Some(Detail::CommandExecuted(CommandExecuted {
                    command: run.command.clone(),
                    exit_code: run.exit_code,
                    stdout_snippet: run.output_tail.clone(),
                    timed_out: run.timed_out,
                    duration_ms: run.duration_ms,
                })),
            }))
            .await?;
        let mut kind = match run.outcome {
            Outcome::Passed => CheckpointKind::TestsPassed,
            Outcome::NoTests => CheckpointKind::NoTests,
            // A runner that cannot run, or a suite that hangs, is not a passing suite.
            Outcome::Failed | Outcome::TimedOut | Outcome::Error => CheckpointKind::TestsFailed,
        };
        let mut description = summary;
        // Coverage of the whole suite, once it passes.
        let coverage = if run.outcome == Outcome::Passed && pattern.is_none() {
            self.coverage(sandbox, job, &plan, events).await?
        } else {
            None
        };
        if let Some(Ok(delta)) = &coverage {
            description.push('\n');
            description.push_str(&delta.summary());
            if delta.below_threshold {
                // FR-006: a change that drops coverage below the threshold fails.
                kind = CheckpointKind::TestsFailed;
            }
        }
        // UC-03: the regression test fails without the fix and passes with it.
        let regression = if run.outcome == Outcome::Passed && !job.regression_files.is_empty() {
            Some(self.regression(sandbox, job, &plan, events).await?)
        } else {
            None
        };
        if let Some(Ok(proof)) = &regression {
            if proof.proven {
                description.push_str(
                    "\nregression test proven: it fails before the fix and passes after it",
                );
            } else {
                description.push_str(&format!(
                    "\nregression test NOT proven: before the fix it {} ({} failed), after it {}",
                    proof.before.run.outcome, proof.before.run.failed, proof.after.run.outcome
                ));
                kind = CheckpointKind::TestsFailed;
            }
        } else if let Some(Err(message)) = &regression {
            description.push_str(&format!("\nregression test could not be proven: {message}"));
            kind = CheckpointKind::TestsFailed;
        }
        // The repository's formatters and linters on the changed files.
        let lint = if pattern.is_none() {
            self.lint(sandbox, job, events).await?
        } else {
            None
        };
        if let Some(Ok(lint)) = &lint {
            let violations: Vec<String> = lint
                .runs
                .iter()
                .flat_map(|run| {
                    run.violations.iter().map(move |v| {
                        format!(
                            "{}: {}:{}:{} {} {}",
                            run.tool, v.file, v.line, v.column, v.code, v.message
                        )
                    })
                })
                .collect();
            if !violations.is_empty() {
                description.push_str(&format!("\nlint: {} violations", violations.len()));
                for line in violations.iter().take(20) {
                    description.push_str("\n  ");
                    description.push_str(line);
                }
                // Violations go back to the coding agent like failing tests.
                if kind == CheckpointKind::TestsPassed {
                    kind = CheckpointKind::TestsFailed;
                }
            }
        }
        let mut state = state_of(&report, Some(plan.framework));
        if let Some(object) = state.as_object_mut() {
            if let Some(coverage) = coverage {
                let value = match coverage {
                    Ok(delta) => serde_json::to_value(delta).unwrap_or_default(),
                    Err(message) => serde_json::json!({ "error": message }),
                };
                object.insert("coverage".to_owned(), value);
            }
            if let Some(regression) = regression {
                let value = match regression {
                    Ok(proof) => serde_json::to_value(proof).unwrap_or_default(),
                    Err(message) => serde_json::json!({ "error": message }),
                };
                object.insert("regression".to_owned(), value);
            }
            if let Some(lint) = lint {
                let value = match lint {
                    Ok(lint) => serde_json::to_value(lint).unwrap_or_default(),
                    Err(message) => serde_json::json!({ "error": message }),
                };
                object.insert("lint".to_owned(), value);
            }
        }
        self.finish(events, kind, description, state).await
    }

    /// Runs the UC-03 proof of the job's regression tests.
    async fn regression(
        &self,
        sandbox: &dyn SandboxApi,
        job: &Job,
        plan: &TestPlan,
        events: &Events,
    ) -> Result<std::result::Result<RegressionProof, String>> {
        let call_id = format!("{}:prove_regression", job.task_id);
        events
            .send(Payload::Action(Action {
                call_id: call_id.clone(),
                tool: "prove_regression".to_owned(),
                arguments_json: serde_json::json!({
                    "files": job.regression_files,
                    "test_pattern": job.regression_pattern,
                })
                .to_string(),
            }))
            .await?;
        let result = cap_testrun::prove_regression(
            sandbox,
            &job.session_id,
            plan,
            &job.regression_files,
            job.regression_pattern.as_deref(),
            self.inner.timeout,
        )
        .await
        .map_err(|error| error_chain(&error));
        let (content, is_error) = match &result {
            Ok(proof) => (
                format!(
                    "before the fix: {}\nafter the fix: {}",
                    proof.before.run.summary(),
                    proof.after.run.summary()
                ),
                !proof.proven,
            ),
            Err(message) => (message.clone(), true),
        };
        events
            .send(Payload::Observation(Observation {
                call_id,
                tool: "prove_regression".to_owned(),
                is_error,
                content,
                detail: None,
            }))
            .await?;
        Ok(result)
    }

    /// Applies the repository's formatters to the changed files, then runs its linters on
    /// them. `None` when the repository configures none or nothing changed.
    async fn lint(
        &self,
        sandbox: &dyn SandboxApi,
        job: &Job,
        events: &Events,
    ) -> Result<Option<std::result::Result<LintReport, String>>> {
        let tools = match lint::detect_linters_in(sandbox, &job.session_id).await {
            Ok(tools) if tools.is_empty() => return Ok(None),
            Ok(tools) => tools,
            Err(error) => return Ok(Some(Err(error_chain(&error)))),
        };
        let changes = match sandbox
            .get_changes(GetChangesRequest {
                session_id: job.session_id.clone(),
            })
            .await
        {
            Ok(response) => response.changes,
            Err(status) => {
                return Ok(Some(Err(format!(
                    "the changed files could not be listed: {}",
                    status.message()
                ))));
            }
        };
        let files: Vec<String> = changes
            .into_iter()
            .filter(|c| !matches!(c.change, Some(file_change::Change::Deleted(true))))
            .map(|c| c.path)
            .collect();
        if files.is_empty() {
            return Ok(None);
        }
        let call_id = format!("{}:run_linter", job.task_id);
        let names: Vec<&str> = tools.iter().map(|t| t.as_str()).collect();
        events
            .send(Payload::Action(Action {
                call_id: call_id.clone(),
                tool: "run_linter".to_owned(),
                arguments_json: serde_json::json!({ "files": files, "tools": names }).to_string(),
            }))
            .await?;
        let result = async {
            let formatted =
                lint::format_files(sandbox, &job.session_id, &tools, &files, self.inner.timeout)
                    .await?;
            let runs =
                lint::run_linters(sandbox, &job.session_id, &tools, &files, self.inner.timeout)
                    .await?;
            Ok::<_, cap_testrun::Error>(LintReport { formatted, runs })
        }
        .await;
        let (content, is_error, result) = match result {
            Ok(report) => {
                let mut content = String::new();
                for run in &report.formatted {
                    content.push_str(&format!("formatted with {}: `{}`\n", run.tool, run.command));
                }
                for run in &report.runs {
                    match &run.problem {
                        Some(problem) => content.push_str(&format!("{}: {problem}\n", run.tool)),
                        None => content.push_str(&format!(
                            "{}: {} violations\n",
                            run.tool,
                            run.violations.len()
                        )),
                    }
                }
                let dirty = report.runs.iter().any(|r| !r.violations.is_empty());
                (content, dirty, Ok(report))
            }
            Err(error) => {
                let message = error_chain(&error);
                (message.clone(), true, Err(message))
            }
        };
        events
            .send(Payload::Observation(Observation {
                call_id,
                tool: "run_linter".to_owned(),
                is_error,
                content,
                detail: None,
            }))
            .await?;
        Ok(Some(result))
    }

    /// Measures coverage before (the base checkout) and after (the workspace) the change
    /// when the caller asked for it or the repository sets a threshold. `None` when not
    /// measured; `Some(Err)` with the reason when it could not be.
    async fn coverage(
        &self,
        sandbox: &dyn SandboxApi,
        job: &Job,
        plan: &TestPlan,
        events: &Events,
    ) -> Result<Option<std::result::Result<CoverageDelta, String>>> {
        if job.coverage == Some(false) {
            return Ok(None);
        }
        let threshold = match coverage::threshold(sandbox, &job.session_id).await {
            Ok(threshold) => threshold,
            Err(error) => return Ok(Some(Err(error_chain(&error)))),
        };
        if threshold.is_none() && job.coverage != Some(true) {
            return Ok(None);
        }
        let call_id = format!("{}:measure_coverage", job.task_id);
        events
            .send(Payload::Action(Action {
                call_id: call_id.clone(),
                tool: "measure_coverage".to_owned(),
                arguments_json: serde_json::json!({ "threshold": threshold }).to_string(),
            }))
            .await?;
        let mut measured = Vec::new();
        for tree in [Tree::Base, Tree::Workspace] {
            match coverage::measure(sandbox, &job.session_id, plan, tree, self.inner.timeout).await
            {
                Ok(Some(coverage)) => measured.push(coverage),
                Ok(None) => {
                    tracing::debug!(framework = %plan.framework, "coverage not supported");
                    break;
                }
                Err(error) => {
                    let message = error_chain(&error);
                    events
                        .send(Payload::Observation(Observation {
                            call_id,
                            tool: "measure_coverage".to_owned(),
                            is_error: true,
                            content: message.clone(),
                            detail: None,
                        }))
                        .await?;
                    return Ok(Some(Err(message)));
                }
            }
        }
        let [before, after] = &measured[..] else {
            let message = format!("coverage of {} tests is not supported", plan.framework);
            events
                .send(Payload::Observation(Observation {
                    call_id,
                    tool: "measure_coverage".to_owned(),
                    is_error: false,
                    content: message.clone(),
                    detail: None,
                }))
                .await?;
            return Ok(Some(Err(message)));
        };
        let delta = coverage::compare(before, after, threshold);
        events
            .send(Payload::Observation(Observation {
                call_id,
                tool: "measure_coverage".to_owned(),
                is_error: delta.below_threshold,
                content: delta.summary(),
                detail: None,
            }))
            .await?;
        Ok(Some(Ok(delta)))
    }

    /// No command configured and none detected: nothing to run is not a failure.
    async fn no_runner(&self, events: &Events) -> Result<()> {
        let message = "No test runner was detected in the repository (no pytest or unittest \
                       tests, package.json test script, go.mod, pom.xml or build.gradle) and \
                       none is configured; there are no tests to run.";
        events
            .send(Payload::Thought(Thought {
                reasoning: message.to_owned(),
            }))
            .await?;
        let run = TestRun {
            command: String::new(),
            outcome: Outcome::NoTests,
            exit_code: 0,
            timed_out: false,
            duration_ms: 0,
            passed: 0,
            failed: 0,
            errors: 0,
            skipped: 0,
            cases: Vec::new(),
            output_tail: message.to_owned(),
        };
        let report = RunReport {
            run,
            problem: Some(Problem::NoTests),
        };
        self.finish(
            events,
            CheckpointKind::NoTests,
            "no test runner detected".to_owned(),
            state_of(&report, None),
        )
        .await
    }

    async fn finish(
        &self,
        events: &Events,
        kind: CheckpointKind,
        description: String,
        state: serde_json::Value,
    ) -> Result<()> {
        Ok(events
            .checkpoint(kind, description, state.to_string())
            .await?)
    }
}

/// What the formatters and linters did on the changed files.
#[derive(Debug, serde::Serialize)]
struct LintReport {
    /// The formatters applied (FR-005), each with how it went.
    formatted: Vec<LintRun>,
    /// The linters' (and formatters' check modes') findings.
    runs: Vec<LintRun>,
}

/// The final checkpoint's state: the `TestRun` fields, plus `problem` (the category of a
/// broken run) and `framework` (the runner used; null when none was detected). Plain fields
/// only: serializing cannot fail.
fn state_of(report: &RunReport, framework: Option<Framework>) -> serde_json::Value {
    let mut state = serde_json::to_value(report).unwrap_or_default();
    if let Some(object) = state.as_object_mut() {
        object.insert(
            "framework".to_owned(),
            framework.map_or(serde_json::Value::Null, |f| f.as_str().into()),
        );
    }
    state
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
