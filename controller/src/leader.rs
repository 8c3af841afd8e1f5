//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does
//! it: the holder renews every third of the lease duration; anyone may take
//! a lease whose holder stopped renewing for a whole duration. Conflicting
//! writes are resolved by the API server's resourceVersion check.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kseal_shared::error_text::describe;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;

pub(crate) struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

impl LeaderElector {
    pub(crate) fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration,
        }
    }

    /// Tries to acquire or renew the lease; `Ok(true)` when we hold it.
    pub(crate) async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = MicroTime(jiff::Timestamp::now());
        let seconds = i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let existing = self.api.get_opt(&self.name).await?;
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: kube::core::ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(err) => Err(err),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let ours = holder == self.identity;
        if !ours && !holder.is_empty() {
            let duration = spec
                .lease_duration_seconds
                .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)))
                .unwrap_or(self.duration);
            let renewed = spec.renew_time.as_ref().map(|t| t.0);
            let expired = match renewed {
                Some(renewed) => {
                    let elapsed = jiff::Timestamp::now().duration_since(renewed);
                    Duration::try_from(elapsed).unwrap_or(Duration::ZERO) > duration
                }
                None => true,
            };
            if !expired {
                return Ok(false);
            }
        }
        if !ours {
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.renew_time = Some(now);
        spec.lease_duration_seconds = Some(seconds);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Gives the lease up if we hold it (as client-go's `ReleaseOnCancel`),
    /// so the next replica (or this one restarted, which has a new
    /// identity) leads at once instead of after the lease expires. Call it
    /// only once this replica has stopped acting as the leader.
    pub(crate) async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        // A conflict means someone else wrote it: then it is not ours to give.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Keeps `leading` true while we hold the lease. A leader that cannot
    /// renew for two thirds of the lease duration steps down, before anyone
    /// else may take the lease. Runs forever.
    pub(crate) async fn run(self, leading: watch::Sender<bool>) {
        let retry = self.duration / 3;
        let renew_deadline = self.duration * 2 / 3;
        let mut last_renewed = None::<tokio::time::Instant>;
        loop {
            let held = match self.try_acquire_or_renew().await {
                Ok(true) => {
                    last_renewed = Some(tokio::time::Instant::now());
                    true
                }
                Ok(false) => {
                    last_renewed = None;
                    false
                }
                Err(err) => {
                    tracing::warn!(error = %describe(&err), "leader election: lease update failed");
                    last_renewed.is_some_and(|at| at.elapsed() < renew_deadline)
                }
            };
            if *leading.borrow() != held {
                tracing::info!(identity = %self.identity, leading = held, "leadership changed");
                leading.send_replace(held);
            }
            tokio::time::sleep(retry).await;
        }
    }
}
