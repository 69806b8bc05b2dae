//! Reading request inputs: JSON bodies, query strings and path identifiers, each failure
//! turned into an [`Error`] that names the offending field.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::error::Category;

use crate::error::{Error, Result};

/// A JSON request body: requires `Content-Type: application/json` (415 otherwise) and names
/// the field of every deserialization failure.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: JsonBody> FromRequest<S> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        require_json(req.headers())?;
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// An optional JSON request body: an empty body is `None` whatever its content type; a
/// non-empty one must be JSON and match `T`.
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<S: Send + Sync, T: JsonBody> FromRequest<S> for OptionalJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        let headers = req.headers().clone();
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        require_json(&headers)?;
        parse_json(&bytes).map(|value| Self(Some(value)))
    }
}

fn body_rejection(rejection: BytesRejection) -> Error {
    let status = rejection.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "payload_too_large"
    } else {
        "unreadable_body"
    };
    Error::Invalid {
        status,
        code,
        message: rejection.body_text(),
        field: None,
    }
}

/// Accepts `application/json` and `application/*+json`, with or without parameters.
pub fn require_json(headers: &HeaderMap) -> Result<()> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(Error::UnsupportedMediaType { found: None });
    };
    let found = || Error::UnsupportedMediaType {
        found: Some(String::from_utf8_lossy(value.as_bytes()).into_owned()),
    };
    let text = value.to_str().map_err(|_| found())?;
    let essence = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let is_json = essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"));
    if is_json { Ok(()) } else { Err(found()) }
}

/// A JSON request body type.
///
/// serde's derived structs also accept a JSON array (fields by position); a body that sends
/// `[..]` where an object belongs is refused by listing where the objects are.
pub trait JsonBody: DeserializeOwned {
    /// Paths that must hold an object when present: `""` is the body, `a.b` a nested field,
    /// `a[]` every element of the array `a`.
    const OBJECTS: &'static [&'static str];
}

/// Deserializes a JSON document into `T`, naming the field of any failure.
pub fn parse_json<T: JsonBody>(bytes: &[u8]) -> Result<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::bad_request(
            "malformed_json",
            None,
            "the request body is empty; expected a JSON object",
        ));
    }
    // Syntax first (including trailing garbage), then shape, then the typed read, which
    // also catches duplicate fields that a `Value` would silently merge.
    let value: Value = serde_json::from_slice(bytes).map_err(|error| {
        Error::bad_request(
            "malformed_json",
            None,
            format!(
                "the request body is not valid JSON: {}",
                bare_message(&error)
            ),
        )
    })?;
    for pattern in T::OBJECTS {
        let segments: Vec<&str> = if pattern.is_empty() {
            Vec::new()
        } else {
            pattern.split('.').collect()
        };
        require_objects(&value, &segments, String::new())?;
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(json_error)
}

fn require_objects(value: &Value, segments: &[&str], path: String) -> Result<()> {
    let Some((first, rest)) = segments.split_first() else {
        if value.is_array() {
            let subject = if path.is_empty() {
                "the request body".to_owned()
            } else {
                format!("`{path}`")
            };
            return Err(Error::invalid(
                "invalid_type",
                &path,
                format!("{subject}: invalid type: array, expected an object"),
            ));
        }
        return Ok(());
    };
    let (key, each) = match first.strip_suffix("[]") {
        Some(key) => (key, true),
        None => (*first, false),
    };
    let Some(child) = value.as_object().and_then(|object| object.get(key)) else {
        return Ok(());
    };
    let child_path = join(&path, key);
    if !each {
        return require_objects(child, rest, child_path);
    }
    if let Some(items) = child.as_array() {
        for (index, item) in items.iter().enumerate() {
            require_objects(item, rest, format!("{child_path}[{index}]"))?;
        }
    }
    Ok(())
}

fn json_error(error: serde_path_to_error::Error<serde_json::Error>) -> Error {
    let path = error.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let inner = error.into_inner();
    let message = bare_message(&inner);
    match inner.classify() {
        // The document already parsed as JSON, so a "syntax" error here is serde_json
        // refusing a non-string where an enum belongs.
        Category::Syntax | Category::Eof | Category::Io => {
            let subject = if path.is_empty() {
                "the request body".to_owned()
            } else {
                format!("`{path}`")
            };
            Error::invalid(
                "invalid_type",
                &path,
                format!(
                    "{subject}: invalid type: expected a string naming one of the allowed values"
                ),
            )
        }
        Category::Data => data_error(&path, &message),
    }
}

/// Classifies a serde data error by serde's (stable) message prefixes.
fn data_error(path: &str, message: &str) -> Error {
    if let Some(name) = quoted_after(message, "missing field `") {
        let field = join(path, name);
        return Error::invalid("missing_field", &field, format!("`{field}` is required"));
    }
    if let Some(name) = quoted_after(message, "duplicate field `") {
        let field = join(path, name);
        return Error::invalid(
            "duplicate_field",
            &field,
            format!("`{field}` is given more than once"),
        );
    }
    if let Some(name) = quoted_after(message, "unknown field `") {
        // serde_path_to_error may or may not have pushed the key already.
        let field = if path == name || path.ends_with(&format!(".{name}")) {
            path.to_owned()
        } else {
            join(path, name)
        };
        let expected = message.split_once(", expected ").map(|(_, rest)| rest);
        let hint = match expected {
            Some(rest) => format!("; expected {rest}"),
            None => String::new(),
        };
        return Error::invalid(
            "unknown_field",
            &field,
            format!("`{field}` is not a known field{hint}"),
        );
    }
    let code = if message.starts_with("invalid type") {
        "invalid_type"
    } else {
        "invalid_value"
    };
    let subject = if path.is_empty() {
        "the request body".to_owned()
    } else {
        format!("`{path}`")
    };
    Error::invalid(code, path, format!("{subject}: {message}"))
}

