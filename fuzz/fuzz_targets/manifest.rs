//! Manifest files: YAML (multi-document) and JSON, `List`s, plain Secrets and
//! SealedSecrets, and rendering them back.
//!
//! Properties: no panic; a file with no replacement renders to its exact
//! bytes; replacing an object with itself renders a file that parses to the
//! same objects.
#![no_main]

use kseal_shared::sealed_secret::SealedSecret;
use kseal_shared::envelope::SealedValue;
use kseal_shared::manifest::{DocumentKind, ManifestFile, PlainSecret};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = ManifestFile::new(text);
    assert_eq!(file.render().expect("unchanged file renders"), text);
    let Ok(objects) = file.objects() else {
        return;
    };
    for object in &objects {
        match object.kind {
            DocumentKind::Secret => {
                let _ = PlainSecret::from_value(object.value.clone());
            }
            DocumentKind::SealedSecret => {
                if let Ok(sealed) = serde_json::from_value::<SealedSecret>(object.value.clone()) {
                    for value in sealed.spec.encrypted_data.values() {
                        let _ = SealedValue::parse(value);
                    }
                }
            }
            DocumentKind::Other { .. } => {}
        }
    }
    if let Some(first) = objects.first() {
        let mut rewritten = file.clone();
        rewritten.replace(first, first.value.clone());
        if let Ok(rendered) = rewritten.render() {
            let again = ManifestFile::new(&rendered)
                .objects()
                .expect("a rendered file parses");
            assert_eq!(again.len(), objects.len(), "object count changed");
            for (before, after) in objects.iter().zip(&again) {
                assert_eq!(before.value, after.value, "an object changed");
            }
        }
    }
});
