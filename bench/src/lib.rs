//! Shared helpers for Ordinaut benchmark binaries.

use std::process::{Child, Command};

/// The PostgreSQL server the benchmarks create their scratch databases on:
/// `ORDINAUT_BENCH_DATABASE_URL`, else the local default.
pub fn database_url() -> String {
    std::env::var("ORDINAUT_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Reads the command line as `--flag value` pairs, handing each to `set`, which answers
/// whether it knows the flag; an unknown flag stops the benchmark naming it.
pub fn flags(mut set: impl FnMut(&str, String) -> bool) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        assert!(set(&pair[0], value), "unknown argument {}", pair[0]);
    }
}

/// `value` parsed, or the benchmark stops naming `flag` and what it expects.
pub fn parsed<T: std::str::FromStr>(flag: &str, value: &str) -> T {
    value
        .parse()
        .unwrap_or_else(|_| panic!("{flag}: cannot read `{value}`"))
}

/// Worker processes, sent SIGTERM and waited for when dropped.
pub struct Workers(pub Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

/// One token for every Secret an Agent names, as its Secret would hold it.
pub struct OneSecret(pub &'static str);

#[async_trait::async_trait]
impl ordinaut_tools::secrets::SecretSource for OneSecret {
    async fn get(&self, _: &str, _: &str, _: &str) -> Result<Option<String>, String> {
        Ok(Some(self.0.into()))
    }
}

/// Serves the gateway on a free local port over `store` (every Agent's token is `token`; no
/// rate limit; Task writes go to an in-process fake API server), returning its base URL.
pub async fn serve_gateway(store: ordinaut_store::Store, token: &'static str) -> String {
    use ordinaut_gateway::{AppState, GatewayConfig, Metrics};
    use std::sync::Arc;
    let fake = ordinaut_kube_fake::FakeApiServer::new();
    for crd in ordinaut_api::crds() {
        fake.register_crd(&crd);
    }
    let tokens = Arc::new(ordinaut_gateway::auth::Tokens::new(
        store.clone(),
        Arc::new(OneSecret(token)),
        None,
    ));
    tokens.refresh().await.expect("tokens");
    let config = GatewayConfig {
        rate_per_second: 0.0,
        ..GatewayConfig::default()
    };
    let ops = ordinaut_gateway::ops::Ops::new(
        store,
        Arc::new(ordinaut_gateway::writer::kube::KubeWriter::new(
            fake.client(),
        )),
        Arc::new(ordinaut_schedule::clock::SystemClock),
    );
    let mut registry = prometheus_client::registry::Registry::default();
    let state = AppState::new(ops, tokens, &config, Metrics::new(&mut registry));
    let app = ordinaut_gateway::router(state, &config, Default::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        // Keep the fake alive as long as the server.
        let _fake = fake;
        axum::serve(listener, app).await.expect("serve");
    });
    url
}

/// `clients` loops running `op(client, c, i)` (client number `c`, its `i`th call) for
/// `seconds`; the latencies in microseconds, sorted, and the seconds it took.
pub async fn load<F, Fut>(clients: usize, seconds: u64, op: F) -> (Vec<u64>, f64)
where
    F: Fn(reqwest::Client, usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    use std::time::{Duration, Instant};
    let op = std::sync::Arc::new(op);
    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    let mut handles = Vec::new();
    for c in 0..clients {
        let op = op.clone();
        handles.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut lat = Vec::new();
            let mut i = 0;
            while Instant::now() < until {
                let t = Instant::now();
                op(http.clone(), c, i).await;
                lat.push(t.elapsed().as_micros() as u64);
                i += 1;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("client"));
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    (all, elapsed)
}

/// Prints and returns (as JSON) a load's count, rate (under `rate_key`), p50 and p99.
pub fn summary(name: &str, lat: &[u64], elapsed: f64, rate_key: &str) -> serde_json::Value {
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1000.0;
    let rps = lat.len() as f64 / elapsed;
    eprintln!(
        "{name}: {} requests in {elapsed:.1} s = {rps:.0}/s; p50 {:.1} ms, p99 {:.1} ms",
        lat.len(),
        pct(0.50),
        pct(0.99)
    );
    serde_json::json!({"requests": lat.len(), "seconds": elapsed, rate_key: rps,
        "p50_ms": pct(0.50), "p99_ms": pct(0.99)})
}
