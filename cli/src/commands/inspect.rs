//! `kseal inspect` and `kseal validate`: what SealedSecrets hold and whether
//! they are well-formed, without any key.

use anyhow::{Result, bail};
use kseal_shared::contract::{VERIFY_PATH, VerifyResponse};
use kseal_shared::envelope::SealedValue;
use kseal_shared::manifest::{Document, DocumentKind, ManifestFile};
use kseal_shared::sealed_secret::SealedSecret;
use kseal_shared::validation;
use kseal_shared::x25519::KeyId;
use serde::Serialize;

use crate::args::{InspectArgs, InspectFormat, ValidateArgs, WalkArgs};
use crate::cluster::ClusterArgs;
use crate::io::{Source, write_report};
use crate::walk::{Extras, ManifestPath, manifest_files, skippable};

#[derive(Debug, Serialize)]
struct Report {
    file: String,
    document: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<usize>,
    line: usize,
    namespace: Option<String>,
    name: Option<String>,
    scope: String,
    /// `spec.maxAge` as written, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_age: Option<String>,
    /// `spec.rollout` as written, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    rollout: Option<String>,
    values: Vec<ValueReport>,
    /// Object-level problems (empty when well-formed).
    problems: Vec<String>,
    #[serde(skip)]
    sealed: Option<SealedSecret>,
}

#[derive(Debug, Serialize)]
struct ValueReport {
    key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    /// RFC 3339 seal time; absent when never recorded (v1, or upgraded
    /// from v1) or the value does not parse.
    #[serde(skip_serializing_if = "Option::is_none")]
    sealed_at: Option<String>,
    /// Whole days since `sealed_at` (negative when it lies in the future).
    #[serde(skip_serializing_if = "Option::is_none")]
    age_days: Option<i64>,
    #[serde(skip)]
    age_seconds: Option<i64>,
    key_ids: Vec<String>,
    /// How kseal generated the value (`spec.generated`: `alnum:32`, …),
    /// when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    generated: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Report {
    fn is_valid(&self) -> bool {
        self.problems.is_empty() && self.values.iter().all(|value| value.error.is_none())
    }

    fn object(&self) -> String {
        match (&self.namespace, &self.name) {
            (Some(namespace), Some(name)) => format!("{namespace}/{name}"),
            (None, Some(name)) => name.clone(),
            _ => "<unnamed>".into(),
        }
    }

    fn location(&self) -> String {
        match self.item {
            Some(item) => format!(
                "{}: document {} (line {}), item {}",
                self.file,
                self.document,
                self.line,
                item + 1
            ),
            None => format!(
                "{}: document {} (line {})",
                self.file, self.document, self.line
            ),
        }
    }
}

/// Reads every SealedSecret of the given paths (stdin when none).
fn reports(paths: &[std::path::PathBuf], walk: WalkArgs) -> Result<Vec<Report>> {
    let sources: Vec<(Source, Option<ManifestPath>)> =
        if paths.is_empty() || paths.iter().all(|p| p.as_os_str() == "-") {
            vec![(Source::Stdin, None)]
        } else {
            manifest_files(paths, Extras::ManifestsOnly, walk.ignore_files())?
                .into_iter()
                .map(|file| (Source::File(file.path.clone()), Some(file)))
                .collect()
        };
    let mut reports = Vec::new();
    for (source, file) in sources {
        let text = source.read()?;
        let objects = match ManifestFile::new(&text).objects() {
            Ok(objects) => objects,
            Err(_)
                if file
                    .as_ref()
                    .is_some_and(|file| skippable(file, &text, "kseal.dev/")) =>
            {
                eprintln!(
                    "kseal: {}: skipped: not YAML/JSON kseal can read, and no kseal object in it (a template?)",
                    source.display()
                );
                continue;
            }
            Err(err) => bail!("{}: {err}", source.display()),
        };
        for object in objects
            .iter()
            .filter(|o| o.kind == DocumentKind::SealedSecret)
        {
            reports.push(report(&source, object));
        }
    }
    Ok(reports)
}

