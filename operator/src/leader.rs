//! Leader election with a `coordination.k8s.io/v1` Lease (see [`LeaseElector`]): only the
//! holder materializes schedules and writes status.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// A flag the elector sets; cheap to clone and read.
#[derive(Debug, Clone, Default)]
pub struct LeaderFlag(Arc<AtomicBool>);

impl LeaderFlag {
    pub fn set(&self, leader: bool) {
        self.0.store(leader, Ordering::SeqCst);
    }
}

impl Leadership for LeaderFlag {
    fn is_leader(&self) -> bool {
        self.0.load(Ordering::SeqCst)
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
pub struct LeaseElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    clock: Arc<dyn Clock>,
    flag: LeaderFlag,
    changes: watch::Sender<bool>,
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
            clock,
            flag: LeaderFlag::default(),
            changes: watch::channel(false).0,
        }
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

    fn set(&self, leader: bool) {
        if self.flag.is_leader() != leader {
            tracing::info!(identity = %self.identity, lease = %self.name, leader, "leadership changed");
        }
        self.flag.set(leader);
        self.changes.send_if_modified(|v| {
            let changed = *v != leader;
            *v = leader;
            changed
        });
    }

    /// One round: acquire, renew or follow. Returns whether this instance leads. An API
    /// error makes it a follower (it cannot prove it still holds the Lease).
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let result = self.round().await;
        match &result {
            Ok(leader) => self.set(*leader),
            Err(_) => self.set(false),
        }
        result
    }

    async fn round(&self) -> Result<bool, kube::Error> {
        let now = self.clock.now();
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
        let expired = match (
            spec.renew_time
                .as_ref()
                .and_then(|t| chrono_time(&Time(t.0))),
            spec.lease_duration_seconds,
        ) {
            (Some(renewed), Some(d)) => renewed + chrono::Duration::seconds(i64::from(d)) < now,
            _ => true,
        };
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
