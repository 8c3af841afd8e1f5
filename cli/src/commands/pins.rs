//! `kseal pins update` and `kseal pins check`: the cluster keys pinned in
//! `.kseal.yaml` recipients files (rules with `context:`), kept current.
//! The text rules are in [`kseal_shared::pins`]; this module finds the
//! files, fetches each context's published keys (several clusters at
//! once, each on its own: one that cannot be reached fails only its
//! files), and reads and writes the files.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use kseal_shared::config::{CONFIG_FILE_NAME, Config};
use kseal_shared::pins::{self, ClusterKeys, Outcome, Problem};
use kube::config::Kubeconfig;
use serde_json::json;

use crate::args::{
    PinsArgs, PinsCheckArgs, PinsCommand, PinsOutput, PinsTargetArgs, PinsUpdateArgs,
};
use crate::cluster;
use crate::error::UsageError;
use crate::io::{Privacy, write_atomic, write_report};

/// How many clusters are asked at once.
const CONCURRENT_FETCHES: usize = 8;

pub fn run(args: PinsArgs) -> Result<()> {
    match args.command {
        PinsCommand::Update(args) => update(args),
        PinsCommand::Check(args) => check(args),
    }
}

/// One pinned recipients file and the contexts whose keys it pins
/// (normally one).
struct Pin {
    /// For messages: the file as its rule names it, relative to the working
    /// directory when it is below it.
    shown: String,
    /// Where it is read and written (canonical: a symlink's target), or why
    /// it cannot be.
    target: Result<PathBuf, String>,
    /// Distinct, in rule order.
    contexts: Vec<String>,
}

/// The pins of the config, as `args` selects them.
fn pins(args: &PinsTargetArgs) -> Result<Vec<Pin>> {
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let config_path = match &args.config {
        Some(path) => path.clone(),
        None => Config::find_path(&cwd).ok_or_else(|| {
            anyhow!(
                "no {CONFIG_FILE_NAME} in {} (or above it up to the repository root, inside a git repository); name one with --config",
                cwd.display()
            )
        })?,
    };
    let config = Config::load_rules(&config_path)?;
    let mut found: Vec<Pin> = Vec::new();
    for rule in &config.rules {
        let (Some(context), Some(file)) = (&rule.context, &rule.recipients_file) else {
            continue;
        };
        if args
            .cluster
            .context
            .as_ref()
            .is_some_and(|only| only != context)
        {
            continue;
        }
        let shown = shown(&cwd, &config.root().join(file));
        let target = config
            .pin_target(rule)
            .map_err(|err| err.to_string())
            .and_then(|target| target.ok_or_else(|| "no recipients_file".to_owned()));
        let same = found.iter_mut().find(|pin| match (&pin.target, &target) {
            (Ok(a), Ok(b)) => a == b,
            _ => pin.shown == shown,
        });
        match same {
            Some(pin) => {
                if !pin.contexts.contains(context) {
                    pin.contexts.push(context.clone());
                }
            }
            None => found.push(Pin {
                shown,
                target,
                contexts: vec![context.clone()],
            }),
        }
    }
    if found.is_empty() {
        bail!(
            "no creation rule in {} has a context{}: add `context: <kube context>` to the rules whose recipients_file pins a cluster's key",
            config.path.display(),
            match &args.cluster.context {
                Some(context) => format!(" {context:?}"),
                None => String::new(),
            }
        );
    }
    if args.files.is_empty() {
        return Ok(found);
    }
    let mut selected = Vec::new();
    let mut unknown = Vec::new();
    for file in &args.files {
        let named = resolve_named(&cwd.join(file));
        match found
            .iter()
            .position(|pin| named.is_some() && pin.target.as_ref().ok() == named.as_ref())
        {
            Some(index) if !selected.contains(&index) => selected.push(index),
            Some(_) => {}
            None => unknown.push(file.display().to_string()),
        }
    }
    if !unknown.is_empty() {
        return Err(UsageError::new(format!(
            "no rule with a context in {} pins {}",
            config.path.display(),
            unknown.join(", ")
        ))
        .into());
    }
    selected.sort_unstable();
    let mut found: Vec<Option<Pin>> = found.into_iter().map(Some).collect();
    Ok(selected
        .into_iter()
        .filter_map(|index| found.get_mut(index).and_then(Option::take))
        .collect())
}

/// A file named on the command line, as [`Config::pin_target`] resolves
/// it: canonical, or, for a file not created yet, its canonical directory
/// and its name.
fn resolve_named(path: &Path) -> Option<PathBuf> {
    if let Ok(path) = path.canonicalize() {
        return Some(path);
    }
    let name = path.file_name()?;
    let parent = path.parent()?.canonicalize().ok()?;
    Some(parent.join(name))
}

/// `path` for messages: relative to `cwd` when below it, without `./`.
fn shown(cwd: &Path, path: &Path) -> String {
    let path = path.strip_prefix(cwd).unwrap_or(path);
    let clean: PathBuf = path
        .components()
        .filter(|part| *part != Component::CurDir)
        .collect();
    clean.display().to_string()
}

