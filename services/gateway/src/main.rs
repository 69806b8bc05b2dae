//! `cap-gateway`: the platform's REST and WebSocket API and dashboard.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = cap_gateway::Config::parse();
    cap_runtime::init_tracing("gateway");
    cap_gateway::run(config).await
}
