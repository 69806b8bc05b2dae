//! `cap-sandbox`: the sandbox service.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = cap_sandbox_service::Config::parse();
    cap_runtime::init_tracing("sandbox");
    cap_sandbox_service::run(config).await
}
