//! The `cap` command: starts the whole fleet locally on the embedded defaults (SQLite, local
//! sandbox, local git forge, mTLS on loopback) and, when no model endpoint is configured,
//! drives the sample task with the scripted model so the whole path shows: request, plan,
//! edits, tests in the sandbox, pull request, review. `cap scan` runs the secret scanner
//! (`cap-secrets`) on a tree or a diff.

mod advisories;
mod audit;
mod scan;
mod users;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

pub use advisories::{AdvisoriesArgs, AdvisoriesCommand, advisories};
use anyhow::{Context, bail};
pub use audit::{AuditArgs, audit};
use cap_fleet::{Fleet, FleetConfig, ModelEndpoint};
use cap_proto::github::v1::git_hub_client::GitHubClient;
use cap_proto::github::v1::{ImportRepositoryRequest, ImportedFile};
use cap_scripted_model::{ScriptStep, ScriptedModel};
pub use scan::{ScanArgs, ScanFormat, scan};
pub use users::{AuthCommand, StoreArgs, TokenCommand, UserCommand};

/// The sample repository's files (the end-to-end tests use the same ones).
const SAMPLE_FILES: [(&str, &str); 3] = [
    (
        "calc.py",
        include_str!("../../../tests/fixtures/python-calculator/calc.py"),
    ),
    (
        "test_calc.py",
        include_str!("../../../tests/fixtures/python-calculator/test_calc.py"),
    ),
    (
        "README.md",
        include_str!("../../../tests/fixtures/python-calculator/README.md"),
    ),
];
/// The scripted model's answers for the sample task.
const SAMPLE_SCRIPT: &str = include_str!("../../../tests/fixtures/python-calculator.script.json");
/// The sample repository's name in the local forge.
pub const SAMPLE_REPOSITORY: &str = "demo/calculator";
/// The identity the command presents to the fleet's services (a certificate of the dev CA).
const CLIENT_IDENTITY: &str = "cli";
/// The account that asks for the sample task.
pub const SAMPLE_REQUESTER: &str = "sample-requester";
/// The sample task.
pub const SAMPLE_PROMPT: &str = "Fix the bug that makes test_add fail: add(2, 3) should return 5.";

/// Command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "cap",
    about = "The coding assistant platform, on one machine",
    version
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Start the fleet and serve until Ctrl-C (the default).
    Up(UpArgs),
    /// Scan a directory tree or a unified diff for secrets: exit 1 when something is found,
    /// 0 when clean, 2 on an error. Secrets are only ever printed redacted.
    Scan(ScanArgs),
    /// Manage the gateway's local accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens for scripts and CI.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Session keys.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Import OSV advisories and licences offline, and check a diff's or a tree's
    /// dependencies against them and the licence policy.
    Advisories(AdvisoriesArgs),
    /// Check (`verify`) or print (`show`) the supervisor's audit log.
    Audit(AuditArgs),
}

/// Flags of `cap up`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Root of all local state: certificates, databases, repositories, workspaces, logs.
    #[arg(long, env = "CAP_DATA_DIR", default_value = ".cap-data")]
    pub data_dir: PathBuf,
    /// Where the gateway serves the API and the dashboard.
    #[arg(long, env = "CAP_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    pub http_listen: SocketAddr,
    /// PostgreSQL URL for the supervisor and GitHub service; SQLite files when unset.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp, OpenAI); unset runs the scripted
    /// model and the sample task.
    #[arg(long, env = "CAP_MODEL_BASE_URL")]
    pub model_base_url: Option<String>,
    /// API key for the endpoint, if it needs one.
    #[arg(long, env = "CAP_MODEL_API_KEY", hide_env_values = true)]
    pub model_api_key: Option<String>,
    /// Model name.
    #[arg(long, env = "CAP_MODEL", default_value = "qwen2.5-coder")]
    pub model: String,
    /// Run the sample task even with a real model endpoint.
    #[arg(long)]
    pub demo: bool,
    /// Stop once the sample task has its pull request (for smoke checks) instead of serving.
    #[arg(long)]
    pub exit_after_demo: bool,
}

impl Default for UpArgs {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(".cap-data"),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            model_base_url: None,
            model_api_key: None,
            model: "qwen2.5-coder".to_owned(),
            demo: false,
            exit_after_demo: false,
        }
    }
}

/// Runs the command; the exit status is the command's (`cap scan` has three).
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Some(Command::Up(args)) => up(args).await.map(|()| ExitCode::SUCCESS),
        Some(Command::Scan(args)) => Ok(scan(&args)),
        Some(Command::User(command)) => users::user(command).await.map(|()| ExitCode::SUCCESS),
        Some(Command::Token(command)) => users::token(command).await.map(|()| ExitCode::SUCCESS),
        Some(Command::Auth(command)) => users::auth(command).map(|()| ExitCode::SUCCESS),
        Some(Command::Advisories(args)) => Ok(advisories(&args)),
        Some(Command::Audit(args)) => Ok(audit(&args).await),
        None => up(UpArgs::default()).await.map(|()| ExitCode::SUCCESS),
    }
}

