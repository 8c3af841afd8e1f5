//! The SealedSecret CRD, generated from the shared crate's Rust types.

/// Why the CRD cannot be rendered (not expected: it is built from types).
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// The CRD did not serialize to JSON.
    #[error("the CRD does not serialize: {0}")]
    Json(#[from] serde_json::Error),
    /// The JSON did not render as YAML.
    #[error(transparent)]
    Yaml(#[from] kseal_shared::manifest::RenderError),
}

/// The CRD as YAML, exactly as committed.
pub fn crd_yaml() -> Result<String, CrdError> {
    let crd = serde_json::to_value(kseal_shared::sealed_secret::custom_resource_definition())?;
    let body = kseal_shared::manifest::to_yaml(&crd)?;
    Ok(format!(
        "# Generated from the Rust types by `kseal-controller crd`; do not edit.\n{body}"
    ))
}
