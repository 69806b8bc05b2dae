//! Log lines through the secret detector: every formatted event is held until it is complete,
//! then written with each secret `cap-secrets` detects replaced by its redacted form, so a
//! credential that reaches a log statement (a tool's arguments, a command's output, an error
//! from an upstream) never reaches the log in clear.
//!
//! The fmt layer formats an event into its own buffer and writes it with one `write_all` to
//! a writer made for that event, then drops the writer: the writer here keeps the bytes and
//! writes them out redacted when it is flushed or dropped. A line without any of the rules'
//! keywords costs one pass of the keyword automaton and is written as it is, uncopied.

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// Makes [`RedactingWriter`]s over the writers `inner` makes (stdout, a file, a buffer).
#[derive(Debug, Clone)]
pub struct RedactingMakeWriter<M> {
    inner: M,
}

impl<M> RedactingMakeWriter<M> {
    /// Redacts what goes to the writers `inner` makes.
    pub fn new(inner: M) -> Self {
        Self { inner }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for RedactingMakeWriter<M> {
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter::new(self.inner.make_writer())
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        RedactingWriter::new(self.inner.make_writer_for(meta))
    }
}

/// Holds what is written until it is flushed or dropped, then writes it to `inner` redacted.
///
/// A secret split over two `write` calls is still found, since the whole event is scanned at
/// once; bytes that are not UTF-8 are scanned (and written) as their lossy text.
#[derive(Debug)]
pub struct RedactingWriter<W: Write> {
    held: Vec<u8>,
    inner: W,
}

impl<W: Write> RedactingWriter<W> {
    /// A writer redacting what it passes to `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            held: Vec::new(),
            inner,
        }
    }

    fn write_held(&mut self) -> io::Result<()> {
        if self.held.is_empty() {
            return Ok(());
        }
        let held = std::mem::take(&mut self.held);
        let text = String::from_utf8_lossy(&held);
        self.inner
            .write_all(cap_secrets::redacted(&text).as_bytes())
    }
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.held.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_held()?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        // Nowhere to report a failed log write to: the event is lost, as with a plain writer.
        let _ = self.write_held();
    }
}

#[cfg(test)]
#[path = "log_redaction_tests.rs"]
mod tests;
