//! Leader election with a `coordination.k8s.io/v1` Lease (see [`LeaseElector`]): only the
//! holder materializes schedules and writes status.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// Whether this instance may write.
pub trait Leadership: Send + Sync {
    fn is_leader(&self) -> bool;
}

/// Always the leader (leader election off, dev mode, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysLeader;

impl Leadership for AlwaysLeader {
    fn is_leader(&self) -> bool {
        true
    }
}

/// A flag the elector sets; cheap to clone and read. With a clock, leadership also lapses
/// on its own at the renew deadline: a renewal that hangs can never keep an instance leading
/// past the moment another may take the Lease over.
#[derive(Clone, Default)]
pub struct LeaderFlag {
    leader: Arc<AtomicBool>,
    /// Milliseconds since the epoch (by `clock`) until which leadership holds.
    until_ms: Arc<AtomicI64>,
    clock: Option<Arc<dyn Clock>>,
}

impl std::fmt::Debug for LeaderFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderFlag")
            .field("leader", &self.is_leader())
            .finish()
    }
}

impl LeaderFlag {
    /// A flag whose leadership lapses at the deadline [`LeaderFlag::renewed_until`] sets.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock: Some(clock),
            ..Self::default()
        }
    }

    pub fn set(&self, leader: bool) {
        if leader && self.clock.is_none() {
            self.until_ms.store(i64::MAX, Ordering::SeqCst);
        }
        self.leader.store(leader, Ordering::SeqCst);
    }

    /// Leads until `deadline` unless renewed again before it.
    pub fn renewed_until(&self, deadline: DateTime<Utc>) {
        self.until_ms
            .store(deadline.timestamp_millis(), Ordering::SeqCst);
        self.leader.store(true, Ordering::SeqCst);
    }
}

impl Leadership for LeaderFlag {
    fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
            && match &self.clock {
                None => true,
                Some(c) => c.now().timestamp_millis() < self.until_ms.load(Ordering::SeqCst),
            }
    }
}

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{Api, ObjectMeta, PostParams};
use ordinaut_schedule::clock::Clock;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::status::{chrono_time, k8s_time};

/// Leader election on a `coordination.k8s.io/v1` Lease, timed by the injected Clock.
///
/// * No Lease: create it holding it (`holderIdentity`, `acquireTime`, `renewTime`,
///   `leaseDurationSeconds`).
/// * Held by us: renew (`renewTime` = now).
/// * Held by another whose `renewTime + leaseDurationSeconds` has passed: take it over
///   (`leaseTransitions` + 1).
/// * Otherwise: follow.
///
/// Every write is a replace with the `resourceVersion` just read, so of two instances racing
/// for a lapsed Lease exactly one wins (the other gets 409 Conflict and follows).
///
/// As client-go does, expiry is judged by *local observed time*: a follower counts the lease
/// duration from when it first saw the current record (holder, renew time, transitions), on
/// its own clock, never by comparing the holder's `renewTime` with its clock (clocks skew).
/// The leader leads only until its renew deadline (two thirds of the lease duration after
/// the start of its last successful renewal); each round is bounded by that deadline too, so
/// a hung API call ends leadership before any follower may take over. A failed round does
/// not end leadership by itself (no flapping); the deadline does.
pub struct LeaseElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    clock: Arc<dyn Clock>,
    flag: LeaderFlag,
    changes: watch::Sender<bool>,
    /// The record last seen and when (by `clock`) it was first seen.
    observed: Mutex<Option<(String, DateTime<Utc>)>>,
    /// A fenced store: becoming leader takes the next leader epoch in PostgreSQL first.
    epoch: Option<ordinaut_store::Store>,
}

