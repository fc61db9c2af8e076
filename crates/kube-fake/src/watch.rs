//! Watches: newline-delimited JSON events, replayed from the change history after the
//! requested resourceVersion and then live. The snapshot and the subscription are taken
//! under the store's lock, so no change falls between them.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt, stream};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::resource::{ResourceKey, ResourceType};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Change, ChangeKind, State};

/// What one watch request wants to see.
pub(crate) struct WatchFilter {
    pub rt: ResourceType,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// `Accept: …;as=PartialObjectMetadata` (kube's metadata watches).
    pub partial: bool,
}

/// Where a watch starts.
pub(crate) struct WatchStart {
    /// `resourceVersion`; `None` (or "0") means "current state, then changes".
    pub resource_version: Option<String>,
    pub send_initial_events: bool,
    pub bookmarks: bool,
    pub timeout: Duration,
}

impl WatchFilter {
    fn key(&self) -> &ResourceKey {
        &self.rt.key
    }

    fn selects(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// The event this watch sees for a change, if any.
    fn event_for(&self, change: &Change) -> Option<Bytes> {
        if change.key != *self.key()
            || self
                .namespace
                .as_deref()
                .is_some_and(|ns| ns != change.namespace)
        {
            return None;
        }
        let now = self.selects(&change.object);
        let before = change.previous.as_ref().map(|p| self.selects(p));
        let kind = match (change.kind, before, now) {
            (ChangeKind::Added, _, true) => "ADDED",
            (ChangeKind::Deleted, Some(true), _) | (ChangeKind::Deleted, None, true) => "DELETED",
            (ChangeKind::Modified, Some(true), true) => "MODIFIED",
            (ChangeKind::Modified, Some(false) | None, true) => "ADDED",
            (ChangeKind::Modified, Some(true), false) => "DELETED",
            _ => return None,
        };
        Some(self.line(kind, &change.object))
    }

    fn line(&self, kind: &str, obj: &Value) -> Bytes {
        event_line(kind, &render(obj, self.partial))
    }

    fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let (api_version, kind) = if self.partial {
            (
                "meta.k8s.io/v1".to_string(),
                "PartialObjectMetadata".to_string(),
            )
        } else {
            (self.rt.key.api_version(), self.rt.kind.clone())
        };
        event_line(
            "BOOKMARK",
            &json!({"apiVersion": api_version, "kind": kind, "metadata": metadata}),
        )
    }
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// An object as served: whole, or as `PartialObjectMetadata` for metadata-only requests.
pub(crate) fn render(obj: &Value, partial: bool) -> Value {
    if partial {
        json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadata",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })
    } else {
        obj.clone()
    }
}

/// A watch ready to stream: the replayed lines and, unless it ends right away, the
/// subscription to live changes.
pub(crate) struct OpenWatch {
    initial: Vec<Bytes>,
    live: Option<mpsc::UnboundedReceiver<Arc<Change>>>,
    filter: WatchFilter,
    timeout: Duration,
}

/// Starts a watch; must be called with the store locked.
pub(crate) fn open(
    state: &mut State,
    filter: WatchFilter,
    start: WatchStart,
) -> Result<OpenWatch, ApiError> {
    let from = match start.resource_version.as_deref() {
        None | Some("") | Some("0") => None,
        Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("invalid resourceVersion {rv:?}: not a number"))
        })?),
    };
    let mut initial = Vec::new();
    match from {
        Some(rv) if rv < state.compacted_rv => {
            let gone = ApiError::new(
                410,
                "Expired",
                format!("too old resource version: {rv} ({})", state.compacted_rv),
            );
            // The real server answers 200 and sends the 410 as a watch ERROR event.
            initial.push(event_line("ERROR", &gone.to_status()));
            return Ok(OpenWatch {
                initial,
                live: None,
                filter,
                timeout: start.timeout,
            });
        }
        Some(rv) if !start.send_initial_events => {
            initial.extend(
                state
                    .history
                    .iter()
                    .filter(|c| c.rv > rv)
                    .filter_map(|c| filter.event_for(c)),
            );
        }
        _ => {
            let everything = LabelSelector::default();
            let ns = filter.namespace.as_deref();
            for obj in state.list(filter.key(), ns, &everything, &FieldSelector::default()) {
                if filter.selects(&obj) {
                    initial.push(filter.line("ADDED", &obj));
                }
            }
        }
    }
    if start.send_initial_events {
        initial.push(filter.bookmark(state.rv, true));
    } else if start.bookmarks {
        initial.push(filter.bookmark(state.rv, false));
    }
    let (tx, rx) = mpsc::unbounded_channel();
    state.watchers.push(tx);
    Ok(OpenWatch {
        initial,
        live: Some(rx),
        filter,
        timeout: start.timeout,
    })
}

impl OpenWatch {
    /// The response body: replayed events, then live ones until `timeoutSeconds` passes or
    /// the watch is closed by the server.
    pub fn into_stream(self) -> impl Stream<Item = Result<http_body::Frame<Bytes>, Infallible>> {
        let OpenWatch {
            initial,
            live,
            filter,
            timeout,
        } = self;
        let live = stream::unfold(live, |rx| async move {
            let mut rx = rx?;
            let change = rx.recv().await?;
            Some((change, Some(rx)))
        })
        .filter_map(move |change| {
            let line = filter.event_for(&change);
            async move { line }
        });
        stream::iter(initial)
            .chain(live)
            .take_until(tokio::time::sleep(timeout))
            .map(|line| Ok(http_body::Frame::data(line)))
    }
}
