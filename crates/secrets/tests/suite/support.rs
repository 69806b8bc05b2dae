//! Test credentials built at run time from a seeded generator and prefixes split in pieces,
//! so the repository holds no secret-looking literal.

use base64::Engine as _;

/// A deterministic generator (splitmix64): the same corpus every run.
pub struct Gen(u64);

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const HEX: &[u8] = b"0123456789abcdef";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const PASSWORD: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!#%&+=?^";

/// Glues pieces: `p(&["gh", "p_"])` is a prefix no scanner of the repository can see.
pub fn p(pieces: &[&str]) -> String {
    pieces.concat()
}

impl Gen {
    /// A generator with this seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| char::from(alphabet[(self.next() % alphabet.len() as u64) as usize]))
            .collect()
    }

    /// Characters of `alphabet`.
    pub fn chars_of(&mut self, alphabet: &str, len: usize) -> String {
        self.pick(alphabet.as_bytes(), len)
    }
    /// Letters and digits.
    pub fn alnum(&mut self, len: usize) -> String {
        self.pick(ALNUM, len)
    }
    /// Upper-case base32 (AWS key ids).
    pub fn b32(&mut self, len: usize) -> String {
        self.pick(UPPER_B32, len)
    }
    /// Lower-case hex.
    pub fn hex(&mut self, len: usize) -> String {
        self.pick(HEX, len)
    }
    /// Base64 characters (no padding).
    pub fn b64(&mut self, len: usize) -> String {
        self.pick(B64, len)
    }
    /// URL-safe base64 characters.
    pub fn b64url(&mut self, len: usize) -> String {
        self.pick(B64URL, len)
    }
    /// Lower-case letters and digits.
    pub fn lower_alnum(&mut self, len: usize) -> String {
        self.pick(LOWER_ALNUM, len)
    }
    /// Letters only.
    pub fn letters(&mut self, len: usize) -> String {
        self.pick(LETTERS, len)
    }
    /// Upper-case letters and digits.
    pub fn upper_alnum(&mut self, len: usize) -> String {
        self.pick(UPPER_ALNUM, len)
    }
    /// Digits.
    pub fn digits(&mut self, len: usize) -> String {
        self.pick(b"0123456789", len)
    }
    /// A password as people make them: letters, digits and symbols.
    pub fn password(&mut self, len: usize) -> String {
        loop {
            let candidate = self.pick(PASSWORD, len);
            let has_digit = candidate.bytes().any(|b| b.is_ascii_digit());
            if has_digit {
                return candidate;
            }
        }
    }
    /// A password as it is written in a URL: reserved characters percent-encoded.
    pub fn url_password(&mut self, len: usize) -> String {
        self.password(len)
            .chars()
            .map(|c| match c {
                '#' | '%' | '?' | '^' | '&' | '+' | '=' | '!' => format!("%{:02X}", c as u32),
                other => other.to_string(),
            })
            .collect()
    }
    /// A UUID v4-shaped string.
    pub fn uuid(&mut self) -> String {
        format!(
            "{}-{}-4{}-a{}-{}",
            self.hex(8),
            self.hex(4),
            self.hex(3),
            self.hex(3),
            self.hex(12)
        )
    }
    /// Random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| (self.next() & 0xff) as u8).collect()
    }

    /// An AWS access key id.
    pub fn aws_key_id(&mut self) -> String {
        p(&["AK", "IA"]) + &self.b32(16)
    }
    /// An AWS secret access key (40 base64 characters, mixed).
    pub fn aws_secret(&mut self) -> String {
        loop {
            let candidate = self.b64(40);
            let b = candidate.as_bytes();
            if b.iter().any(u8::is_ascii_digit)
                && b.iter().any(u8::is_ascii_lowercase)
                && b.iter().any(u8::is_ascii_uppercase)
            {
                return candidate;
            }
        }
    }

    /// A PEM private key of `label` (`RSA PRIVATE KEY`, `PRIVATE KEY`, ...) as lines.
    pub fn pem_lines(&mut self, label: &str, body_bytes: usize) -> Vec<String> {
        let body = base64::engine::general_purpose::STANDARD.encode(self.bytes(body_bytes));
        let dashes = "-".repeat(5);
        let mut lines = vec![format!("{dashes}BEGIN {label}{dashes}")];
        lines.extend(
            body.as_bytes()
                .chunks(64)
                .map(|chunk| String::from_utf8_lossy(chunk).into_owned()),
        );
        lines.push(format!("{dashes}END {label}{dashes}"));
        lines
    }

    /// An OpenSSH private key as lines (the body starts as real ones do).
    pub fn openssh_lines(&mut self) -> Vec<String> {
        let mut raw = b"openssh-key-v1\0".to_vec();
        raw.extend(self.bytes(380));
        let body = base64::engine::general_purpose::STANDARD.encode(raw);
        let dashes = "-".repeat(5);
        let label = p(&["OPENSSH PRIV", "ATE KEY"]);
        let mut lines = vec![format!("{dashes}BEGIN {label}{dashes}")];
        lines.extend(
            body.as_bytes()
                .chunks(70)
                .map(|chunk| String::from_utf8_lossy(chunk).into_owned()),
        );
        lines.push(format!("{dashes}END {label}{dashes}"));
        lines
    }

    /// A signed JWT.
    pub fn jwt(&mut self) -> String {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = engine.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = engine.encode(
            format!(
                r#"{{"sub":"{}","name":"svc","iat":{}}}"#,
                self.digits(8),
                self.digits(10)
            )
            .as_bytes(),
        );
        format!("{header}.{payload}.{}", self.b64url(43))
    }
}

/// A file of the corpus with the lines where secrets were planted.
pub struct CorpusFile {
    /// Path relative to the tree's root.
    pub path: String,
    /// The lines.
    pub lines: Vec<String>,
    /// 1-based lines that hold a planted secret (the first line of a multi-line one).
    pub planted: Vec<usize>,
    /// The planted secrets in full (for checking output never holds them).
    pub secrets: Vec<String>,
}

impl CorpusFile {
    /// An empty file at `path`.
    pub fn new(path: &str) -> Self {
        Self {
            path: path.to_owned(),
            lines: Vec::new(),
            planted: Vec::new(),
            secrets: Vec::new(),
        }
    }

    /// Adds a clean line.
    pub fn line(mut self, line: impl Into<String>) -> Self {
        self.lines.push(line.into());
        self
    }

    /// Adds clean lines.
    pub fn lines(mut self, lines: Vec<String>) -> Self {
        self.lines.extend(lines);
        self
    }

    /// Adds a line holding `secret`.
    pub fn secret(mut self, line: impl Into<String>, secret: &str) -> Self {
        self.lines.push(line.into());
        self.planted.push(self.lines.len());
        self.secrets.push(secret.to_owned());
        self
    }

    /// Adds lines of which the first holds a planted multi-line secret.
    pub fn secret_block(mut self, lines: Vec<String>) -> Self {
        self.planted.push(self.lines.len() + 1);
        self.secrets.push(lines[1].clone());
        self.lines.extend(lines);
        self
    }

    /// The file's text.
    pub fn text(&self) -> String {
        let mut text = self.lines.join("\n");
        text.push('\n');
        text
    }
}