fn report(source: &Source, object: &Document) -> Report {
    let mut report = Report {
        file: source.display(),
        document: object.index,
        item: object.item,
        line: object.line,
        namespace: None,
        name: None,
        scope: String::new(),
        max_age: None,
        rollout: None,
        values: Vec::new(),
        problems: Vec::new(),
        sealed: None,
    };
    let sealed: SealedSecret = match kseal_shared::sealed_secret::from_document(&object.value) {
        Ok(sealed) => sealed,
        Err(err) => {
            // Name the object even when it does not read as a SealedSecret.
            let text = |pointer: &str| {
                object
                    .value
                    .pointer(pointer)
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
            };
            report.namespace = text("/metadata/namespace");
            report.name = text("/metadata/name");
            report.problems.push(err.to_string());
            return report;
        }
    };
    report.namespace = sealed.metadata.namespace.clone();
    report.name = sealed.metadata.name.clone();
    report.scope = sealed.spec.scope.to_string();
    report.max_age = sealed.spec.max_age.clone();
    report.rollout = sealed.spec.rollout.clone();
    // The one definition of a well-formed SealedSecret (names Kubernetes
    // would accept, a namespace where the scope binds it, at most
    // MAX_VALUES values, the keys its type requires); each value must parse
    // too.
    report.problems.extend(
        validation::sealed_secret_problems(&sealed)
            .iter()
            .map(ToString::to_string),
    );
    for (key, encoded) in &sealed.spec.encrypted_data {
        let mut value = ValueReport {
            key: key.clone(),
            version: None,
            sealed_at: None,
            age_days: None,
            age_seconds: None,
            key_ids: Vec::new(),
            generated: sealed.spec.generated.get(key).cloned(),
            error: None,
        };
        match SealedValue::parse(encoded) {
            Ok(parsed) => {
                value.version = Some(parsed.version().to_string());
                if let Some(sealed_at) = parsed.sealed_at() {
                    value.sealed_at = Some(sealed_at.to_string());
                    let age = kseal_shared::rotation::seconds_since(sealed_at);
                    value.age_seconds = Some(age);
                    value.age_days = Some(age / 86_400);
                }
                value.key_ids = parsed.key_ids().iter().map(KeyId::to_string).collect();
            }
            Err(err) => value.error = Some(err.to_string()),
        }
        report.values.push(value);
    }
    report.sealed = Some(sealed);
    report
}

pub fn inspect(args: InspectArgs) -> Result<()> {
    let reports = reports(&args.paths, args.walk)?;
    if args.stale {
        return stale(&args, &reports);
    }
    let output = match args.format {
        InspectFormat::Json => format!("{}\n", serde_json::to_string_pretty(&reports)?),
        InspectFormat::Text => {
            let mut out = String::new();
            for report in &reports {
                out.push_str(&format!(
                    "{}: SealedSecret {} (scope {})\n",
                    report.location(),
                    report.object(),
                    report.scope
                ));
                // Not `KEY: …` lines: a data key has no space.
                if let Some(max_age) = &report.max_age {
                    out.push_str(&format!("  max age {max_age} (spec.maxAge)\n"));
                }
                if let Some(rollout) = &report.rollout {
                    out.push_str(&format!("  rollout {rollout} (spec.rollout)\n"));
                }
                for problem in &report.problems {
                    out.push_str(&format!("  problem: {problem}\n"));
                }
                for value in &report.values {
                    let generated = value
                        .generated
                        .as_ref()
                        .map_or_else(String::new, |how| format!(", generated ({how})"));
                    match &value.error {
                        Some(error) => {
                            out.push_str(&format!("  {}: invalid: {error}{generated}\n", value.key))
                        }
                        None => out.push_str(&format!(
                            "  {}: {}, {}, keys {}{generated}\n",
                            value.key,
                            value.version.as_deref().unwrap_or("?"),
                            match (&value.sealed_at, value.age_seconds) {
                                (Some(at), Some(age)) => format!(
                                    "sealed {at} ({})",
                                    kseal_shared::rotation::describe_age(age)
                                ),
                                _ => "seal time not recorded".to_owned(),
                            },
                            value.key_ids.join(",")
                        )),
                    }
                }
            }
            out
        }
    };
    write_report(output.as_bytes())?;
    if reports.iter().any(|report| !report.is_valid()) {
        bail!("some SealedSecrets are malformed (see above)");
    }
    Ok(())
}

