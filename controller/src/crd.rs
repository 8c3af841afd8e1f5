//! The SealedSecret CRD, generated from the shared crate's Rust types.

use kseal_shared::sealed_secret::SealedSecret;
use kube::CustomResourceExt;

/// Where the chart keeps the committed CRD.
pub const CRD_PATH: &str = "charts/kseal/crds/sealedsecrets.kseal.dev.yaml";

/// The CRD as YAML, exactly as committed.
pub fn crd_yaml() -> Result<String, String> {
    let crd = serde_json::to_value(SealedSecret::crd()).map_err(|err| err.to_string())?;
    let body = kseal_shared::manifest::to_yaml(&crd)?;
    Ok(format!(
        "# Generated from the Rust types by `kseal-controller crd`; do not edit.\n{body}"
    ))
}
