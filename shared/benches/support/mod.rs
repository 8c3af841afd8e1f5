//! Inputs shared by the benches (`#[path]`-included; not a bench itself).

use std::fmt::Write as _;

/// Documents in [`manifest`].
pub const DOCUMENTS: usize = 1000;

/// 1,000 `v1` Secrets, 5 `data` values each (base64 of 32 bytes), with a
/// label and an annotation: about 400 KiB, as `kseal seal -f` reads it.
pub fn manifest() -> String {
    let mut text = String::new();
    for i in 0..DOCUMENTS {
        let _ = write!(
            text,
            "---\n# Secret {i}\napiVersion: v1\nkind: Secret\nmetadata:\n  name: app-{i}\n  namespace: team-{}\n  labels:\n    app.kubernetes.io/name: app-{i}\n  annotations:\n    owner: team-{}\ntype: Opaque\ndata:\n",
            i % 10,
            i % 10
        );
        for k in 0..5 {
            let _ = writeln!(text, "  key{k}: {}", base64_32(i, k));
        }
    }
    text
}

fn base64_32(i: usize, k: usize) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    // 32 bytes: 42 characters, a 43rd carrying 4 bits (low 2 bits zero), '='.
    let mut out: String = (0..42)
        .map(|n| char::from(ALPHABET[(i * 7 + k * 13 + n) % 64]))
        .collect();
    out.push('A');
    out.push('=');
    out
}
