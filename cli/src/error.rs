//! How the command line fails: usage errors (exit 2), everything else
//! (exit 1), and a closed pipe, which is not a failure.

use std::fmt;

/// Exit status for failures (bad input, a failed check, …).
pub const EXIT_FAILURE: u8 = 1;
/// Exit status for usage errors, as clap uses.
pub const EXIT_USAGE: u8 = 2;

/// A usage error found after parsing (a combination clap cannot express).
#[derive(Debug)]
pub struct UsageError(String);

impl UsageError {
    /// A usage error with this message (shown after "kseal: error: ").
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A reader that went away (`kseal inspect … | head`) is not an error.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
