//! Kubernetes Events, published off the reconcile path.
//!
//! An Event is best-effort information; a Secret and its SealedSecret's
//! status are not. Reconciles hand Events to a bounded queue and move on; a
//! single task publishes them through a client with its own request budget,
//! so a burst of thousands of "Unsealed" events never delays a Secret. When
//! the queue is full, new Events are dropped and counted
//! (`kseal_events_dropped_total`), as client-go's recorder does.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, Recorder, Reporter};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

/// Events waiting to be published at most: at the events client's default
/// 10/s, half a minute of them. More would only be memory (~0.7 KiB each)
/// spent on Events that arrive too late to help anyone.
const QUEUE: usize = 256;

#[derive(Clone)]
pub struct EventSink {
    queue: mpsc::Sender<(Event, ObjectReference)>,
    dropped: Counter,
}

impl EventSink {
    /// Starts the publishing task; `client` should have its own rate limit.
    pub fn spawn(client: Client, reporter: Reporter, dropped: Counter) -> Self {
        let (queue, mut receiver) = mpsc::channel::<(Event, ObjectReference)>(QUEUE);
        let recorder = Recorder::new(client, reporter);
        tokio::spawn(async move {
            while let Some((event, reference)) = receiver.recv().await {
                if let Err(err) = recorder.publish(&event, &reference).await {
                    tracing::warn!(error = %err, reason = %event.reason, "could not publish an event");
                }
            }
        });
        Self { queue, dropped }
    }

    /// Queues an Event; never waits.
    pub fn publish(&self, event: Event, reference: ObjectReference) {
        if self.queue.try_send((event, reference)).is_err() {
            self.dropped.inc();
        }
    }
}
