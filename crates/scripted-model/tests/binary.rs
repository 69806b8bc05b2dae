//! The `cap-scripted-model` binary serves a JSON script.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

/// Kills the child when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serves_a_script_file() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.json");
    std::fs::write(
        &script,
        json!([{"type": "tool_calls", "calls": [{"name": "read_file", "arguments": "{\"path\":\"a\"}"}]}])
            .to_string(),
    )
    .unwrap();
    let addr_file = dir.path().join("addr");
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_cap-scripted-model"))
            .arg("--script")
            .arg(&script)
            .arg("--addr-file")
            .arg(&addr_file)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The banner is printed once the listener is bound and the address file written.
    let mut banner = String::new();
    BufReader::new(child.0.stderr.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    assert!(banner.contains("serving 1 steps"), "{banner}");
    let addr = std::fs::read_to_string(&addr_file).unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/v1/chat/completions");
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let reply: Value = client
        .post(&url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        reply["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "read_file"
    );
    let response = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 500);
}

#[test]
fn refuses_a_missing_script() {
    let output = Command::new(env!("CARGO_BIN_EXE_cap-scripted-model"))
        .args(["--script", "/nonexistent/script.json"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot read script /nonexistent/script.json"),
        "{stderr}"
    );
}
