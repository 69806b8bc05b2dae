//! The graph's nodes: plan -> execute -> review (-> execute again while tests fail).

use cap_proto::agent::v1::agent_orchestrator_client::AgentOrchestratorClient;
use cap_proto::agent::v1::task_event::Payload;
use cap_proto::agent::v1::{
    Checkpoint, CheckpointKind, Constraint, ErrorReport, RepositoryContext, TaskContext, TaskId,
    TaskRequest, Thought,
};
use cap_proto::common::v1::FileChange;
use cap_proto::github::v1::{
    CommitChangesRequest, CreateBranchRequest, GetPullRequestRequest, GetRepositoryRequest,
    OpenPullRequestRequest,
};
use cap_proto::sandbox::v1::{
    CreateSessionRequest, GetChangesRequest, GetChangesResponse, ListDirectoryRequest,
};
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;

use crate::audit::SUPERVISOR;
use crate::engine::Run;
use crate::{Error, Result, branch_name};
use cap_audit::Entry;

/// A node of the workflow graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Node {
    /// Resolve the repository, create the sandbox workspace, write the plan.
    Plan,
    /// The coding agent changes the workspace.
    Execute,
    /// The testing agent runs the repository's tests; the pull request is opened when they
    /// pass.
    Review,
}

impl Node {
    /// The node's name, as shown to users.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plan => "plan",
            Self::Execute => "execute",
            Self::Review => "review",
        }
    }
}

/// Everything the workflow knows about a task between nodes; saved with every checkpoint,
/// so a run resumes from it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkflowState {
    /// The node running now or next; `None` once the graph has ended.
    pub next_node: Option<Node>,
    /// The repository's clone URL as the forge gave it.
    pub clone_url: String,
    /// The commit the work starts from.
    pub base_sha: String,
    /// The branch the pull request targets.
    pub default_branch: String,
    /// The sandbox session holding the workspace.
    pub session_id: String,
    /// The plan given to the coding agent.
    pub plan: String,
    /// How many times the execute node has started.
    pub execute_attempts: u32,
    /// The coding agent's last summary.
    pub agent_summary: String,
    /// Files the change touches.
    pub changed_files: Vec<String>,
    /// The last test run's result as the testing agent reported it.
    pub last_test_report: String,
    /// Whether the last test run passed.
    pub tests_passed: bool,
    /// The branch of the change.
    pub branch: String,
    /// Whether the branch exists in the forge.
    pub branch_created: bool,
    /// The commit holding the change.
    pub head_sha: String,
    /// The files that commit changed.
    pub committed_files: Vec<String>,
    /// The pull request, once opened.
    pub pull_request_id: String,
    /// Files the coding agent changed through its edit tools, over all its runs.
    pub agent_files: Vec<String>,
    /// Path -> digest of the content the coding agent's tools last left in it (`""`: it
    /// left the file deleted), where its run reported one; a different content later was
    /// written by a command.
    pub agent_digests: std::collections::BTreeMap<String, String>,
    /// Files commands changed that the agent did not: reported, never committed.
    pub side_effects: Vec<String>,
    /// Protected files the change touches that wait for a human's decision.
    pub awaiting_approval: Vec<String>,
    /// Protected files a human approved.
    pub approved_files: Vec<String>,
    /// The change held secrets: the workspace is kept for an Admin, not released, and the
    /// task is not resumed.
    pub quarantined: bool,
    /// How many of the task's human constraints the run has reported and passed on.
    pub constraints_seen: usize,
    /// Suspicious code the change adds (`cap-codecheck`), each reported once; shown in the
    /// pull request.
    pub suspicious_code: Vec<cap_codecheck::Finding>,
    /// Changed files the suspicious-code checks could not check, each with why.
    pub suspicious_code_skipped: Vec<String>,
    /// What the last dependency check found (one line each), for the pull request.
    pub dependency_findings: Vec<String>,
    /// The secret scanner's allow-list as the base commit holds it, read from the workspace
    /// before any agent worked in it (`AllowList::to_json`: no value in clear; `{}` when the
    /// base has none), so a change cannot waive its own findings. `None` until read.
    pub secrets_allow_list: Option<String>,
}

impl WorkflowState {
    /// The state of a task that has not started.
    pub fn new() -> Self {
        Self {
            next_node: Some(Node::Plan),
            ..Self::default()
        }
    }
}

