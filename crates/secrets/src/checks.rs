//! The checks a candidate passes after its pattern: entropy, structure, and the rejection of
//! look-alikes (placeholders, digests, UUIDs, identifiers, documentation example keys).

use base64::Engine as _;

/// Shannon entropy of `s` in bits a byte.
pub(crate) fn entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &byte in s {
        counts[usize::from(byte)] += 1;
    }
    let len = s.len() as f64;
    counts
        .iter()
        .filter(|&&count| count > 0)
        .map(|&count| {
            let p = f64::from(count) / len;
            -p * p.log2()
        })
        .sum()
}

/// Substrings that mark a value as a placeholder or a documentation example, compared
/// lower-cased. AWS's published example keys end in `EXAMPLE` / `EXAMPLEKEY`.
const PLACEHOLDER_PARTS: &[&str] = &[
    "xxx",
    "***",
    "...",
    "…",
    "example",
    "placeholder",
    "changeme",
    "change_me",
    "change-me",
    "your_",
    "your-",
    "yourkey",
    "yourtoken",
    "yoursecret",
    "yourpassword",
    "dummy",
    "redacted",
    "sample",
    "insert",
    "replace",
    "notreal",
    "not_real",
    "not-real",
    "not-a-real",
    "fake",
    "mock",
    "password",
    "todo",
    "fixme",
    "_here",
    "-here",
    "123456789",
    "abcdefgh",
    "${",
    "{{",
    "}}",
    "#{",
    "<",
    ">",
];

/// Whole values that are placeholders or well-known defaults rather than secrets.
const PLACEHOLDER_VALUES: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "pass",
    "admin",
    "root",
    "test",
    "testing",
    "default",
    "none",
    "null",
    "nil",
    "undefined",
    "empty",
    "true",
    "false",
    "key",
    "apikey",
    "api_key",
    "guest",
    "user",
    "username",
    "postgres",
    "mysql",
    "redis",
    "rabbitmq",
    "mongo",
    "letmein",
    "qwerty",
    "hunter2",
    "private",
    "public",
    "string",
    "value",
];

/// Whether `value` is a placeholder, a template reference or a documentation example.
pub(crate) fn is_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    if PLACEHOLDER_VALUES.contains(&lower.as_str()) {
        return true;
    }
    if PLACEHOLDER_PARTS.iter().any(|part| lower.contains(part)) {
        return true;
    }
    // Template and environment references: `$VAR`, `{name}` (format strings), `%(name)s`,
    // `%{x}`, `%VAR%`, `@Value`.
    if lower.starts_with('$')
        || lower.starts_with('{')
        || (lower.contains('{') && lower.contains('}'))
        || lower.starts_with('@')
        || lower.starts_with("%(")
        || lower.starts_with("%{")
        || (lower.len() > 2 && lower.starts_with('%') && lower.ends_with('%'))
    {
        return true;
    }
    // One character repeated over half the value: `aaaa…`, `0000…`.
    let bytes = value.as_bytes();
    let mut counts = [0usize; 256];
    for &byte in bytes {
        counts[usize::from(byte)] += 1;
    }
    counts.iter().any(|&count| count * 2 > bytes.len())
}

