//! The pinned upstream versions, read from `tests/versions.env` at compile time.

use anyhow::{Context, Result, bail};

/// The text of `tests/versions.env`, the one place the versions are pinned.
pub const VERSIONS_ENV: &str = include_str!("../../versions.env");

/// Versions of the upstream binaries the harness runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    /// `k8s.io/kubernetes` release, e.g. `v1.36.3`.
    pub kubernetes: String,
    /// `go.etcd.io/etcd/server/v3` release, e.g. `v3.6.16`.
    pub etcd: String,
    /// `helm.sh/helm/v3` release, e.g. `v3.22.0`.
    pub helm: String,
}

impl Versions {
    /// The pinned versions from `tests/versions.env`.
    pub fn pinned() -> Result<Self> {
        Self::parse(VERSIONS_ENV)
    }

    /// Parses `KEY=value` lines; `#` starts a comment line.
    pub fn parse(text: &str) -> Result<Self> {
        let mut kubernetes = None;
        let mut etcd = None;
        let mut helm = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .with_context(|| format!("versions.env line {}: expected KEY=value", n + 1))?;
            let value = value.trim().to_owned();
            if !value.starts_with('v') || value.len() < 6 {
                bail!(
                    "versions.env line {}: {value:?} is not a vX.Y.Z version",
                    n + 1
                );
            }
            match key.trim() {
                "KUBERNETES_VERSION" => kubernetes = Some(value),
                "ETCD_VERSION" => etcd = Some(value),
                "HELM_VERSION" => helm = Some(value),
                other => bail!("versions.env line {}: unknown key {other}", n + 1),
            }
        }
        Ok(Self {
            kubernetes: kubernetes.context("versions.env: KUBERNETES_VERSION missing")?,
            etcd: etcd.context("versions.env: ETCD_VERSION missing")?,
            helm: helm.context("versions.env: HELM_VERSION missing")?,
        })
    }

    /// `(major, minor)` of the Kubernetes release, e.g. `("1", "36")`.
    pub fn kubernetes_major_minor(&self) -> Result<(String, String)> {
        major_minor(&self.kubernetes)
    }

    /// The staging modules' version for the Kubernetes release: `v1.36.3` → `v0.36.3`.
    pub fn kubernetes_staging(&self) -> Result<String> {
        let rest = self
            .kubernetes
            .strip_prefix("v1.")
            .with_context(|| format!("{} is not a v1.Y.Z version", self.kubernetes))?;
        Ok(format!("v0.{rest}"))
    }

    /// Name of the binary cache directory for these versions.
    pub fn cache_key(&self) -> String {
        format!(
            "k8s-{}-etcd-{}-helm-{}",
            self.kubernetes, self.etcd, self.helm
        )
    }
}

fn major_minor(version: &str) -> Result<(String, String)> {
    let mut parts = version.trim_start_matches('v').split('.');
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) if !major.is_empty() && !minor.is_empty() => {
            Ok((major.to_owned(), minor.to_owned()))
        }
        _ => bail!("{version} is not a vX.Y.Z version"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_versions_parse() {
        let v = Versions::pinned().unwrap();
        assert!(v.kubernetes.starts_with("v1."));
        assert!(v.etcd.starts_with("v3.6."));
        assert!(v.helm.starts_with("v3."));
    }

    #[test]
    fn derived_values() {
        let v = Versions::parse(
            "# c\nKUBERNETES_VERSION=v1.36.3\nETCD_VERSION=v3.6.16\nHELM_VERSION=v3.22.0\n",
        )
        .unwrap();
        assert_eq!(v.kubernetes_staging().unwrap(), "v0.36.3");
        assert_eq!(
            v.kubernetes_major_minor().unwrap(),
            ("1".to_owned(), "36".to_owned())
        );
        assert_eq!(v.cache_key(), "k8s-v1.36.3-etcd-v3.6.16-helm-v3.22.0");
    }

    #[test]
    fn rejects_garbage() {
        assert!(Versions::parse("KUBERNETES_VERSION=1.36\n").is_err());
        assert!(Versions::parse("FOO=v1.2.3\n").is_err());
        assert!(Versions::parse("KUBERNETES_VERSION=v1.36.3\n").is_err());
    }
}
