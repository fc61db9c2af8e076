//! Consumer groups against the shared Redis: what is read and not acknowledged comes back,
//! what is acknowledged does not.

use ordinaut_events::{Delivery, GroupConsumer, StartFrom, StreamEntry};
use ordinaut_test_support::events::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// Adds entries shaped like the relay's, returning their ids.
async fn add(url: &str, stream: &str, from: i64, count: i64) -> Vec<String> {
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new()
                .set_response_timeout(Some(std::time::Duration::from_secs(30))),
        )
        .await
        .expect("connect to redis");
    let mut ids = Vec::new();
    for n in from..from + count {
        let id: String = redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg("type")
            .arg("run.succeeded")
            .arg("outbox_id")
            .arg(n)
            .arg("payload")
            .arg(json!({"n": n}).to_string())
            .query_async(&mut conn)
            .await
            .expect("XADD");
        ids.push(id);
    }
    ids
}

fn ids(entries: &[StreamEntry]) -> Vec<String> {
    entries.iter().map(|e| e.id.clone()).collect()
}

fn consumer(url: &str, stream: &str, group: &str, name: &str) -> GroupConsumer {
    GroupConsumer::open(url, stream, group, name).expect("consumer")
}

#[tokio::test]
async fn pending_entries_are_redelivered_after_a_consumer_crash() {
    let url = redis_url();
    let stream = unique("consumer-crash");
    let group = "status-feed";
    let _keys = Keys::new(&url, &[&stream]);

    let mut first = consumer(&url, &stream, group, "op-1");
    assert!(
        first
            .ensure_group(StartFrom::Beginning)
            .await
            .expect("create")
    );
    assert!(
        !first
            .ensure_group(StartFrom::Beginning)
            .await
            .expect("exists")
    );
    let original = add(&url, &stream, 1, 5).await;

    let got = first.read(10, Duration::ZERO).await.expect("read");
    assert_eq!(ids(&got), original);
    assert!(got.iter().all(|e| e.delivery == Delivery::New));
    assert_eq!(got[2].outbox_id, Some(3));
    assert_eq!(got[2].payload, json!({"n": 3}));
    // Crash: the entries were read and never acknowledged.
    drop(first);
    let later = add(&url, &stream, 6, 2).await;

    // The same consumer name, restarted, gets its unacknowledged entries first, then new ones.
    let mut restarted = consumer(&url, &stream, group, "op-1");
    restarted
        .ensure_group(StartFrom::Beginning)
        .await
        .expect("group");
    let pending = restarted
        .read(3, Duration::ZERO)
        .await
        .expect("read pending");
    assert_eq!(ids(&pending), original[..3]);
    assert!(pending.iter().all(|e| e.delivery == Delivery::Pending));
    let pending = restarted
        .read(3, Duration::ZERO)
        .await
        .expect("read pending");
    assert_eq!(ids(&pending), original[3..]);
    assert!(pending.iter().all(|e| e.delivery == Delivery::Pending));
    let redelivered_at = Instant::now();
    let fresh = restarted.read(10, Duration::ZERO).await.expect("read new");
    assert_eq!(ids(&fresh), later);
    assert!(fresh.iter().all(|e| e.delivery == Delivery::New));
    assert_eq!(restarted.ack(&ids(&fresh)).await.expect("ack"), 2);
    // op-1 crashes again, for good, still holding the original five.
    drop(restarted);
    assert_eq!(
        consumer(&url, &stream, group, "x")
            .pending_count()
            .await
            .expect("pending"),
        5
    );

    // Another consumer takes them over once they have been idle past its threshold.
    let idle = Duration::from_millis(300);
    let mut other = consumer(&url, &stream, group, "op-2").with_reclaim_idle(idle);
    let deadline = Instant::now() + Duration::from_secs(10);
    let reclaimed = loop {
        let got = other
            .read(10, Duration::from_millis(20))
            .await
            .expect("read");
        if !got.is_empty() {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "op-2 never reclaimed op-1's entries"
        );
    };
    assert!(
        redelivered_at.elapsed() >= idle,
        "reclaimed before the idle threshold ({:?})",
        redelivered_at.elapsed()
    );
    assert_eq!(ids(&reclaimed), original, "all five, oldest first");
    assert!(reclaimed.iter().all(|e| e.delivery == Delivery::Reclaimed));
    assert_eq!(other.ack(&ids(&reclaimed)).await.expect("ack"), 5);
    assert_eq!(other.pending_count().await.expect("pending"), 0);
}

