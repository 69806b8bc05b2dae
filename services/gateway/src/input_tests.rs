use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use pretty_assertions::assert_eq;
use serde::Deserialize;

use super::*;

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Outer {
    name: String,
    #[serde(default)]
    inner: Option<Inner>,
    #[serde(default)]
    kind: Option<Kind>,
    #[serde(default)]
    nested: Vec<Inner>,
}

impl JsonBody for Outer {
    const OBJECTS: &'static [&'static str] = &["", "inner", "nested[]"];
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Inner {
    count: u32,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Low,
    High,
}

fn failure(json: &str) -> (StatusCode, &'static str, Option<String>, String) {
    match parse_json::<Outer>(json.as_bytes()) {
        Ok(value) => panic!("parsed {value:?}"),
        Err(Error::Invalid {
            status,
            code,
            field,
            message,
        }) => (status, code, field, message),
        Err(other) => panic!("unexpected {other:?}"),
    }
}

#[test]
fn parses_valid_json() {
    let value: Outer =
        parse_json(br#"{"name": "a", "inner": {"count": 2, "tags": ["x"]}, "kind": "high"}"#)
            .unwrap();
    assert_eq!(
        value,
        Outer {
            name: "a".to_owned(),
            inner: Some(Inner {
                count: 2,
                tags: vec!["x".to_owned()]
            }),
            kind: Some(Kind::High),
            nested: Vec::new(),
        }
    );
}

#[test]
fn names_the_field_of_each_failure() {
    let (status, code, field, message) = failure(r#"{"inner": {"count": 1}}"#);
    assert_eq!(
        (status, code, field.as_deref()),
        (StatusCode::BAD_REQUEST, "missing_field", Some("name"))
    );
    assert_eq!(message, "`name` is required");

    let (_, code, field, _) = failure(r#"{"name": "a", "inner": {"tags": []}}"#);
    assert_eq!(
        (code, field.as_deref()),
        ("missing_field", Some("inner.count"))
    );

    let (_, code, field, message) = failure(r#"{"name": "a", "colour": 1}"#);
    assert_eq!((code, field.as_deref()), ("unknown_field", Some("colour")));
    assert!(message.contains("expected one of"), "{message}");

    let (_, code, field, _) = failure(r#"{"name": "a", "inner": {"count": 1, "extra": true}}"#);
    assert_eq!(
        (code, field.as_deref()),
        ("unknown_field", Some("inner.extra"))
    );

    let (_, code, field, message) = failure(r#"{"name": 5}"#);
    assert_eq!((code, field.as_deref()), ("invalid_type", Some("name")));
    assert!(
        message.starts_with("`name`: invalid type: integer `5`"),
        "{message}"
    );

    let (_, code, field, _) = failure(r#"{"name": "a", "inner": {"count": -1}}"#);
    assert_eq!(
        (code, field.as_deref()),
        ("invalid_value", Some("inner.count"))
    );

    let (_, code, field, _) = failure(r#"{"name": "a", "inner": {"count": 1, "tags": ["x", 2]}}"#);
    assert_eq!(
        (code, field.as_deref()),
        ("invalid_type", Some("inner.tags[1]"))
    );

    let (_, code, field, message) = failure(r#"{"name": "a", "kind": "urgent"}"#);
    assert_eq!((code, field.as_deref()), ("invalid_value", Some("kind")));
    assert!(message.contains("unknown variant `urgent`"), "{message}");

    let (_, code, field, message) = failure(r#"{"name": "a", "name": "b"}"#);
    assert_eq!((code, field.as_deref()), ("duplicate_field", Some("name")));
    assert_eq!(message, "`name` is given more than once");
}

#[test]
fn arrays_are_not_objects() {
    let (_, code, field, message) = failure(r#"["name"]"#);
    assert_eq!((code, field), ("invalid_type", None));
    assert_eq!(
        message,
        "the request body: invalid type: array, expected an object"
    );

    let (_, code, field, _) = failure(r#"{"name": "a", "inner": [3, []]}"#);
    assert_eq!((code, field.as_deref()), ("invalid_type", Some("inner")));

    let (_, code, field, _) = failure(r#"{"name": "a", "nested": [{"count": 1}, [2]]}"#);
    assert_eq!(
        (code, field.as_deref()),
        ("invalid_type", Some("nested[1]"))
    );

    // Other wrong types are left to the typed read and its message.
    let (_, code, field, _) = failure(r#"{"name": "a", "inner": "x"}"#);
    assert_eq!((code, field.as_deref()), ("invalid_type", Some("inner")));
}

#[test]
fn malformed_json_is_a_bad_request() {
    for body in [r#"{"name": "a",}"#, r#"{"name": "#, "nope", "{} {}", "   "] {
        let (status, code, _, message) = failure(body);
        assert_eq!(
            (status, code),
            (StatusCode::BAD_REQUEST, "malformed_json"),
            "{body}"
        );
        assert!(!message.contains(" at line "), "{message}");
    }
    let (_, _, _, message) = failure("");
    assert_eq!(message, "the request body is empty; expected a JSON object");
}

fn headers(content_type: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(value) = content_type {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
    }
    headers
}

#[test]
fn content_type_must_be_json() {
    for ok in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/merge-patch+json",
    ] {
        assert!(require_json(&headers(Some(ok))).is_ok(), "{ok}");
    }
    for bad in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("json"),
    ] {
        let error = require_json(&headers(bad)).unwrap_err();
        assert_eq!(
            error.status_code(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{bad:?}"
        );
    }
}

fn query(pairs: &[(&str, &str)]) -> QueryParams {
    QueryParams::from_pairs(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[test]
fn query_parameters_are_checked() {
    let params = query(&[("after_seq", "5")]);
    params.only(&["after_seq", "limit"]).unwrap();
    assert_eq!(params.int("after_seq", 0, 100).unwrap(), Some(5));
    assert_eq!(params.int("limit", 1, 100).unwrap(), None);

    let error = query(&[("after", "5")]).only(&["after_seq"]).unwrap_err();
    assert_eq!(
        (error.code(), error.status_code()),
        ("unknown_field", StatusCode::BAD_REQUEST)
    );
    let error = query(&[("x", "1")]).only(&[]).unwrap_err();
    assert!(
        error.to_string().contains("takes no query parameters"),
        "{error}"
    );
    let error = query(&[("limit", "1"), ("limit", "2")])
        .only(&["limit"])
        .unwrap_err();
    assert_eq!(error.code(), "invalid_value");

    let error = query(&[("after_seq", "abc")])
        .int("after_seq", 0, 10)
        .unwrap_err();
    assert_eq!(error.code(), "invalid_type");
    let error = query(&[("after_seq", "-1")])
        .int("after_seq", 0, 10)
        .unwrap_err();
    assert_eq!(error.code(), "invalid_value");
    assert!(error.to_string().contains("between 0 and 10"), "{error}");
}

#[test]
fn task_ids_are_uuids() {
    assert_eq!(
        task_id("7D3C2A4E-8F61-4C1E-9A55-0B1F2E3D4C5B").unwrap(),
        "7d3c2a4e-8f61-4c1e-9a55-0b1f2e3d4c5b"
    );
    for bad in [
        "",
        "42",
        "../etc/passwd",
        "7d3c2a4e-8f61-4c1e-9a55-0b1f2e3d4c5",
    ] {
        let error = task_id(bad).unwrap_err();
        assert_eq!(error.code(), "invalid_task_id", "{bad}");
    }
}

#[test]
fn pull_request_ids() {
    assert_eq!(pull_request_id("acme-widgets-7").unwrap(), "acme-widgets-7");
    assert!(pull_request_id(" ").is_err());
    assert!(pull_request_id("a\nb").is_err());
    assert!(pull_request_id(&"x".repeat(MAX_ID_CHARS + 1)).is_err());
}

#[test]
fn relative_paths() {
    for ok in [
        "src/lib.rs",
        "legacy/auth.js",
        "vendor/**",
        "a/.gitignore",
        "weird:name.txt",
    ] {
        relative_path("f", ok).unwrap();
    }
    for (bad, why) in [
        ("", "must not be empty"),
        ("/etc/passwd", "relative"),
        ("\\windows", "relative"),
        ("src/../../x", "`..`"),
        ("..", "`..`"),
        (".git/config", "`.git`"),
        ("sub/.GIT/hooks/pre-commit", "`.git`"),
        ("a\u{7}b", "control"),
    ] {
        let error = relative_path("comments[0].file", bad).unwrap_err();
        assert!(error.to_string().contains(why), "{bad:?}: {error}");
        assert_eq!(error.status_code(), StatusCode::BAD_REQUEST);
    }
}

#[test]
fn text_fields() {
    text("prompt", "do it", 10).unwrap();
    assert!(
        text("prompt", "  \n", 10)
            .unwrap_err()
            .to_string()
            .contains("must not be empty")
    );
    // Characters, not bytes.
    text("prompt", &"é".repeat(10), 10).unwrap();
    assert!(
        text("prompt", &"é".repeat(11), 10)
            .unwrap_err()
            .to_string()
            .contains("11 characters")
    );
    assert!(
        text("prompt", "a\0b", 10)
            .unwrap_err()
            .to_string()
            .contains("NUL")
    );
    assert!(
        name("reviewer", "a\tb")
            .unwrap_err()
            .to_string()
            .contains("control")
    );
}
