//! `kseal-controller`: parses settings, sets up logging, runs.

use std::process::ExitCode;

use clap::Parser;
use kseal_controller::config::{Command, LogFormat, Settings};
use kseal_shared::error_text::describe;
use tracing_subscriber::EnvFilter;

/// See the workspace Cargo.toml: less resident memory than glibc's malloc
/// for thousands of cached objects.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let settings = Settings::parse();
    if let Some(Command::Crd) = settings.command {
        return match kseal_controller::crd::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("kseal-controller: error: {err}");
                ExitCode::FAILURE
            }
        };
    }
    let filter = EnvFilter::try_new(&settings.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    match settings.log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
        // Colour only on a terminal: a log file or collector gets plain text.
        LogFormat::Text => tracing_subscriber::fmt()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_env_filter(filter)
            .init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("kseal-controller: error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(kseal_controller::run::run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %describe(&err), "kseal-controller stopped");
            ExitCode::FAILURE
        }
    }
}
