//! Temporary files removed on SIGINT, SIGTERM and SIGHUP.
//!
//! An atomic write gives its temporary file a name only for as long as it
//! must (see `io::write_atomic`), and registers that name here first. Once
//! the first write has begun, those three signals no longer kill kseal at
//! once: a thread receives them, removes every registered file, and exits
//! with the conventional status 128 + the signal number (130, 143, 129).
//! A name is registered and renamed away under one lock, so the handler
//! never removes a file that was just renamed into place, and never exits
//! between the temporary's creation and its registration.
//!
//! SIGKILL cannot be caught: that is why a secret is written into an
//! unnamed file where the system allows (nothing to leave behind), and why
//! `kseal check` looks at `.kseal-*` files too.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use anyhow::{Context, Result};

/// The temporary files that exist now, by path.
static REGISTRY: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Whether the handler thread runs (or why it could not start).
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

/// The registry, held while a temporary file is named, registered and
/// renamed or removed.
pub struct Registry(MutexGuard<'static, Vec<PathBuf>>);

impl Registry {
    /// Takes the lock (a panic elsewhere does not make the list unusable:
    /// it only ever holds paths).
    pub fn lock() -> Self {
        Self(REGISTRY.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Records a temporary file to remove on a signal.
    pub fn add(&mut self, path: PathBuf) {
        self.0.push(path);
    }

    /// Forgets a temporary file (renamed into place, or removed).
    pub fn remove(&mut self, path: &std::path::Path) {
        self.0.retain(|registered| registered != path);
    }
}

/// Starts the signal thread, once per process; later calls return at once.
/// Until it runs, the signals keep their default action (the process ends,
/// and an unnamed temporary file goes with it).
pub fn install() -> Result<()> {
    INSTALLED
        .get_or_init(|| start().map_err(|err| format!("{err:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
        .context("cannot set up the removal of temporary files on signals")
}

#[cfg(unix)]
fn start() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Registered here, before the first temporary file exists: from now on
    // the three signals reach the thread below instead of ending kseal.
    let kinds = [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ];
    let mut streams = {
        let _context = runtime.enter();
        kinds
            .iter()
            .map(|kind| signal(*kind).map(|stream| (kind.as_raw_value(), stream)))
            .collect::<std::io::Result<Vec<_>>>()?
    };
    std::thread::Builder::new()
        .name("kseal-signals".into())
        .spawn(move || {
            let number = runtime.block_on(async {
                let [(int, s_int), (term, s_term), (hup, s_hup)] = streams.as_mut_slice() else {
                    return 1;
                };
                tokio::select! {
                    _ = s_int.recv() => *int,
                    _ = s_term.recv() => *term,
                    _ = s_hup.recv() => *hup,
                }
            });
            let registry = Registry::lock();
            for path in registry.0.iter() {
                let _ = std::fs::remove_file(path);
            }
            std::process::exit(128 + number);
        })?;
    Ok(())
}

#[cfg(not(unix))]
fn start() -> Result<()> {
    Ok(())
}
