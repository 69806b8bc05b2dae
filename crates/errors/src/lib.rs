//! Error reporting helpers shared by the fleet: an error and all its causes on one line.
//!
//! Every crate's error keeps its cause out of its own `Display` (`#[source]`), so what is
//! logged must walk the chain; this crate is the one place that walks it. It depends on
//! nothing but `std`, so any crate can use it.
//!
//! ```
//! let error = std::io::Error::other("disk full");
//! assert_eq!(cap_errors::chain(&error), "disk full");
//! ```

use std::error::Error;
use std::fmt;

/// `error: cause: cause`, the error's message and each of its causes, `: `-separated.
pub fn chain(error: &dyn Error) -> String {
    Chain(error).to_string()
}

/// Like [`chain`], but each cause (not the error itself) is shown as `describe` says when it
/// returns `Some`, else by its `Display`. For a cause whose `Display` is not what a reader
/// wants, e.g. a `tonic::Status`, whose `Display` is its debug form where its `message()` is
/// what the peer said:
///
/// ```ignore
/// cap_errors::chain_with(&error, |cause| {
///     cause.downcast_ref::<tonic::Status>().map(|status| status.message().to_owned())
/// })
/// ```
pub fn chain_with(
    error: &dyn Error,
    mut describe: impl FnMut(&(dyn Error + 'static)) -> Option<String>,
) -> String {
    let mut text = error.to_string();
    for cause in causes(error) {
        text.push_str(": ");
        match describe(cause) {
            Some(described) => text.push_str(&described),
            None => text.push_str(&cause.to_string()),
        }
    }
    text
}

/// The causes of `error`, nearest first (the error itself left out).
pub fn causes<'a>(error: &'a dyn Error) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(error.source(), |&cause| cause.source())
}

/// Displays an error with all its causes, `: `-separated, without building a string first:
/// `tracing::warn!(error = %Chain(&error), "...")`.
#[derive(Clone, Copy)]
pub struct Chain<'a>(pub &'a dyn Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        for cause in causes(self.0) {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
