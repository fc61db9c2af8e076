//! The outbox relay: moves events from PostgreSQL's `outbox` to Redis Streams, in id order,
//! marking them published only after Redis has them, so a Redis outage delays events and
//! loses none.
//!
//! One relay publishes at a time across all processes (the store's advisory lock on
//! [`Store::claim_outbox`]), and each batch goes out in id order, so with several worker
//! replicas the stream still follows the outbox.
//!
//! # Order
//! The relay publishes the rows *visible* when it claims, in id order. Ids come from a
//! sequence at insert time, so two concurrent transactions can commit out of id order (the
//! one that took the lower id commits last) and their events then reach the stream in commit
//! order, not id order. Per task the order always holds: a task's events come from
//! successive transactions (a run's outcome, then the next run's), and a later transaction
//! takes its ids after the earlier one committed. Consumers that need a total order across
//! tasks compare `outbox_id`.
//!
//! # Duplicates
//! Publishing is at-least-once: an event reaches Redis twice only if the process
//! dies (or PostgreSQL fails) between the `XADD` and the commit that marks it published.

use crate::conn::Reconnecting;
use crate::fields;
use chrono::SecondsFormat;
use ordinaut_store::{OutboxRow, Store, StoreError, Wakeup};
use redis::{Client, RedisError};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// How often a relay that is busy draining recounts the backlog.
const BACKLOG_COUNT_INTERVAL: Duration = Duration::from_secs(1);

/// Why one relay pass failed. Either way the events stay in the outbox and are retried.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("outbox relay: PostgreSQL failed ({0}); the events stay in the outbox")]
    Store(StoreError),
    #[error(
        "outbox relay: publishing {count} events (outbox ids {first}..={last}) to Redis failed: \
         {cause}; they stay in the outbox and are retried (is Redis reachable?)"
    )]
    Redis {
        count: usize,
        first: i64,
        last: i64,
        cause: RedisError,
    },
    #[error("outbox relay: invalid Redis URL: {0}")]
    Url(RedisError),
}

// The causes are part of the messages (printed once), so not `#[source]`.
impl From<StoreError> for RelayError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// What the relay has done, shared (`Arc`) with whoever exports metrics.
#[derive(Debug, Default)]
pub struct RelayStats {
    published: AtomicU64,
    failures: AtomicU64,
    backlog: AtomicI64,
}

impl RelayStats {
    /// Events written to Redis and marked published (`ordinaut_outbox_published_total`).
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Relay passes that failed, Redis or PostgreSQL (`ordinaut_outbox_relay_failures_total`).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Unpublished events when last counted (`ordinaut_outbox_backlog`); -1 before the
    /// first count.
    pub fn backlog(&self) -> i64 {
        self.backlog.load(Ordering::Relaxed)
    }
}

/// Moves outbox rows to Redis Streams. Build with [`OutboxRelay::new`], adjust with the
/// `with_*` methods, then call [`OutboxRelay::run`] (or [`OutboxRelay::relay_once`]).
pub struct OutboxRelay {
    store: Store,
    redis: Reconnecting,
    maxlen: usize,
    batch_size: i64,
    poll_interval: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
    stats: Arc<RelayStats>,
    /// Ids this process put on Redis whose "published" commit then failed. If they come back
    /// in a batch, they are marked published without a second `XADD`.
    sent_uncommitted: Mutex<BTreeSet<i64>>,
}

impl OutboxRelay {
    /// Default cap of each stream (`XADD … MAXLEN ~ 100000`).
    pub const DEFAULT_MAXLEN: usize = 100_000;
    /// Default number of events per `claim_outbox` and per pipelined `XADD` round trip. One
    /// relay publishes at a time, so its batches bound the event rate: 2,000 (about 1 MB)
    /// took the benchmark's drain with events relayed from 4,452 to 5,200–5,500 runs/s
    /// against 500.
    pub const DEFAULT_BATCH_SIZE: i64 = 2000;
    /// Default wait between outbox checks when no notification arrives.
    pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

