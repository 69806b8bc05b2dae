//! The testing agent's binary.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cap_runtime::init_tracing(cap_testing_agent::SERVICE_NAME);
    cap_testing_agent::run(cap_testing_agent::Config::parse()).await
}