pub fn validate(args: ValidateArgs) -> Result<()> {
    let mut reports = reports(&args.paths, args.walk)?;
    if args.online {
        for report in reports.iter_mut().filter(|report| report.is_valid()) {
            verify_online(report, &args.cluster)?;
        }
    }
    let mut problems = 0;
    for report in &reports {
        for problem in &report.problems {
            problems += 1;
            eprintln!(
                "kseal: {}: {}: {problem}",
                report.location(),
                report.object()
            );
        }
        for value in &report.values {
            if let Some(error) = &value.error {
                problems += 1;
                eprintln!(
                    "kseal: {}: {}: key {:?}: {error}",
                    report.location(),
                    report.object(),
                    value.key
                );
            }
        }
    }
    let values: usize = reports.iter().map(|report| report.values.len()).sum();
    if problems > 0 {
        bail!("{problems} problem(s) in {} SealedSecret(s)", reports.len());
    }
    // Nothing to validate is not "well-formed": a plaintext Secret or a
    // Bitnami SealedSecret under a *.sealed.yaml name must not pass a hook.
    if reports.is_empty() {
        bail!(
            "no kseal SealedSecret found, so nothing was validated (a plaintext Secret? seal it with `kseal seal`; a Bitnami SealedSecret? convert it with `kseal migrate`)"
        );
    }
    eprintln!(
        "kseal: {} SealedSecret(s), {values} value(s): well-formed",
        reports.len()
    );
    Ok(())
}

/// Asks the controller whether it can decrypt every value (`/v1/verify`);
/// failures become the values' errors.
fn verify_online(report: &mut Report, cluster: &ClusterArgs) -> Result<()> {
    let Some(sealed) = &report.sealed else {
        return Ok(());
    };
    let response =
        crate::cluster::controller_post(cluster, VERIFY_PATH, serde_json::to_vec(sealed)?)?;
    match response.status {
        200 => Ok(()),
        422 => {
            let answer: VerifyResponse = serde_json::from_slice(&response.body)
                .map_err(|err| anyhow::anyhow!("unexpected answer from the controller: {err}"))?;
            // The content the type requires (the controller opened it).
            report.problems.extend(answer.problems);
            for value in &mut report.values {
                let verdict = answer.values.get(&value.key);
                if !verdict.is_some_and(|verdict| verdict.ok) {
                    value.error = Some(format!(
                        "the cluster cannot decrypt it: {}",
                        verdict
                            .and_then(|verdict| verdict.message.as_deref())
                            .unwrap_or("no reason given")
                    ));
                }
            }
            Ok(())
        }
        status => bail!(
            "{}: the controller refused to verify (HTTP {status}): {}",
            report.location(),
            crate::cluster::error_message(&response.body)
        ),
    }
}

/// `inspect --stale`: values whose key ids are not exactly the current
/// recipients' (per file: -r/-R, the matching .kseal.yaml rule, or the
/// cluster's published keys). For CI: exit 1 while anything is stale.
fn stale(args: &InspectArgs, reports: &[Report]) -> Result<()> {
    let mut cluster_keys: Option<Vec<String>> = None;
    let mut out = String::new();
    let (mut stale, mut total) = (0, 0);
    for report in reports {
        // Matched as `kseal rewrap` matches it: a symlink by its target.
        let path = (report.file != "<stdin>")
            .then(|| crate::walk::read_rule_path(std::path::Path::new(&report.file)));
        let current: Vec<String> =
            match crate::recipients::resolve(&args.recipients, path.as_deref())? {
                Some(resolved) => resolved
                    .recipients
                    .iter()
                    .map(|r| r.key_id().to_string())
                    .collect(),
                None => match &cluster_keys {
                    Some(keys) => keys.clone(),
                    None => {
                        let keys: Vec<String> = crate::cluster::fetch_recipients(&args.cluster)?
                            .iter()
                            .map(|r| r.key_id().to_string())
                            .collect();
                        cluster_keys = Some(keys.clone());
                        keys
                    }
                },
            };
        let wanted: std::collections::BTreeSet<&String> = current.iter().collect();
        for value in &report.values {
            total += 1;
            let have: std::collections::BTreeSet<&String> = value.key_ids.iter().collect();
            let v1 = value.version.as_deref() == Some("v1");
            if value.error.is_some() || have != wanted || v1 {
                stale += 1;
                out.push_str(&format!(
                    "{}: {}: {}: sealed to {} (current: {}){}\n",
                    report.location(),
                    report.object(),
                    value.key,
                    if value.key_ids.is_empty() {
                        "?".to_owned()
                    } else {
                        value.key_ids.join(",")
                    },
                    current.join(","),
                    if v1 {
                        ", format v1 (rewrap upgrades it)"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
    write_report(out.as_bytes())?;
    if stale > 0 {
        bail!(
            "{stale} of {total} value(s) are not sealed exactly to their current recipients in format v2: re-wrap them (kseal rewrap; --online keeps every recipient that is not the cluster's), or, if a key leaked, seal new values (docs/runbooks/compromised-key.md)"
        );
    }
    eprintln!(
        "kseal: all {total} value(s) are sealed exactly to their current recipients (-r/-R, the .kseal.yaml pins, or the cluster's key; `kseal pins check` compares the pins with the clusters)"
    );
    Ok(())
}
