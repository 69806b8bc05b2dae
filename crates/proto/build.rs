//! Compiles `proto/` with protox (pure Rust), so a fresh build needs no `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "common/v1/common.proto",
        "agent/v1/orchestrator.proto",
        "supervisor/v1/supervisor.proto",
        "sandbox/v1/sandbox.proto",
        "github/v1/github.proto",
        "context/v1/context.proto",
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    let descriptors = protox::compile(files, [&root])?;
    tonic_prost_build::configure()
        // Events are stored as JSON in the supervisor's store, so messages carry serde.
        .type_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]")
        .message_attribute(".", "#[serde(default)]")
        .compile_fds(descriptors)?;
    Ok(())
}
