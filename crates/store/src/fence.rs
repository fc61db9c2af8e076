//! Leader fencing: a deposed operator's writes are refused.
//!
//! Leader election (a Kubernetes Lease) bounds how long a leader believes it leads, but a
//! process paused or partitioned mid-write can still reach PostgreSQL after a follower took
//! over. So each election has an epoch in `leader_epochs` (migration 0014): the replica that
//! becomes leader takes the next one ([`Store::take_leadership`]), and every operator write
//! made through a fenced handle ([`Store::fenced`]) first reads the current epoch under a
//! share lock, in its own transaction, and is refused with [`StoreError::Fenced`] (nothing
//! written) unless it is the epoch this handle took. The share lock makes the check and the
//! write one step: a new leader's bump waits for writes already past the check, and no write
//! of the old epoch commits after the bump.
//!
//! An unfenced handle (dev mode, the worker, the gateway, tests) checks nothing.

use crate::{Store, StoreError};
use sqlx::PgConnection;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Called with `(held, current)` each time a fenced write is refused (for a metric).
pub type OnFenced = Arc<dyn Fn(i64, i64) + Send + Sync>;

/// The epoch a fenced handle holds (shared by its clones).
pub(crate) struct Fence {
    name: String,
    holder: String,
    /// 0: never taken (every write is refused).
    epoch: AtomicI64,
    refused: AtomicU64,
    on_refused: Option<OnFenced>,
}

impl std::fmt::Debug for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fence")
            .field("name", &self.name)
            .field("holder", &self.holder)
            .field("epoch", &self.epoch.load(Ordering::SeqCst))
            .finish()
    }
}

impl Store {
    /// A handle whose operator writes are fenced by the epoch of election `name` that
    /// `holder` takes with [`Store::take_leadership`]; until then they are refused.
    /// `on_refused` is called for each refused write.
    pub fn fenced(
        &self,
        name: impl Into<String>,
        holder: impl Into<String>,
        on_refused: Option<OnFenced>,
    ) -> Store {
        let mut s = self.clone();
        s.fence = Some(Arc::new(Fence {
            name: name.into(),
            holder: holder.into(),
            epoch: AtomicI64::new(0),
            refused: AtomicU64::new(0),
            on_refused,
        }));
        s
    }

    /// Takes the next epoch of this handle's election (this replica just became leader):
    /// from now on writes made with any older epoch are refused. Returns the epoch.
    /// Errors when the handle is not fenced.
    pub async fn take_leadership(&self) -> Result<i64, StoreError> {
        let fence = self
            .fence
            .as_ref()
            .ok_or_else(|| StoreError::Conflict("take_leadership on an unfenced store".into()))?;
        let (epoch,): (i64,) = sqlx::query_as(
            "INSERT INTO leader_epochs (name, epoch, holder) VALUES ($1, 1, $2) \
             ON CONFLICT (name) DO UPDATE \
                 SET epoch = leader_epochs.epoch + 1, holder = $2, taken_at = now() \
             RETURNING epoch",
        )
        .bind(&fence.name)
        .bind(&fence.holder)
        .fetch_one(&self.pool)
        .await?;
        fence.epoch.store(epoch, Ordering::SeqCst);
        tracing::info!(election = %fence.name, holder = %fence.holder, epoch, "leader epoch taken");
        Ok(epoch)
    }

    /// The epoch this handle holds: `None` when unfenced, `Some(0)` before it took one.
    pub fn leader_epoch(&self) -> Option<i64> {
        self.fence.as_ref().map(|f| f.epoch.load(Ordering::SeqCst))
    }

    /// How many writes through this handle (and its clones) were refused as stale.
    pub fn fenced_writes(&self) -> u64 {
        self.fence
            .as_ref()
            .map_or(0, |f| f.refused.load(Ordering::Relaxed))
    }

    /// Inside a write's transaction: refuses it unless this handle's epoch is current
    /// (nothing to check when unfenced). Holds a share lock on the epoch row until the
    /// transaction ends.
    pub(crate) async fn check_fence(&self, conn: &mut PgConnection) -> Result<(), StoreError> {
        let Some(fence) = &self.fence else {
            return Ok(());
        };
        let held = fence.epoch.load(Ordering::SeqCst);
        let current: Option<(i64,)> =
            sqlx::query_as("SELECT epoch FROM leader_epochs WHERE name = $1 FOR SHARE")
                .bind(&fence.name)
                .fetch_optional(&mut *conn)
                .await?;
        let current = current.map_or(0, |c| c.0);
        if held != 0 && held == current {
            return Ok(());
        }
        fence.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            election = %fence.name,
            holder = %fence.holder,
            held,
            current,
            "write refused: this operator's leader epoch is not the current one"
        );
        if let Some(f) = &fence.on_refused {
            f(held, current);
        }
        Err(StoreError::Fenced { held, current })
    }
}
