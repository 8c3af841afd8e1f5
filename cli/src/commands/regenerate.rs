//! `kseal regenerate`: new random values for the keys `kseal seal
//! --generate` made (those in `spec.generated`), by name or because they
//! are due for rotation. Nobody chooses or sees a value, so a scheduled CI
//! job can rotate them: `kseal regenerate --due --in-place .`, then a pull
//! request from the diff.
//!
//! Each new value is bound to the same namespace, name, key and scope as
//! the one it replaces and sealed to the recipients `kseal seal` would use
//! for the file written (for a symlink, its target:
//! [`ManifestPath::rule_path`]); only those values' text changes in the
//! file ([`ManifestFile::set_encrypted_values`]). Every file is planned
//! before any is written: a problem anywhere (a named key that is not
//! generated, a record that does not parse or is too weak, recipients
//! other than the keys the object's values are sealed to, …) writes
//! nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Result, anyhow, bail};
use kseal_shared::envelope::seal;
use kseal_shared::generate::Generator;
use kseal_shared::manifest::{DocumentKind, ManifestFile, value_binding};
use kseal_shared::sealed_secret::SealedSecret;
use kseal_shared::validation;
use kseal_shared::x25519::Recipient;

use super::check::{MaxAges, due_values, effective_max_age, spec_max_age};
use super::seal::{sealed_name, warn_if_other_keys};
use crate::args::{RecipientArgs, RegenerateArgs};
use crate::cluster::ClusterArgs;
use crate::error::UsageError;
use crate::io::{Source, write_in_place, write_stdout};
use crate::recipients;
use crate::walk::{Extras, ManifestPath, Unparseable, manifest_files, skippable};
use kseal_shared::envelope::key_ids_in;
use kseal_shared::x25519::KeyId;

/// What one run found and decided, file by file.
#[derive(Default)]
struct Plan {
    /// Files to write, with their new text.
    changed: Vec<(ManifestPath, String)>,
    /// One line per value replaced: where, which key, its form, why.
    regenerated: Vec<String>,
    /// Values due that kseal did not generate: listed, never touched.
    by_hand: Vec<String>,
    /// What stops the run (nothing is written then).
    problems: Vec<String>,
    /// Documents that had to be rewritten whole (the text could not take
    /// the edit): said on stderr, as their comments and formatting go.
    rewritten_whole: Vec<String>,
    /// The `--key` names found generated in some SealedSecret, or named in
    /// a problem already.
    keys_seen: BTreeSet<String>,
    /// How many SealedSecrets the files hold.
    sealed_secrets: usize,
}

/// The recipients for each file, as `kseal seal` picks them: `-r`/`-R`,
/// else the file's `.kseal.yaml` rule, else the cluster's published key
/// (fetched once).
struct RecipientsFor<'a> {
    flags: &'a RecipientArgs,
    cluster: &'a ClusterArgs,
    from_cluster: Option<Found>,
}

/// Recipients, and where they came from (for messages).
type Found = (Vec<Recipient>, String);

impl RecipientsFor<'_> {
    /// `path`: the one `.kseal.yaml` rules match ([`ManifestPath::rule_path`]).
    fn of(&mut self, path: &Path) -> Result<Found> {
        if let Some(resolved) = recipients::resolve(self.flags, Some(path))? {
            return Ok((resolved.recipients, resolved.from));
        }
        if self.from_cluster.is_none() {
            let resolved = recipients::cluster_fallback(self.flags, self.cluster)?;
            self.from_cluster = Some((resolved.recipients, resolved.from));
        }
        Ok(self.from_cluster.clone().unwrap_or_default())
    }
}