    /// A relay from `store` to the Redis at `redis_url`. Connects lazily: Redis need not be
    /// up yet. Connecting times out after 2 s and a reply after 5 s
    /// ([`OutboxRelay::with_timeouts`]), so a dead Redis fails a pass quickly.
    pub fn new(store: Store, redis_url: &str) -> Result<Self, RelayError> {
        let client = Client::open(redis_url).map_err(RelayError::Url)?;
        Ok(Self::from_client(store, client))
    }

    /// Like [`OutboxRelay::new`], from a `redis::Client`.
    pub fn from_client(store: Store, client: Client) -> Self {
        Self {
            store,
            redis: Reconnecting::new(client, Duration::from_secs(2), Some(Duration::from_secs(5))),
            maxlen: Self::DEFAULT_MAXLEN,
            batch_size: Self::DEFAULT_BATCH_SIZE,
            poll_interval: Self::DEFAULT_POLL_INTERVAL,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            stats: Arc::new(RelayStats {
                backlog: AtomicI64::new(-1),
                ..RelayStats::default()
            }),
            sent_uncommitted: Mutex::new(BTreeSet::new()),
        }
    }

    /// Approximate cap of each stream (`MAXLEN ~ n`).
    pub fn with_maxlen(mut self, maxlen: usize) -> Self {
        self.maxlen = maxlen.max(1);
        self
    }

