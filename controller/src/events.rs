//! Kubernetes Events, published off the reconcile path.
//!
//! An Event is best-effort information; a Secret and its SealedSecret's
//! status are not. Reconciles hand Events to a bounded queue and move on; a
//! single task publishes them through a client with its own request budget,
//! so a burst of thousands of "Unsealed" events never delays a Secret. When
//! the queue is full, new Events are dropped and counted
//! (`kseal_events_dropped_total`), as client-go's recorder does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kseal_shared::error_text::describe;
use kube::Client;
use kube::runtime::events::{Event, Recorder, Reporter};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

use crate::error::{EVENT_NOTE_MAX, bounded};

/// Events waiting to be published at most: at the events client's default
/// 10/s, half a minute of them. More would only be memory (~0.7 KiB each)
/// spent on Events that arrive too late to help anyone.
const QUEUE: usize = 256;

#[derive(Clone)]
pub(crate) struct EventSink {
    queue: mpsc::Sender<(Event, ObjectReference)>,
    dropped: Counter,
}

impl EventSink {
    /// Starts the publishing task; `client` should have its own rate limit.
    pub(crate) fn spawn(client: Client, reporter: Reporter, dropped: Counter) -> Self {
        let (queue, mut receiver) = mpsc::channel::<(Event, ObjectReference)>(QUEUE);
        tokio::spawn(async move {
            let mut series = Series::default();
            while let Some((event, reference)) = receiver.recv().await {
                let recorder = series.recorder(&client, &reporter, &event, &reference);
                if let Err(err) = recorder.publish(&event, &reference).await {
                    tracing::warn!(error = %describe(&err), reason = %event.reason, "could not publish an event");
                }
            }
        });
        Self { queue, dropped }
    }

    /// Queues an Event; never waits. A note longer than the API server
    /// accepts is cut to fit ([`EVENT_NOTE_MAX`]): a message may quote
    /// what an object's author wrote, and a refused Event is lost.
    pub(crate) fn publish(&self, mut event: Event, reference: ObjectReference) {
        event.note = event.note.map(|note| bounded(note, EVENT_NOTE_MAX));
        if self.queue.try_send((event, reference)).is_err() {
            self.dropped.inc();
        }
    }
}

/// kube's [`Recorder`] (like client-go's) counts an Event that repeats one
/// of the last six minutes with the same object, type, reason and action
/// into that Event's series, keeping the first note: a `PolicyDenied` for
/// another type, or an update after a create, would show the old message,
/// and Flux users are sent to Events for the reason. So an Event whose
/// note differs from the last one of its kind gets a recorder of its own,
/// which starts a new Event; a repeat of the same note continues the
/// series as before.
#[derive(Default)]
struct Series {
    last: HashMap<Kind, Last>,
    /// For Events of kinds beyond [`SERIES_MAX`].
    shared: Option<Recorder>,
}

/// An Event's object (uid, else namespace/name), type, reason and action.
type Kind = (String, String, String, String);

/// The last Event of a [`Kind`]: its note, the recorder that keeps its
/// series, and when it was published.
struct Last {
    note: Option<String>,
    recorder: Recorder,
    used: Instant,
}

/// As long as kube's Recorder keeps an Event's series.
const SERIES_TTL: Duration = Duration::from_secs(6 * 60);
/// At most this many kinds are followed (a few MiB); beyond, Events share
/// one recorder, as before (with `--event-qps 0` nothing else bounds them).
const SERIES_MAX: usize = 1024;

impl Series {
    fn recorder(
        &mut self,
        client: &Client,
        reporter: &Reporter,
        event: &Event,
        reference: &ObjectReference,
    ) -> Recorder {
        let now = Instant::now();
        // Bounded: entries go six minutes after their last Event.
        self.last
            .retain(|_, last| now.duration_since(last.used) < SERIES_TTL);
        let object = reference.uid.clone().unwrap_or_else(|| {
            format!(
                "{}/{}",
                reference.namespace.as_deref().unwrap_or_default(),
                reference.name.as_deref().unwrap_or_default()
            )
        });
        let key = (
            object,
            format!("{:?}", event.type_),
            event.reason.clone(),
            event.action.clone(),
        );
        let full = self.last.len() >= SERIES_MAX;
        match self.last.get_mut(&key) {
            Some(last) if last.note == event.note => {
                last.used = now;
                last.recorder.clone()
            }
            None if full => self
                .shared
                .get_or_insert_with(|| Recorder::new(client.clone(), reporter.clone()))
                .clone(),
            _ => {
                let recorder = Recorder::new(client.clone(), reporter.clone());
                let last = Last {
                    note: event.note.clone(),
                    recorder: recorder.clone(),
                    used: now,
                };
                self.last.insert(key, last);
                recorder
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::events::EventType;

    /// Notes over the API server's limit are cut to it on a char boundary
    /// before they are queued; shorter ones are left as they are.
    #[test]
    fn queued_notes_fit_the_api_server_limit() {
        let (queue, mut receiver) = mpsc::channel(8);
        let sink = EventSink {
            queue,
            dropped: Counter::default(),
        };
        let short = "value \"password\" is malformed".to_owned();
        let notes = [
            short.clone(),
            "x".repeat(5000),
            "é".repeat(3000),
            "€".repeat(2000),
        ];
        for note in &notes {
            let event = Event {
                type_: EventType::Warning,
                reason: "UnknownKey".to_owned(),
                note: Some(note.clone()),
                action: "Unseal".to_owned(),
                secondary: None,
            };
            sink.publish(event, ObjectReference::default());
        }
        let queued = |receiver: &mut mpsc::Receiver<(Event, ObjectReference)>| {
            receiver.try_recv().unwrap().0.note.unwrap()
        };
        assert_eq!(queued(&mut receiver), short);
        for _ in 1..notes.len() {
            let note = queued(&mut receiver);
            assert!(note.len() <= EVENT_NOTE_MAX, "{} bytes", note.len());
            assert!(note.len() > EVENT_NOTE_MAX - 8, "{} bytes", note.len());
        }
    }
}