#[tokio::test]
async fn acked_entries_are_not_redelivered() {
    let url = redis_url();
    let stream = unique("consumer-ack");
    let group = "status-feed";
    let _keys = Keys::new(&url, &[&stream]);

    let mut first = consumer(&url, &stream, group, "op-1");
    first
        .ensure_group(StartFrom::Beginning)
        .await
        .expect("group");
    let all = add(&url, &stream, 1, 4).await;
    let got = first.read(10, Duration::ZERO).await.expect("read");
    assert_eq!(ids(&got), all);
    // Acknowledge the 1st and 3rd, then crash.
    assert_eq!(first.ack(&[&all[0], &all[2]]).await.expect("ack"), 2);
    drop(first);

    // Only the unacknowledged two come back.
    let mut restarted = consumer(&url, &stream, group, "op-1");
    let pending = restarted.read(10, Duration::ZERO).await.expect("read");
    assert_eq!(ids(&pending), vec![all[1].clone(), all[3].clone()]);
    assert!(pending.iter().all(|e| e.delivery == Delivery::Pending));
    assert_eq!(restarted.ack(&ids(&pending)).await.expect("ack"), 2);
    assert!(
        restarted
            .read(10, Duration::ZERO)
            .await
            .expect("read")
            .is_empty(),
        "nothing new, nothing pending"
    );
    drop(restarted);

    // Not to the same name after another restart, nor to anyone reclaiming.
    let mut again = consumer(&url, &stream, group, "op-1");
    assert!(
        again
            .read(10, Duration::ZERO)
            .await
            .expect("read")
            .is_empty()
    );
    let mut other =
        consumer(&url, &stream, group, "op-2").with_reclaim_idle(Duration::from_millis(1));
    assert!(
        other
            .read(10, Duration::from_millis(50))
            .await
            .expect("read")
            .is_empty()
    );
    assert_eq!(other.pending_count().await.expect("pending"), 0);
    assert_eq!(
        other.ack(&[&all[0]]).await.expect("ack"),
        0,
        "already acknowledged"
    );
}

#[tokio::test]
async fn a_blocking_read_returns_entries_added_while_it_waits() {
    let url = redis_url();
    let stream = unique("consumer-block");
    let _keys = Keys::new(&url, &[&stream]);
    let mut c = consumer(&url, &stream, "g", "c");
    c.ensure_group(StartFrom::NewOnly).await.expect("group");
    add(&url, &stream, 1, 1).await;
    // A group created at `$` after an entry existed would not see it; this one was created
    // first, so it does.
    let (url2, stream2) = (url.clone(), stream.clone());
    let (first_read, first_done) = tokio::sync::oneshot::channel();
    let reader = tokio::spawn(async move {
        let mut got = c.read(10, Duration::ZERO).await.expect("read");
        assert_eq!(got.len(), 1);
        let _ = first_read.send(());
        // Now wait for an entry that does not exist yet.
        got = c
            .read(10, Duration::from_secs(10))
            .await
            .expect("blocking read");
        got
    });
    // The second entry comes after the first read (a blocked XREADGROUP of a test running
    // alongside could otherwise pass the check below before this reader read at all).
    first_done.await.expect("the first read");
    eventually(Duration::from_secs(30), "the reader to block", || {
        let url = url2.clone();
        async move {
            let client = redis::Client::open(url).ok()?;
            let mut conn = client
                .get_multiplexed_async_connection_with_config(
                    &redis::AsyncConnectionConfig::new()
                        .set_response_timeout(Some(std::time::Duration::from_secs(30))),
                )
                .await
                .ok()?;
            let n: usize = redis::cmd("CLIENT")
                .arg("LIST")
                .query_async::<String>(&mut conn)
                .await
                .ok()?
                .lines()
                .filter(|l| l.contains("cmd=xreadgroup") && l.contains("flags=b"))
                .count();
            (n > 0).then_some(())
        }
    })
    .await;
    let added = add(&url, &stream2, 2, 1).await;
    let got = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("the blocked read returns when an entry arrives")
        .expect("reader");
    assert_eq!(ids(&got), added);
}

#[tokio::test]
async fn ping_tells_a_live_redis_from_a_dead_port() {
    assert!(ordinaut_events::ping_redis(&redis_url(), Duration::from_secs(2)).await);
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    }; // the listener is closed here, so nothing answers on that port
    // Its own timeout bounds it: it answers rather than hangs.
    let dead_url = format!("redis://127.0.0.1:{dead}");
    let ping = ordinaut_events::ping_redis(&dead_url, Duration::from_secs(2));
    let alive = tokio::time::timeout(Duration::from_secs(30), ping)
        .await
        .expect("ping_redis returns within its timeout, it does not hang");
    assert!(!alive);
}
