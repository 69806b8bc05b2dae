//! `cap-github`: the GitHub service binary (a local git forge by default).

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = cap_github_service::Config::parse();
    cap_runtime::init_tracing("github");
    cap_github_service::run(config).await
}
