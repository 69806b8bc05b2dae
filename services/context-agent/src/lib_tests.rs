use pretty_assertions::assert_eq;

use super::*;

#[test]
fn an_embeddings_endpoint_needs_a_model_and_a_usable_url() {
    use clap::Parser as _;
    let parse = |extra: &[&str]| {
        let mut args = vec!["cap-context-agent", "--sandbox-url", "https://127.0.0.1:1"];
        args.extend_from_slice(extra);
        Config::try_parse_from(args)
    };
    let none = parse(&[]).map(|c| c.embeddings().map(|e| e.is_none()).ok());
    assert_eq!(none.ok(), Some(Some(true)));
    let no_model = parse(&["--embeddings-base-url", "http://127.0.0.1:1/v1"]);
    assert!(
        no_model
            .err()
            .is_some_and(|e| e.to_string().contains("--embeddings-model")),
        "a base URL without a model is refused"
    );
    let bad_url = parse(&[
        "--embeddings-base-url",
        "127.0.0.1:1/v1",
        "--embeddings-model",
        "m",
    ])
    .ok()
    .and_then(|c| c.embeddings().err())
    .map(|e| e.to_string());
    assert_eq!(
        bad_url.as_deref(),
        Some("invalid embeddings configuration: the base URL must start with http:// or https://")
    );
    let good = parse(&[
        "--embeddings-base-url",
        "http://127.0.0.1:1/v1",
        "--embeddings-model",
        "m",
        "--embeddings-batch-size",
        "8",
    ])
    .ok()
    .and_then(|c| c.embeddings().ok().flatten())
    .map(|e| (e.model, e.batch_size));
    assert_eq!(good, Some(("m".to_owned(), 8)));
}
