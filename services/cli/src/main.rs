//! The `cap` command.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    cap_runtime::init_cli_tracing("cap");
    cap_cli::run(cap_cli::Cli::parse()).await
}
