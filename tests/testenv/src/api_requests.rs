//! What the API server served, by its own count: `apiserver_request_total`
//! from its `/metrics`, parsed into a typed map, and the requests between
//! two scrapes.
//!
//! ```no_run
//! # async fn demo(client: &kube::Client) -> anyhow::Result<()> {
//! use kseal_testenv::api_requests::{RequestCounts, requests_between};
//! let before = RequestCounts::scrape(client).await?;
//! // … the work being measured …
//! let after = RequestCounts::scrape(client).await?;
//! let served = requests_between(&before, &after);
//! println!("{} writes, {} reads: {:?}", served.writes(), served.reads(), served.breakdown());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use kube::Client;

/// The verbs of `apiserver_request_total` that change something.
pub const WRITE_VERBS: [&str; 8] = [
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "CREATE",
    "UPDATE",
    "APPLY",
    "DELETECOLLECTION",
];

/// One kind of request: the labels counted by (other labels, such as
/// `group`, `version`, `scope` or `component`, are summed over). A label
/// the series lacks is empty (`subresource` of a request on the object
/// itself).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestKey {
    /// `GET`, `LIST`, `WATCH`, `POST`, `PATCH`, …
    pub verb: String,
    /// `secrets`, `sealedsecrets`, …
    pub resource: String,
    /// `status`, `token`, … or empty.
    pub subresource: String,
    /// The response code, `200`, `409`, …
    pub code: String,
}

impl RequestKey {
    /// Whether the verb changes something ([`WRITE_VERBS`]).
    pub fn is_write(&self) -> bool {
        WRITE_VERBS.contains(&self.verb.as_str())
    }

    /// `VERB resource[/subresource]`, with ` code` unless it is a 2xx.
    pub fn label(&self) -> String {
        let mut label = format!("{} {}", self.verb, self.resource);
        if !self.subresource.is_empty() {
            label = format!("{label}/{}", self.subresource);
        }
        if !self.code.starts_with('2') {
            label = format!("{label} {}", self.code);
        }
        label
    }
}

/// The API server's `apiserver_request_total` at one moment, summed by
/// [`RequestKey`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestCounts(pub BTreeMap<RequestKey, f64>);

impl RequestCounts {
    /// Every `apiserver_request_total` series of a Prometheus text
    /// exposition; other lines, and series without a number, are skipped.
    pub fn parse(metrics: &str) -> Self {
        let mut counts = BTreeMap::new();
        for line in metrics.lines() {
            let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once('}') else {
                continue;
            };
            let Some(Ok(value)) = value.split_whitespace().next().map(str::parse::<f64>) else {
                continue;
            };
            let labels = parse_labels(labels);
            let label = |name: &str| labels.get(name).cloned().unwrap_or_default();
            let key = RequestKey {
                verb: label("verb"),
                resource: label("resource"),
                subresource: label("subresource"),
                code: label("code"),
            };
            *counts.entry(key).or_default() += value;
        }
        Self(counts)
    }

    /// Scrapes the API server's `/metrics` with `client` (which may read
    /// it: the admin does).
    pub async fn scrape(client: &Client) -> Result<Self> {
        let request = http::Request::get("/metrics").body(Vec::new())?;
        let text = client
            .request_text(request)
            .await
            .context("reading the API server's /metrics")?;
        Ok(Self::parse(&text))
    }

    /// Only the series of these resources.
    pub fn of_resources(&self, resources: &[&str]) -> Self {
        Self(
            self.0
                .iter()
                .filter(|(key, _)| resources.contains(&key.resource.as_str()))
                .map(|(key, count)| (key.clone(), *count))
                .collect(),
        )
    }
}

/// Requests served between two scrapes: the positive differences.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requests(pub BTreeMap<RequestKey, u64>);

/// What was served between `before` and `after` (series that did not grow
/// are left out).
pub fn requests_between(before: &RequestCounts, after: &RequestCounts) -> Requests {
    Requests(
        after
            .0
            .iter()
            .filter_map(|(key, count)| {
                let delta = count - before.0.get(key).copied().unwrap_or_default();
                (delta > 0.0).then(|| (key.clone(), delta as u64))
            })
            .collect(),
    )
}

impl Requests {
    /// Requests with a [`WRITE_VERBS`] verb.
    pub fn writes(&self) -> u64 {
        self.0
            .iter()
            .filter(|(k, _)| k.is_write())
            .map(|(_, n)| n)
            .sum()
    }

    /// All other requests.
    pub fn reads(&self) -> u64 {
        self.0
            .iter()
            .filter(|(k, _)| !k.is_write())
            .map(|(_, n)| n)
            .sum()
    }