impl LeaseElector {
    pub fn new(
        api: Api<Lease>,
        name: impl Into<String>,
        identity: impl Into<String>,
        duration: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            api,
            name: name.into(),
            identity: identity.into(),
            duration,
            flag: LeaderFlag::with_clock(clock.clone()),
            clock,
            changes: watch::channel(false).0,
            observed: Mutex::new(None),
            epoch: None,
        }
    }

    /// Takes the next leader epoch through `store` (a [`ordinaut_store::Store::fenced`]
    /// handle, the one the reconcilers write through) each time this instance becomes leader,
    /// before it reports leadership: the previous leader's writes are refused from then on.
    /// Failing to take it (database down) is a failed round: no leadership without an epoch.
    pub fn with_epoch(mut self, store: ordinaut_store::Store) -> Self {
        self.epoch = Some(store);
        self
    }

    /// A round, then, on becoming leader, the new epoch.
    async fn round_with_epoch(&self, now: DateTime<Utc>) -> Result<bool, kube::Error> {
        let won = self.round(now).await?;
        if let (true, false, Some(store)) = (won, self.flag.is_leader(), &self.epoch) {
            store
                .take_leadership()
                .await
                .map_err(|e| kube::Error::Service(Box::new(e)))?;
        }
        Ok(won)
    }

    /// The flag the reconcilers read.
    pub fn flag(&self) -> LeaderFlag {
        self.flag.clone()
    }

    /// Observes leadership changes (`true` when this instance becomes the leader).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.changes.subscribe()
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// How long a leader leads after the start of a successful renewal.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    fn set(&self, leader: bool) {
        if *self.changes.borrow() != leader {
            tracing::info!(identity = %self.identity, lease = %self.name, leader, "leadership changed");
        }
        if !leader {
            self.flag.set(false);
        }
        self.changes.send_if_modified(|v| {
            let changed = *v != leader;
            *v = leader;
            changed
        });
    }

    /// One round: acquire, renew or follow. Returns whether this instance leads. An API
    /// error makes it a follower (it cannot prove it still holds the Lease).
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let started = self.clock.now();
        let deadline = self.renew_deadline();
        let result = match tokio::time::timeout(deadline, self.round_with_epoch(started)).await {
            Ok(r) => r,
            Err(_) => Err(kube::Error::Service(Box::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("leader election round took longer than the renew deadline ({deadline:?})"),
            )))),
        };
        match &result {
            Ok(true) => {
                let until = started
                    + chrono::Duration::from_std(deadline).unwrap_or(chrono::Duration::zero());
                self.flag.renewed_until(until);
                self.set(true);
            }
            Ok(false) => self.set(false),
            // Leadership lapses at the renew deadline, not at the first failed round.
            Err(_) => self.set(self.flag.is_leader()),
        }
        result
    }

    /// Whether the holder's record has stayed unchanged for a whole lease duration since this
    /// instance first saw it (local observed time).
    fn lapsed(&self, record: String, now: DateTime<Utc>) -> bool {
        let mut observed = self
            .observed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match observed.as_ref() {
            Some((seen, at)) if *seen == record => {
                now - *at
                    > chrono::Duration::from_std(self.duration).unwrap_or(chrono::Duration::MAX)
            }
            _ => {
                *observed = Some((record, now));
                false
            }
        }
    }

    async fn round(&self, now: DateTime<Utc>) -> Result<bool, kube::Error> {
        let seconds = i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(micro(now)),
                    renew_time: Some(micro(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(self.identity.as_str());
        let record = format!(
            "{:?}/{:?}/{:?}",
            holder,
            spec.renew_time
                .as_ref()
                .and_then(|t| chrono_time(&Time(t.0))),
            spec.lease_transitions
        );
        let expired = self.lapsed(record, now);
        if !ours && holder.is_some() && !expired {
            return Ok(false);
        }
        let mut new = spec.clone();
        new.holder_identity = Some(self.identity.clone());
        new.lease_duration_seconds = Some(seconds);
        new.renew_time = Some(micro(now));
        if !ours {
            new.acquire_time = Some(micro(now));
            new.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        lease.spec = Some(new);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up (on shutdown) so another instance takes over at once.
    pub async fn release(&self) -> Result<(), kube::Error> {
        self.set(false);
        if let Some(mut lease) = self.api.get_opt(&self.name).await?
            && let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(self.identity.as_str())
        {
            spec.holder_identity = None;
            spec.renew_time = None;
            match self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) | Err(kube::Error::Api(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Rounds every third of the lease duration until `shutdown`, then releases the Lease.
    pub async fn run(self, shutdown: CancellationToken) {
        let every = (self.duration / 3).max(Duration::from_millis(200));
        loop {
            if let Err(e) = self.try_acquire_or_renew().await {
                tracing::warn!(error = %e, lease = %self.name, "leader election round failed");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(every) => {}
            }
        }
        if let Err(e) = self.release().await {
            tracing::warn!(error = %e, "releasing the Lease failed");
        }
    }
}

fn micro(t: DateTime<Utc>) -> MicroTime {
    MicroTime(k8s_time(t).0)
}

/// A stream that yields each time `changes` turns true (for `Controller::reconcile_all_on`).
pub fn gained(changes: watch::Receiver<bool>) -> impl futures::Stream<Item = ()> + Send + 'static {
    futures::stream::unfold(changes, |mut rx| async move {
        loop {
            if rx.changed().await.is_err() {
                return None;
            }
            if *rx.borrow_and_update() {
                return Some(((), rx));
            }
        }
    })
}
