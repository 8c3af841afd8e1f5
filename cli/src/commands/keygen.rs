//! `kseal keygen`: a new identity in age-keygen's file format.

use anyhow::{Result, bail};
use kseal_shared::age::secrecy::ExposeSecret;
use kseal_shared::x25519::Identity;

use crate::args::KeygenArgs;
use crate::io::{Privacy, write_atomic, write_stdout};

pub fn run(args: KeygenArgs) -> Result<()> {
    let identity = Identity::generate();
    let created = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let file = identity.to_keygen_file(&created);
    match &args.output {
        Some(path) => {
            if path.exists() && !args.force {
                bail!(
                    "{}: already exists (use --force to overwrite)",
                    path.display()
                );
            }
            write_atomic(path, file.expose_secret().as_bytes(), Privacy::Private)?;
            // The recipient on stdout, for scripts: R=$(kseal keygen -o key.txt)
            write_stdout(format!("{}\n", identity.recipient()).as_bytes())
        }
        None => {
            eprintln!("Public key: {}", identity.recipient());
            write_stdout(file.expose_secret().as_bytes())
        }
    }
}
