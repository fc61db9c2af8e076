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