/// Which agent a node calls.
#[derive(Debug, Clone, Copy)]
enum Agent {
    Context,
    Coding,
    Testing,
}

impl Agent {
    /// The name users see as the task's current agent.
    fn display(self) -> &'static str {
        match self {
            Self::Context => "ContextManager",
            Self::Coding => "CodingAssistant",
            Self::Testing => "TestingAgent",
        }
    }

    /// The `agent` of the events it streams.
    fn event_name(self) -> &'static str {
        match self {
            Self::Context => "context",
            Self::Coding => "coding",
            Self::Testing => "testing",
        }
    }

    fn service(self) -> &'static str {
        match self {
            Self::Context => "context agent",
            Self::Coding => "coding agent",
            Self::Testing => "testing agent",
        }
    }
}

impl Run {
    pub(crate) async fn run_node(&mut self, node: Node) -> Result<Option<Node>> {
        match node {
            Node::Plan => self.plan().await,
            Node::Execute => self.execute().await,
            Node::Review => self.review().await,
        }
    }

    async fn plan(&mut self) -> Result<Option<Node>> {
        self.progress(5, "Supervisor").await?;
        let repository_id = self.task.spec.repository_id.clone();
        let mut github = self.inner.clients.github.clone();
        let repo =
            self.inner
                .github_call(github.get_repository(GetRepositoryRequest {
                    repository_id: repository_id.clone(),
                }))
                .await
                .map_err(|status| match status.code() {
                    tonic::Code::NotFound | tonic::Code::InvalidArgument => Error::TaskFailed(
                        format!("repository {repository_id:?}: {}", status.message()),
                    ),
                    _ => Error::upstream("github", status),
                })?
                .into_inner();
        self.state.clone_url = repo.clone_url;
        self.state.base_sha = repo.head_sha;
        self.state.default_branch = repo.default_branch;

        self.ensure_workspace(Node::Plan).await?;
        // Before the coding agent first works in the workspace, it is the base commit.
        if self.state.secrets_allow_list.is_none() && self.state.execute_attempts == 0 {
            self.read_base_allow_list().await?;
        }
        let listing = self
            .inner
            .clients
            .sandbox
            .list_directory(ListDirectoryRequest {
                session_id: self.state.session_id.clone(),
                path: String::new(),
                recursive: true,
            })
            .await
            .map_err(|status| Error::upstream("sandbox", status))?;
        let files: Vec<&str> = listing
            .entries
            .iter()
            .filter(|entry| !entry.is_dir)
            .map(|entry| entry.path.as_str())
            .collect();
        let analysis = self.repository_analysis().await?;
        self.state.plan = render_plan(&self.task.spec, &self.state, &files, analysis.as_ref());
        let plan = self.state.plan.clone();
        self.emit("supervisor", Payload::Thought(Thought { reasoning: plan }))
            .await?;
        self.progress(20, "Supervisor").await?;
        Ok(Some(Node::Execute))
    }

    /// Makes the task's workspace (a sandbox session at the base commit) unless it has one:
    /// in plan, or when a fork (`travel.rs`) starts at execute without one.
    async fn ensure_workspace(&mut self, node: Node) -> Result<()> {
        if !self.state.session_id.is_empty() {
            return Ok(());
        }
        let session = self
            .inner
            .clients
            .sandbox
            .create_session(CreateSessionRequest {
                image: String::new(),
                repo_url: self.state.clone_url.clone(),
                commit_sha: self.state.base_sha.clone(),
            })
            .await
            .map_err(|status| Error::upstream("sandbox", status))?;
        self.state.session_id = session.session_id;
        // Kept at once: a supervisor stopping before the node's end resumes into this
        // workspace instead of leaving it behind and making another.
        self.inner
            .store
            .save_checkpoint(
                &self.task.task_id,
                &self.inner.config.replica_id,
                node.name(),
                "session_created",
                &self.state_json()?,
            )
            .await?;
        Ok(())
    }

