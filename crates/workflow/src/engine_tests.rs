use super::*;

#[test]
fn validation_names_fields() {
    let mut spec = TaskSpec {
        repository_id: " ".into(),
        prompt: "x".into(),
        ..TaskSpec::default()
    };
    assert_eq!(
        validate(&mut spec).unwrap_err().to_string(),
        "repository_id: must not be empty"
    );
    spec.repository_id = "a/b".into();
    spec.prompt = "  ".into();
    assert_eq!(
        validate(&mut spec).unwrap_err().to_string(),
        "prompt: must not be empty"
    );
    spec.prompt = "do it".into();
    spec.priority = "urgent".into();
    assert!(
        validate(&mut spec)
            .unwrap_err()
            .to_string()
            .starts_with("priority:")
    );
    spec.priority = String::new();
    validate(&mut spec).unwrap();
    assert_eq!(spec.priority, "normal");
}

#[test]
fn error_chain_joins_causes() {
    let status = tonic::Status::unavailable("connection refused");
    let error = Error::upstream("sandbox", status);
    assert!(error.is_retryable());
    assert!(cap_errors::chain(&error).starts_with("sandbox service: connection refused"));
}
