//! `cap-scripted-model`: serves a JSON script of model answers on an OpenAI-compatible
//! endpoint, for running the fleet end to end without a real model.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// Serves a scripted OpenAI-compatible chat-completions endpoint.
#[derive(Debug, Parser)]
#[command(name = "cap-scripted-model", version)]
struct Args {
    /// JSON file holding an array of script steps.
    #[arg(long, env = "CAP_MODEL_SCRIPT")]
    script: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "CAP_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// File to write the bound address to once listening.
    #[arg(long, env = "CAP_ADDR_FILE")]
    addr_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let script = cap_scripted_model::load_script(&args.script)?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let bound = listener.local_addr()?;
    if let Some(path) = &args.addr_file {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bound.to_string())?;
        std::fs::rename(&tmp, path)?;
    }
    eprintln!(
        "scripted model serving {} steps on http://{bound}/v1",
        script.len()
    );
    cap_scripted_model::serve_script(listener, script).await?;
    Ok(())
}
