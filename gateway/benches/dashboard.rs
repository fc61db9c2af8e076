//! How long the dashboard's overview takes for 1,000 Tasks, over HTTP as a browser asks for
//! it (session cookie, `GET /ui`): 1,000 Task projections with statuses in a fresh database,
//! then 30 timed requests after 3 warm-ups. Also times the reads alone (`list_tasks`, two
//! pages of 500) to show what the rendering adds.
//!
//! `cargo bench -p ordinaut-gateway --bench dashboard` (PostgreSQL as for the tests).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use ordinaut_gateway::auth::{Identity, Tokens};
use ordinaut_gateway::ops::types::ListTasksInput;
use ordinaut_gateway::ops::{Call, Ops};
use ordinaut_gateway::writer::dir::DirWriter;
use ordinaut_gateway::{AppState, GatewayConfig, Metrics};
use ordinaut_schedule::clock::SystemClock;
use ordinaut_store::TaskProjection;
use ordinaut_store::testing::TestDb;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const TASKS: usize = 1000;
const ROUNDS: usize = 30;
const ADMIN: &str = "bench-admin-token";

async fn seed(store: &ordinaut_store::Store) {
    let now = Utc::now();
    for i in 0..TASKS {
        let (kind, expr) = match i % 3 {
            0 => ("cron", "0 8 * * MON-FRI"),
            1 => ("every", "15m"),
            _ => ("rrule", "FREQ=DAILY;BYHOUR=3"),
        };
        let spec = json!({
            "schedule": {kind: expr, "timezone": "Europe/Berlin"},
            "agentRef": format!("agent-{}", i % 7),
            "pipeline": {"steps": [{"id": "s", "uses": "core.echo", "with": {"message": "hi"}}]},
        });
        let p = TaskProjection {
            uid: uuid::Uuid::new_v4(),
            namespace: format!("team-{}", i % 5),
            name: format!("task-{i:04}"),
            generation: 1,
            spec,
            schedule_kind: kind.into(),
            schedule: expr.into(),
            timezone: "Europe/Berlin".into(),
            next_run_at: Some(now + TimeDelta::minutes(i as i64 % 600)),
            materialized_until: None,
            suspended: i % 50 == 0,
            snooze_until: None,
            priority: 0,
            concurrency_policy: "Allow".into(),
        };
        store.upsert_task(&p).await.unwrap();
        let ready = i % 33 != 0;
        let status = json!({
            "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
                "reason": if ready {"Scheduled"} else {"InvalidSpec"},
                "message": if ready {"scheduled"} else {"spec.schedule.cron: not a cron expression"}}],
            "lastRunStatus": if i % 20 == 0 {"Failed"} else {"Succeeded"},
            "lastRunId": uuid::Uuid::new_v4().to_string(),
            "lastRunTime": now.to_rfc3339(),
        });
        sqlx::query("UPDATE tasks SET status = $1 WHERE uid = $2")
            .bind(&status)
            .bind(p.uid)
            .execute(store.pool())
            .await
            .unwrap();
    }
}

fn summary(label: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label}: min {:.1} ms, median {:.1} ms, p95 {:.1} ms, max {:.1} ms ({} rounds)",
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() * 95 / 100]),
        ms(times[times.len() - 1]),
        times.len()
    );
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (_db, store) = TestDb::migrated().await.unwrap();
    seed(&store).await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = Arc::new(ordinaut_tools::secrets::DirSecrets::new(
        dir.path().join("secrets"),
    ));
    let tokens = Arc::new(Tokens::new(store.clone(), secrets, Some(ADMIN)));
    let ops = Ops::new(
        store.clone(),
        Arc::new(DirWriter::new(dir.path())),
        Arc::new(SystemClock),
    );
    let config = GatewayConfig {
        rate_per_second: 0.0,
        ..GatewayConfig::default()
    };
    let mut registry = prometheus_client::registry::Registry::default();
    let state = AppState::new(ops, tokens, &config, Metrics::new(&mut registry));
    let ops = state.ops.clone();
    let stop = CancellationToken::new();
    let app = ordinaut_gateway::router(state, &config, stop.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http
        .post(format!("{url}/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={ADMIN}&tz=Europe%2FBerlin"))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();

    let call = Call {
        who: Identity::admin(),
        correlation_id: "bench".into(),
    };
    let mut reads = Vec::new();
    let mut pages = Vec::new();
    let mut size = 0;
    for round in 0..ROUNDS + 3 {
        let t = Instant::now();
        let first = ops
            .list_tasks(
                &call,
                ListTasksInput {
                    limit: Some(500),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let input = ListTasksInput {
            limit: Some(500),
            cursor: first.next_cursor,
            ..Default::default()
        };
        ops.list_tasks(&call, input).await.unwrap();
        let read = t.elapsed();
        let t = Instant::now();
        let res = http
            .get(format!("{url}/ui"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body = res.text().await.unwrap();
        let page = t.elapsed();
        assert_eq!(
            body.matches("data-task=\"team-").count(),
            TASKS,
            "every Task is listed"
        );
        size = body.len();
        if round >= 3 {
            reads.push(read);
            pages.push(page);
        }
    }
    println!(
        "dashboard overview, {TASKS} Tasks, page of {} KiB",
        size / 1024
    );
    summary("GET /ui (read, sort, render, send)", pages);
    summary("list_tasks alone (2 pages of 500)", reads);
    stop.cancel();
}
