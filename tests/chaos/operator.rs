//! The chaos suite's operator scenarios: real `ordinaut-operator` processes against the
//! fake Kubernetes API served over HTTP, a private database and Redis.
//!
//! (e) the operator SIGKILLed in the middle of materializing thousands of Tasks, then
//! restarted; (f) two operators, the leader's API connection stalled: the follower takes
//! over and the deposed leader's database writes are refused by the leader epoch.
//!
//! Each prints one line like the worker scenarios (tests/chaos/main.rs) and fails unless
//! every Task has exactly the occurrences its schedule gives up to its materialized horizon
//! (none lost, none doubled) and no deleted Task was revived. Built as the `chaos_operator`
//! test of the ordinaut-operator package; `bash tests/chaos/run.sh` runs it after the
//! worker scenarios.
#![allow(clippy::unwrap_used)]

mod operator_harness;

use chrono::Duration as ChronoDuration;
use operator_harness::{Cluster, Operator, full};
use ordinaut_api::Task;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn sizes(short: usize, long: usize) -> usize {
    if full() { long } else { short }
}

/// Waits until `check` holds, at most `limit`; the failure names `what` and shows the
/// operators' last log lines.
async fn wait_for<F, Fut>(limit: Duration, what: &str, ops: &[&Operator], mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        if Instant::now() > deadline {
            let logs: Vec<String> = ops.iter().map(|o| o.log_tail()).collect();
            panic!(
                "timed out after {limit:?} waiting for {what}; operator logs:\n{}",
                logs.join("\n----\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Until all `n` Tasks are projected at `generation` with a horizon and Ready.
async fn steady(c: &Cluster, n: usize, generation: i64, limit: Duration, ops: &[&Operator]) {
    wait_for(
        limit,
        &format!("{n} Tasks materialized and Ready"),
        ops,
        || async { c.materialized(generation).await == n as i64 && c.ready_tasks() == n },
    )
    .await;
}

/// (e) The operator SIGKILLed while it materializes 2,000 Tasks (full: 20,000), restarted
/// (a new pod: another identity, so it first waits out the dead one's Lease); at steady
/// state every Task has exactly its occurrences.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_operator_sigkilled_mid_materialization_and_restarted() {
    let c = Cluster::new().await;
    let n = sizes(2000, 20000);
    c.apply_tasks(n, "15m");
    let mut first = c.start_operator("op-e1").await;
    // Kill once a quarter of the Tasks are projected: the rest are still being written.
    wait_for(
        Duration::from_secs(if full() { 600 } else { 120 }),
        "a quarter of the Tasks projected",
        &[&first],
        || async { projected(&c).await >= (n / 4) as i64 },
    )
    .await;
    first.kill();
    let at_kill = projected(&c).await;
    assert!(
        at_kill < n as i64,
        "the operator had projected every Task before it was killed"
    );
    let restarted = Instant::now();
    let second = c.start_operator("op-e2").await;
    steady(
        &c,
        n,
        1,
        Duration::from_secs(if full() { 900 } else { 180 }),
        &[&second],
    )
    .await;
    let lag = restarted.elapsed();
    let check = c.check(ChronoDuration::minutes(15), &BTreeSet::new()).await;
    assert_eq!(check.tasks, n as i64, "{check:?}");
    check.print(
        "(e) operator SIGKILLed",
        lag,
        c.mem_mib(),
        &format!("tasks={n} projected_at_kill={at_kill}"),
    );
    check.assert_goal();
}

/// (f) Two operators; every Task's spec changes, and while the leader is reconciling the
/// change its connection to the API server stalls (requests hang, watches pause). The
/// follower takes the Lease over and a new leader epoch, reconciles the change and the
/// deletion of half the Tasks. Then the stall ends: the deposed leader's reconciles that
/// hung go on to their database writes, which the fence refuses (counted), so no deleted
/// Task is revived and nothing is doubled or lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f_two_operators_the_leaders_api_calls_hang() {
    use kube::api::{Api, DeleteParams, Patch, PatchParams};
    let c = Cluster::new().await;
    let n = sizes(300, 2000);
    c.apply_tasks(n, "15m");
    let a = c.start_operator("op-a").await;
    steady(&c, n, 1, Duration::from_secs(180), &[&a]).await;
    let b = c.start_operator("op-b").await;
    wait_for(Duration::from_secs(60), "op-b ready", &[&b], || b.ready()).await;
    let (before, leader) = epoch(&c).await;
    assert_eq!(
        (holder(&c).await.as_str(), leader.as_str()),
        ("op-a", "op-a")
    );

    // Change every Task; op-a's connection stalls at its first Pipeline lookup after that
    // (a reconcile of the change, between its leadership check and its database write), so
    // that reconcile and those after it hang.
    let tasks: Api<Task> = Api::namespaced(c.fake.client(), "default");
    let lookups = a.stall.requests_to("/pipelines/");
    a.stall.stall_at("/pipelines/");
    let change = serde_json::json!({"spec": {"schedule": {"every": "20m"}}});
    for i in 0..n {
        tasks
            .patch(
                &format!("t{i}"),
                &PatchParams::default(),
                &Patch::Merge(&change),
            )
            .await
            .unwrap();
    }
    wait_for(
        Duration::from_secs(60),
        "op-a stalled reconciling the change",
        &[&a],
        || async { a.stall.is_stalled() },
    )
    .await;
    let stalled = Instant::now();
    let deleted: BTreeSet<String> = (0..n).step_by(2).map(|i| format!("t{i}")).collect();
    for name in &deleted {
        tasks.delete(name, &DeleteParams::default()).await.unwrap();
    }
    let live = n - deleted.len();
    wait_for(
        Duration::from_secs(60),
        "op-b holding the Lease",
        &[&a, &b],
        || async { holder(&c).await == "op-b" },
    )
    .await;
    steady(&c, live, 2, Duration::from_secs(180), &[&a, &b]).await;
    wait_for(
        Duration::from_secs(60),
        "the deleted Tasks gone",
        &[&b],
        || async { c.fake.objects::<Task>().len() == live },
    )
    .await;
    let lag = stalled.elapsed();
    // Each Pipeline lookup op-a made since the stall is one of its reconciles, hung past
    // its leadership check.
    let hung = a.stall.requests_to("/pipelines/") - lookups;
    let done = a.task_reconciles_done().await;

    // The stall ends: op-a's hung reconciles go on to write with the old epoch: refused.
    a.stall.resume();
    wait_for(
        Duration::from_secs(120),
        &format!("op-a's {hung} hung reconciles finished"),
        &[&a],
        || async { a.task_reconciles_done().await >= done + hung as f64 },
    )
    .await;
    wait_for(Duration::from_secs(60), "op-a following", &[&a], || async {
        a.metric("leader").await == Some(0.0)
    })
    .await;
    let fenced = a.metric("fenced_writes_total").await.unwrap_or(0.0);
    assert!(
        fenced >= 1.0,
        "op-a's stale writes were not refused ({fenced})"
    );
    steady(&c, live, 2, Duration::from_secs(60), &[&a, &b]).await;
    // op-b took a newer epoch (exactly one more unless op-b's own renewals lapsed under
    // load and it took another on regaining the Lease).
    let (after, leader) = epoch(&c).await;
    assert!(
        after > before && leader == "op-b",
        "epoch {before} -> {after} ({leader})"
    );
    let check = c.check(ChronoDuration::minutes(20), &deleted).await;
    assert_eq!(check.tasks, live as i64, "{check:?}");
    check.print(
        "(f) leader's API calls hang",
        lag,
        c.mem_mib(),
        &format!(
            "tasks={n} deleted={} hung_reconciles={hung} fenced={fenced} epoch={before}->{after}",
            deleted.len()
        ),
    );
    check.assert_goal();
}

/// How many Tasks are projected.
async fn projected(c: &Cluster) -> i64 {
    ordinaut_test_support::count(&c.store, "SELECT count(*) FROM tasks").await
}

/// The Lease's holder.
async fn holder(c: &Cluster) -> String {
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(c.fake.client(), "default");
    leases
        .get_opt("ordinaut-operator")
        .await
        .unwrap()
        .and_then(|l| l.spec?.holder_identity)
        .unwrap_or_default()
}

/// The current leader epoch and its holder.
async fn epoch(c: &Cluster) -> (i64, String) {
    sqlx::query_as("SELECT epoch, holder FROM leader_epochs")
        .fetch_one(c.store.pool())
        .await
        .unwrap()
}
