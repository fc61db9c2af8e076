//! Coalescing of concurrent reconciles' store calls: each reconcile asks for its own Task's
//! state, write or status sources; whatever asks are waiting when a connection is free go
//! to the store as one batch (one statement per step, one commit per batch of writes).
//!
//! There is no timer and no background task: a caller that finds a batch slot free runs the
//! batch itself (in a spawned task, so a cancelled reconcile cannot strand the others), and
//! asks that arrive meanwhile wait for the next slot. One reconcile alone is a batch of one,
//! as fast as a direct call; under load (the initial sync, a tick of 100,000 Tasks) batches
//! grow to [`MAX_BATCH`] and the per-Task round trips and commits disappear.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use ordinaut_store::{
    Applied, OperatorTaskState, ReconcileWrite, StatusSources, Store, StoreError,
};
use tokio::sync::{Semaphore, oneshot};
use uuid::Uuid;

/// Most asks in one batch (a write batch of 256 Tasks inserts ~10,000 occurrences).
pub const MAX_BATCH: usize = 256;

/// Batches of one kind running at once (each holds one pooled connection).
const SLOTS: usize = 2;

type Waiting<Req, Resp> = VecDeque<(Req, oneshot::Sender<Resp>)>;

/// Collects asks of one kind and answers them in batches.
pub struct Coalescer<Req, Resp> {
    waiting: Arc<Mutex<Waiting<Req, Resp>>>,
    slots: Arc<Semaphore>,
}

impl<Req: Send + 'static, Resp: Send + 'static> Coalescer<Req, Resp> {
    pub fn new(slots: usize) -> Self {
        Self {
            waiting: Arc::default(),
            slots: Arc::new(Semaphore::new(slots.max(1))),
        }
    }

    /// Answers `req`, in a batch with whatever else waits. `run` answers a batch, one
    /// response per request, in order. `None` when the batch could not finish (a panic).
    pub async fn call<F, Fut>(&self, req: Req, run: F) -> Option<Resp>
    where
        F: Fn(Vec<Req>) -> Fut,
        Fut: Future<Output = Vec<Resp>> + Send + 'static,
    {
        let (tx, mut rx) = oneshot::channel();
        lock(&self.waiting).push_back((req, tx));
        loop {
            tokio::select! {
                biased;
                answer = &mut rx => return answer.ok(),
                slot = self.slots.clone().acquire_owned() => {
                    let Ok(slot) = slot else { return None };
                    let batch: Vec<_> = {
                        let mut waiting = lock(&self.waiting);
                        let n = waiting.len().min(MAX_BATCH);
                        waiting.drain(..n).collect()
                    };
                    if batch.is_empty() {
                        // Ours was taken by a batch that is running: its answer comes.
                        drop(slot);
                        return rx.await.ok();
                    }
                    let (reqs, txs): (Vec<Req>, Vec<_>) = batch.into_iter().unzip();
                    let work = run(reqs);
                    let handle = tokio::spawn(async move {
                        let answers = work.await;
                        for (tx, answer) in txs.into_iter().zip(answers) {
                            let _ = tx.send(answer);
                        }
                        drop(slot);
                    });
                    // Our own answer arrives through `rx` if ours was in the batch.
                    let _ = handle.await;
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The store calls of Task reconciles, coalesced.
pub struct TaskBatches {
    store: Store,
    states: Coalescer<(Uuid, DateTime<Utc>), Result<Option<OperatorTaskState>, StoreError>>,
    writes: Coalescer<ReconcileWrite, Result<Applied, StoreError>>,
    sources: Coalescer<Uuid, Result<StatusSources, StoreError>>,
}

fn interrupted() -> StoreError {
    StoreError::Conflict(
        "the batch of store calls this reconcile was part of did not finish; reconcile again"
            .into(),
    )
}

impl TaskBatches {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            states: Coalescer::new(SLOTS),
            writes: Coalescer::new(SLOTS),
            sources: Coalescer::new(SLOTS),
        }
    }

    /// [`Store::operator_state`], batched.
    pub async fn state(
        &self,
        uid: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<OperatorTaskState>, StoreError> {
        let store = self.store.clone();
        self.states
            .call((uid, now), move |asks| {
                let store = store.clone();
                async move { store.operator_states(&asks).await }
            })
            .await
            .unwrap_or_else(|| Err(interrupted()))
    }

    /// [`Store::apply_reconcile`], batched (one transaction per batch).
    pub async fn apply(&self, write: ReconcileWrite) -> Result<Applied, StoreError> {
        let store = self.store.clone();
        self.writes
            .call(write, move |writes| {
                let store = store.clone();
                async move { store.apply_reconciles(&writes).await }
            })
            .await
            .unwrap_or_else(|| Err(interrupted()))
    }

    /// [`Store::status_sources`], batched.
    pub async fn status_sources(&self, uid: Uuid) -> Result<StatusSources, StoreError> {
        let store = self.store.clone();
        self.sources
            .call(uid, move |uids| {
                let store = store.clone();
                async move { store.status_sources(&uids).await }
            })
            .await
            .unwrap_or_else(|| Err(interrupted()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Concurrent asks are answered, each with its own answer, in fewer batches than asks.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls_get_their_own_answers_in_batches() {
        let c: Arc<Coalescer<u32, u32>> = Arc::new(Coalescer::new(1));
        let batches = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..500u32 {
            let (c, batches) = (c.clone(), batches.clone());
            tasks.push(tokio::spawn(async move {
                c.call(i, move |reqs| {
                    let batches = batches.clone();
                    async move {
                        batches.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                        reqs.into_iter().map(|r| r * 2).collect()
                    }
                })
                .await
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap(), Some(i as u32 * 2));
        }
        let n = batches.load(Ordering::Relaxed);
        assert!(n < 100, "{n} batches for 500 concurrent asks");
    }

    /// A caller dropped while its batch runs does not strand the others in that batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_caller_does_not_strand_its_batch() {
        let c: Arc<Coalescer<u32, u32>> = Arc::new(Coalescer::new(1));
        let slow = |reqs: Vec<u32>| async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            reqs
        };
        let first = {
            let c = c.clone();
            tokio::spawn(async move { c.call(1, slow).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        let second = {
            let c = c.clone();
            tokio::spawn(async move { c.call(2, slow).await })
        };
        let third = {
            let c = c.clone();
            tokio::spawn(async move { c.call(3, slow).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        first.abort();
        assert_eq!(second.await.unwrap(), Some(2));
        assert_eq!(third.await.unwrap(), Some(3));
    }
}
