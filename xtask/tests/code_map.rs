//! CONTRIBUTING.md's map against the tree, and the shape rules it states:
//!
//! - every module of every crate is in the map, and every path the map
//!   names exists;
//! - each crate's modules are in layers, and a module imports only modules
//!   of lower layers (so no crate has an import cycle between its modules);
//! - no function in `xtask/` or `tests/testenv/src` is longer than 150
//!   lines.
//!
//! Everything is read from the files: no build, no cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates whose module layers CONTRIBUTING.md gives: each source root
/// and the path its modules are imported by. `xtask/src/bench` is a crate
/// of its own for this purpose: the harness and the scenarios.
const CRATES: [(&str, &str); 6] = [
    ("shared/src", "crate::"),
    ("cli/src", "crate::"),
    ("controller/src", "crate::"),
    ("tests/testenv/src", "crate::"),
    ("xtask/src", "crate::"),
    ("xtask/src/bench", "crate::bench::"),
];

/// The longest function allowed where the harness and benches live.
const MAX_FUNCTION_LINES: usize = 150;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// A crate's top-level modules (`src/m.rs`, `src/m/`, or both),
/// each with its files. The crate root (`lib.rs`, `main.rs`) is not one.
fn modules(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut modules: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        // `m.rs` with its children in `m/`, or `m/mod.rs`: one module.
        if path.is_dir() {
            modules.entry(name).or_default().extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs")
            && !["lib", "main", "mod"].contains(&name.as_str())
        {
            modules.entry(name).or_default().push(path);
        }
    }
    modules
}

/// Source text without comments, string and char literals, so braces and
/// paths are only code's. Newlines are kept, so line numbers still hold.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                    out.push_str("  ");
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    out.push_str("  ");
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !chars
                .get(i.wrapping_sub(1))
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            // A raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &skipped in &chars[i..j.min(chars.len())] {
                blank(&mut out, skipped);
            }
            i = j;
        } else if c == '"' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '"' {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            for &skipped in &chars[i..(j + 1).min(chars.len())] {
                blank(&mut out, skipped);
            }
            i = j + 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}'), not a lifetime ('a).
            let end = if next == Some('\\') {
                chars
                    .get(i + 3..)
                    .and_then(|rest| rest.iter().position(|&c| c == '\''))
                    .map(|p| i + 3 + p)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    out.push_str(&" ".repeat(end - i + 1));
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The code before `#[cfg(test)] mod tests`, where a module's own tests
/// start: tests may reach anything.
fn without_tests(code: &str) -> &str {
    match code.find("#[cfg(test)]\nmod tests") {
        Some(at) => &code[..at],
        None => code,
    }
}

/// The top-level modules `file` (of module `own`) imports: `crate::m`,
/// `crate::{m, n::x}` (with `root` for `crate::`), `super::m` in a file
/// directly under the root, and `crate::X` where the root re-exports `X`
/// from `m` (`known` maps both module names and re-exported names to
/// their module).
fn imports(
    file: &Path,
    (src, root): (&Path, &str),
    own: &str,
    known: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    let code = code_only(&read(file));
    let code = without_tests(&code);
    let mut found = BTreeSet::new();
    let mut roots = vec![root];
    if file.parent() == Some(src) {
        roots.push("super::");
    }
    for root in roots {
        for (at, _) in code.match_indices(root) {
            let rest = &code[at + root.len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // The first path segment of each top-level item of the group.
                let mut depth = 0;
                let mut item_start = true;
                let mut segment = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => item_start = true,
                        c if item_start && (c.is_alphanumeric() || c == '_') => segment.push(c),
                        _ => {
                            if item_start && !segment.is_empty() {
                                found.insert(std::mem::take(&mut segment));
                                item_start = false;
                            }
                        }
                    }
                }
                if !segment.is_empty() {
                    found.insert(segment);
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.insert(name);
            }
        }
    }
    found
        .iter()
        .filter_map(|name| known.get(name))
        .filter(|module| *module != own)
        .cloned()
        .collect()
}