    /// Counts by [`RequestKey::label`]: successful requests by verb and
    /// resource, others with their code.
    pub fn breakdown(&self) -> BTreeMap<String, u64> {
        let mut breakdown = BTreeMap::new();
        for (key, count) in &self.0 {
            *breakdown.entry(key.label()).or_default() += count;
        }
        breakdown
    }

    /// Requests on `resource` (and `subresource`, "" for the object
    /// itself) by verb, over every response code.
    pub fn by_verb(&self, resource: &str, subresource: &str) -> BTreeMap<String, u64> {
        let mut by_verb = BTreeMap::new();
        for (key, count) in &self.0 {
            if key.resource == resource && key.subresource == subresource {
                *by_verb.entry(key.verb.clone()).or_default() += count;
            }
        }
        by_verb
    }
}

/// `name="value",…` of a series, in any order; `\"`, `\\` and `\n` in a
/// value unescaped.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(name.trim_start_matches([',', ' ']).to_owned(), value);
        rest = &after[end..];
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="secrets",scope="resource",subresource="",verb="GET",version="v1"} 3
apiserver_request_total{verb="GET",resource="secrets",code="200",component="apiserver",scope="namespace",subresource="",group="",version="v1"} 2
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="secrets",scope="resource",subresource="",verb="POST",version="v1"} 1
apiserver_request_total{code="200",group="kseal.dev",resource="sealedsecrets",subresource="status",verb="PATCH",version="v1alpha1"} 4
apiserver_request_total_other{code="200",resource="secrets",verb="GET"} 99
apiserver_request_duration_seconds_count{resource="secrets",verb="GET"} 7
"#;

    const AFTER: &str = r#"apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="secrets",scope="resource",subresource="",verb="GET",version="v1"} 10
apiserver_request_total{verb="GET",resource="secrets",code="200",component="apiserver",scope="namespace",subresource="",group="",version="v1"} 2
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="secrets",scope="resource",subresource="",verb="POST",version="v1"} 1
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="secrets",scope="resource",subresource="",verb="POST",version="v1"} 2
apiserver_request_total{code="200",group="kseal.dev",resource="sealedsecrets",subresource="status",verb="PATCH",version="v1alpha1"} 6
apiserver_request_total{code="0",resource="configmaps",verb="WATCH",component="apiserver",subresource="",note="a \"quoted\", value"} 1
"#;

    fn key(verb: &str, resource: &str, subresource: &str, code: &str) -> RequestKey {
        RequestKey {
            verb: verb.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            code: code.into(),
        }
    }

    #[test]
    fn series_are_summed_by_verb_resource_subresource_and_code() {
        let counts = RequestCounts::parse(BEFORE);
        // Two series differing only in scope and label order: one key.
        assert_eq!(counts.0[&key("GET", "secrets", "", "200")], 5.0);
        assert_eq!(counts.0[&key("POST", "secrets", "", "201")], 1.0);
        assert_eq!(
            counts.0[&key("PATCH", "sealedsecrets", "status", "200")],
            4.0
        );
        // Other metrics, comments and HELP lines are not counted.
        assert_eq!(counts.0.len(), 3);
    }

    #[test]
    fn escaped_values_and_missing_labels() {
        let counts = RequestCounts::parse(AFTER);
        assert_eq!(counts.0[&key("WATCH", "configmaps", "", "0")], 1.0);
        let labels = parse_labels(r#"a="x\"y",b="1\\2",c="""#);
        assert_eq!(labels["a"], "x\"y");
        assert_eq!(labels["b"], "1\\2");
        assert_eq!(labels["c"], "");
    }

    #[test]
    fn requests_between_two_scrapes() {
        let before = RequestCounts::parse(BEFORE);
        let after = RequestCounts::parse(AFTER);
        let served = requests_between(&before, &after);
        assert_eq!(served.0.len(), 4, "{served:?}");
        assert_eq!(served.writes(), 2 + 2);
        assert_eq!(served.reads(), 7 + 1);
        let breakdown = served.breakdown();
        assert_eq!(breakdown["GET secrets"], 7);
        assert_eq!(breakdown["POST secrets 409"], 2);
        assert_eq!(breakdown["PATCH sealedsecrets/status"], 2);
        assert_eq!(breakdown["WATCH configmaps 0"], 1);
        assert_eq!(
            served.by_verb("secrets", ""),
            BTreeMap::from([("GET".to_owned(), 7), ("POST".to_owned(), 2)])
        );
        assert!(served.by_verb("secrets", "status").is_empty());
        let only = requests_between(
            &before.of_resources(&["sealedsecrets"]),
            &after.of_resources(&["sealedsecrets"]),
        );
        assert_eq!(only.writes(), 2);
        assert_eq!(only.reads(), 0);
    }
}