/// `cap up`.
pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    let scripted = match &args.model_base_url {
        Some(_) => None,
        None => {
            let script: Vec<ScriptStep> =
                serde_json::from_str(SAMPLE_SCRIPT).context("the sample script is invalid")?;
            Some(ScriptedModel::start(script).await?)
        }
    };
    let model = match (&args.model_base_url, &scripted) {
        (Some(url), _) => ModelEndpoint {
            base_url: url.clone(),
            api_key: args.model_api_key.clone(),
            model: args.model.clone(),
        },
        (None, Some(scripted)) => ModelEndpoint {
            base_url: scripted.base_url(),
            api_key: None,
            model: "scripted".to_owned(),
        },
        (None, None) => bail!("no model endpoint"),
    };
    let mut config = FleetConfig::new(&data_dir, model)?;
    config.http_listen = args.http_listen;
    config.database_url = args.database_url.clone();
    println!("Starting the fleet (data in {}) ...", data_dir.display());
    let fleet = Fleet::start(config).await?;
    let base = fleet.gateway_url();
    println!("Dashboard:  {base}/");
    println!("API:        {base}/api/v1/tasks");
    println!("Logs:       {}", fleet.config().log_dir().display());
    match fleet.initial_admin_password() {
        Some(password) => println!(
            "Sign in:    admin / {password}   (the first Admin's one-time password; change it \
             with `cap user set-password admin`, which removes it from {})",
            data_dir.join("gateway").display()
        ),
        None => {
            println!("Sign in:    with your account (`cap user add NAME --role ROLE` adds one)")
        }
    }

    let demo = scripted.is_some() || args.demo;
    if demo {
        if scripted.is_some() {
            println!(
                "No model endpoint configured (CAP_MODEL_BASE_URL): the scripted model drives the sample task."
            );
        }
        let outcome = run_sample_task(&fleet).await;
        if let Err(error) = &outcome {
            println!("The sample task did not finish: {error:#}");
        }
        if args.exit_after_demo {
            fleet.stop().await;
            return outcome;
        }
    }
    println!("Serving. Press Ctrl-C to stop.");
    cap_runtime::shutdown_signal().await;
    println!("Stopping ...");
    fleet.stop().await;
    Ok(())
}

/// Puts the sample repository in the forge, submits the sample task through the gateway's
/// API and follows it to its pull request.
async fn run_sample_task(fleet: &Fleet) -> anyhow::Result<()> {
    import_sample_repository(fleet).await?;
    let base = fleet.gateway_url();
    // The sample task is asked for by an account of its own, so the Admin can review it
    // (nobody approves their own task's change).
    let token = fleet
        .issue_token(SAMPLE_REQUESTER, cap_identity::Role::Developer)
        .await?;
    let http = reqwest::Client::new();
    let created: serde_json::Value = http
        .post(format!("{base}/api/v1/tasks"))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "repository_id": SAMPLE_REPOSITORY,
            "prompt": SAMPLE_PROMPT,
            "constraints": {"max_files_changed": 3},
            "priority": "normal"
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let task_id = created["task_id"]
        .as_str()
        .context("no task_id in the answer")?
        .to_owned();
    println!("Sample task: {SAMPLE_PROMPT}");
    println!("  task:     {base}/api/v1/tasks/{task_id}");
    println!(
        "  watch:    {base}/#/tasks/{task_id}   (WebSocket ws://{}/ws/tasks/{task_id}/stream)",
        fleet.gateway_http()
    );
    let task = loop {
        let task: serde_json::Value = http
            .get(format!("{base}/api/v1/tasks/{task_id}"))
            .bearer_auth(&token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        match task["status"].as_str() {
            Some("completed") | Some("failed") | Some("paused") => break task,
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    if task["status"] != "completed" {
        bail!("task ended {}: {}", task["status"], task["error_message"]);
    }
    let pr_id = task["pull_request_id"].as_str().unwrap_or_default();
    println!(
        "Pull request opened on branch {}:",
        task["branch"].as_str().unwrap_or_default()
    );
    println!("  review:   {base}/#/pull-requests/{pr_id}   (signed in as admin)");
    println!(
        "  or:       curl -s {base}/api/v1/auth/login -H 'content-type: application/json' -d '{{\"username\":\"admin\",\"password\":\"...\"}}'"
    );
    println!(
        "            curl -X POST {base}/api/v1/pull-requests/{pr_id}/review -H \"authorization: Bearer <token from the answer>\" -H 'content-type: application/json' -d '{{\"action\":\"approve\"}}'"
    );
    Ok(())
}

/// Creates `demo/calculator` through the GitHub service, which owns the forge. The import is
/// idempotent, so a restart finds the repository it made the first time; a repository of that
/// name holding other files (a user's own) is left alone and used as it is.
async fn import_sample_repository(fleet: &Fleet) -> anyhow::Result<()> {
    let tls = fleet.pki().service(CLIENT_IDENTITY)?;
    let url = format!("https://{}", fleet.grpc_addr("github")?);
    let mut github = GitHubClient::new(tls.channel(&url)?);
    let request = ImportRepositoryRequest {
        repository_id: SAMPLE_REPOSITORY.to_owned(),
        default_branch: "main".to_owned(),
        // The forge's default: `Import demo/calculator`.
        message: String::new(),
        files: SAMPLE_FILES
            .iter()
            .map(|(path, content)| ImportedFile {
                path: (*path).to_owned(),
                content: content.as_bytes().to_vec(),
                executable: false,
            })
            .collect(),
    };
    match github.import_repository(request).await {
        Ok(reply) if reply.get_ref().created => {
            println!("Sample repository {SAMPLE_REPOSITORY} imported into the forge.");
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(status) if status.code() == tonic::Code::AlreadyExists => {
            println!(
                "A repository {SAMPLE_REPOSITORY} with other files is in the forge; the sample task runs on it."
            );
            Ok(())
        }
        Err(status) => Err(anyhow::anyhow!(status))
            .with_context(|| format!("importing {SAMPLE_REPOSITORY} through the GitHub service")),
    }
}
