//! `cap audit verify` and `cap audit show`: the supervisor's audit log (`cap-audit`) checked
//! against its signed checkpoints, or printed.
//!
//! By default they read the embedded fleet's layout under the data dir (`cap up`): the
//! supervisor's SQLite file `<data-dir>/supervisor.db` (or the GitHub service's, `github.db`,
//! with `--service github`) and the checkpoints' public key in the supervisor's own data dir,
//! `<data-dir>/supervisor/audit-signing-key.pub`, which both services sign with.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use cap_audit::PublicKey;

/// Exit status when the log is broken.
const EXIT_BROKEN: u8 = 1;
/// Exit status on an error (as clap's usage errors).
const EXIT_ERROR: u8 = 2;

/// Flags of `cap audit`.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// `cap audit` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AuditCommand {
    /// Recompute the chain and check every signed checkpoint: exit 0 when intact, 1 when
    /// broken (naming the first broken record), 2 on an error.
    Verify(VerifyArgs),
    /// Print records, oldest first.
    Show(ShowArgs),
}

/// Where the log is.
#[derive(Debug, Clone, clap::Args)]
pub struct Location {
    /// The supervisor's database; default `<data-dir>/supervisor.db`.
    #[arg(long, env = "CAP_SUPERVISOR_DATABASE_URL")]
    pub database: Option<String>,
    /// The fleet's data dir (`cap up --data-dir`).
    #[arg(long, env = "CAP_DATA_DIR", default_value = ".cap-data")]
    pub data_dir: PathBuf,
    /// Whose log, on the embedded default's SQLite files: the supervisor's (tasks, agents,
    /// commits, pull requests opened), the GitHub service's (reviews and merges) or the
    /// gateway's (Admins' changes, sign-ins). On PostgreSQL all write one log.
    #[arg(long, default_value = "supervisor", value_parser = ["supervisor", "github", "gateway"])]
    pub service: String,
}

impl Location {
    fn default_file(&self) -> PathBuf {
        match self.service.as_str() {
            // The gateway keeps its store in its own data dir.
            "gateway" => self.data_dir.join("gateway").join("gateway.db"),
            service => self.data_dir.join(format!("{service}.db")),
        }
    }

    fn database_url(&self) -> String {
        self.database
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=ro", self.default_file().display()))
    }
}

/// Flags of `cap audit verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// Where the log is.
    #[command(flatten)]
    pub location: Location,
    /// A trusted public key file (base64 of the raw Ed25519 key); repeat for several. Default:
    /// `<data-dir>/supervisor/audit-signing-key.pub`.
    #[arg(long)]
    pub public_key: Vec<PathBuf>,
}

/// Flags of `cap audit show`.
#[derive(Debug, Clone, clap::Args)]
pub struct ShowArgs {
    /// Where the log is.
    #[command(flatten)]
    pub location: Location,
    /// Only the records of this task.
    #[arg(long)]
    pub task: Option<String>,
    /// At most this many records (the newest).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

/// Runs `cap audit`; the exit status is the command's.
pub async fn audit(args: &AuditArgs) -> ExitCode {
    let outcome = match &args.command {
        AuditCommand::Verify(args) => verify(args).await,
        AuditCommand::Show(args) => show(args).await.map(|()| ExitCode::SUCCESS),
    };
    outcome.unwrap_or_else(|error| {
        eprintln!("cap audit: {error:#}");
        ExitCode::from(EXIT_ERROR)
    })
}

async fn open(location: &Location) -> anyhow::Result<cap_storage::AnyPool> {
    let url = location.database_url();
    if location.database.is_none() {
        let file = location.default_file();
        anyhow::ensure!(
            file.is_file(),
            "no {} database at {} (pass --data-dir or --database)",
            location.service,
            file.display()
        );
    }
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&url)
        .await
        .with_context(|| format!("cannot open {}", cap_storage::redact(&url)))
}

async fn verify(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let default_key = args
        .location
        .data_dir
        .join("supervisor")
        .join(cap_audit::PUBLIC_KEY_FILE);
    let key_files: Vec<&Path> = if args.public_key.is_empty() {
        vec![&default_key]
    } else {
        args.public_key.iter().map(PathBuf::as_path).collect()
    };
    let keys = key_files
        .iter()
        .map(|path| PublicKey::read(path))
        .collect::<Result<Vec<_>, _>>()
        .context("reading the public key")?;
    let pool = open(&args.location).await?;
    let report = cap_audit::verify(&pool, &keys)
        .await
        .context("reading the audit log")?;
    match &report.problem {
        None => {
            println!("audit log intact: {} records", report.records);
            match &report.last_checkpoint {
                Some(checkpoint) => println!(
                    "last signed checkpoint: record {} at {} ms, head {}, key {}",
                    checkpoint.record_seq,
                    checkpoint.created_at_ms,
                    checkpoint.head_hash,
                    checkpoint.key_fingerprint
                ),
                None => println!("no signed checkpoint yet"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(problem) => {
            println!("audit log BROKEN: {problem}");
            println!("{} records stored", report.records);
            Ok(ExitCode::from(EXIT_BROKEN))
        }
    }
}

async fn show(args: &ShowArgs) -> anyhow::Result<()> {
    let pool = open(&args.location).await?;
    let records = cap_audit::records(&pool, args.task.as_deref(), args.limit)
        .await
        .context("reading the audit log")?;
    for record in records {
        let task = if record.task_id.is_empty() {
            "-"
        } else {
            &record.task_id
        };
        println!(
            "{} {} {} {} task={} {}",
            record.seq,
            record.created_at_ms,
            record.actor,
            record.action,
            task,
            record.details_json
        );
    }
    Ok(())
}
