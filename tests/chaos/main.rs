//! The chaos suite: real worker processes on a private PostgreSQL (and Redis), under faults.
//! Each scenario prints one line (due, ran, lost, doubled, overlapped, max lag, memory
//! high-water of the workers) and fails unless nothing was lost, doubled or overlapped.
//!
//! `bash tests/chaos/run.sh` runs the short form (one pass of each scenario, what CI runs);
//! `bash tests/chaos/run.sh --full` (`ORDINAUT_CHAOS_FULL=1`) the full one. The operator
//! scenarios (e) and (f) are in operator.rs (the `chaos_operator` test of ordinaut-operator).
#![allow(clippy::unwrap_used)]

mod harness;

use harness::{World, full};
use ordinaut_store::testing::Shutdown;
use ordinaut_test_support::worker::PrivateRedis;
use std::time::{Duration, Instant};

fn sizes(short: usize, long: usize) -> usize {
    if full() { long } else { short }
}

/// (a) 1,000 occurrences (short: 300) while a random worker is killed with SIGKILL every
/// 2–5 s and replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_of_a_random_worker_every_few_seconds() {
    let mut w = World::new().await;
    let n = sizes(300, 1000);
    let span = Duration::from_secs(if full() { 30 } else { 10 });
    w.queue(n, span, "300ms").await;
    for _ in 0..3 {
        w.start_worker();
    }
    let until = Instant::now() + span;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(fastrand::u64(2000..5000))).await;
        let victim = {
            let mut ws = w.workers.lock().unwrap();
            let i = fastrand::usize(0..ws.len());
            ws.remove(i)
        };
        victim.signal("KILL");
        drop(victim);
        w.start_worker();
    }
    w.wait_done(Duration::from_secs(120)).await;
    w.report("(a) SIGKILL every 2-5 s").await.assert_goal();
}

/// (b) PostgreSQL restarted under load: a fast shutdown, then an immediate one kept down
/// longer than the lease; twice in the full form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_postgres_restarted_fast_and_immediate_under_load() {
    let mut w = World::new().await;
    let n = sizes(300, 1000);
    let span = Duration::from_secs(if full() { 30 } else { 10 });
    w.queue(n, span, "300ms").await;
    for _ in 0..3 {
        w.start_worker();
    }
    let rounds = if full() { 2 } else { 1 };
    let per_round = n as i64 / (2 * rounds as i64 + 1);
    let mut target = 0;
    for _ in 0..rounds {
        for (mode, down) in [(Shutdown::Fast, 0), (Shutdown::Immediate, 4)] {
            target += per_round;
            w.wait_finished(target, Duration::from_secs(120)).await;
            w.pg.stop(mode);
            std::thread::sleep(Duration::from_secs(down));
            w.pg.restart();
        }
    }
    w.wait_done(Duration::from_secs(180)).await;
    w.report("(b) PostgreSQL restarts").await.assert_goal();
}

/// (c) Redis down under load (60 s in the full form, 5 s short): runs go on, events wait in
/// the outbox and are all relayed once Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_redis_down_under_load() {
    let mut w = World::new().await;
    let mut redis = PrivateRedis::start();
    w.extra_args = vec!["--redis-url".into(), redis.url()];
    let n = sizes(300, 1000);
    let outage = Duration::from_secs(if full() { 60 } else { 5 });
    let span = outage + Duration::from_secs(4);
    w.queue(n, span, "300ms").await;
    for _ in 0..3 {
        w.start_worker();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.kill();
    tokio::time::sleep(outage).await;
    redis.restart();
    w.wait_done(Duration::from_secs(120)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while ordinaut_test_support::worker::count(
        &w.store,
        "SELECT count(*) FROM outbox WHERE published_at IS NULL",
    )
    .await
        > 0
    {
        assert!(
            Instant::now() < deadline,
            "events still waiting in the outbox"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    w.report("(c) Redis down under load").await.assert_goal();
}

/// (d) A worker stopped with SIGSTOP past its lease while it holds runs, then resumed:
/// its stale attempts stop themselves (no overlap, no double).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d_a_worker_sigstopped_past_its_lease_and_resumed() {
    let mut w = World::new().await;
    let n = sizes(200, 1000);
    let span = Duration::from_secs(if full() { 30 } else { 8 });
    w.queue(n, span, "1s").await;
    for _ in 0..3 {
        w.start_worker();
    }
    let rounds = if full() { 3 } else { 1 };
    for _ in 0..rounds {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let ws = w.workers.lock().unwrap();
        let victim = &ws[fastrand::usize(0..ws.len())];
        victim.signal("STOP");
        // Past the 3 s lease: the others reap and run its occurrences meanwhile.
        std::thread::sleep(Duration::from_secs(5));
        victim.signal("CONT");
    }
    w.wait_done(Duration::from_secs(120)).await;
    w.report("(d) SIGSTOP past the lease").await.assert_goal();
}
