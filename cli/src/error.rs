//! How the command line fails: usage errors (exit 2), everything else
//! (exit 1), and a closed pipe, which is not a failure. `kseal check` is a
//! gate and answers as grep and ripgrep do: 1 for findings ([`Findings`]),
//! 2 for every failure that is not one, so a CI can tell "fix the
//! manifests" from "the check did not run to the end".

use std::fmt;

/// Exit status for failures (bad input, a failed check, …).
pub const EXIT_FAILURE: u8 = 1;
/// Exit status for usage errors, as clap uses.
pub const EXIT_USAGE: u8 = 2;
/// Exit status of `kseal check` for a failure that is not a finding: a path
/// or document it could not read, a bad configuration, an I/O error. The
/// same as a usage error, as in grep and ripgrep.
pub const EXIT_CHECK_ERROR: u8 = 2;

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

/// `kseal check` found what it looks for, and checked everything: the
/// gate's "no" (exit 1), not an error of the check itself.
#[derive(Debug)]
pub struct Findings(String);

impl Findings {
    /// Findings summed up in this message (shown after "kseal: error: ").
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for Findings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Findings {}

/// The exit status for `err`, the failure of a `kseal check` when
/// `checking`, else of another command.
pub fn exit_status(err: &anyhow::Error, checking: bool) -> u8 {
    if err.downcast_ref::<UsageError>().is_some() {
        EXIT_USAGE
    } else if checking && err.downcast_ref::<Findings>().is_none() {
        EXIT_CHECK_ERROR
    } else {
        EXIT_FAILURE
    }
}

/// A reader that went away (`kseal inspect … | head`) is not an error.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
