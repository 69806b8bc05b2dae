//! The context agent and the real sandbox service (bubblewrap), both served in-process over
//! mutual TLS on port 0, indexing a fixture repository cloned into a real workspace.

// Setup helpers outside `#[test]` functions panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use cap_mtls::Pki;
use cap_proto::agent::v1::agent_orchestrator_client::AgentOrchestratorClient;
use cap_proto::agent::v1::task_event::Payload;
use cap_proto::agent::v1::{
    AgentId, RepositoryContext, TaskContext, TaskEvent, TaskId, TaskRequest,
};
use cap_proto::common::v1::FileChange;
use cap_proto::common::v1::file_change::Change;
use cap_proto::context::v1 as ctx;
use cap_proto::context::v1::context_service_client::ContextServiceClient;
use cap_proto::sandbox::v1::sandbox_client::SandboxClient;
use cap_proto::sandbox::v1::{CreateSessionRequest, WriteFilesRequest};
use cap_testkit::git::BareRepo;
use clap::Parser;
use pretty_assertions::assert_eq;
use tonic::Streaming;
use tonic::transport::Channel;

struct Fleet {
    dir: tempfile::TempDir,
    agent: AgentOrchestratorClient<Channel>,
    context: ContextServiceClient<Channel>,
    sandbox: SandboxClient<Channel>,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for server in &self.servers {
            server.abort();
        }
    }
}

impl Fleet {
    async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// The fleet, the context agent taking `flags` besides the usual ones.
    async fn start_with(flags: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki_dir = dir.path().join("pki");
        let pki = Pki::ensure_dev(&pki_dir).unwrap();
        let (sandbox_url, sandbox_server) =
            cap_sandbox_server::spawn_local(dir.path().join("sessions"), &pki)
                .await
                .unwrap();
        let data_dir = dir.path().join("data");
        let mut args = vec![
            "cap-context-agent",
            "--pki-dir",
            pki_dir.to_str().unwrap(),
            "--sandbox-url",
            &sandbox_url,
            "--data-dir",
            data_dir.to_str().unwrap(),
        ];
        args.extend_from_slice(flags);
        let config = cap_context_agent::Config::try_parse_from(args).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let agent_url = cap_runtime::https_url(listener.local_addr().unwrap());
        let agent_server = tokio::spawn(async move {
            cap_context_agent::serve(config, listener).await.unwrap();
        });
        let supervisor = pki.service("supervisor").unwrap();
        Self {
            dir,
            agent: AgentOrchestratorClient::new(supervisor.channel(&agent_url).unwrap()),
            context: ContextServiceClient::new(supervisor.channel(&agent_url).unwrap()),
            sandbox: SandboxClient::new(supervisor.channel(&sandbox_url).unwrap()),
            servers: vec![sandbox_server, agent_server],
        }
    }

    /// A sandbox session on a one-commit repository holding the fixture `name`.
    async fn session(&mut self, name: &str) -> String {
        let work = self.dir.path().join(format!("work-{name}"));
        copy_dir(&fixture(name), &work);
        self.session_of(name, &work).await
    }

    /// A sandbox session on a one-commit repository of the files in `work`.
    async fn session_of(&mut self, name: &str, work: &Path) -> String {
        let repo = BareRepo::of_tree(&self.dir.path().join(format!("repo-{name}")), work);
        self.sandbox
            .create_session(CreateSessionRequest {
                image: String::new(),
                repo_url: repo.url(),
                commit_sha: repo.commit,
            })
            .await
            .unwrap()
            .into_inner()
            .session_id
    }
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/context")
        .join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn task(task_id: &str, session_id: &str, context: TaskContext) -> TaskRequest {
    TaskRequest {
        task_id: task_id.into(),
        repo: Some(RepositoryContext {
            repository_id: "acme/shop".into(),
            sandbox_session_id: session_id.into(),
            ..Default::default()
        }),
        objective: "Fix the crash in the average price".into(),
        tools: Vec::new(),
        context: Some(context),
    }
}

async fn all_events(mut stream: Streaming<TaskEvent>) -> (Vec<Payload>, Option<tonic::Status>) {
    let mut events = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(event)) => {
                assert_eq!(event.agent, "context");
                events.push(event.payload.unwrap());
            }
            Ok(None) => return (events, None),
            Err(status) => return (events, Some(status)),
        }
    }
}

