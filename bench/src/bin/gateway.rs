//! The gateway's REST API under load: requests per second and latency percentiles of
//! `GET /v1/runs?limit=50` (an agent's runs, 10,000 in the table) and `POST /v1/tasks`
//! (`schedule_task`: parse, validate with the operator's rules, create the Task object), each
//! for a fixed time with C concurrent clients holding an Agent's token. The gateway runs
//! in-process on a real socket with its real router, PostgreSQL and the Kubernetes write
//! path against the in-process fake API server (no operator: nothing reconciles the Tasks).
//!
//! Usage: gateway [--database-url ADMIN_URL] [--seconds S] [--clients C] [--out FILE]

use ordinaut_store::{Store, TaskProjection};
use ordinaut_test_support::ScratchDb;
use serde_json::json;

const TOKEN: &str = "bench-agent-token";

struct Args {
    admin_url: String,
    seconds: u64,
    clients: usize,
    out: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args {
        admin_url: ordinaut_bench::database_url(),
        seconds: 10,
        clients: 16,
        out: None,
    };
    ordinaut_bench::flags(|f, v| {
        match f {
            "--database-url" => a.admin_url = v,
            "--seconds" => a.seconds = ordinaut_bench::parsed(f, &v),
            "--clients" => a.clients = ordinaut_bench::parsed(f, &v),
            "--out" => a.out = Some(v),
            _ => return false,
        }
        true
    });
    a
}

/// An Agent `bench/bot`, one of its Tasks and `runs` finished runs of it.
async fn seed(store: &Store, runs: i64) {
    let spec =
        json!({"tokenSecretRef": {"name": "bot-token", "key": "token"}, "scopes": ["core.*"]});
    store
        .upsert_agent("bench", "bot", 1, &spec)
        .await
        .expect("agent");
    let uid = uuid::Uuid::new_v4();
    let t = TaskProjection {
        uid,
        namespace: "bench".into(),
        name: "hourly".into(),
        generation: 1,
        spec: json!({"schedule": {"every": "1h"}, "agentRef": "bot",
            "pipeline": {"steps": [{"id": "noop", "uses": "core.echo"}]}}),
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
    sqlx::query(
        "INSERT INTO task_runs (id, task_uid, scheduled_for, trigger, attempt, status, \
             started_at, finished_at, worker, output) \
         SELECT gen_random_uuid(), $1, now() - g * interval '1 hour', 'schedule', 1, \
             CASE WHEN g % 10 = 0 THEN 'failed' ELSE 'succeeded' END, \
             now() - g * interval '1 hour', now() - g * interval '1 hour' + interval '1 s', \
             'bench', '{\"message\": \"hi\"}'::jsonb \
         FROM generate_series(1, $2) g",
    )
    .bind(uid)
    .bind(runs)
    .execute(store.pool())
    .await
    .expect("runs");
    sqlx::query("ANALYZE task_runs")
        .execute(store.pool())
        .await
        .expect("analyze");
}

/// Serves the gateway on a free port; returns its URL.
async fn serve(store: Store) -> String {
    ordinaut_bench::serve_gateway(store, TOKEN).await
}

/// Sends `request`; panics unless it succeeds.
async fn expect_ok(request: reqwest::RequestBuilder) {
    let resp = request.send().await.expect("request");
    let status = resp.status();
    let _ = resp.bytes().await;
    assert!(status.is_success(), "status {status}");
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let db = ScratchDb::create(&args.admin_url, "ordinaut_bench_gw", 20).await;
    let store = db.store.clone();
    seed(&store, 10_000).await;
    let url = serve(store.clone()).await;

    let runs_url = format!("{url}/v1/runs?limit=50");
    let (lat, secs) = ordinaut_bench::load(args.clients, args.seconds, move |http, _, _| {
        expect_ok(http.get(&runs_url).bearer_auth(TOKEN))
    })
    .await;
    let list_runs = ordinaut_bench::summary(
        "list_runs (GET /v1/runs?limit=50)",
        &lat,
        secs,
        "req_per_sec",
    );

    let tasks_url = format!("{url}/v1/tasks");
    let (lat, secs) = ordinaut_bench::load(args.clients, args.seconds, move |http, c, i| {
        expect_ok(http.post(&tasks_url).bearer_auth(TOKEN).json(&json!({
            "name": format!("t-{c}-{i}"),
            "spec": {"schedule": {"cron": "0 8 * * MON-FRI", "timezone": "Europe/Oslo"},
                "pipeline": {"steps": [{"id": "hi", "uses": "core.echo", "with": {"message": "hi"}}]}},
        })))
    })
    .await;
    let schedule_task =
        ordinaut_bench::summary("schedule_task (POST /v1/tasks)", &lat, secs, "req_per_sec");

    let result =
        json!({"clients": args.clients, "list_runs": list_runs, "schedule_task": schedule_task});
    if let Some(out) = args.out {
        std::fs::write(out, serde_json::to_string_pretty(&result).expect("json")).expect("write");
    }
    drop(store);
    db.drop_db().await;
}