/// Whether `value` is a UUID (any version).
pub(crate) fn is_uuid(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Whether `value` is a digest or content hash written the way lockfiles, SRI attributes,
/// image references and checksum files write them.
pub(crate) fn is_integrity_hash(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    [
        "sha1-", "sha256-", "sha384-", "sha512-", "md5-", "sha1:", "sha256:", "sha512:", "md5:",
        "h1:",
    ]
    .iter()
    .any(|prefix| lower.starts_with(prefix))
}

/// Whether `value` is all hex digits (a digest, a commit id) of a digest's length.
pub(crate) fn is_hex_digest(value: &str) -> bool {
    matches!(value.len(), 32 | 40 | 56 | 64 | 96 | 128)
        && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Shannon entropy an assigned value needs: 3 bits a character from 16 characters on, and
/// less for shorter ones (whose entropy cannot reach 3), never below what a random value of
/// that length usually has.
fn assignment_entropy_floor(len: usize) -> f64 {
    if len >= 16 {
        3.0
    } else {
        (len as f64).log2() * 0.75
    }
}

/// Words that, as the last word of a name, say the value is about a secret, not the secret:
/// `token_url`, `password_hash`, `api_key_id`, `secretKeyRef`, `max_tokens`.
fn is_non_secret_last_word(word: &str) -> bool {
    // A `match` on strings compiles to a length switch and a few compares, where a slice
    // `contains` compared against every entry (the generic rule runs this at every hit).
    matches!(
        word,
        "id" | "ids"
            | "name"
            | "names"
            | "type"
            | "types"
            | "file"
            | "files"
            | "path"
            | "paths"
            | "dir"
            | "url"
            | "uri"
            | "urls"
            | "endpoint"
            | "env"
            | "var"
            | "variable"
            | "header"
            | "field"
            | "hash"
            | "hashed"
            | "digest"
            | "sha"
            | "sha1"
            | "sha256"
            | "sha512"
            | "md5"
            | "checksum"
            | "fingerprint"
            | "length"
            | "len"
            | "size"
            | "count"
            | "ttl"
            | "expiry"
            | "expires"
            | "expiration"
            | "lifetime"
            | "timeout"
            | "prefix"
            | "suffix"
            | "format"
            | "regex"
            | "pattern"
            | "placeholder"
            | "label"
            | "hint"
            | "description"
            | "desc"
            | "min"
            | "max"
            | "policy"
            | "mode"
            | "version"
            | "limit"
            | "ref"
            | "reference"
            | "arn"
            | "provider"
            | "kind"
            | "source"
            | "method"
            | "location"
            | "template"
            | "example"
            | "enabled"
            | "required"
            | "strategy"
            | "class"
            | "manager"
            | "store"
            | "param"
            | "parameter"
            | "attr"
            | "attribute"
            | "prop"
            | "property"
            | "prompt"
            | "help"
            | "message"
            | "msg"
            | "error"
            | "errors"
            | "valid"
            | "validation"
            | "validator"
            | "rule"
            | "rules"
            | "config"
            | "options"
            | "settings"
            | "schema"
            | "tag"
            | "index"
            | "scope"
            | "scopes"
            | "audience"
            | "issuer"
            | "algorithm"
            | "alg"
            | "cache"
            | "tokens"
            | "secrets"
            | "keys"
            | "passwords"
            | "usage"
            | "budget"
            | "encoder"
            | "encoding"
            | "tokenizer"
            | "position"
            | "offset"
            | "start"
            | "end"
            | "mount"
            | "volume"
            | "selector"
            | "generator"
            | "payload"
            | "namespace"
    )
}

/// First words that make a name a flag or a function, not a value holder: `is_secret`,
/// `use_token`, `num_tokens`.
fn is_non_secret_first_word(word: &str) -> bool {
    // A `match` on strings compiles to a length switch and a few compares, where a slice
    // `contains` compared against every entry (the generic rule runs this at every hit).
    matches!(
        word,
        "is" | "has"
            | "use"
            | "show"
            | "hide"
            | "require"
            | "requires"
            | "enable"
            | "disable"
            | "allow"
            | "no"
            | "num"
            | "max"
            | "min"
            | "validate"
            | "check"
            | "get"
            | "set"
            | "on"
            | "handle"
            | "should"
            | "needs"
    )
}

/// Splits an identifier into words at `_`, `-`, `.` and camelCase humps: the identifier
/// lower-cased and the words' byte ranges in it (two allocations, whatever the word count:
/// this runs at every keyword hit of the generic rule).
fn words(name: &str) -> (String, Vec<(usize, usize)>) {
    let lower = name.to_ascii_lowercase();
    let bytes = name.as_bytes();
    let mut ranges = Vec::new();
    let mut start = None;
    let mut previous_lower = false;
    for (i, &b) in bytes.iter().enumerate() {
        if !b.is_ascii_alphanumeric() {
            if let Some(s) = start.take() {
                ranges.push((s, i));
            }
            previous_lower = false;
            continue;
        }
        if b.is_ascii_uppercase()
            && previous_lower
            && let Some(s) = start.take()
        {
            ranges.push((s, i));
        }
        if start.is_none() {
            start = Some(i);
        }
        previous_lower = b.is_ascii_lowercase() || b.is_ascii_digit();
    }
    if let Some(s) = start {
        ranges.push((s, bytes.len()));
    }
    (lower, ranges)
}

/// Whether an assignment's name says its value is a secret: a word like `password`, `secret`,
/// `token`, `credential`, or `key` after `api`/`access`/`private`/..., and no last or first
/// word that makes it a name about a secret.
pub(crate) fn is_secret_name(name: &str) -> bool {
    // `self.config.password`: the last segment is the name.
    let name = name.rsplit('.').next().unwrap_or(name);
    let (lower, ranges) = words(name);
    let words: Vec<&str> = ranges.iter().map(|&(a, b)| &lower[a..b]).collect();
    let (Some(&first), Some(&last)) = (words.first(), words.last()) else {
        return false;
    };
    if is_non_secret_last_word(last) || (words.len() > 1 && is_non_secret_first_word(first)) {
        return false;
    }
    const SECRET_WORDS: &[&str] = &[
        "password",
        "passwd",
        "pwd",
        "pass",
        "passphrase",
        "secret",
        "token",
        "credential",
        "credentials",
        "apikey",
    ];
    const SECRET_SUFFIXES: &[&str] = &[
        "password",
        "passwd",
        "secret",
        "token",
        "apikey",
        "accesskey",
        "privatekey",
        "secretkey",
        "authkey",
    ];
    const KEY_QUALIFIERS: &[&str] = &[
        "api",
        "access",
        "auth",
        "private",
        "secret",
        "client",
        "signing",
        "encryption",
        "master",
        "app",
        "account",
        "service",
        "admin",
        "shared",
        "webhook",
        "consumer",
        "license",
        "session",
        "hmac",
        "jwt",
    ];
    let is_secret_word = |i: usize| {
        let word = words[i].trim_end_matches(|c: char| c.is_ascii_digit());
        SECRET_WORDS.contains(&word)
            || SECRET_SUFFIXES.iter().any(|suffix| word.ends_with(suffix))
            || (word == "key" && i > 0 && KEY_QUALIFIERS.contains(&words[i - 1]))
    };
    // The secret word ends the name (`db_password`, `AWS_SECRET_ACCESS_KEY`), or is followed
    // only by a word saying which or what form (`SECRET_KEY_BASE`, `client-key-data`,
    // `token_prod`): `The_Secret_Saturdays` is a title, not a credential.
    let last_index = words.len() - 1;
    if is_secret_word(last_index) {
        return true;
    }
    const TRAILING: &[&str] = &[
        "value",
        "val",
        "str",
        "string",
        "b64",
        "base64",
        "hex",
        "raw",
        "plain",
        "plaintext",
        "encoded",
        "data",
        "bytes",
        "text",
        "literal",
        "base",
        "pem",
        "der",
        "json",
        "old",
        "new",
        "prev",
        "previous",
        "current",
        "next",
        "prod",
        "production",
        "dev",
        "development",
        "staging",
        "stage",
        "test",
        "live",
        "primary",
        "secondary",
        "main",
        "backup",
        "local",
        "remote",
        "override",
        "admin",
        "root",
        "user",
    ];
    last_index > 0
        && TRAILING.contains(&words[last_index].trim_end_matches(|c: char| c.is_ascii_digit()))
        && is_secret_word(last_index - 1)
}

/// Whether a value assigned to a secret-sounding name looks like a real secret rather than a
/// reference, an identifier, a path, a digest or a placeholder.
pub(crate) fn is_secret_value(value: &str, quoted: bool) -> bool {
    let len = value.len();
    if !(8..=200).contains(&len) || is_placeholder(value) {
        return false;
    }
    // Mostly percent-escapes: URL-encoding test data (`%26%3F%3D`), not a generated secret.
    if value.matches('%').count() >= 3 {
        return false;
    }
    if is_uuid(value) || is_integrity_hash(value) || value.contains("://") {
        return false;
    }
    let bytes = value.as_bytes();
    // Paths and file names: `/etc/ssl/key.pem`, `./secrets.json`, `keys/dev.key`.
    if value.starts_with('/')
        || value.starts_with("./")
        || value.starts_with("../")
        || value.starts_with("~/")
        || has_file_extension(value)
    {
        return false;
    }
    // Encrypted or vaulted values (sops `ENC[...]`, Ansible `!vault`), ARNs, env references.
    let lower = value.to_ascii_lowercase();
    if [
        "enc[", "!vault", "arn:", "env:", "vault:", "secret:", "ref:",
    ]
    .iter()
    .any(|prefix| lower.starts_with(prefix))
    {
        return false;
    }
    // Code, not a literal: `settings.API_KEY`, `os.environ`, `getpass`, `process.env.X`.
    // Rust paths and references (`token::Group`, `&OkmBlock`) too.
    if !quoted
        && (value.contains('(')
            || value.contains("::")
            || value.starts_with(['&', '*'])
            || is_dotted_identifier(value))
    {
        return false;
    }
    if bytes.iter().all(u8::is_ascii_digit) || is_version(value) || is_snake_identifier(value) {
        return false;
    }
    let has_digit = bytes.iter().any(u8::is_ascii_digit);
    let has_upper = bytes.iter().any(u8::is_ascii_uppercase);
    let has_lower = bytes.iter().any(u8::is_ascii_lowercase);
    let has_symbol = bytes
        .iter()
        .any(|b| !b.is_ascii_alphanumeric() && !matches!(b, b'_' | b'-' | b'.'));
    // Words and identifiers (`access_token`, `BearerAuth`, `DEFAULT_TOKEN`) have no digit and
    // no symbol; a random value without either must be long, mixed-case and dense.
    if !has_digit && !has_symbol {
        let uppers = bytes.iter().filter(|b| b.is_ascii_uppercase()).count();
        if !(len >= 24 && has_upper && has_lower && uppers >= 5 && entropy(bytes) >= 4.2) {
            return false;
        }
    }
    // A single case of letters with digits only in a run at the end: `secret2024`, `token_v2`.
    if !has_symbol && (has_upper != has_lower) {
        let digits_at_end = bytes
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let digits = bytes.iter().filter(|b| b.is_ascii_digit()).count();
        if digits == digits_at_end && len < 20 {
            return false;
        }
    }
    entropy(bytes) >= assignment_entropy_floor(len)
}

fn has_file_extension(value: &str) -> bool {
    const EXTENSIONS: &[&str] = &[
        ".pem", ".key", ".crt", ".cer", ".json", ".yaml", ".yml", ".txt", ".p12", ".pfx", ".jks",
        ".env", ".toml", ".ini", ".conf", ".pub", ".gpg", ".asc",
    ];
    let lower = value.to_ascii_lowercase();
    EXTENSIONS.iter().any(|ext| lower.ends_with(ext))
}

/// `FTS5_MAX_TOKEN_SIZE`, `pkcs8_key`, `SERVER_TRAFFIC_SECRET_0`: one case of letters, digits
/// and underscores between words; constants and variables, not generated secrets.
fn is_snake_identifier(value: &str) -> bool {
    let bytes = value.as_bytes();
    let upper = bytes.iter().any(u8::is_ascii_uppercase);
    let lower = bytes.iter().any(u8::is_ascii_lowercase);
    value.contains('_')
        && upper != lower
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        && value
            .split('_')
            .any(|part| part.bytes().filter(u8::is_ascii_alphabetic).count() >= 3)
}

fn is_dotted_identifier(value: &str) -> bool {
    value.contains('.')
        && value.split('.').all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

fn is_version(value: &str) -> bool {
    let trimmed = value.trim_start_matches('v');
    trimmed.contains('.')
        && trimmed
            .split(['.', '-', '+'])
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric()))
        && trimmed.bytes().next().is_some_and(|b| b.is_ascii_digit())
}

/// Whether a URL's password is a real one: not a placeholder or template, not on a
/// documentation host.
pub(crate) fn is_url_password(user: &str, password: &str, host: &str) -> bool {
    if password.len() < 4 || is_placeholder(password) || password == user {
        return false;
    }
    if password.contains(['{', '}', '$', '*']) || has_format_percent(password) {
        return false;
    }
    // Words, not generated passwords: `opensesame`, `sentinel_pass`, `correct%20horse`.
    let decoded = password.replace("%20", "");
    if decoded
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'-')
    {
        return false;
    }
    let lower = password.to_ascii_lowercase();
    if ["pass", "pwd", "secret"]
        .iter()
        .any(|word| lower.contains(word))
    {
        return false;
    }
    let host = host.to_ascii_lowercase();
    !(host.contains("example") || host == "host" || host == "hostname" || host == "server")
}

/// Whether `value` holds a `%` that is not a percent-encoded byte (`%s`, `%(pw)s`).
fn has_format_percent(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !(i + 2 < bytes.len()
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

/// Whether a JWT candidate's header decodes to a JSON object with an `alg`.
pub(crate) fn is_jwt(token: &str) -> bool {
    let Some(header) = token.split('.').next() else {
        return false;
    };
    let Ok(decoded) =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header.trim_end_matches('='))
    else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&decoded)
        .ok()
        .is_some_and(|header| header.get("alg").is_some())
}

/// Whether an `Authorization: Basic` value decodes to `user:password` with a real password.
pub(crate) fn is_basic_credentials(encoded: &str) -> bool {
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
        return false;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return false;
    };
    match decoded.split_once(':') {
        Some((user, password)) => {
            password.len() >= 4 && !is_placeholder(password) && password != user
        }
        None => false,
    }
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