#[tokio::test]
async fn indexes_the_workspace_and_maps_a_real_trace() {
    let mut fleet = Fleet::start().await;
    let session = fleet.session("python-shop").await;
    let trace = Command::new("python3")
        .args(["-B", "-m", "shop.cli"])
        .current_dir(fixture("python-shop"))
        .output()
        .unwrap();
    assert!(!trace.status.success());
    let trace = String::from_utf8_lossy(&trace.stderr).into_owned();
    let request = task(
        "task-1",
        &session,
        TaskContext {
            stack_trace: trace.clone(),
            repo_map_tokens: Some(200),
            ..TaskContext::default()
        },
    );
    let stream = fleet
        .agent
        .execute_task(request)
        .await
        .unwrap()
        .into_inner();
    let (events, status) = all_events(stream).await;
    assert!(status.is_none(), "{status:?}");
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            Payload::Thought(_) => "thought",
            Payload::Action(_) => "action",
            Payload::Observation(_) => "observation",
            Payload::Checkpoint(_) => "checkpoint",
            Payload::Error(_) => "error",
            Payload::Status(_) => "status",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "thought",
            "action",
            "observation",
            "action",
            "observation",
            "checkpoint"
        ]
    );
    let Payload::Observation(copied) = &events[2] else {
        unreachable!()
    };
    assert_eq!(
        (copied.tool.as_str(), copied.content.as_str()),
        ("copy_workspace", "copied 9 source and configuration files")
    );
    let Payload::Checkpoint(checkpoint) = &events[5] else {
        unreachable!()
    };
    assert_eq!(checkpoint.kind().name(), "context_ready");
    // logo.py is binary: copied, then reported as skipped.
    assert_eq!(
        checkpoint.description,
        "indexed 6 source files (9 files copied), 5 import edges"
    );
    let state: serde_json::Value = serde_json::from_str(&checkpoint.state_json).unwrap();
    assert_eq!(state["stack_trace"]["ranked"][0]["path"], "shop/pricing.py");
    assert_eq!(
        state["stack_trace"]["ranked"][0]["symbols"][0],
        "average_price"
    );
    assert!(
        state["repo_map"]
            .as_str()
            .unwrap()
            .starts_with("shop/models.py:\n"),
        "{state}"
    );
    assert_eq!(
        state["relevant_symbols"][0]["symbol"], "average_price",
        "{state}"
    );
    assert_eq!(state["semantic_ranking"]["ranking"], "full_text");
    let patterns = state["patterns"].as_array().unwrap();
    assert!(
        patterns
            .iter()
            .any(|p| p["name"] == "pytest" && p["category"] == "test_framework"),
        "{patterns:?}"
    );
    let skipped = state["skipped"].as_array().unwrap();
    assert!(
        skipped
            .iter()
            .any(|s| s["path"] == "shop/logo.py" && s["reason"] == "binary"),
        "{skipped:?}"
    );

    let status = fleet
        .agent
        .get_agent_status(AgentId {
            agent: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((status.state.as_str(), status.tasks_completed), ("idle", 1));
}

#[tokio::test]
async fn an_unknown_session_is_reported_then_ends_the_stream_with_an_error() {
    let mut fleet = Fleet::start().await;
    let stream = fleet
        .agent
        .execute_task(task("task-2", "no-such-session", TaskContext::default()))
        .await
        .unwrap()
        .into_inner();
    let (events, status) = all_events(stream).await;
    let Some(Payload::Error(report)) = events.last() else {
        panic!("{events:?}")
    };
    assert!(
        report
            .message
            .starts_with("the sandbox failed to list the workspace"),
        "{report:?}"
    );
    let status = status.unwrap();
    assert!(
        matches!(
            status.code(),
            tonic::Code::NotFound | tonic::Code::FailedPrecondition
        ),
        "{status:?}"
    );
}

#[tokio::test]
async fn bad_requests_are_refused_with_their_category() {
    let mut fleet = Fleet::start().await;
    let err = fleet
        .agent
        .execute_task(task("", "s", TaskContext::default()))
        .await
        .err()
        .unwrap();
    assert_eq!(
        (err.code(), err.message()),
        (
            tonic::Code::InvalidArgument,
            "invalid task request: task_id is empty"
        )
    );
    let err = fleet
        .agent
        .get_agent_status(AgentId {
            agent: "coding".into(),
        })
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let ack = fleet
        .agent
        .interrupt_task(TaskId {
            task_id: "nope".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!ack.accepted);
}

#[tokio::test]
async fn context_rpcs_answer_the_tools_over_an_indexed_workspace() {
    let mut fleet = Fleet::start().await;
    let session = fleet.session("python-shop").await;
    let mut context = fleet.context.clone();

    let err = context
        .get_file_summary(ctx::GetFileSummaryRequest {
            session_id: session.clone(),
            path: "shop/cli.py".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");

    let indexed = context
        .index_workspace(ctx::IndexWorkspaceRequest {
            session_id: session.clone(),
            repository_id: "acme/shop".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (indexed.files_indexed, indexed.files_parsed, indexed.edges),
        (6, 6, 5)
    );
    assert!(
        indexed
            .skipped
            .iter()
            .any(|s| s.path == "shop/logo.py" && s.reason == "binary")
    );

    let summary = context
        .get_file_summary(ctx::GetFileSummaryRequest {
            session_id: session.clone(),
            path: "shop/models.py".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.language, "python");
    let names: Vec<String> = summary
        .symbols
        .iter()
        .map(|s| format!("{} {}", s.kind, s.name))
        .collect();
    assert_eq!(
        names,
        [
            "class Item",
            "class Cart",
            "method __init__",
            "method add",
            "method total_cents"
        ]
    );

    let deps = context
        .find_dependencies(ctx::FindDependenciesRequest {
            session_id: session.clone(),
            path: "shop/pricing.py".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let used_by: Vec<&str> = deps.used_by.iter().map(|e| e.from.as_str()).collect();
    assert_eq!(used_by, ["shop/cli.py", "tests/test_pricing.py"]);
    assert_eq!(deps.uses[0].to, "shop/models.py");

    for (path, code) in [
        ("../etc/passwd", tonic::Code::InvalidArgument),
        ("shop/none.py", tonic::Code::NotFound),
    ] {
        let err = context
            .find_dependencies(ctx::FindDependenciesRequest {
                session_id: session.clone(),
                path: path.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{path}: {err:?}");
    }

    let hits = context
        .semantic_search(ctx::SemanticSearchRequest {
            session_id: session.clone(),
            query: "apply a percent discount".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .hits;
    assert_eq!(
        hits[0].symbol.as_ref().map(|s| s.name.as_str()),
        Some("apply_discount")
    );

    let patterns = context
        .detect_patterns(ctx::DetectPatternsRequest {
            session_id: session.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .patterns;
    assert!(
        patterns.iter().any(|p| p.category == "linter"
            && p.name == "ruff"
            && p.evidence == ["pyproject.toml"])
    );

    let map = context
        .get_repo_map(ctx::GetRepoMapRequest {
            session_id: session.clone(),
            max_tokens: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .map;
    assert!(map.starts_with("shop/models.py:\n"), "{map}");

    let trace = Command::new("python3")
        .args(["-B", "-m", "shop.cli"])
        .current_dir(fixture("python-shop"))
        .output()
        .unwrap();
    let analysis = context
        .analyze_trace(ctx::AnalyzeTraceRequest {
            session_id: session.clone(),
            trace: String::from_utf8_lossy(&trace.stderr).into_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(analysis.ranked[0].path, "shop/pricing.py");
    assert_eq!(analysis.frames[0].format, "python");

    // A change in the workspace: re-indexing parses that file alone, and drops deleted ones.
    fleet
        .sandbox
        .write_files(WriteFilesRequest {
            session_id: session.clone(),
            changes: vec![
                FileChange {
                    path: "shop/pricing.py".into(),
                    change: Some(Change::Content(
                        b"def apply_discount(cart, percent):\n    return 0\n".to_vec(),
                    )),
                },
                FileChange {
                    path: "shop/broken.py".into(),
                    change: Some(Change::Deleted(true)),
                },
            ],
        })
        .await
        .unwrap();
    let indexed = context
        .index_workspace(ctx::IndexWorkspaceRequest {
            session_id: session.clone(),
            repository_id: "acme/shop".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (indexed.files_indexed, indexed.files_parsed, indexed.edges),
        (5, 1, 4)
    );

    let released = context
        .release_workspace(ctx::ReleaseWorkspaceRequest {
            session_id: session.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(released.released);
    let err = context
        .get_repo_map(ctx::GetRepoMapRequest {
            session_id: session.clone(),
            max_tokens: 10,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    let err = context
        .index_workspace(ctx::IndexWorkspaceRequest {
            session_id: "missing".into(),
            repository_id: String::new(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.code(),
            tonic::Code::NotFound | tonic::Code::FailedPrecondition
        ),
        "{err:?}"
    );
}

/// The kind of each event, and the final checkpoint's state.
fn checkpoint_state(events: &[Payload]) -> (String, serde_json::Value) {
    let Some(Payload::Checkpoint(checkpoint)) = events.last() else {
        panic!("no final checkpoint: {events:?}")
    };
    (
        checkpoint.kind().name().to_owned(),
        serde_json::from_str(&checkpoint.state_json).unwrap(),
    )
}

#[tokio::test]
async fn an_embeddings_endpoint_makes_the_ranking_hybrid() {
    let model = cap_testkit::ScriptedModel::start(Vec::new()).await.unwrap();
    let base_url = model.base_url();
    let mut fleet = Fleet::start_with(&[
        "--embeddings-base-url",
        &base_url,
        "--embeddings-model",
        "scripted-embeddings",
    ])
    .await;
    let session = fleet.session("python-shop").await;
    let stream = fleet
        .agent
        .execute_task(task("task-e", &session, TaskContext::default()))
        .await
        .unwrap()
        .into_inner();
    let (events, status) = all_events(stream).await;
    assert!(status.is_none(), "{status:?}");
    let (kind, state) = checkpoint_state(&events);
    assert_eq!(kind, "context_ready");
    assert_eq!(state["semantic_ranking"]["ranking"], "hybrid", "{state}");
    assert_eq!(state["semantic_sync"]["chunks_unembedded"], 0, "{state}");
    let embedded = state["semantic_sync"]["chunks_embedded"].as_u64().unwrap();
    assert!(embedded > 0, "{state}");
    // Every chunk and the objective went to the endpoint.
    let sent: usize = model.embedding_inputs().iter().map(Vec::len).sum();
    assert_eq!(sent as u64, embedded + 1);
    let reply = semantic_search(&fleet, &session, "average price").await;
    assert_eq!(
        (reply.ranking.as_str(), reply.fallback_reason.as_str()),
        ("hybrid", "")
    );

    // The endpoint down: the task still completes, ranked by full text, and says why.
    model.fail_embeddings(Some(503));
    let stream = fleet
        .agent
        .execute_task(task("task-f", &session, TaskContext::default()))
        .await
        .unwrap()
        .into_inner();
    let (events, status) = all_events(stream).await;
    assert!(status.is_none(), "{status:?}");
    let (kind, state) = checkpoint_state(&events);
    assert_eq!(kind, "context_ready");
    assert_eq!(
        state["semantic_ranking"]["ranking"], "full_text_fallback",
        "{state}"
    );
    assert!(
        state["semantic_ranking"]["reason"]
            .as_str()
            .unwrap()
            .contains("HTTP 503"),
        "{state}"
    );
    assert_eq!(
        state["relevant_symbols"][0]["symbol"], "average_price",
        "{state}"
    );
    let reply = semantic_search(&fleet, &session, "average price").await;
    assert_eq!(reply.ranking, "full_text_fallback");
    assert!(reply.fallback_reason.contains("HTTP 503"), "{reply:?}");
    assert!(!reply.hits.is_empty(), "{reply:?}");
}

/// The `SemanticSearch` RPC's reply for `query` over `session`, indexed first.
async fn semantic_search(fleet: &Fleet, session: &str, query: &str) -> ctx::SemanticSearchResponse {
    let mut context = fleet.context.clone();
    context
        .index_workspace(ctx::IndexWorkspaceRequest {
            session_id: session.to_owned(),
            repository_id: "acme/shop".into(),
        })
        .await
        .unwrap();
    context
        .semantic_search(ctx::SemanticSearchRequest {
            session_id: session.to_owned(),
            query: query.into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn interrupt_task_stops_indexing_cleanly_and_a_later_run_completes() {
    let mut fleet = Fleet::start().await;
    // Enough source that indexing outlasts an InterruptTask round trip many times over.
    let work = fleet.dir.path().join("work-large");
    for file in 0..150 {
        let dir = work.join(format!("pkg{}", file % 10));
        std::fs::create_dir_all(&dir).unwrap();
        let mut source = String::from("import os\n\n");
        for function in 0..200 {
            source.push_str(&format!(
                "def price_{file}_{function}(total, count):\n    \"\"\"Average of {function}.\"\"\"\n    return total / max(count, {function} + 1)\n\n"
            ));
        }
        std::fs::write(dir.join(format!("module_{file}.py")), source).unwrap();
    }
    let session = fleet.session_of("large", &work).await;
    let mut stream = fleet
        .agent
        .execute_task(task("task-big", &session, TaskContext::default()))
        .await
        .unwrap()
        .into_inner();
    // The copy is done once its observation arrives; the indexing starts right after.
    let mut events = Vec::new();
    while let Some(event) = stream.message().await.unwrap() {
        let payload = event.payload.unwrap();
        let copied = matches!(&payload, Payload::Observation(o) if o.tool == "copy_workspace");
        events.push(payload);
        if copied {
            break;
        }
    }
    let ack = fleet
        .agent
        .interrupt_task(TaskId {
            task_id: "task-big".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ack.accepted, "{ack:?}");
    let (rest, status) = all_events(stream).await;
    assert!(
        status.is_none(),
        "an interrupt is not a failure: {status:?}"
    );
    let (kind, state) = checkpoint_state(&rest);
    assert_eq!(kind, "interrupted", "{rest:?}");
    assert_eq!(state["stopped_while"], "indexing", "{state}");
    assert!(
        !rest
            .iter()
            .any(|e| matches!(e, Payload::Error(_) | Payload::Observation(_))),
        "{rest:?}"
    );

    // The task is gone; a later run of the same repository completes, and its full-text
    // index has every file: the interrupted run committed nothing half-done.
    let status = fleet
        .agent
        .get_agent_status(AgentId {
            agent: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.state, "idle");
    let stream = fleet
        .agent
        .execute_task(task("task-big-2", &session, TaskContext::default()))
        .await
        .unwrap()
        .into_inner();
    let (events, status) = all_events(stream).await;
    assert!(status.is_none(), "{status:?}");
    let (kind, state) = checkpoint_state(&events);
    assert_eq!(kind, "context_ready");
    assert_eq!(state["stats"]["files_indexed"], 150);
    assert_eq!(state["semantic_sync"]["files_updated"], 150, "{state}");
    assert_eq!(
        state["relevant_symbols"][0]["symbol"]
            .as_str()
            .unwrap()
            .starts_with("price_"),
        true,
        "{state}"
    );
}
