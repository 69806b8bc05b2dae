use clap::Parser;
use pretty_assertions::assert_eq;

use super::*;

fn parse(args: &[&str]) -> std::result::Result<Config, clap::Error> {
    let mut all = vec![
        "cap-coding-agent",
        "--sandbox-url",
        "https://127.0.0.1:1",
        "--model-base-url",
        "http://127.0.0.1:2/v1",
    ];
    all.extend_from_slice(args);
    Config::try_parse_from(all)
}

#[test]
fn defaults_and_overrides() {
    let config = parse(&[]).unwrap();
    assert_eq!(config.model, "qwen2.5-coder");
    assert_eq!(config.max_steps, 30);
    assert_eq!(config.model_timeout_seconds, 120);
    assert_eq!(config.model_api_key, None);
    let agent = config.agent_config().unwrap();
    assert_eq!(agent.max_steps, 30);
    assert_eq!(agent.model.timeout, Duration::from_secs(120));
    assert_eq!(agent.model.base_url, "http://127.0.0.1:2/v1");
    assert_eq!(agent.context_window, 32_768);

    let config = parse(&[
        "--model",
        "deepseek-coder",
        "--max-steps",
        "5",
        "--model-timeout-seconds",
        "9",
        "--model-api-key",
        "sk-1",
    ])
    .unwrap();
    assert_eq!(
        config.agent_config().unwrap().model.api_key.as_deref(),
        Some("sk-1")
    );
    assert_eq!(config.agent_config().unwrap().max_steps, 5);
    // An empty key means none.
    assert_eq!(
        parse(&["--model-api-key", ""])
            .unwrap()
            .agent_config()
            .unwrap()
            .model
            .api_key,
        None
    );
}

#[test]
fn bad_flags_are_refused() {
    assert!(parse(&["--max-steps", "0"]).is_err());
    assert!(parse(&["--max-steps", "many"]).is_err());
    assert!(parse(&["--model-timeout-seconds", "0"]).is_err());
    let unknown = parse(&["--model-provider", "gemini"])
        .unwrap_err()
        .to_string();
    assert!(
        unknown.contains("unknown model provider \"gemini\""),
        "{unknown}"
    );
    let missing = parse(&["--model-fallbacks", "/nonexistent/fallbacks.toml"])
        .unwrap()
        .agent_config()
        .unwrap_err()
        .to_string();
    assert!(missing.contains("/nonexistent/fallbacks.toml"), "{missing}");
    assert!(
        Config::try_parse_from(["cap-coding-agent", "--model-base-url", "http://x/v1"]).is_err()
    );
}

#[test]
fn debug_redacts_the_api_key() {
    let config = parse(&["--model-api-key", "sk-very-secret"]).unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains("sk-very-secret"), "{shown}");
    assert!(shown.contains("<redacted>"));
}

#[test]
fn anthropic_with_fallbacks_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fallbacks.toml");
    std::fs::write(
        &file,
        "[[fallback]]\nbase_url = \"http://127.0.0.1:3/v1\"\nmodel = \"small\"\n",
    )
    .unwrap();
    let config = parse(&[
        "--model-provider",
        "anthropic",
        "--model-max-output-tokens",
        "8192",
        "--model-fallbacks",
        file.to_str().unwrap(),
        "--model-context-window",
        "200000",
        "--summary-model",
        "claude-haiku",
    ])
    .unwrap()
    .agent_config()
    .unwrap();
    assert_eq!(config.model.provider, Provider::Anthropic);
    assert_eq!(config.model.max_output_tokens, 8192);
    assert_eq!(config.context_window, 200_000);
    let summariser = config.summariser.as_ref().unwrap();
    assert_eq!(
        (summariser.model.as_str(), summariser.provider),
        ("claude-haiku", Provider::Anthropic)
    );
    let fallbacks: Vec<(&str, Provider)> = config
        .fallbacks
        .iter()
        .map(|f| (f.model.as_str(), f.provider))
        .collect();
    assert_eq!(fallbacks, [("small", Provider::OpenAi)]);
}
