//! kseal-controller: reconciles `SealedSecret`s into `Secret`s.
//!
//! The reconciler lands with the controller issue; until then the binary only
//! reports its version so the workspace, packaging and CI have a target.

fn main() -> anyhow::Result<()> {
    println!("kseal-controller {}", env!("CARGO_PKG_VERSION"));
    Ok(())
}
