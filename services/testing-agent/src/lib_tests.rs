use clap::Parser;
use pretty_assertions::assert_eq;

use super::*;

#[test]
fn config_flags() {
    let config = Config::try_parse_from(["x", "--sandbox-url", "https://127.0.0.1:1"]).unwrap();
    assert_eq!(config.test_timeout_seconds, 600);
    assert_eq!(config.agent.sandbox_url, "https://127.0.0.1:1");
    let err = Config::try_parse_from(["x"]).unwrap_err();
    assert!(err.to_string().contains("--sandbox-url"), "{err}");
    let err = Config::try_parse_from(["x", "--sandbox-url", "u", "--test-timeout-seconds", "0"])
        .unwrap_err();
    assert!(err.to_string().contains("--test-timeout-seconds"), "{err}");
}