/// Every context's keys, fetched a few clusters at a time; each result on
/// its own.
fn fetch_all(args: &PinsTargetArgs, pins: &[Pin]) -> BTreeMap<String, Result<ClusterKeys>> {
    let mut contexts: Vec<&String> = pins.iter().flat_map(|pin| &pin.contexts).collect();
    contexts.sort_unstable();
    contexts.dedup();
    let mut keys = BTreeMap::new();
    // A context the kubeconfig lacks is said so (the client's own error
    // speaks of a "current context").
    let kubeconfig = match &args.cluster.kubeconfig {
        Some(path) => Kubeconfig::read_from(path).ok(),
        None => Kubeconfig::read().ok(),
    };
    if let Some(kubeconfig) = kubeconfig {
        contexts.retain(|context| {
            let known = kubeconfig
                .contexts
                .iter()
                .any(|named| &named.name == *context);
            if !known {
                keys.insert(
                    (*context).clone(),
                    Err(anyhow!(
                        "no context {context:?} in the kubeconfig{}",
                        cluster::kubeconfig_file(&args.cluster)
                            .map(|file| format!(" ({file})"))
                            .unwrap_or_default()
                    )),
                );
            }
            known
        });
    }
    for chunk in contexts.chunks(CONCURRENT_FETCHES) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|context| {
                    let context = (*context).clone();
                    let mut cluster = args.cluster.clone();
                    cluster.context = Some(context.clone());
                    scope.spawn(move || {
                        let fetched = cluster::fetch_published_and_held(&cluster)
                            .map(|(_, published, held)| {
                                ClusterKeys::new(&context, &published, &held)
                            })
                            .with_context(|| format!("cannot read the keys of context {context}"));
                        (context, fetched)
                    })
                })
                .collect();
            for handle in handles {
                match handle.join() {
                    Ok((context, fetched)) => {
                        keys.insert(context, fetched);
                    }
                    Err(_) => {
                        // A panic in a fetch: its context stays missing,
                        // and fails below.
                    }
                }
            }
        });
    }
    keys
}

/// The keys of `context`, or why there are none.
fn keys_of<'a>(
    keys: &'a BTreeMap<String, Result<ClusterKeys>>,
    context: &str,
) -> Result<&'a ClusterKeys, String> {
    match keys.get(context) {
        Some(Ok(keys)) => Ok(keys),
        Some(Err(err)) => Err(format!("{err:#}")),
        None => Err(format!("cannot read the keys of context {context}")),
    }
}

/// A pin file's text; `None` when it does not exist yet.
fn read(target: &Path) -> Result<Option<String>> {
    match std::fs::read(target) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|err| anyhow!("not UTF-8 text (byte {})", err.utf8_error().valid_up_to())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(anyhow!(err).context("cannot read")),
    }
}

