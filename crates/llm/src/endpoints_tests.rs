use std::io::Write as _;
use std::time::Duration;

use pretty_assertions::assert_eq;

use super::*;

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

fn primary() -> ModelConfig {
    ModelConfig {
        base_url: "http://127.0.0.1:9/v1".into(),
        model: "qwen2.5-coder".into(),
        timeout: Duration::from_secs(30),
        ..ModelConfig::default()
    }
}

fn env(name: &str) -> Option<String> {
    (name == "TEST_FALLBACK_KEY").then(|| "key-from-env".to_owned())
}

#[test]
fn fallbacks_are_read_in_order_with_keys_from_the_environment() {
    let endpoints = file(
        r#"
[[fallback]]
provider = "anthropic"
base_url = "http://127.0.0.1:10/v1"
model = "claude"
api_key_env = "TEST_FALLBACK_KEY"
max_output_tokens = 8192

[[fallback]]
base_url = "http://127.0.0.1:11/v1"
model = "small"
timeout_seconds = 5
"#,
    );
    let configs = load_fallbacks(endpoints.path(), &primary(), env).unwrap();
    assert_eq!(
        configs,
        vec![
            ModelConfig {
                provider: Provider::Anthropic,
                base_url: "http://127.0.0.1:10/v1".into(),
                api_key: Some("key-from-env".into()),
                model: "claude".into(),
                max_output_tokens: 8192,
                ..primary()
            },
            ModelConfig {
                base_url: "http://127.0.0.1:11/v1".into(),
                model: "small".into(),
                timeout: Duration::from_secs(5),
                ..primary()
            },
        ]
    );
}

#[test]
fn a_bad_file_is_refused_naming_the_file_and_what_is_wrong() {
    let cases = [
        ("[[fallback]]\nmodel = \"m\"\n", "missing field `base_url`"),
        (
            "[[fallback]]\nbase_url = \"http://h/v1\"\nmodel = \"m\"\nprovider = \"gemini\"\n",
            "unknown variant `gemini`",
        ),
        (
            "[[fallback]]\nbase_url = \"http://h/v1\"\nmodel = \"m\"\napi_key = \"k\"\n",
            "fallback #1 holds api_key; keys are never written in the file",
        ),
        (
            "[[fallback]]\nbase_url = \"http://h/v1\"\nmodel = \"m\"\napi_key_env = \"UNSET\"\n",
            "fallback #1: the environment variable UNSET is not set",
        ),
        (
            "[[fallback]]\nbase_url = \"ftp://h/v1\"\nmodel = \"m\"\n",
            "fallback #1: invalid model configuration: base URL \"ftp://h/v1\" must be http or https",
        ),
        ("[[fallbacks]]\n", "unknown field `fallbacks`"),
    ];
    for (text, expected) in cases {
        let endpoints = file(text);
        let error = load_fallbacks(endpoints.path(), &primary(), env).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(&endpoints.path().display().to_string()) && message.contains(expected),
            "{text}: {message}"
        );
    }
    let missing = load_fallbacks(Path::new("/nonexistent/models.toml"), &primary(), env)
        .unwrap_err()
        .to_string();
    assert!(missing.contains("/nonexistent/models.toml"), "{missing}");
}
