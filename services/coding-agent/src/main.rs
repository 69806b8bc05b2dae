//! The coding agent's binary.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cap_runtime::init_tracing(cap_coding_agent::SERVICE_NAME);
    cap_coding_agent::run(cap_coding_agent::Config::parse()).await
}
