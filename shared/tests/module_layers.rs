//! The library's top-level modules are layers: none uses, in its code
//! outside tests, a module that uses it back, directly or through others
//! (once five did: binding → validation → sealed_secret → rotation →
//! envelope → binding, so none could be read or changed alone). And each
//! uses only modules listed above it in the crate docs' list of layers
//! (`src/lib.rs`), so that list stays true.
//!
//! Read from the source with plain string handling: a module uses another
//! where its code names `crate::other` (as `crate::other::…` or inside
//! `use crate::{…}`); `super::` stays within a module in this crate.
//! Comment lines are skipped (doc links are not uses), and so is what
//! `#[cfg(test)]` marks: the item that follows it (to the line that closes
//! it at the attribute's indentation, as rustfmt writes it), or the file of
//! a `#[cfg(test)] mod name;`.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The `.rs` files under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// Top-level module → its files outside tests.
fn modules() -> BTreeMap<String, Vec<PathBuf>> {
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(src()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let mut files = Vec::new();
        if path.is_dir() {
            rust_files(&path, &mut files);
        } else if path.extension().is_some_and(|ext| ext == "rs") && name != "lib" {
            files.push(path);
        }
        if !files.is_empty() {
            modules.insert(name, files);
        }
    }
    // Files that only tests compile: `#[cfg(test)] mod name;` in a sibling.
    let mut test_files = BTreeSet::new();
    for files in modules.values() {
        for file in files {
            let lines: Vec<String> = read(file).lines().map(str::to_owned).collect();
            for pair in lines.windows(2) {
                let declared = pair[1].trim();
                if pair[0].trim() == "#[cfg(test)]"
                    && let Some(name) = declared
                        .strip_prefix("mod ")
                        .and_then(|rest| rest.strip_suffix(';'))
                {
                    let dir = file.parent().unwrap();
                    test_files.insert(dir.join(format!("{name}.rs")));
                    test_files.insert(dir.join(name).join("mod.rs"));
                }
            }
        }
    }
    for files in modules.values_mut() {
        files.retain(|file| !test_files.contains(file));
    }
    modules
}

/// The lines of `text` outside comments and `#[cfg(test)]` items.
fn code(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if trimmed.trim_end() == "#[cfg(test)]" {
            let indent = &line[..line.len() - trimmed.len()];
            i += 1;
            // Other attributes of the same item.
            while i < lines.len() && lines[i].trim_start().starts_with("#[") {
                i += 1;
            }
            if i < lines.len() && lines[i].trim_end().ends_with(';') {
                i += 1;
                continue;
            }
            let close = format!("{indent}}}");
            while i < lines.len() && !lines[i].starts_with(&close) {
                i += 1;
            }
            i += 1;
            continue;
        }
        if !trimmed.starts_with("//") {
            out.push(line);
        }
        i += 1;
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The top-level modules `code` names through `crate::`.
fn used_modules(code: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| is_ident(c) || c == '$') {
            continue; // `kseal_crate::`, or a macro's `$crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a::X, b::{Y, Z}}`: the first segment of each
            // element at the group's top level.
            let mut depth = 1;
            let mut element_start = true;
            let mut chars = group.char_indices().peekable();
            while let Some((index, c)) = chars.next() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => element_start = true,
                    c if element_start && depth == 1 && is_ident(c) => {
                        let name: String = group[index..]
                            .chars()
                            .take_while(|&c| is_ident(c))
                            .collect();
                        for _ in 1..name.len() {
                            chars.next();
                        }
                        used.insert(name);
                        element_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name: String = rest.chars().take_while(|&c| is_ident(c)).collect();
            used.insert(name);
        }
    }
    used
}

/// Module → the other top-level modules its code outside tests uses.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    modules
        .iter()
        .map(|(name, files)| {
            let mut uses = BTreeSet::new();
            for file in files {
                let text = read(file);
                uses.extend(used_modules(&code(&text).join("\n")));
            }
            uses.retain(|used| used != name && modules.contains_key(used));
            (name.clone(), uses)
        })
        .collect()
}

/// A cycle through `start`, if there is one: the modules in order.
fn cycle_through(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    // Depth-first search from `start` back to it, remembering the path.
    let mut stack = vec![(start.to_owned(), vec![start.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((module, path)) = stack.pop() {
        for next in &graph[&module] {
            if next == start {
                return Some(path);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn no_module_uses_one_that_uses_it_back() {
    let graph = graph();
    // The reading itself: a few uses that must be found.
    for (from, to) in [
        ("binding", "names"),
        ("envelope", "binding"),
        ("manifest", "yaml"),
        ("validation", "sealed_secret"),
    ] {
        assert!(
            graph[from].contains(to),
            "{from} → {to} not found: {graph:?}"
        );
    }
    let cycles: Vec<String> = graph
        .keys()
        .filter_map(|module| cycle_through(&graph, module))
        .map(|cycle| format!("{} → {}", cycle.join(" → "), cycle[0]))
        .collect();
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn modules_use_only_the_layers_listed_above_them() {
    let lib = read(&src().join("lib.rs"));
    // `//! * [`name`]: …` lines, in order, from the list of layers.
    let layers: Vec<&str> = lib
        .lines()
        .skip_while(|line| !line.starts_with("//! Layers, from the bottom"))
        .filter_map(|line| line.strip_prefix("//! * [`"))
        .filter_map(|rest| rest.split_once("`]").map(|(name, _)| name))
        .collect();
    let graph = graph();
    let private: BTreeSet<&str> = lib
        .lines()
        .filter_map(|line| line.strip_prefix("mod "))
        .filter_map(|rest| rest.strip_suffix(';'))
        .collect();
    for module in graph.keys() {
        assert!(
            layers.contains(&module.as_str()) || private.contains(module.as_str()),
            "module {module} is missing from the list of layers in src/lib.rs"
        );
    }
    for (position, module) in layers.iter().enumerate() {
        let below = &layers[position + 1..];
        let Some(uses) = graph.get(*module) else {
            panic!("src/lib.rs lists {module}, which is not a module");
        };
        for used in uses {
            assert!(
                !below.contains(&used.as_str()),
                "{module} uses {used}, listed below it in src/lib.rs: move one of them"
            );
        }
    }
}

#[test]
fn the_reading_finds_each_form_of_use() {
    let text = "\
use crate::a::X;
use crate::{b::Y, c::{Z, W}};
use crate::{
    d::V,
};
    let x = crate::e::f();
/// [`crate::comment::X`]
// crate::comment2
$crate::macro_path
other_crate::g
#[cfg(test)]
mod tests {
    use crate::test_only::T;
}
#[cfg(test)]
use crate::test_import::U;
fn h() {}
";
    let used = used_modules(&code(text).join("\n"));
    let expected: BTreeSet<String> = ["a", "b", "c", "d", "e"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(used, expected);
}