/// The names the crate root (`lib.rs`, `main.rs` or `mod.rs`) re-exports
/// from its modules (`pub use m::X;`, `pub use m::{X, y::Z as W};`), each
/// mapped to its module, so `crate::X` counts as an import of `m`.
fn root_reexports(src: &Path, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for root in ["lib.rs", "main.rs", "mod.rs"] {
        let path = src.join(root);
        if !path.is_file() {
            continue;
        }
        let code = code_only(&read(&path));
        for statement in code.split(';') {
            let statement = statement.trim();
            let Some(rest) = ["pub use ", "pub(crate) use "]
                .iter()
                .find_map(|prefix| statement.rsplit_once(prefix).map(|(_, rest)| rest))
            else {
                continue;
            };
            let rest = rest
                .trim_start_matches("crate::")
                .trim_start_matches("self::");
            let Some((module, items)) = rest.split_once("::") else {
                continue;
            };
            if !modules.contains(module) {
                continue;
            }
            let items = items.trim().trim_start_matches('{').trim_end_matches('}');
            for item in items.split(',') {
                // `a::b::X as Y` is re-exported as `Y`.
                let name = item.rsplit(" as ").next().unwrap_or_default();
                let name = name.rsplit("::").next().unwrap_or_default().trim();
                if !name.is_empty() && name != "self" {
                    names.insert(name.to_owned(), module.to_owned());
                }
            }
        }
    }
    names
}

/// The import graph of a crate's top-level modules; `root` is how its
/// modules are named in a path (`crate::`).
fn graph(src: &Path, root: &str) -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules(src);
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    let mut known = root_reexports(src, &names);
    known.extend(names.iter().map(|name| (name.clone(), name.clone())));
    modules
        .iter()
        .map(|(name, files)| {
            let deps = files
                .iter()
                .flat_map(|file| imports(file, (src, root), name, &known))
                .collect();
            (name.clone(), deps)
        })
        .collect()
}

/// CONTRIBUTING.md's layer tables: rows `| N | `crate/src/module…` | … |`,
/// by source root, module name → layer.
fn documented_layers(text: &str) -> BTreeMap<String, BTreeMap<String, u32>> {
    let mut layers: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    for line in text.lines().filter(|line| line.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let (Some(layer), Some(path)) = (cells.first(), cells.get(1)) else {
            continue;
        };
        let Ok(layer) = layer.parse::<u32>() else {
            continue;
        };
        for path in path.split('`').skip(1).step_by(2) {
            // The longest source root the path is a module of.
            let Some((src, module)) = CRATES
                .iter()
                .filter_map(|(src, _)| {
                    let module = path
                        .strip_prefix(&format!("{src}/"))?
                        .trim_end_matches('/')
                        .trim_end_matches(".rs");
                    (!module.is_empty() && !module.contains('/')).then(|| (*src, module.to_owned()))
                })
                .next()
            else {
                panic!("CONTRIBUTING.md: layer row names {path}, not a module of {CRATES:?}");
            };
            let previous = layers
                .entry(src.to_owned())
                .or_default()
                .insert(module.clone(), layer);
            assert!(
                previous.is_none(),
                "CONTRIBUTING.md: {path} is listed twice"
            );
        }
    }
    layers
}

fn contributing() -> String {
    read(&repo().join("CONTRIBUTING.md"))
}