fn quoted_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split_once('`').map(|(name, _)| name)
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// serde_json's message without its ` at line L column C` suffix.
fn bare_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&suffix) {
        Some(bare) => bare.to_owned(),
        None => text,
    }
}

/// A query string as name/value pairs, checked against the names a route accepts.
#[derive(Debug, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| {
                Error::bad_request("invalid_query", None, rejection.body_text())
            })?;
        Ok(Self(pairs))
    }
}

impl QueryParams {
    /// Builds the parameters from pairs (for tests and callers outside axum).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }

    /// Fails on any parameter not in `allowed`, and on a parameter given twice.
    pub fn only(&self, allowed: &[&str]) -> Result<()> {
        for (index, (name, _)) in self.0.iter().enumerate() {
            if !allowed.contains(&name.as_str()) {
                let expected = if allowed.is_empty() {
                    "this route takes no query parameters".to_owned()
                } else {
                    format!("expected one of {}", allowed.join(", "))
                };
                return Err(Error::bad_request(
                    "unknown_field",
                    Some(name),
                    format!("unknown query parameter `{name}`; {expected}"),
                ));
            }
            if self.0[..index].iter().any(|(earlier, _)| earlier == name) {
                return Err(Error::bad_request(
                    "invalid_value",
                    Some(name),
                    format!("query parameter `{name}` is given more than once"),
                ));
            }
        }
        Ok(())
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The integer value of `name` within `min..=max`, if given.
    pub fn int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        let value: i64 = raw.trim().parse().map_err(|_| {
            Error::bad_request(
                "invalid_type",
                Some(name),
                format!("query parameter `{name}` must be an integer, got {raw:?}"),
            )
        })?;
        if value < min || value > max {
            return Err(Error::bad_request(
                "invalid_value",
                Some(name),
                format!("query parameter `{name}` must be between {min} and {max}, got {value}"),
            ));
        }
        Ok(Some(value))
    }
}

/// The one `{param}` of a route's path, as text; a segment that is not valid UTF-8 after
/// percent-decoding is refused with a JSON error.
#[derive(Debug)]
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let Path(value) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| Error::bad_request("invalid_path", None, rejection.body_text()))?;
        Ok(Self(value))
    }
}

/// A task identifier from the path: must be a UUID; returned in canonical form.
pub fn task_id(raw: &str) -> Result<String> {
    uuid::Uuid::parse_str(raw)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| {
            Error::bad_request(
                "invalid_task_id",
                Some("task_id"),
                format!("task_id {raw:?} is not a UUID"),
            )
        })
}

/// A pull-request identifier from the path: the forge chooses its form, so only its size
/// and characters are checked.
pub fn pull_request_id(raw: &str) -> Result<String> {
    let bad = |why: &str| {
        Error::bad_request(
            "invalid_pull_request_id",
            Some("pr_id"),
            format!("pr_id {why}"),
        )
    };
    if raw.trim().is_empty() {
        return Err(bad("is empty"));
    }
    if raw.chars().count() > MAX_ID_CHARS {
        return Err(bad(&format!("is longer than {MAX_ID_CHARS} characters")));
    }
    if raw.chars().any(char::is_control) {
        return Err(bad("contains control characters"));
    }
    Ok(raw.to_owned())
}

/// Longest identifier (repository, pull request, reviewer) the gateway passes on.
pub const MAX_ID_CHARS: usize = 256;

/// A required text field: not blank, at most `max_chars` characters, no NUL.
pub fn text(field: &str, value: &str, max_chars: usize) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::invalid(
            "invalid_value",
            field,
            format!("`{field}` must not be empty"),
        ));
    }
    let count = value.chars().count();
    if count > max_chars {
        return Err(Error::invalid(
            "invalid_value",
            field,
            format!("`{field}` has {count} characters; at most {max_chars} are allowed"),
        ));
    }
    if value.contains('\0') {
        return Err(Error::invalid(
            "invalid_value",
            field,
            format!("`{field}` must not contain NUL characters"),
        ));
    }
    Ok(())
}

/// A single-line name (repository id, reviewer): [`text`] plus no control characters.
pub fn name(field: &str, value: &str) -> Result<()> {
    text(field, value, MAX_ID_CHARS)?;
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(
            "invalid_value",
            field,
            format!("`{field}` must not contain control characters"),
        ));
    }
    Ok(())
}

/// A repository-relative path (or glob): not empty, not absolute, no `..`, not under `.git`.
pub fn relative_path(field: &str, value: &str) -> Result<()> {
    let bad =
        |why: &str| Error::invalid("invalid_path", field, format!("`{field}` {why}: {value:?}"));
    text(field, value, 4096)?;
    if value.chars().any(char::is_control) {
        return Err(bad("contains control characters"));
    }
    if value.starts_with('/') || value.starts_with('\\') {
        return Err(bad("must be relative to the repository root"));
    }
    for part in value.split(['/', '\\']) {
        if part == ".." {
            return Err(bad("must not contain `..`"));
        }
        if part.eq_ignore_ascii_case(".git") {
            return Err(bad("must not point into `.git`"));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "input_tests.rs"]
mod tests;
