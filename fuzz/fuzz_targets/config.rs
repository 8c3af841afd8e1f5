//! `.kseal.yaml`: creation rules, path regexes, recipients and scopes.
//!
//! Properties: no panic (regexes are compiled with the regex crate's size
//! limits); a parsed config answers `rule_for` for any path.
#![no_main]

use std::path::Path;

use kseal_shared::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A directory that does not exist: `recipients_file` reads fail cleanly.
    let Ok(config) = Config::parse(Path::new("/nonexistent/kseal-fuzz/.kseal.yaml"), text) else {
        return;
    };
    for path in [
        "/nonexistent/kseal-fuzz/clusters/prod/db.yaml",
        "/nonexistent/kseal-fuzz/a.yaml",
        "/elsewhere/x.yaml",
    ] {
        let _ = config.rule_for(Some(Path::new(path)));
    }
    let _ = config.rule_for(None);
});
