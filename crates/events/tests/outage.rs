//! A Redis outage delays events and loses none. Uses a private `redis-server` on its own port
//! so the test can kill it without disturbing other tests.

use ordinaut_events::{OutboxRelay, RelayError};
use ordinaut_store::DEFAULT_STREAM;
use ordinaut_store::testing::TestDb;
use ordinaut_test_support::events::*;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn redis_outage_delays_events_and_loses_none() {
    let mut redis = PrivateRedis::start();
    let url = redis.url();
    let (_db, store) = TestDb::migrated().await.expect("test database");
    let relay = OutboxRelay::new(store.clone(), &url)
        .expect("relay")
        .with_backoff(Duration::from_millis(20), Duration::from_millis(400))
        .with_timeouts(Duration::from_millis(500), Duration::from_secs(2))
        .with_batch_size(64);

    // Before: relayed normally.
    append(&store, "before", 100, 30).await;
    while relay.relay_once().await.expect("relay with redis up") > 0 {}
    assert_eq!(xlen(&url, DEFAULT_STREAM).await, Some(100));

    redis.kill();

    // During, with the relay driven by hand: a pass fails quickly and marks nothing.
    append(&store, "during", 150, 50).await;
    let waiting = unpublished_ids(&store).await;
    assert_eq!(waiting.len(), 150);
    // It fails rather than hangs (how fast is not a test's business on a loaded machine).
    let err = tokio::time::timeout(Duration::from_secs(30), relay.relay_once())
        .await
        .expect("a pass against a dead Redis fails, it does not hang")
        .expect_err("no redis, no publishing");
    // A pass takes whole outbox rows, up to the batch size in events.
    assert!(
        matches!(err, RelayError::Redis { count, .. } if (1..=64).contains(&count)),
        "{err}"
    );
    assert_eq!(
        unpublished_ids(&store).await,
        waiting,
        "nothing marked published"
    );
    assert_eq!(relay.stats().failures(), 1);

    // During, with the relay running: it keeps failing and backing off; the backlog grows.
    let stats = relay.stats();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(relay.run(cancel.clone()));
    append(&store, "during", 150, 50).await;
    eventually(
        Duration::from_secs(30),
        "the relay to retry and fail twice",
        || async { (stats.failures() >= 3).then_some(()) },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "the backlog gauge to show 300",
        || async { (stats.backlog() == 300).then_some(()) },
    )
    .await;
    assert_eq!(
        stats.published(),
        100,
        "nothing published while Redis was down"
    );
    let during = unpublished_ids(&store).await;
    assert_eq!(during.len(), 300);
    assert_eq!(
        &during[..150],
        &waiting[..],
        "the first rows still wait, untouched"
    );

    // After: Redis comes back empty on the same port; new events follow the waiting ones.
    redis.restart();
    append(&store, "after", 100, 25).await;
    eventually(
        Duration::from_secs(30),
        "every waiting event on the restarted Redis",
        || {
            let url = url.clone();
            async move { (xlen(&url, DEFAULT_STREAM).await? >= 400).then_some(()) }
        },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "the backlog gauge to read 0",
        || async { (stats.backlog() == 0).then_some(()) },
    )
    .await;
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("relay stops promptly on cancel")
        .expect("relay task");

    // The killed server had no persistence, so the 100 "before" entries died with it (that is
    // Redis' durability, not the relay's). What the relay guarantees is that every event
    // appended during and after the outage reaches the new server: once each, in outbox id
    // order (the 300 that waited first, then the 100 appended after the restart), with
    // nothing left in the outbox.
    let on_stream = stream_outbox_ids(&url, DEFAULT_STREAM).await;
    assert_eq!(on_stream.len(), 400, "each event once");
    assert_eq!(
        &on_stream[..300],
        &during[..],
        "the waiting events first, in order"
    );
    assert!(
        on_stream.windows(2).all(|w| w[0] < w[1]),
        "in outbox id order"
    );
    assert!(unpublished_ids(&store).await.is_empty(), "outbox drained");
    assert_eq!(stats.published(), 500);
}
