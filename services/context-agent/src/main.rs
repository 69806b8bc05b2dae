//! The context agent's binary.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cap_runtime::init_tracing(cap_context_agent::SERVICE_NAME);
    cap_context_agent::run(cap_context_agent::Config::parse()).await
}