    /// Events per batch (one claim, one pipelined round trip, one commit).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = i64::try_from(batch_size.max(1)).unwrap_or(i64::MAX);
        self
    }

    /// How long [`OutboxRelay::run`] waits for a notification before checking anyway.
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Retry delays after a failure: doubling from `min`, capped at `max`.
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max.max(min);
        self
    }

    /// Redis connect and reply timeouts.
    pub fn with_timeouts(mut self, connect: Duration, response: Duration) -> Self {
        let client = self.redis.client().clone();
        self.redis = Reconnecting::new(client, connect, Some(response));
        self
    }

    /// The relay's counters, to export as metrics.
    pub fn stats(&self) -> Arc<RelayStats> {
        Arc::clone(&self.stats)
    }

    /// `true` when Redis answers `PING` (for `/readyz`).
    pub async fn ping(&self) -> bool {
        self.redis
            .run(
                |mut conn| async move { redis::cmd("PING").query_async::<String>(&mut conn).await },
            )
            .await
            .is_ok()
    }

    /// Counts unpublished events and records the figure in [`RelayStats::backlog`].
    pub async fn refresh_backlog(&self) -> Result<i64, StoreError> {
        let n = self.store.outbox_backlog().await?;
        self.stats.backlog.store(n, Ordering::Relaxed);
        Ok(n)
    }

    /// One pass: claims up to a batch of unpublished events, writes them to Redis in one
    /// pipelined round trip and marks them published. Returns how many were published; 0
    /// when nothing waits or another relay is publishing. On error nothing is marked, and
    /// [`RelayStats::failures`] counts it.
    pub async fn relay_once(&self) -> Result<usize, RelayError> {
        let result = self.pass().await;
        if result.is_err() {
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn pass(&self) -> Result<usize, RelayError> {
        let Some(batch) = self.store.claim_outbox(self.batch_size).await? else {
            return Ok(0);
        };
        let (Some(first), Some(last)) = (batch.rows.first(), batch.rows.last()) else {
            return Ok(0);
        };
        let (count, first, last) = (batch.rows.len(), first.id, last.id);

        let already_sent = self.sent_uncommitted.lock().await.clone();
        let mut pipe = redis::pipe();
        let mut to_send = 0;
        for row in batch.rows.iter().filter(|r| !already_sent.contains(&r.id)) {
            self.add_xadd(&mut pipe, row);
            to_send += 1;
        }
        if to_send > 0 {
            // Not atomic: a failure part-way leaves a prefix on Redis; the whole batch is
            // then sent again, the one case besides a crash where an event is duplicated.
            let result = self
                .redis
                .run(|mut conn| async move { pipe.exec_async(&mut conn).await })
                .await;
            if let Err(cause) = result {
                return Err(RelayError::Redis {
                    count,
                    first,
                    last,
                    cause,
                });
            }
        }

        let ids: Vec<i64> = batch.rows.iter().map(|r| r.id).collect();
        if let Err(e) = batch.commit().await {
            self.sent_uncommitted.lock().await.extend(ids);
            return Err(e.into());
        }
        // Ids at or below `last` were in this batch or published earlier: forget them.
        self.sent_uncommitted.lock().await.retain(|&id| id > last);
        self.stats
            .published
            .fetch_add(u64::try_from(count).unwrap_or(u64::MAX), Ordering::Relaxed);
        Ok(count)
    }

    fn add_xadd(&self, pipe: &mut redis::Pipeline, row: &OutboxRow) {
        let cmd = pipe
            .cmd("XADD")
            .arg(&row.stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.maxlen)
            .arg("*")
            .arg(fields::TYPE)
            .arg(&row.event_type)
            .arg(fields::OUTBOX_ID)
            .arg(row.id);
        if let Some(task) = row.task_uid {
            cmd.arg(fields::TASK_UID).arg(task.to_string());
        }
        cmd.arg(fields::PAYLOAD)
            .arg(row.payload.to_string())
            .arg(fields::CREATED_AT)
            .arg(row.created_at.to_rfc3339_opts(SecondsFormat::Micros, true))
            .ignore();
    }

    /// Relays until `cancel` fires: drains the outbox, then sleeps until an insert is
    /// notified or the poll interval passes. Failures are logged and retried with capped
    /// exponential backoff; the events wait in the outbox meanwhile. A pass in progress when
    /// `cancel` fires is finished (its Redis and PostgreSQL calls are bounded by timeouts),
    /// so a shutdown does not leave events on Redis that the outbox still calls unpublished.
    pub async fn run(self, cancel: CancellationToken) {
        let mut listener = None;
        let mut backoff = self.backoff_min;
        // While draining a long backlog the relay never goes idle; count it now and then.
        let mut backlog_counted = tokio::time::Instant::now();
        let mut published_since_count = true;
        tracing::info!(
            batch_size = self.batch_size,
            maxlen = self.maxlen,
            "outbox relay started"
        );
        while !cancel.is_cancelled() {
            // Listen before draining, so an insert committed during the drain still wakes us.
            if listener.is_none() {
                match self.store.listen_outbox().await {
                    Ok(l) => listener = Some(l),
                    Err(e) => tracing::warn!(error = %e, "outbox relay: LISTEN failed; polling"),
                }
            }
            match self.relay_once().await {
                Ok(n) if n > 0 => {
                    backoff = self.backoff_min;
                    tracing::debug!(published = n, "outbox relay published a batch");
                    published_since_count = true;
                    if backlog_counted.elapsed() >= BACKLOG_COUNT_INTERVAL {
                        backlog_counted = tokio::time::Instant::now();
                        published_since_count = false;
                        let _ = self.refresh_backlog().await;
                    }
                    continue;
                }
                Ok(_) => backoff = self.backoff_min,
                Err(e) => {
                    let _ = self.refresh_backlog().await;
                    tracing::warn!(
                        error = %e,
                        retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                        backlog = self.stats.backlog(),
                        "outbox relay pass failed"
                    );
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.backoff_max);
                    continue;
                }
            }
            // Once this relay has emptied the outbox, else at most once per interval: the count
            // reads every unpublished row, and a relay that another process's relay keeps out
            // of the lock comes here at every insert notification (measured: 17 counts/s, half
            // a core of PostgreSQL, at a 100,000 event backlog).
            if published_since_count || backlog_counted.elapsed() >= BACKLOG_COUNT_INTERVAL {
                backlog_counted = tokio::time::Instant::now();
                published_since_count = false;
                if let Err(e) = self.refresh_backlog().await {
                    tracing::warn!(error = %e, "outbox relay: counting the backlog failed");
                }
            }
            let waited = match listener.as_mut() {
                Some(l) => tokio::select! {
                    () = cancel.cancelled() => break,
                    w = l.wait(self.poll_interval) => w.map(|_: Wakeup| ()),
                },
                None => {
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(self.poll_interval) => {}
                    }
                    Ok(())
                }
            };
            if let Err(e) = waited {
                tracing::warn!(error = %e, "outbox relay: LISTEN connection failed; reopening");
                listener = None;
            }
        }
        tracing::info!("outbox relay stopped");
    }
}
