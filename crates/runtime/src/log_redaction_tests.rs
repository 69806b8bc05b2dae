#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use super::*;

/// A writer into a buffer the test reads back.
#[derive(Debug, Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Self;
    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

/// What `log` logs through a subscriber formatting as the services do (no time, so two runs
/// compare), redacted or not.
fn logged(redacting: bool, log: impl Fn()) -> String {
    let out = Captured::default();
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .with_ansi(false)
        .without_time();
    if redacting {
        let subscriber = builder
            .with_writer(RedactingMakeWriter::new(out.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, log);
    } else {
        let subscriber = builder.with_writer(out.clone()).finish();
        tracing::subscriber::with_default(subscriber, log);
    }
    out.text()
}

/// An AWS access key id, assembled here so the repository holds none.
fn planted_aws_key_id() -> String {
    let body: String = (0..16)
        .map(|i| char::from(b"ABCDEFGHJKLMNPQRSTUVWXYZ234567"[(i * 11 + 5) % 30]))
        .collect();
    format!("{}{body}", ["AK", "IA"].concat())
}

#[test]
fn a_log_line_carrying_a_credential_comes_out_redacted() {
    let key = planted_aws_key_id();
    let arguments = format!(r#"{{"path":"deploy.env","content":"AWS_ACCESS_KEY_ID={key}"}}"#);
    let text = logged(true, || {
        tracing::info!(tool = "create_file", %arguments, "tool called");
        tracing::warn!("upstream said: key {key} is not allowed");
    });
    assert!(!text.contains(&key), "{text}");
    let redacted = cap_secrets::redacted_form(&key);
    assert_eq!(text.matches(&redacted).count(), 2, "{text}");
    // The rest of each line is kept, one line per event.
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("tool called tool=\"create_file\""), "{text}");
    assert!(text.contains("upstream said: key "), "{text}");
}

#[test]
fn a_clean_log_line_is_written_unchanged() {
    let log = || {
        tracing::info!(bound = "127.0.0.1:4000", "listening");
        tracing::info!(task_id = "t-1", tokens = 512, "model answered");
    };
    let plain = logged(false, log);
    assert_eq!(logged(true, log), plain);
    assert!(plain.contains("listening"), "{plain}");
}

#[test]
fn held_bytes_are_written_on_flush_and_a_secret_split_over_writes_is_found() {
    let key = planted_aws_key_id();
    let out = Captured::default();
    let mut writer = RedactingWriter::new(out.clone());
    let (head, tail) = key.split_at(9);
    writer.write_all(b"key=").unwrap();
    writer.write_all(head.as_bytes()).unwrap();
    writer.write_all(tail.as_bytes()).unwrap();
    writer.write_all(b"\n").unwrap();
    assert_eq!(
        out.text(),
        "",
        "nothing passes before the event is complete"
    );
    writer.flush().unwrap();
    assert_eq!(
        out.text(),
        format!("key={}\n", cap_secrets::redacted_form(&key))
    );
    // Flushing again writes nothing twice; dropping writes nothing more.
    writer.flush().unwrap();
    drop(writer);
    assert_eq!(out.text().lines().count(), 1);
}

#[test]
fn bytes_that_are_not_text_are_written_as_lossy_text() {
    let out = Captured::default();
    let mut writer = RedactingWriter::new(out.clone());
    writer.write_all(b"odd \xff byte\n").unwrap();
    drop(writer);
    assert_eq!(out.text(), "odd \u{fffd} byte\n");
}

/// The variable that makes [`child_panics_quoting_a_credential`] panic.
const PANIC_CHILD: &str = "CAP_TEST_PANIC_WITH_KEY";

/// Not a test of its own: the child process of [`a_panic_message_comes_out_redacted`].
#[test]
#[ignore = "run by a_panic_message_comes_out_redacted, as its child process"]
fn child_panics_quoting_a_credential() {
    if let Ok(key) = std::env::var(PANIC_CHILD) {
        crate::redact_panics();
        panic!("could not use AWS_ACCESS_KEY_ID={key}");
    }
}

#[test]
fn a_panic_message_comes_out_redacted() {
    let key = planted_aws_key_id();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "log_redaction::tests::child_panics_quoting_a_credential",
            "--nocapture",
        ])
        .env(PANIC_CHILD, &key)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "the child did not panic: {stderr}"
    );
    assert!(
        stderr.contains("panicked at") && stderr.contains("could not use AWS_ACCESS_KEY_ID="),
        "{stderr}"
    );
    assert!(!stderr.contains(&key), "{stderr}");
}
