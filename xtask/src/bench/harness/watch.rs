//! Following objects with watches: [`Follower`] keeps, per object, whether
//! a condition holds for its latest version; [`Convergence`] follows
//! SealedSecrets (kseal's or Bitnami's) and their Secrets until N of each
//! are done: the one wait-for-convergence loop of the benchmarks.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube::{Api, Resource};

/// Follows one kind in a namespace with one long watch (re-opened from the
/// last resourceVersion when the server ends it); keeps, per object name,
/// whether `done` holds for its latest version.
pub struct Follower<K> {
    api: Api<K>,
    version: String,
    stream: Option<futures::stream::BoxStream<'static, kube::Result<WatchEvent<K>>>>,
    /// Per object name: whether it was done at its latest version seen.
    pub done: HashMap<String, bool>,
}

impl<K> Follower<K>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    /// Starts following from now (the objects' current resourceVersion).
    pub async fn start(api: Api<K>) -> Result<Self> {
        let list = api.list_metadata(&ListParams::default().limit(1)).await?;
        let version = list.metadata.resource_version.unwrap_or_default();
        Ok(Self {
            api,
            version,
            stream: None,
            done: HashMap::new(),
        })
    }

    /// How many objects are done, at most `count`.
    pub fn complete(&self, count: usize) -> usize {
        self.done.values().filter(|done| **done).count().min(count)
    }

    /// Reads the events that arrive until `deadline`.
    pub async fn follow(
        &mut self,
        done: impl Fn(&K) -> bool,
        deadline: tokio::time::Instant,
    ) -> Result<()> {
        loop {
            if self.stream.is_none() {
                let params = WatchParams::default().timeout(290);
                let stream = self.api.watch(&params, &self.version).await?.boxed();
                self.stream = Some(stream);
            }
            let Some(stream) = self.stream.as_mut() else {
                continue;
            };
            let event = match tokio::time::timeout_at(deadline, stream.next()).await {
                Err(_) => return Ok(()),
                Ok(None) => {
                    self.stream = None;
                    continue;
                }
                Ok(Some(event)) => event?,
            };
            self.handle(event, &done).await?;
        }
    }

    /// Follows for `slice` from now.
    pub async fn follow_for(&mut self, done: impl Fn(&K) -> bool, slice: Duration) -> Result<()> {
        self.follow(done, tokio::time::Instant::now() + slice).await
    }

    async fn handle(&mut self, event: WatchEvent<K>, done: &impl Fn(&K) -> bool) -> Result<()> {
        match event {
            WatchEvent::Added(object) | WatchEvent::Modified(object) => {
                self.remember(&object);
                let name = object.meta().name.clone().unwrap_or_default();
                self.done.insert(name, done(&object));
            }
            WatchEvent::Deleted(object) => {
                self.remember(&object);
                self.done
                    .remove(object.meta().name.as_deref().unwrap_or_default());
            }
            WatchEvent::Bookmark(bookmark) => {
                self.version = bookmark.metadata.resource_version;
            }
            // The watch started before a long apply and fell behind the
            // API server's compaction (every 5 minutes): start again from a
            // full list.
            WatchEvent::Error(error) if error.code == 410 => {
                self.relist(done).await?;
                self.stream = None;
            }
            WatchEvent::Error(error) => bail!("watch error: {error:?}"),
        }
        Ok(())
    }

    /// Replaces what is known with a full list, and watches on from it.
    async fn relist(&mut self, done: &impl Fn(&K) -> bool) -> Result<()> {
        let mut params = ListParams::default().limit(500);
        let mut fresh = HashMap::new();
        loop {
            let page = self.api.list(&params).await?;
            for object in &page.items {
                let name = object.meta().name.clone().unwrap_or_default();
                fresh.insert(name, done(object));
            }
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => {
                    self.version = page.metadata.resource_version.unwrap_or_default();
                    self.done = fresh;
                    return Ok(());
                }
            }
        }
    }

    fn remember(&mut self, object: &K) {
        if let Some(version) = &object.meta().resource_version {
            self.version.clone_from(version);
        }
    }
}

/// Where a [`Convergence`] is, after each round.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// SealedSecrets done.
    pub ready: usize,
    /// Secrets done.
    pub correct: usize,
    /// Since the clock started.
    pub elapsed: Duration,
}

/// SealedSecrets of kind `S` and their Secrets in one namespace, followed
/// until N of each are done.
pub struct Convergence<S> {
    sealed: Follower<S>,
    secrets: Follower<Secret>,
    n: usize,
    timeout: Duration,
}

impl<S> Convergence<S>
where
    S: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    /// Starts following both from now (before the objects are applied)
    /// for `n` objects, waiting up to `timeout`.
    pub async fn start(
        sealed: Api<S>,
        secrets: Api<Secret>,
        n: usize,
        timeout: Duration,
    ) -> Result<Self> {
        Ok(Self {
            sealed: Follower::start(sealed).await?,
            secrets: Follower::start(secrets).await?,
            n,
            timeout,
        })
    }

    /// Follows both (alternately, a short slice each) until `n`
    /// SealedSecrets are `sealed_done` and `n` Secrets `secret_done`;
    /// returns the time since `started`. `each_round` runs after every
    /// round (sampling, progress notes, liveness checks) and may end the
    /// wait with an error. Fails after the timeout, naming `what`.
    pub async fn wait(
        &mut self,
        what: &str,
        started: Instant,
        sealed_done: impl Fn(&S) -> bool,
        secret_done: impl Fn(&Secret) -> bool,
        mut each_round: impl FnMut(Progress) -> Result<()>,
    ) -> Result<Duration> {
        let (n, slice) = (self.n, Duration::from_millis(100));
        loop {
            self.sealed.follow_for(&sealed_done, slice).await?;
            self.secrets.follow_for(&secret_done, slice).await?;
            let progress = Progress {
                ready: self.sealed.complete(n),
                correct: self.secrets.complete(n),
                elapsed: started.elapsed(),
            };
            each_round(progress)?;
            if progress.ready == n && progress.correct == n {
                return Ok(progress.elapsed);
            }
            if progress.elapsed > self.timeout {
                bail!(
                    "timed out waiting for {what}: {}/{n} SealedSecrets done, {}/{n} Secrets correct",
                    progress.ready,
                    progress.correct
                );
            }
        }
    }
}
