//! Runs many unseals (or seals, with `seal` as second argument) for a
//! profiler: `valgrind --tool=callgrind target/release/examples/profile_unseal 500 [seal]`
use kseal_shared::envelope::{Keyring, open, seal};
use kseal_shared::{
    binding::{Binding, Scope},
    x25519::Identity,
};

fn main() {
    let identity = Identity::generate();
    let keyring = Keyring::new([identity.clone()]);
    let binding = Binding::new(Scope::Strict, "ns", "name", "key");
    let sealed =
        seal(b"value", &binding, &[identity.recipient().clone()]).map_err(|e| e.to_string());
    let Ok(sealed) = sealed else { return };
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let sealing = std::env::args().nth(2).as_deref() == Some("seal");
    let recipients = [identity.recipient().clone()];
    let mut ok = 0;
    for _ in 0..rounds {
        ok += usize::from(if sealing {
            seal(b"value", &binding, &recipients).is_ok()
        } else {
            open(&sealed, &binding, &keyring).is_ok()
        });
    }
    println!("{ok}");
}
