//! The supervisor service's binary.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cap_runtime::init_tracing("supervisor");
    cap_supervisor::run(cap_supervisor::Config::parse()).await
}
