//! The API server's audit log: its policy, and who asked for what.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::ControlPlane;

/// The API server's audit log, in the state directory.
pub(super) const LOG: &str = "logs/audit.log";

/// What the audit log holds: the metadata (never a body, so no Secret value)
/// of every request on Secrets and SealedSecrets, once, when it completes
/// (a watch: when it starts).
const POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    resources:
      - group: ""
        resources: ["secrets"]
      - group: "kseal.dev"
        resources: ["sealedsecrets", "sealedsecrets/status"]
  - level: None
"#;

/// Writes the policy to `<root>/audit-policy.yaml`; returns its path.
pub(super) fn write_policy(root: &Path) -> Result<PathBuf> {
    let path = root.join("audit-policy.yaml");
    fs::write(&path, POLICY).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

impl ControlPlane {
    /// Requests on Secrets and SealedSecrets that `username` made, as the
    /// API server's audit log has them, counted by (verb, resource,
    /// subresource) with the verbs of `apiserver_request_total` (`GET`,
    /// `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `DELETE`). Counting one
    /// client's requests, unlike the API server's own metrics, leaves out
    /// what the controller manager does meanwhile (its garbage collector
    /// reads owners it has not seen yet). Only requests that completed
    /// (or, for watches, started) are in the log.
    ///
    /// Errors when the log cannot be read; a line that is not an audit
    /// event is skipped (the log may end in a line still being written).
    pub fn audited_requests(
        &self,
        username: &str,
    ) -> Result<BTreeMap<(String, String, String), u64>> {
        let path = self.root.join(LOG);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
        };
        Ok(count_requests(&text, username))
    }
}

/// [`ControlPlane::audited_requests`] over the log's text.
fn count_requests(text: &str, username: &str) -> BTreeMap<(String, String, String), u64> {
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        // A watch is logged when it starts and again when it ends;
        // every other request once, when it completes.
        let once = match event["stage"].as_str() {
            Some("ResponseStarted") => true,
            Some("ResponseComplete" | "Panic") => event["verb"] != "watch",
            _ => false,
        };
        if !once || event["user"]["username"] != username {
            continue;
        }
        let verb = match event["verb"].as_str().unwrap_or_default() {
            "get" => "GET",
            "list" => "LIST",
            "watch" => "WATCH",
            "create" => "POST",
            "update" => "PUT",
            "patch" => "PATCH",
            "delete" | "deletecollection" => "DELETE",
            other => other,
        };
        let text = |value: &serde_json::Value| value.as_str().unwrap_or_default().to_owned();
        let key = (
            verb.to_owned(),
            text(&event["objectRef"]["resource"]),
            text(&event["objectRef"]["subresource"]),
        );
        *counts.entry(key).or_default() += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_request_once_and_watches_when_they_start() {
        let event = |stage: &str, verb: &str, user: &str, subresource: &str| {
            serde_json::json!({
                "stage": stage,
                "verb": verb,
                "user": {"username": user},
                "objectRef": {"resource": "secrets", "subresource": subresource},
            })
            .to_string()
        };
        let text = [
            event("ResponseComplete", "get", "me", ""),
            event("ResponseComplete", "update", "me", "status"),
            event("ResponseStarted", "watch", "me", ""),
            event("ResponseComplete", "watch", "me", ""),
            event("ResponseComplete", "get", "someone-else", ""),
            "{\"stage\": \"ResponseComp".to_owned(),
        ]
        .join("\n");
        let key = |verb: &str, subresource: &str| {
            (
                verb.to_owned(),
                "secrets".to_owned(),
                subresource.to_owned(),
            )
        };
        assert_eq!(
            count_requests(&text, "me"),
            BTreeMap::from([
                (key("GET", ""), 1),
                (key("PUT", "status"), 1),
                (key("WATCH", ""), 1),
            ])
        );
    }
}
