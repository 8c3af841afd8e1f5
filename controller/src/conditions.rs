//! The status condition types kseal sets on a SealedSecret, and the
//! reasons that are not an [`error::Reason`](crate::error): what Flux,
//! Argo CD and kstatus read (docs/gitops-health.md has what each concludes,
//! checked by `controller/tests/gitops_health.rs`). Their own module so that
//! reconciling and rotation both name them without importing each other.

/// Condition type kstatus, Flux and Argo CD look for.
pub(crate) const READY: &str = "Ready";
/// Condition type (kstatus "abnormal-true"), present while a failure is
/// being retried: kstatus reads it as InProgress.
pub(crate) const RECONCILING: &str = "Reconciling";
/// Condition type (kstatus "abnormal-true"), present while a failure needs
/// a change to the object or the cluster: kstatus reads it as Failed.
pub(crate) const STALLED: &str = "Stalled";

/// Condition type: a value is older than `spec.maxAge`.
pub(crate) const ROTATION_DUE: &str = "RotationDue";
/// Condition type: a value is sealed only to keys no longer active.
pub(crate) const REWRAP_DUE: &str = "RewrapDue";
/// `RewrapDue` reason: a value is sealed only to keys no longer active, and
/// past the grace period.
pub(crate) const SEALED_TO_INACTIVE_KEY: &str = "SealedToInactiveKey";
/// `RewrapDue` reason: every value sealed only to keys no longer active is
/// still within the grace period.
pub(crate) const WITHIN_GRACE_PERIOD: &str = "WithinGracePeriod";
