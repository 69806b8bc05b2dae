//! `cargo bench -p cap-agent --bench condensation -- [turns] [window tokens]`: the coding
//! agent on a scripted conversation of many turns (default 60, each reading a file of about
//! 1.5 KB), once with the conversation never condensed and once condensed before it passes
//! three quarters of a window (default 8192 tokens), the summaries written by a second
//! scripted model. Prints the tokens sent per task (the scripted model counts a request's
//! body, four bytes a token, as its usage does), summaries included, and their ratio.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use cap_agent::{AgentConfig, CodingAgent};
use cap_agent_server::Steering;
use cap_llm::{ModelConfig, RetryPolicy};
use cap_proto::agent::v1::{RepositoryContext, TaskRequest};
use cap_proto::sandbox::v1::CreateSessionRequest;
use cap_sandbox_client::SandboxApi as _;
use cap_testkit::sandbox::MemorySandbox;
use cap_testkit::{ScriptStep, ScriptedModel};
use tokio_util::sync::CancellationToken;

const REPO: &str = "memory://bench";
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// Tokens the requests to `model` carried.
fn tokens_sent(model: &ScriptedModel) -> u64 {
    model
        .requests()
        .iter()
        .map(|request| request.to_string().len() as u64 / 4)
        .sum()
}

fn endpoint(model: &ScriptedModel) -> ModelConfig {
    ModelConfig {
        base_url: model.base_url(),
        model: "scripted".to_owned(),
        timeout: Duration::from_secs(30),
        ..ModelConfig::default()
    }
}

/// Runs the conversation; returns (tokens sent to the coding model, to the summariser,
/// condensations).
async fn run(turns: usize, window: u32, files: &[(String, String)]) -> (u64, u64, usize) {
    let mut script: Vec<ScriptStep> = (0..turns - 1)
        .map(|turn| {
            let path = &files[turn % files.len()].0;
            ScriptStep::tool_call("read_file", format!("{{\"path\": \"{path}\"}}"))
        })
        .collect();
    script.push(ScriptStep::text("Read everything; nothing to change."));
    let coding = ScriptedModel::start(script).await.unwrap();
    let summaries = (0..turns)
        .map(|n| {
            ScriptStep::text(format!(
                "Summary {n}: read the modules, found nothing wrong."
            ))
        })
        .collect();
    let summariser = ScriptedModel::start(summaries).await.unwrap();

    let mut config = AgentConfig::new(endpoint(&coding), u32::try_from(turns).unwrap() + 1);
    config.context_window = window;
    config.summariser = Some(endpoint(&summariser));
    config.retry = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    let sandbox = MemorySandbox::new();
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(path, content)| (path.as_str(), content.as_str()))
        .collect();
    sandbox.add_repository(REPO, SHA, &borrowed);
    let session = sandbox
        .create_session(CreateSessionRequest {
            repo_url: REPO.into(),
            commit_sha: SHA.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .session_id;
    let agent = CodingAgent::new(config, sandbox).unwrap();
    let (events, mut received) = tokio::sync::mpsc::channel(100_000);
    let request = TaskRequest {
        task_id: "bench".into(),
        repo: Some(RepositoryContext {
            repository_id: "bench/repo".into(),
            sandbox_session_id: session,
            commit_sha: SHA.into(),
            default_branch: "main".into(),
            test_command: String::new(),
        }),
        objective: "Review every module for the bug in the report.".into(),
        ..Default::default()
    };
    let outcome = agent
        .run(request, events, CancellationToken::new(), Steering::none())
        .await
        .unwrap();
    assert_eq!(outcome.steps as usize, turns, "{outcome:?}");
    let mut condensations = 0;
    while let Ok(event) = received.try_recv() {
        if let Some(cap_proto::agent::v1::task_event::Payload::Checkpoint(checkpoint)) =
            &event.payload
            && checkpoint.kind() == cap_proto::agent::v1::CheckpointKind::ContextCondensed
        {
            condensations += 1;
        }
    }
    (
        tokens_sent(&coding),
        tokens_sent(&summariser),
        condensations,
    )
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let turns: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(60)
        .max(2);
    let window: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(8192);
    let files: Vec<(String, String)> = (0..12)
        .map(|n| {
            let body: String = (0..30)
                .map(|line| format!("def f_{n}_{line}(x):\n    return x + {line}  # step {n}\n"))
                .collect();
            (format!("pkg/module_{n}.py"), body)
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (plain, _, _) = runtime.block_on(run(turns, 0, &files));
    let (condensed, summaries, times) = runtime.block_on(run(turns, window, &files));
    let with = condensed + summaries;
    println!("condensation over a {turns}-turn conversation, {window}-token window");
    println!("  never condensed (baseline): {plain} tokens sent");
    println!(
        "  condensed {times} times:      {with} tokens sent ({condensed} to the coding model, {summaries} to the summariser)"
    );
    println!(
        "  ratio condensed/baseline:   {:.3}",
        with as f64 / plain.max(1) as f64
    );
}