#[test]
fn every_module_is_in_a_layer_and_imports_only_lower_layers() {
    let documented = documented_layers(&contributing());
    let mut problems = Vec::new();
    for (src, root) in CRATES {
        let graph = graph(&repo().join(src), root);
        let layers = documented.get(src).cloned().unwrap_or_default();
        for module in graph.keys() {
            if !layers.contains_key(module) {
                // The lowest layer its imports allow, when they are mapped.
                let lowest = graph[module]
                    .iter()
                    .map(|dep| layers.get(dep).map(|layer| layer + 1))
                    .try_fold(0, |lowest, layer| Some(lowest.max(layer?)));
                let hint = lowest
                    .map(|layer| format!(" (its imports allow layer {layer})"))
                    .unwrap_or_default();
                problems.push(format!(
                    "{src}/{module} is not in CONTRIBUTING.md's map{hint}"
                ));
            }
        }
        for module in layers.keys() {
            if !graph.contains_key(module) {
                problems.push(format!(
                    "CONTRIBUTING.md maps {src}/{module}, which does not exist"
                ));
            }
        }
        for (module, deps) in &graph {
            let Some(&layer) = layers.get(module) else {
                continue;
            };
            for dep in deps {
                let Some(&dep_layer) = layers.get(dep) else {
                    continue;
                };
                if dep_layer >= layer {
                    problems.push(format!(
                        "{src}: {module} (layer {layer}) imports {dep} (layer {dep_layer}); \
                         a module may import only lower layers"
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_path_the_contributing_guide_names_exists() {
    let text = contributing();
    let mut missing = Vec::new();
    for span in text.split('`').skip(1).step_by(2) {
        // Repository paths: relative, with a directory, no spaces or
        // placeholders.
        let path = span.split(['#', ':']).next().unwrap_or_default();
        let looks_like_path = path.contains('/')
            && !path.contains(char::is_whitespace)
            && !path.contains(['<', '>', '*', '{', '$', '='])
            && !path.starts_with('/')
            && !path.starts_with("http")
            && !path.starts_with("kseal.dev/")
            && !path.starts_with("../");
        if looks_like_path && !repo().join(path).exists() {
            missing.push(path.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "CONTRIBUTING.md names paths that do not exist: {missing:?}"
    );
}

/// Each `fn` item's length in lines, from its `fn` line to its closing
/// brace, as (file, line, name, lines).
fn function_lengths(file: &Path) -> Vec<(usize, String, usize)> {
    let code = code_only(&read(file));
    let lines: Vec<&str> = code.lines().collect();
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let Some(at) = line.find("fn ").filter(|&at| {
            at == 0 || !line[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
        }) else {
            continue;
        };
        let name: String = line[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue;
        }
        // The body: from the first `{` after the signature to its match; a
        // `;` first means a declaration without a body.
        let mut depth = 0usize;
        let mut opened = false;
        'lines: for (offset, body_line) in lines[start..].iter().enumerate() {
            let text = if offset == 0 {
                &body_line[at..]
            } else {
                body_line
            };
            for c in text.chars() {
                match c {
                    ';' if !opened => break 'lines,
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' if opened => {
                        depth -= 1;
                        if depth == 0 {
                            found.push((start + 1, name.clone(), offset + 1));
                            break 'lines;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    found
}

#[test]
fn no_function_in_the_harness_or_xtask_is_over_150_lines() {
    let mut long = Vec::new();
    for dir in ["xtask", "tests/testenv/src"] {
        for file in rust_files(&repo().join(dir)) {
            for (line, name, length) in function_lengths(&file) {
                if length > MAX_FUNCTION_LINES {
                    let shown = file.strip_prefix(repo()).unwrap_or(&file).display();
                    long.push(format!("{shown}:{line} fn {name}: {length} lines"));
                }
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines:\n{}",
        long.join("\n")
    );
}

/// The checks above read real code: each finds what it is for.
#[test]
fn the_readers_see_what_they_are_for() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(
        src.join("a.rs"),
        "//! mentions crate::c in a comment\nuse crate::{b::{X, Y}, c};\nfn f() { let _ = \"crate::d {\"; }\n#[cfg(test)]\nmod tests { use crate::d; }\n",
    )
    .unwrap();
    std::fs::write(src.join("b.rs"), "pub struct X;\npub struct Y;\n").unwrap();
    std::fs::write(src.join("c.rs"), "pub fn g() -> u8 { super::b::X; b'{' }\n").unwrap();
    std::fs::write(src.join("d.rs"), "").unwrap();
    std::fs::write(
        src.join("lib.rs"),
        "mod a; mod b; mod c; mod d; mod e;\npub use d::{\n    Thing,\n    inner::Z as W,\n};\n",
    )
    .unwrap();
    std::fs::write(
        src.join("e.rs"),
        "use crate::W;\nfn f() { crate::Thing; }\n",
    )
    .unwrap();
    let graph = graph(src, "crate::");
    let deps = |m: &str| graph[m].iter().cloned().collect::<Vec<_>>();
    assert_eq!(deps("a"), ["b", "c"]);
    assert_eq!(deps("c"), ["b"]);
    assert!(deps("d").is_empty());
    // Through the root's re-exports.
    assert_eq!(deps("e"), ["d"]);

    let long_body = "    let x = 1;\n".repeat(200);
    std::fs::write(
        src.join("long.rs"),
        format!("fn short() {{ '}}'; }}\nfn long() {{\n{long_body}}}\nfn decl();\n"),
    )
    .unwrap();
    let lengths = function_lengths(&src.join("long.rs"));
    assert_eq!(
        lengths,
        [(1, "short".to_owned(), 1), (2, "long".to_owned(), 202)]
    );

    let layers = documented_layers(
        "| 0 | `shared/src/secret.rs` | x |\n| 2 | `shared/src/manifest/` | y |\n| layer | module | what |\n",
    );
    assert_eq!(layers["shared/src"]["secret"], 0);
    assert_eq!(layers["shared/src"]["manifest"], 2);
}