    /// The context agent's analysis of the workspace: repository map, symbols related to the
    /// request, files a stack trace in the request points at. A plan without it is still a
    /// plan, so its failure is reported and the task goes on.
    async fn repository_analysis(&mut self) -> Result<Option<RepositoryAnalysis>> {
        if self.inner.clients.context.is_none() {
            return Ok(None);
        }
        self.progress(10, Agent::Context.display()).await?;
        let context = TaskContext {
            // The request may carry a stack trace (UC-03); the agent finds frames in any text.
            stack_trace: self.task.spec.prompt.clone(),
            ..TaskContext::default()
        };
        let objective = self.task.spec.prompt.clone();
        match self.run_agent(Agent::Context, objective, context).await {
            Ok(Some(done)) if done.kind() == CheckpointKind::ContextReady => {
                Ok(serde_json::from_str(&done.state_json).ok())
            }
            Ok(_) => Ok(None),
            Err(error @ Error::Upstream { .. }) => {
                let message = format!(
                    "planning without repository analysis: {}",
                    cap_errors::chain(&error)
                );
                self.emit(
                    "supervisor",
                    Payload::Error(ErrorReport {
                        severity: "warning".into(),
                        message,
                        recoverable: true,
                    }),
                )
                .await?;
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    async fn execute(&mut self) -> Result<Option<Node>> {
        self.ensure_workspace(Node::Execute).await?;
        self.state.execute_attempts += 1;
        self.progress(30, Agent::Coding.display()).await?;
        let failed_before = !self.state.last_test_report.is_empty() && !self.state.tests_passed;
        let context = TaskContext {
            plan: self.state.plan.clone(),
            attempt: self.state.execute_attempts,
            avoid_files: self.task.spec.avoid_files.clone(),
            max_files_changed: self.task.spec.max_files_changed,
            previous_test_failure: if failed_before {
                self.state.last_test_report.clone()
            } else {
                String::new()
            },
            ..TaskContext::default()
        };
        self.adopt_unrecorded_edits().await?;
        let objective = self.task.spec.prompt.clone();
        let finish = self.run_agent(Agent::Coding, objective, context).await?;
        if let Some(finish) = finish {
            // It goes into the pull request's body and every checkpoint.
            self.state.agent_summary = cap_secrets::redact(&summary_of(&finish.state_json));
            for file in crate::gates::agent_files(&finish.state_json) {
                match file.digest {
                    Some(digest) => self.state.agent_digests.insert(file.path.clone(), digest),
                    None => self.state.agent_digests.remove(&file.path),
                };
                if !self.state.agent_files.contains(&file.path) {
                    self.state.agent_files.push(file.path);
                }
            }
            self.state.agent_files.sort();
        }

        let workspace = self.workspace_changes().await?;
        let changes = self.own_changes(workspace.changes).await?;
        if changes.is_empty() {
            return Err(Error::TaskFailed(
                "the coding agent finished without changing any file through its edit tools".into(),
            ));
        }
        self.state.changed_files = changes.iter().map(|change| change.path.clone()).collect();
        check_constraints(&self.task.spec, &self.state.changed_files)?;
        let mut held = crate::gates::protected_changes(&changes, &workspace.diff);
        for rewritten in self.rewritten_by_commands(&changes) {
            if !held.iter().any(|(path, _)| *path == rewritten.0) {
                held.push(rewritten);
            }
        }
        self.gate_protected(held).await?;
        self.progress(65, Agent::Coding.display()).await?;
        Ok(Some(Node::Review))
    }

    async fn review(&mut self) -> Result<Option<Node>> {
        self.take_decision().await?;
        self.progress(70, Agent::Testing.display()).await?;
        let finish = self
            .run_agent(
                Agent::Testing,
                "Run the repository's tests".to_owned(),
                TaskContext::default(),
            )
            .await?
            .ok_or_else(|| {
                Error::TaskFailed("the testing agent ended without reporting a result".into())
            })?;
        self.state.last_test_report = cap_secrets::redact(&finish.state_json);
        // What the test run wrote is known for what it is before the agent works again, and
        // the agent's own changes, cleared of secrets after it, are what gets committed.
        let workspace = self.workspace_changes().await?;
        let changes = self.own_changes(workspace.changes).await?;
        match finish.kind() {
            CheckpointKind::TestsPassed | CheckpointKind::NoTests => self.state.tests_passed = true,
            CheckpointKind::TestsFailed => {
                self.state.tests_passed = false;
                if self.state.execute_attempts < self.inner.config.max_fix_attempts {
                    return Ok(Some(Node::Execute));
                }
                // The agent had its tries: a human decides (guide it with a constraint and
                // resume for another round of attempts, or abort).
                let attempts = std::mem::take(&mut self.state.execute_attempts);
                self.state.next_node = Some(Node::Execute);
                return Err(Error::NeedsHuman(format!(
                    "the repository's tests still fail after {attempts} attempts: {}; add a \
                     constraint to guide the coding agent and resume for {} more, or abort",
                    finish.description, self.inner.config.max_fix_attempts
                )));
            }
            other => {
                return Err(Error::TaskFailed(format!(
                    "the testing agent ended with {:?}: {}",
                    other.name(),
                    finish.description
                )));
            }
        }
        let rewritten = self.rewritten_by_commands(&changes);
        self.gate_protected(rewritten).await?;
        self.check_suspicious_code(&changes, &workspace.diff)
            .await?;
        self.check_dependencies(&changes, &workspace.diff).await?;
        self.progress(85, "GitHubAutomation").await?;
        let body = self.pull_request_body(&finish);
        self.open_pull_request(body, /*draft*/ false, changes)
            .await?;
        self.destroy_session().await;
        Ok(None)
    }

    /// Branch, commit, pull request (a `draft` for a partial change handed to a human); each
    /// step is recorded in the state before the next, so a resumed run does not repeat what
    /// the forge already has.
    pub(crate) async fn open_pull_request(
        &mut self,
        body: String,
        draft: bool,
        changes: Vec<FileChange>,
    ) -> Result<()> {
        let repository_id = self.task.spec.repository_id.clone();
        let mut github = self.inner.clients.github.clone();
        let inner = self.inner.clone();
        if self.state.branch.is_empty() {
            let mut branch = branch_name(&self.task.spec.prompt, time::OffsetDateTime::now_utc());
            if !self.task.parent_task_id.is_empty() {
                // Forks of one task share its prompt and may reach review in the same second:
                // each gets a branch of its own, never its parent's or a sibling's.
                let short: String = self.task.task_id.chars().take(8).collect();
                branch.push_str(&format!("-fork-{short}"));
            }
            self.state.branch = branch;
            self.inner
                .store
                .save_checkpoint(
                    &self.task.task_id,
                    &self.inner.config.replica_id,
                    "review",
                    "branch_named",
                    &self.state_json()?,
                )
                .await?;
        }
        if !self.state.branch_created {
            let created = inner
                .github_call(github.create_branch(CreateBranchRequest {
                    repository_id: repository_id.clone(),
                    branch: self.state.branch.clone(),
                    from_sha: self.state.base_sha.clone(),
                }))
                .await;
            match created {
                Ok(_) => {}
                // A resumed run may have created it just before the supervisor stopped.
                Err(status) if status.code() == tonic::Code::AlreadyExists => {}
                Err(status) => return Err(Error::upstream("github", status)),
            }
            self.state.branch_created = true;
        }
        if self.state.head_sha.is_empty() {
            let files = changes.iter().map(|change| change.path.clone()).collect();
            let commit = inner
                .github_call(github.commit_changes(CommitChangesRequest {
                    repository_id: repository_id.clone(),
                    branch: self.state.branch.clone(),
                    message: commit_message(&self.task.spec.prompt, &self.task.task_id),
                    changes,
                }))
                .await
                .map_err(|status| Error::upstream("github", status))?
                .into_inner();
            self.state.head_sha = commit.commit_sha;
            self.state.committed_files = files;
            self.inner
                .store
                .save_checkpoint(
                    &self.task.task_id,
                    &self.inner.config.replica_id,
                    "review",
                    "committed",
                    &self.state_json()?,
                )
                .await?;
        }
        if self.state.pull_request_id.is_empty() {
            let pull_request = inner
                .github_call(github.open_pull_request(OpenPullRequestRequest {
                    repository_id,
                    head_branch: self.state.branch.clone(),
                    base_branch: self.state.default_branch.clone(),
                    title: title_of(&self.task.spec.prompt),
                    body,
                    task_id: self.task.task_id.clone(),
                    draft,
                }))
                .await
                .map_err(|status| Error::upstream("github", status))?
                .into_inner();
            self.audit_pull_request(&pull_request.pull_request_id)
                .await?;
            self.state.pull_request_id = pull_request.pull_request_id.clone();
            self.task.pull_request_id = pull_request.pull_request_id;
            self.task.branch = self.state.branch.clone();
            self.inner
                .store
                .update_task(&mut self.task, &self.inner.config.replica_id)
                .await?;
            let description = if draft {
                format!(
                    "Draft pull request #{} on {} holds the partial change, with hand-off notes \
                     for a human: {}",
                    pull_request.number, self.state.branch, pull_request.url
                )
            } else {
                // Ready for review only once the base branch's required checks pass; a crash
                // while waiting opens the same pull request again (the forge gives it back)
                // and waits again. A draft is handed over as it is: the run is out of time.
                let pull_request_id = self.state.pull_request_id.clone();
                self.wait_for_required_checks(&pull_request_id).await?;
                format!(
                    "Pull request #{} on {} awaits review: {}",
                    pull_request.number, self.state.branch, pull_request.url
                )
            };
            self.emit(
                "supervisor",
                Payload::Checkpoint(Checkpoint {
                    kind: CheckpointKind::HumanApprovalRequired.into(),
                    description,
                    state_json: self.state_json()?,
                }),
            )
            .await?;
        }
        Ok(())
    }

    /// Records the commit and the pull request opened, in one append, with the exact diff the
    /// forge holds for it (`base..head`), read back from the forge rather than rebuilt here.
    /// Until the pull request is in the state a failed append is made again with it (the
    /// forge gives a task its open pull request back), so neither record is lost.
    async fn audit_pull_request(&self, pull_request_id: &str) -> Result<()> {
        let mut github = self.inner.clients.github.clone();
        let pull_request = self
            .inner
            .github_call(github.get_pull_request(GetPullRequestRequest {
                pull_request_id: pull_request_id.to_owned(),
            }))
            .await
            .map_err(|status| Error::upstream("github", status))?
            .into_inner();
        let task_id = &self.task.task_id;
        self.inner
            .audit_all(vec![
                Entry::new(
                    SUPERVISOR,
                    "commit.created",
                    task_id,
                    serde_json::json!({
                        "repository_id": pull_request.repository_id,
                        "branch": self.state.branch,
                        "base_sha": self.state.base_sha,
                        "commit_sha": self.state.head_sha,
                        "files": self.state.committed_files,
                    }),
                ),
                Entry::new(
                    SUPERVISOR,
                    "pull_request.opened",
                    task_id,
                    serde_json::json!({
                        "pull_request_id": pull_request.pull_request_id,
                        "number": pull_request.number,
                        "url": pull_request.url,
                        "base_sha": pull_request.base_sha,
                        "head_sha": pull_request.head_sha,
                        "draft": pull_request.draft,
                        "diff": pull_request.diff,
                    }),
                ),
            ])
            .await
    }

    fn pull_request_body(&self, tests: &Checkpoint) -> String {
        let mut body = format!("{}\n\n", self.task.spec.prompt.trim());
        if !self.state.agent_summary.is_empty() {
            body.push_str(&format!("## Summary\n\n{}\n\n", self.state.agent_summary));
        }
        body.push_str("## Files changed\n\n");
        for file in &self.state.changed_files {
            body.push_str(&format!("- `{file}`\n"));
        }
        if !self.state.side_effects.is_empty() {
            body.push_str(
                "\n## Left out\n\nChanged by commands run in the sandbox (tests, builds, \
                 scripts), not by the coding agent's edits, so not part of this change:\n\n",
            );
            for file in &self.state.side_effects {
                body.push_str(&format!("- `{file}`\n"));
            }
        }
        body.push_str(&crate::codecheck::body_section(&self.state));
        body.push_str(&crate::dependencies::body_section(&self.state));
        body.push_str(&format!(
            "\n## Tests\n\n{} ({})\n",
            tests.description,
            tests.kind().name()
        ));
        body.push_str(&format!(
            "\nOpened by the coding assistant for task `{}`.\n",
            self.task.task_id
        ));
        body
    }

    /// The workspace's changes (created, modified or deleted files) and their unified diff,
    /// cleared of secrets.
    pub(crate) async fn workspace_changes(&mut self) -> Result<GetChangesResponse> {
        let changes = self
            .inner
            .clients
            .sandbox
            .get_changes(GetChangesRequest {
                session_id: self.state.session_id.clone(),
            })
            .await
            .map_err(|status| Error::upstream("sandbox", status))?;
        self.check_secrets(&changes.diff)?;
        Ok(GetChangesResponse {
            changes: changes
                .changes
                .into_iter()
                .filter(|change| change.change.is_some())
                .collect(),
            diff: changes.diff,
        })
    }

    /// Runs one agent's `ExecuteTask`, storing each event it streams; returns the last
    /// checkpoint it reported. A human interrupt is passed on to the agent, whose stream is
    /// then read to its end so nothing it reported is lost.
    async fn run_agent(
        &mut self,
        agent: Agent,
        objective: String,
        context: TaskContext,
    ) -> Result<Option<Checkpoint>> {
        let service = agent.service();
        let mut client: AgentOrchestratorClient<Channel> = match agent {
            Agent::Context => match &self.inner.clients.context {
                Some(client) => client.clone(),
                None => return Ok(None),
            },
            Agent::Coding => self.inner.clients.coding.clone(),
            Agent::Testing => self.inner.clients.testing.clone(),
        };
        let mut context = context;
        context.human_constraints = self.take_constraints().await?.all;
        let deadline = self.deadline;
        let request = TaskRequest {
            task_id: self.task.task_id.clone(),
            repo: Some(RepositoryContext {
                repository_id: self.task.spec.repository_id.clone(),
                sandbox_session_id: self.state.session_id.clone(),
                commit_sha: self.state.base_sha.clone(),
                default_branch: self.state.default_branch.clone(),
                test_command: self.task.spec.test_command.clone(),
            }),
            objective,
            tools: Vec::new(),
            context: Some(context),
        };
        if *self.interrupt.borrow() {
            return Err(Error::Interrupted);
        }
        let mut stream = client
            .execute_task(request)
            .await
            .map_err(|status| Error::upstream(service, status))?
            .into_inner();
        let mut last_checkpoint = None;
        let mut interrupting = false;
        loop {
            let message = tokio::select! {
                message = stream.message() => message,
                // Out of time: the agent is stopped as by an interrupt, and its stream read
                // to its end, so what it did is kept for the hand-off.
                () = crate::handoff::until(deadline), if !interrupting => {
                    interrupting = true;
                    self.timed_out = true;
                    let task_id = TaskId { task_id: self.task.task_id.clone() };
                    if let Err(status) = client.interrupt_task(task_id).await {
                        tracing::warn!(error = %status.message(), "agent refused the interrupt at the time budget's end");
                    }
                    continue;
                }
                changed = self.interrupt.changed(), if !interrupting => {
                    if changed.is_ok() && *self.interrupt.borrow() {
                        interrupting = true;
                        let task_id = TaskId { task_id: self.task.task_id.clone() };
                        if let Err(status) = client.interrupt_task(task_id).await {
                            tracing::warn!(error = %status.message(), "agent refused interrupt");
                        }
                    }
                    continue;
                }
                () = self.steered.notified() => {
                    for text in self.take_constraints().await?.new {
                        let constraint = Constraint { task_id: self.task.task_id.clone(), text };
                        match client.add_constraint(constraint).await {
                            Ok(ack) if ack.get_ref().accepted => {}
                            Ok(ack) => tracing::warn!(message = %ack.get_ref().message, "agent did not take the constraint; it gets it with its next call"),
                            Err(status) => tracing::warn!(error = %status.message(), "agent refused the constraint; it gets it with its next call"),
                        }
                    }
                    continue;
                }
            };
            match message {
                Ok(Some(mut event)) => {
                    if event.agent.is_empty() {
                        event.agent = agent.event_name().into();
                    }
                    if let Some(Payload::Checkpoint(checkpoint)) = &event.payload {
                        last_checkpoint = Some(checkpoint.clone());
                    }
                    self.record(event, "event").await?;
                }
                Ok(None) => break,
                Err(status) => return Err(Error::upstream(service, status)),
            }
        }
        if interrupting
            || last_checkpoint
                .as_ref()
                .is_some_and(|c| c.kind() == CheckpointKind::Interrupted)
        {
            return Err(Error::Interrupted);
        }
        if let Some(checkpoint) = &last_checkpoint {
            self.inner
                .audit(
                    &format!("service:{}-agent", agent.event_name()),
                    "agent.finished",
                    &self.task.task_id,
                    serde_json::json!({
                        "agent": agent.event_name(),
                        "checkpoint": checkpoint.kind().name(),
                        "description": cap_secrets::redact(&checkpoint.description),
                    }),
                )
                .await?;
        }
        Ok(last_checkpoint)
    }
}

/// What the context agent's `context_ready` checkpoint reports (the parts the plan uses).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RepositoryAnalysis {
    repo_map: String,
    relevant_symbols: Vec<serde_json::Value>,
    stack_trace: Option<serde_json::Value>,
}

impl RepositoryAnalysis {
    fn render(&self, plan: &mut String) {
        let suspects: Vec<&str> = self
            .stack_trace
            .as_ref()
            .and_then(|trace| trace.get("ranked"))
            .and_then(|files| files.as_array())
            .into_iter()
            .flatten()
            .filter_map(|file| file.get("path").and_then(|p| p.as_str()))
            .take(5)
            .collect();
        if !suspects.is_empty() {
            plan.push_str(&format!(
                "Files the stack trace points at: {}.\n",
                suspects.join(", ")
            ));
        }
        let related: Vec<String> = self
            .relevant_symbols
            .iter()
            .take(10)
            .filter_map(|hit| {
                let symbol = hit.get("symbol")?.as_str()?;
                let path = hit.get("path")?.as_str()?;
                Some(format!("{symbol} ({path})"))
            })
            .collect();
        if !related.is_empty() {
            plan.push_str(&format!(
                "Symbols related to the request: {}.\n",
                related.join(", ")
            ));
        }
        if !self.repo_map.trim().is_empty() {
            plan.push_str("Repository map:\n");
            plan.push_str(self.repo_map.trim_end());
            plan.push('\n');
        }
    }
}

fn render_plan(
    spec: &crate::TaskSpec,
    state: &WorkflowState,
    files: &[&str],
    analysis: Option<&RepositoryAnalysis>,
) -> String {
    let short_sha: String = state.base_sha.chars().take(12).collect();
    let mut plan = format!(
        "Plan for: {}\nRepository {} at {short_sha} ({} files) on branch {}.\n\
         1. Read the files the request concerns.\n\
         2. Make the smallest change that does what is asked, staged and applied at once.\n\
         3. Run the repository's own tests in the sandbox and fix what fails.\n\
         4. Open a pull request for human review.\n",
        spec.prompt.trim(),
        spec.repository_id,
        files.len(),
        state.default_branch,
    );
    if !spec.avoid_files.is_empty() {
        plan.push_str(&format!("Do not touch: {}.\n", spec.avoid_files.join(", ")));
    }
    if spec.max_files_changed > 0 {
        plan.push_str(&format!(
            "Change at most {} files.\n",
            spec.max_files_changed
        ));
    }
    if let Some(analysis) = analysis {
        analysis.render(&mut plan);
    }
    plan.push_str("Files:\n");
    for file in files.iter().take(200) {
        plan.push_str(&format!("- {file}\n"));
    }
    if files.len() > 200 {
        plan.push_str(&format!("- ... and {} more\n", files.len() - 200));
    }
    plan
}

pub(crate) fn check_constraints(spec: &crate::TaskSpec, changed: &[String]) -> Result<()> {
    for file in changed {
        for avoid in &spec.avoid_files {
            let avoid = avoid.trim_end_matches('/');
            if file == avoid || file.starts_with(&format!("{avoid}/")) {
                return Err(Error::TaskFailed(format!(
                    "the change touches {file}, which the task's constraints.avoid_files excludes"
                )));
            }
        }
    }
    let max = spec.max_files_changed as usize;
    if max > 0 && changed.len() > max {
        return Err(Error::TaskFailed(format!(
            "the change touches {} files; constraints.max_files_changed allows {max}",
            changed.len()
        )));
    }
    Ok(())
}

fn summary_of(state_json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(state_json)
        .ok()
        .and_then(|value| {
            value
                .get("summary")
                .and_then(|s| s.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

fn title_of(prompt: &str) -> String {
    let first = prompt
        .lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("Change")
        .trim();
    let mut title: String = first.chars().take(72).collect();
    if first.chars().count() > 72 {
        title.push('…');
    }
    title
}

fn commit_message(prompt: &str, task_id: &str) -> String {
    format!(
        "{}\n\n{}\n\nTask: {task_id}\n",
        title_of(prompt),
        prompt.trim()
    )
}

#[cfg(test)]
#[path = "nodes_tests.rs"]
mod tests;
