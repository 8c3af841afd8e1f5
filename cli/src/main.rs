//! `kseal`: the command line. Each subcommand that does work lives in
//! `commands/`; this file parses arguments, dispatches, runs the one-line
//! ones (`fetch-keys`, `completions`, `man`), and turns errors into exit
//! codes.
#![forbid(unsafe_code)]

mod args;
mod cleanup;
mod cluster;
mod commands;
mod error;
mod io;
mod kustomize;
mod recipients;
mod sources;
mod walk;
mod workloads;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::args::{Cli, Command};
use crate::error::{UsageError, exit_status, is_broken_pipe};

fn main() -> ExitCode {
    let cli = parse_args();
    // `check` is a gate: its findings and its failures exit differently.
    let checking = matches!(cli.command, Command::Check(_));
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // The whole chain, ripgrep-style: "what: why: root cause".
            eprintln!("kseal: error: {err:#}");
            if err.downcast_ref::<UsageError>().is_some() {
                eprintln!("Run 'kseal --help' for usage.");
            }
            ExitCode::from(exit_status(&err, checking))
        }
    }
}

/// Parses the command line. Installed as `kubectl-kseal` (a kubectl plugin,
/// run as `kubectl kseal …`), help and usage say `kubectl kseal`.
fn parse_args() -> Cli {
    let mut command = Cli::command();
    let invoked_as = std::env::args_os()
        .next()
        .and_then(|arg0| {
            std::path::Path::new(&arg0)
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    if invoked_as == "kubectl-kseal" {
        command = command.bin_name("kubectl kseal");
    }
    let matches = command.get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Keygen(args) => commands::keygen::run(args),
        Command::Seal(args) => commands::seal::run(*args),
        Command::Unseal(args) => commands::unseal::run(args),
        Command::Rewrap(args) => commands::rewrap::run(args),
        Command::Migrate(args) => commands::migrate::run(args),
        Command::Inspect(args) => commands::inspect::inspect(args),
        Command::Validate(args) => commands::inspect::validate(args),
        Command::Regenerate(args) => commands::regenerate::run(args),
        Command::Check(args) => commands::check::run(args),
        Command::Keys(args) => commands::keys::run(args),
        Command::Pins(args) => commands::pins::run(args),
        Command::FetchKeys(args) => {
            let text = cluster::fetch_recipients_text(&args.cluster)?;
            io::emit(args.output.as_deref(), text.as_bytes(), io::Privacy::Public)
        }
        Command::Completions(args) => {
            let mut out = Vec::new();
            clap_complete::generate(args.shell, &mut Cli::command(), "kseal", &mut out);
            io::write_stdout(&out)
        }
        Command::Man => {
            // The man page shows the plain version: with the commit in it,
            // it would change with every commit.
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command().long_version(None::<&str>)).render(&mut out)?;
            for sub in Cli::command()
                .get_subcommands()
                .filter(|s| !s.is_hide_set())
            {
                let sub = sub.clone().name(format!("kseal-{}", sub.get_name()));
                clap_mangen::Man::new(sub).render(&mut out)?;
            }
            io::write_stdout(&out)
        }
    }
}