pub fn run(args: RegenerateArgs) -> Result<()> {
    for key in &args.keys {
        kseal_shared::names::check_data_key(key)
            .map_err(|err| UsageError::new(format!("--key {key:?}: {err}")))?;
    }
    let files = manifest_files(&args.paths, Extras::ManifestsOnly, args.walk.ignore_files())?;
    let single_file = args.paths.len() == 1 && files.len() == 1 && !args.paths[0].is_dir();
    if !args.in_place && !single_file {
        return Err(UsageError::new(
            "several files or a directory: pass --in-place to rewrite them",
        )
        .into());
    }
    let mut recipients = RecipientsFor {
        flags: &args.recipients,
        cluster: &args.cluster,
        from_cluster: None,
    };
    let mut max_ages = MaxAges::default();
    let now = jiff::Timestamp::now();
    let mut plan = Plan::default();
    let mut printed: Option<String> = None;
    for file in &files {
        let text = match Source::File(file.path.clone()).read() {
            Ok(text) => text,
            Err(err) => {
                plan.problems.push(format!("{err:#}"));
                continue;
            }
        };
        match plan_file(
            file,
            &text,
            &args,
            &mut recipients,
            &mut max_ages,
            now,
            &mut plan,
        ) {
            Ok(Some(new)) => {
                printed = Some(new.clone());
                plan.changed.push((file.clone(), new));
            }
            Ok(None) => printed = Some(text.to_string()),
            // A file found in a directory that is not YAML/JSON kseal reads
            // and names no kseal object (a template): skipped, as rewrap
            // skips it.
            Err(err)
                if err.downcast_ref::<Unparseable>().is_some()
                    && skippable(file, &text, "kseal.dev/") =>
            {
                eprintln!(
                    "kseal: {}: skipped: not YAML/JSON kseal can read, and no kseal object in it (a template?)",
                    file.path.display()
                );
            }
            Err(err) => plan.problems.push(format!("{err:#}")),
        }
    }
    // A tree with nothing to regenerate in it passes, as it does for
    // `kseal rewrap` and `kseal check`; said plainly (unless a file could
    // not be read: that is the problem then).
    if plan.sealed_secrets == 0 && plan.problems.is_empty() {
        eprintln!(
            "kseal: no SealedSecret found in {} ({} file(s) read): nothing to regenerate{}",
            args.paths
                .iter()
                .map(|path| path.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            files.len(),
            if args.in_place {
                ", no file written"
            } else {
                ""
            }
        );
    }
    for key in &args.keys {
        if !plan.keys_seen.contains(key) {
            plan.problems.push(format!(
                "--key {key}: no SealedSecret given has a generated value {key:?} (spec.generated)"
            ));
        }
    }
    for line in &plan.by_hand {
        eprintln!("kseal: {line}");
    }
    if !plan.by_hand.is_empty() {
        eprintln!(
            "kseal: {} value(s) due but not generated by kseal, left as they are: seal a new value for each (`kseal seal --from-literal KEY=… --merge-into FILE`)",
            plan.by_hand.len()
        );
    }
    if !plan.problems.is_empty() {
        for problem in &plan.problems {
            eprintln!("kseal: {problem}");
        }
        bail!(
            "{} problem(s); nothing was regenerated or written",
            plan.problems.len()
        );
    }
    // A document the text could not take the edit in is rewritten whole:
    // never silently (its comments and formatting go).
    for line in &plan.rewritten_whole {
        eprintln!("kseal: {line}");
    }
    let mut not_written = 0;
    if args.in_place {
        for (file, text) in &plan.changed {
            if let Err(err) = write_in_place(file, text.as_bytes()) {
                eprintln!("kseal: {err:#}");
                not_written += 1;
            }
        }
    }
    for line in &plan.regenerated {
        eprintln!("kseal: regenerated {line}");
    }
    if plan.sealed_secrets > 0 {
        eprintln!(
            "kseal: {} value(s) regenerated in {} file(s){}{}",
            plan.regenerated.len(),
            plan.changed.len(),
            match (args.in_place, plan.changed.is_empty()) {
                (true, false) => ", rewritten in place",
                (true, true) => "; no file written",
                (false, _) => ", printed on stdout",
            },
            if not_written > 0 {
                format!("; {not_written} file(s) could not be written")
            } else {
                String::new()
            }
        );
    }
    if not_written > 0 {
        bail!(
            "{not_written} file(s) could not be written; the others keep their new values (run again once it is fixed)"
        );
    }
    if !args.in_place
        && let Some(text) = printed
    {
        write_stdout(text.as_bytes())?;
    }
    Ok(())
}

/// A generated value to replace: its form, and why (for the summary).
struct Selected {
    generator: Generator,
    why: String,
}

/// Plans one file: which values to replace, sealed anew; returns the new
/// text when any value changes. Problems go to `plan.problems`; an error
/// is a file that cannot be read as manifests.
fn plan_file(
    file: &ManifestPath,
    text: &str,
    args: &RegenerateArgs,
    recipients: &mut RecipientsFor<'_>,
    max_ages: &mut MaxAges,
    now: jiff::Timestamp,
    plan: &mut Plan,
) -> Result<Option<String>> {
    let path = &file.path;
    let mut manifest = ManifestFile::new(text);
    let objects = manifest
        .objects()
        .map_err(|err| anyhow::Error::new(Unparseable(format!("{}: {err}", path.display()))))?;
    // `.kseal.yaml` rules (recipients, max_age) match the file written: a
    // symlink's target, never the link (a link `staging/db.yaml` to
    // `prod/db.sealed` must not seal prod's value to staging's keys). For
    // the max age, the file read (wherever a link leads); for recipients,
    // with --in-place, the file written, which must be inside the tree.
    let read_path = file.rule_path(false)?;
    let mut file_recipients: Option<Found> = None;
    for object in objects
        .iter()
        .filter(|object| object.kind == DocumentKind::SealedSecret)
    {
        plan.sealed_secrets += 1;
        let at = format!("{}: {}", path.display(), object.location());
        let sealed: SealedSecret = match kseal_shared::sealed_secret::from_document(&object.value) {
            Ok(sealed) => sealed,
            Err(err) => {
                plan.problems.push(format!("{at}: {err}"));
                continue;
            }
        };
        let name = sealed_name(&sealed);
        let at = format!("{at}: {name}");
        let mut selected: BTreeMap<String, Selected> = BTreeMap::new();
        let mut select = |plan: &mut Plan, key: &str, why: String| -> bool {
            let Some(record) = sealed.spec.generated.get(key) else {
                return false;
            };
            match record.parse::<Generator>() {
                Ok(generator) => match generator.check_strength() {
                    Err(weak) if !args.allow_weak => plan.problems.push(format!(
                        "{at}: spec.generated.{key}: {weak}, so it is not regenerated (was the record edited?); --allow-weak allows it, for a legacy system that takes only a short value"
                    )),
                    _ => {
                        selected
                            .entry(key.to_owned())
                            .or_insert(Selected { generator, why });
                    }
                },
                Err(err) => plan
                    .problems
                    .push(format!("{at}: spec.generated.{key}: {err}")),
            }
            true
        };
        for key in &args.keys {
            let generated = sealed.spec.generated.contains_key(key);
            let has_value = sealed.spec.encrypted_data.contains_key(key);
            match (generated, has_value) {
                (true, true) => {
                    plan.keys_seen.insert(key.clone());
                    select(plan, key, "named with --key".to_owned());
                }
                (true, false) => {
                    plan.keys_seen.insert(key.clone());
                    plan.problems.push(format!(
                        "{at}: --key {key}: spec.generated names {key:?}, but spec.encryptedData has no value for it"
                    ));
                }
                (false, true) => {
                    plan.keys_seen.insert(key.clone());
                    plan.problems.push(format!(
                        "{at}: --key {key}: the value of {key:?} was not generated by kseal (it is not in spec.generated), so it is not regenerated: seal a new value with `kseal seal --from-literal {key}=… --merge-into {}`, or a generated one with `--generate {key}=SPEC --merge-into`",
                        path.display()
                    ));
                }
                (false, false) => {}
            }
        }
        if args.due {
            // Judged as `kseal check --rotation` (or `--max-age`) judges it.
            let spec = match spec_max_age(&object.value) {
                Ok(spec) => spec,
                Err(problem) => {
                    plan.problems.push(format!("{at}: {problem}"));
                    None
                }
            };
            let rule = if args.max_age.is_some() {
                None
            } else {
                max_ages.of(&read_path)?
            };
            if let Some((max_age, source)) = effective_max_age(args.max_age, rule, spec) {
                for (key, why) in due_values(&object.value, max_age, now) {
                    let why = format!("{why} (max age {max_age}, {source})");
                    if !select(plan, &key, format!("due: {why}")) {
                        plan.by_hand
                            .push(format!("{at}: {key}: due, {why}; not generated by kseal"));
                    }
                }
            }
        }
        if selected.is_empty() {
            continue;
        }
        let problems = validation::sealed_secret_problems(&sealed);
        if !problems.is_empty() {
            plan.problems
                .extend(problems.iter().map(|problem| format!("{at}: {problem}")));
            continue;
        }
        let (recipients, from) = match &file_recipients {
            Some(found) => found.clone(),
            None => {
                // With --in-place, the file written: a link out of the tree
                // is refused here, before anything is written.
                let rule_path = match file.rule_path(args.in_place) {
                    Ok(rule_path) => rule_path,
                    Err(err) => {
                        plan.problems.push(format!("{err:#}"));
                        return Ok(None);
                    }
                };
                let found = recipients
                    .of(&rule_path)
                    .map_err(|err| anyhow!("{}: {err:#}", path.display()))?;
                file_recipients = Some(found.clone());
                found
            }
        };
        // The new values go to the keys the rest of the object is sealed to,
        // or the run stops: values of one object sealed to different keys
        // are the sign of the wrong rule (a symlink, a moved file) or the
        // wrong cluster, unless the keys were rotated on purpose.
        if args.allow_recipient_change {
            warn_if_other_keys(&at, &sealed, &recipients, "the regenerated ones");
        } else if let Some(problem) = recipient_change(&at, file, &sealed, &recipients, &from) {
            plan.problems.push(problem);
            continue;
        }
        let mut values = BTreeMap::new();
        for (key, Selected { generator, why }) in selected {
            let value = generator.generate();
            match seal(value.expose(), &value_binding(&sealed, &key), &recipients) {
                Ok(new) => {
                    values.insert(key.clone(), new.encode());
                    plan.regenerated
                        .push(format!("{at}: {key} ({generator}): {why}"));
                }
                Err(err) => plan.problems.push(format!("{at}: {key}: {err}")),
            }
        }
        manifest.set_encrypted_values(object, values);
    }
    if !manifest.has_replacements() {
        return Ok(None);
    }
    let rendered = manifest
        .render_reporting()
        .map_err(|err| anyhow!("{}: {err}", path.display()))?;
    for location in &rendered.rewritten {
        plan.rewritten_whole.push(rewritten_whole(path, location));
    }
    Ok(Some(rendered.text))
}

/// What to say of a document rewritten whole: the edit could not be made
/// in its text (a folded or multi-line value, quoting with escapes, flow
/// style), so it was written anew from its parsed form.
pub(crate) fn rewritten_whole(path: &Path, location: &str) -> String {
    format!(
        "{}: {location}: rewritten whole: the edit could not be made in its text (a folded or multi-line value, quoting with escapes, or flow style), so that document's formatting and comments inside it were not kept (the other documents, and comments before it, were); check the diff",
        path.display()
    )
}

/// The problem when the recipients for `file` are not exactly the keys the
/// object's values are sealed to (`None` when they are, or when no value
/// names a key kseal can read): what differs, where the recipients came
/// from, and the way on after a key rotation.
fn recipient_change(
    at: &str,
    file: &ManifestPath,
    sealed: &SealedSecret,
    recipients: &[Recipient],
    from: &str,
) -> Option<String> {
    let before = key_ids_in(sealed.spec.encrypted_data.values().map(String::as_str));
    let after: BTreeSet<KeyId> = recipients.iter().map(Recipient::key_id).collect();
    if before.is_empty() || before == after {
        return None;
    }
    let show = |ids: &mut dyn Iterator<Item = &KeyId>| {
        ids.map(ToString::to_string).collect::<Vec<_>>().join(", ")
    };
    let only_before = show(&mut before.difference(&after));
    let only_after = show(&mut after.difference(&before));
    let mut differs = Vec::new();
    if !only_before.is_empty() {
        differs.push(format!("key id(s) {only_before} only in its values"));
    }
    if !only_after.is_empty() {
        differs.push(format!("key id(s) {only_after} only in the recipients"));
    }
    // A rule was matched on a symlink's target: said, as it is not the
    // path shown.
    let link = match file.rule_path(false) {
        Ok(target)
            if crate::walk::is_symlink(&file.path)
                && from.contains(kseal_shared::config::CONFIG_FILE_NAME) =>
        {
            format!(" (a symlink to {}, whose rule applies)", target.display())
        }
        _ => String::new(),
    };
    Some(format!(
        "{at}: not regenerated: the recipients for {}{link}, from {from}, are key id(s) {}, but the object's values are sealed to key id(s) {} ({}); a new value would be sealed to other keys than the rest of the object (the wrong .kseal.yaml rule or cluster?). After a key rotation (`kseal pins update`), pass --allow-recipient-change to seal the new values to the new keys (and `kseal rewrap` the others)",
        file.path.display(),
        show(&mut after.iter()),
        show(&mut before.iter()),
        differs.join("; "),
    ))
}
