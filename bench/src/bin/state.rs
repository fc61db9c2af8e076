//! Agent memory through the gateway's REST API: requests per second and latency percentiles
//! of `PUT /v1/state/…` (an unconditional write: row lock, history row, audit entry and
//! `state.changed` outbox event in one transaction), `GET /v1/state/…` of existing keys, and
//! compare-and-set writes racing on one key (each client reads, then writes with the version
//! it read; conflicts counted), each for a fixed time with C concurrent clients holding one
//! Agent's token. The gateway runs in-process on a real socket with its real router and
//! PostgreSQL.
//!
//! Usage: state [--database-url ADMIN_URL] [--seconds S] [--clients C] [--keys K] [--out FILE]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ordinaut_store::Store;
use ordinaut_test_support::ScratchDb;
use serde_json::{Value, json};

const TOKEN: &str = "bench-agent-token";

struct Args {
    admin_url: String,
    seconds: u64,
    clients: usize,
    keys: usize,
    out: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args {
        admin_url: ordinaut_bench::database_url(),
        seconds: 10,
        clients: 16,
        keys: 1000,
        out: None,
    };
    ordinaut_bench::flags(|f, v| {
        match f {
            "--database-url" => a.admin_url = v,
            "--seconds" => a.seconds = ordinaut_bench::parsed(f, &v),
            "--clients" => a.clients = ordinaut_bench::parsed(f, &v),
            "--keys" => a.keys = ordinaut_bench::parsed(f, &v),
            "--out" => a.out = Some(v),
            _ => return false,
        }
        true
    });
    a
}

/// Serves the gateway on a free port for Agent `bench/bot`; returns its URL.
async fn serve(store: Store) -> String {
    let spec =
        json!({"tokenSecretRef": {"name": "bot-token", "key": "token"}, "scopes": ["core.*"]});
    store
        .upsert_agent("bench", "bot", 1, &spec)
        .await
        .expect("agent");
    ordinaut_bench::serve_gateway(store, TOKEN).await
}

async fn send(r: reqwest::RequestBuilder, ok: &[u16]) -> (u16, Value) {
    let resp = r.bearer_auth(TOKEN).send().await.expect("request");
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    assert!(ok.contains(&status), "status {status}: {body}");
    (status, body)
}

/// Unconditional writes, reads of existing keys, then compare-and-set races on one key.
async fn phases(url: &str, args: &Args) -> Value {
    let keys = args.keys;
    let base = format!("{url}/v1/state/bench/agent:bot");
    let b = base.clone();
    let (lat, secs) = ordinaut_bench::load(args.clients, args.seconds, move |http, c, i| {
        let url = format!("{b}/bench/k{}", (c * 7919 + i) % keys);
        async move {
            let body = json!({"value": {"client": c, "i": i, "pad": "x".repeat(200)}});
            send(http.put(url).json(&body), &[200]).await;
        }
    })
    .await;
    let put = ordinaut_bench::summary("state put (PUT /v1/state/…)", &lat, secs, "per_sec");

    let b = base.clone();
    let (lat, secs) = ordinaut_bench::load(args.clients, args.seconds, move |http, c, i| {
        let url = format!("{b}/bench/k{}", (c * 7919 + i) % keys);
        async move {
            send(http.get(url), &[200, 404]).await;
        }
    })
    .await;
    let get = ordinaut_bench::summary("state get (GET /v1/state/…)", &lat, secs, "per_sec");

    let conflicts = Arc::new(AtomicU64::new(0));
    let lost = conflicts.clone();
    let url = format!("{base}/contended");
    send(
        reqwest::Client::new().put(&url).json(&json!({"value": 0})),
        &[200],
    )
    .await;
    let (lat, secs) = ordinaut_bench::load(args.clients, args.seconds, move |http, _, _| {
        let (url, lost) = (url.clone(), lost.clone());
        async move {
            let (_, got) = send(http.get(&url), &[200]).await;
            let next = json!({"value": got["value"].as_i64().unwrap_or(0) + 1,
                "ifVersion": got["version"]});
            let (status, _) = send(http.put(&url).json(&next), &[200, 409]).await;
            if status == 409 {
                lost.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
    .await;
    let mut cas = ordinaut_bench::summary(
        "compare-and-set read+write on one key",
        &lat,
        secs,
        "per_sec",
    );
    let conflicts = conflicts.load(Ordering::Relaxed);
    cas["conflicts"] = json!(conflicts);
    let wins = lat.len() as u64 - conflicts;
    cas["wins"] = json!(wins);
    // Each winner added one to the value it read: with compare-and-set, the value counts
    // the wins exactly (a lost update would leave it short).
    let (_, last) = send(
        reqwest::Client::new().get(format!("{base}/contended")),
        &[200],
    )
    .await;
    eprintln!(
        "  {wins} won, {conflicts} conflicts; the value is {}",
        last["value"]
    );
    assert_eq!(last["value"].as_u64(), Some(wins), "lost updates");
    json!({"clients": args.clients, "keys": keys, "put": put, "get": get, "cas_one_key": cas})
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let db = ScratchDb::create(&args.admin_url, "ordinaut_bench_state", 20).await;
    let store = db.store.clone();
    let url = serve(store.clone()).await;
    let result = phases(&url, &args).await;
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_string_pretty(&result).expect("json")).expect("write");
    }
    drop(store);
    db.drop_db().await;
}
