//! What Agent budgets cost the lease path: per-call time of `Store::lease` against
//! `Store::lease_within_budgets`, interleaved on the same queue (so both see the same machine
//! and table), for Tasks without an Agent and for Tasks of an Agent whose budgets never bind
//! (`concurrentRuns` only, then `runsPerHour` with a growing window). Each leased batch is
//! recorded as finished (untimed) so the queue drains.
//!
//! Usage: budgets [--database-url ADMIN_URL] [--runs N] [--batch B] [--out FILE]

use chrono::{Duration as ChronoDuration, Utc};
use ordinaut_store::{Disposition, NewOccurrence, RunRecord, RunStatus, Store, TaskProjection};
use ordinaut_test_support::ScratchDb;
use serde_json::json;
use std::time::{Duration, Instant};

const LEASE_FOR: Duration = Duration::from_secs(60);

struct Args {
    admin_url: String,
    runs: usize,
    batch: i64,
    out: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args {
        admin_url: ordinaut_bench::database_url(),
        runs: 20_000,
        batch: 64,
        out: None,
    };
    ordinaut_bench::flags(|f, v| {
        match f {
            "--database-url" => a.admin_url = v,
            "--runs" => a.runs = ordinaut_bench::parsed(f, &v),
            "--batch" => a.batch = ordinaut_bench::parsed(f, &v),
            "--out" => a.out = Some(v),
            _ => return false,
        }
        true
    });
    a
}

async fn task(store: &Store, name: &str, agent: Option<&str>) -> uuid::Uuid {
    let mut spec = json!({"schedule": {"every": "1h"},
        "pipeline": {"steps": [{"id": "noop", "uses": "core.echo"}]}});
    if let Some(a) = agent {
        spec["agentRef"] = json!(a);
    }
    let t = TaskProjection {
        uid: uuid::Uuid::new_v4(),
        namespace: "bench".into(),
        name: name.into(),
        generation: 1,
        spec,
        schedule_kind: "every".into(),
        schedule: "1h".into(),
        timezone: "UTC".into(),
        next_run_at: None,
        materialized_until: None,
        suspended: false,
        snooze_until: None,
        priority: 0,
        concurrency_policy: "Allow".into(),
    };
    store.upsert_task(&t).await.expect("task");
    t.uid
}

async fn fill(store: &Store, task: uuid::Uuid, n: usize) {
    let now = Utc::now();
    let occ: Vec<NewOccurrence> = (0..n)
        .map(|i| NewOccurrence::scheduled(task, now - ChronoDuration::microseconds(i as i64)))
        .collect();
    for chunk in occ.chunks(10_000) {
        store.insert_occurrences(chunk).await.expect("insert");
    }
    sqlx::query("ANALYZE due_work")
        .execute(store.pool())
        .await
        .expect("analyze");
}

async fn finish(store: &Store, leases: &[(i64, i32)]) {
    let now = Utc::now();
    let records: Vec<RunRecord> = leases
        .iter()
        .map(|(id, attempt)| RunRecord {
            due_work_id: *id,
            attempt: *attempt,
            run_id: uuid::Uuid::now_v7(),
            status: RunStatus::Succeeded,
            started_at: now,
            finished_at: now,
            worker: "bench".into(),
            output: None,
            error: None,
            steps: Vec::new(),
            events: Vec::new(),
            disposition: Disposition::Done,
        })
        .collect();
    store.finish_many(&records).await.expect("finish");
}

fn summary(mut us: Vec<f64>) -> serde_json::Value {
    us.sort_by(f64::total_cmp);
    let pick = |q: f64| us[((us.len() as f64 - 1.0) * q).round() as usize];
    let mean = us.iter().sum::<f64>() / us.len() as f64;
    json!({"calls": us.len(), "mean_us": mean.round(), "p50_us": pick(0.5).round(), "p99_us": pick(0.99).round()})
}

/// Drains the queue, alternating the two lease calls; returns (lease, lease_within_budgets).
async fn drain(store: &Store, batch: i64) -> (serde_json::Value, serde_json::Value) {
    let (mut plain, mut budgeted) = (Vec::new(), Vec::new());
    for turn in 0usize.. {
        let started = Instant::now();
        let got: Vec<(i64, i32)> = if turn % 2 == 0 {
            let l = store.lease("bench", batch, LEASE_FOR).await.expect("lease");
            plain.push(started.elapsed().as_secs_f64() * 1e6);
            l.iter().map(|l| (l.id, l.attempt)).collect()
        } else {
            let a = store
                .lease_within_budgets("bench", batch, LEASE_FOR)
                .await
                .expect("lease");
            budgeted.push(started.elapsed().as_secs_f64() * 1e6);
            assert!(a.waits.is_empty(), "a budget bound: {:?}", a.waits.first());
            a.leases.iter().map(|l| (l.id, l.attempt)).collect()
        };
        if got.is_empty() {
            break;
        }
        finish(store, &got).await;
    }
    (summary(plain), summary(budgeted))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = parse_args();
    let db = ScratchDb::create(&args.admin_url, "ordinaut_bench", 4).await;
    let store = db.store.clone();

    let mut results = serde_json::Map::new();
    let cases: [(&str, Option<serde_json::Value>); 3] = [
        ("no_agent", None),
        (
            "agent_concurrent_runs",
            Some(json!({"budgets": {"concurrentRuns": 1_000_000}})),
        ),
        (
            "agent_runs_per_hour",
            Some(json!({"budgets": {"runsPerHour": 1_000_000}})),
        ),
    ];
    for (case, budgets) in cases {
        let agent = match &budgets {
            Some(spec) => {
                store
                    .upsert_agent("bench", case, 1, spec)
                    .await
                    .expect("agent");
                Some(case)
            }
            None => None,
        };
        let t = task(&store, case, agent).await;
        fill(&store, t, args.runs).await;
        let (plain, budgeted) = drain(&store, args.batch).await;
        eprintln!("{case}: lease {plain}, lease_within_budgets {budgeted}");
        results.insert(
            case.into(),
            json!({"lease": plain, "lease_within_budgets": budgeted}),
        );
    }
    let out = json!({"runs_per_case": args.runs, "batch": args.batch, "cases": results});
    println!("{out}");
    if let Some(path) = args.out {
        std::fs::write(path, out.to_string()).expect("write results");
    }
    drop(store);
    db.drop_db().await;
}