fn update(args: PinsUpdateArgs) -> Result<()> {
    let pins = pins(&args.target)?;
    let keys = fetch_all(&args.target, &pins);
    let pinned_at = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let (mut updated, mut current, mut failed) = (0usize, 0usize, Vec::new());
    for pin in &pins {
        let shown = &pin.shown;
        let target = match &pin.target {
            Ok(target) => target,
            Err(err) => {
                eprintln!("{shown}: failed: {err}");
                failed.push(shown.clone());
                continue;
            }
        };
        let text = match read(target) {
            Ok(Some(text)) => text,
            // Not made here: a misspelt recipients_file would become a pin
            // of the cluster's key alone, and every value sealed from it
            // would lack the recovery key without a word.
            Ok(None) => {
                eprintln!(
                    "{shown}: failed: the file does not exist; create it with the recipients that are not the cluster's (your offline recovery key's public line; an empty file if there are none), then run kseal pins update again"
                );
                failed.push(shown.clone());
                continue;
            }
            Err(err) => {
                eprintln!("{shown}: failed: {err:#}");
                failed.push(shown.clone());
                continue;
            }
        };
        let mut new_text = text.clone();
        let mut failures = 0;
        for context in &pin.contexts {
            let keys = match keys_of(&keys, context) {
                Ok(keys) => keys,
                Err(err) => {
                    eprintln!("{shown}: context {context}: failed: {err}");
                    failures += 1;
                    continue;
                }
            };
            match pins::update(&new_text, keys, &pinned_at) {
                Ok(done) => {
                    let line = match done.outcome {
                        Outcome::UpToDate => "up to date".to_owned(),
                        Outcome::Replaced => format!("{} -> {}", ids(&done.before), done.after),
                        Outcome::Appended => format!(
                            "no key of the cluster pinned -> {} (appended at the end)",
                            done.after
                        ),
                    };
                    eprintln!("{shown}: context {context}: {line}");
                    new_text = done.text;
                }
                Err(err) => {
                    eprintln!("{shown}: context {context}: failed: {err} (not updated)");
                    failures += 1;
                }
            }
        }
        if new_text != text {
            if let Err(err) = write_atomic(target, new_text.as_bytes(), Privacy::Public) {
                eprintln!("{shown}: failed: {err:#}");
                failed.push(shown.clone());
                continue;
            }
            updated += 1;
        } else if failures == 0 {
            current += 1;
        }
        if failures > 0 {
            failed.push(shown.clone());
        }
    }
    eprintln!(
        "kseal: pins update: {updated} file(s) updated, {current} up to date, {} failed",
        failed.len()
    );
    if failed.len() == pins.len() {
        bail!("no pinned file could be updated ({})", failed.join(", "));
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} pinned file(s) could not be updated ({}); the others were",
            failed.len(),
            pins.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

fn ids(ids: &[kseal_shared::x25519::KeyId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One problem of `kseal pins check`, for output.
struct Finding {
    file: String,
    line: Option<usize>,
    context: String,
    key_id: Option<String>,
    problem: &'static str,
    message: String,
}

impl Finding {
    fn of(file: &str, context: &str, problem: Problem) -> Self {
        Self {
            file: file.to_owned(),
            line: problem.line,
            context: context.to_owned(),
            key_id: problem.key_id.map(|id| id.to_string()),
            problem: problem.kind.as_str(),
            message: problem.message,
        }
    }

    fn text(&self) -> String {
        match self.line {
            Some(line) => format!("{}:{line}: {}", self.file, self.message),
            None => format!("{}: {}", self.file, self.message),
        }
    }
}

fn check(args: PinsCheckArgs) -> Result<()> {
    let pins = pins(&args.target)?;
    let keys = fetch_all(&args.target, &pins);
    let mut findings: Vec<Finding> = Vec::new();
    let mut checked = Vec::new();
    let mut failing_files = 0;
    for pin in &pins {
        let before = findings.len();
        let shown = &pin.shown;
        let text = match &pin.target {
            Ok(target) => match read(target) {
                Ok(Some(text)) => Ok(text),
                Ok(None) => {
                    Err("cannot read: it does not exist (kseal pins update creates it)".to_owned())
                }
                Err(err) => Err(format!("{err:#}")),
            },
            Err(err) => Err(err.clone()),
        };
        if let Err(err) = &text {
            findings.push(Finding {
                file: shown.clone(),
                line: None,
                context: pin.contexts.join(", "),
                key_id: None,
                problem: "unreadable",
                message: err.clone(),
            });
        }
        for context in &pin.contexts {
            let keys = match keys_of(&keys, context) {
                Ok(keys) => keys,
                Err(err) => {
                    findings.push(Finding {
                        file: shown.clone(),
                        line: None,
                        context: context.clone(),
                        key_id: None,
                        problem: "unreachable",
                        message: format!("context {context}: {err}"),
                    });
                    checked.push(json!({"file": shown, "context": context, "activeKeyId": null}));
                    continue;
                }
            };
            checked.push(json!({
                "file": shown,
                "context": context,
                "activeKeyId": keys.active().key_id().to_string(),
            }));
            let Ok(text) = &text else {
                continue;
            };
            let problems = pins::check(text, keys);
            if problems.is_empty() {
                eprintln!(
                    "{shown}: context {context}: ok (pins the active key {})",
                    keys.active().key_id()
                );
            }
            findings.extend(
                problems
                    .into_iter()
                    .map(|problem| Finding::of(shown, context, problem)),
            );
        }
        if findings.len() > before {
            failing_files += 1;
        }
    }
    match args.output {
        PinsOutput::Text => {
            let mut out = String::new();
            for finding in &findings {
                out.push_str(&finding.text());
                out.push('\n');
            }
            write_report(out.as_bytes())?;
        }
        PinsOutput::Json => {
            let problems: Vec<_> = findings
                .iter()
                .map(|finding| {
                    json!({
                        "file": finding.file,
                        "line": finding.line,
                        "context": finding.context,
                        "keyId": finding.key_id,
                        "problem": finding.problem,
                        "message": finding.message,
                    })
                })
                .collect();
            let mut out =
                serde_json::to_string_pretty(&json!({"checked": checked, "problems": problems}))?;
            out.push('\n');
            write_report(out.as_bytes())?;
        }
    }
    if findings.is_empty() {
        eprintln!(
            "kseal: pins check: {} pinned file(s) checked: each pins its cluster's active key and no key the cluster no longer seals to",
            pins.len()
        );
        return Ok(());
    }
    let fixable = findings.iter().any(|finding| {
        !matches!(
            finding.problem,
            "unreachable" | "unreadable" | "invalid-line"
        )
    });
    bail!(
        "pins check: {} problem(s) in {failing_files} of {} pinned file(s){}",
        findings.len(),
        pins.len(),
        if fixable {
            "; `kseal pins update` rewrites the files to each cluster's active key (review and commit the result)"
        } else {
            ""
        }
    )
}
