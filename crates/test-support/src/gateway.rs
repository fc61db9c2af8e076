//! A cluster in a gateway test (feature `gateway`): the in-process fake Kubernetes API, the
//! operator's controllers on real PostgreSQL, and the gateway serving on a free port with its
//! Kubernetes write path.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use ordinaut_api::Agent;
use ordinaut_gateway::auth::Tokens;
use ordinaut_gateway::ops::Ops;
use ordinaut_gateway::writer::kube::KubeWriter;
use ordinaut_gateway::{AppState, GatewayConfig, Metrics};
use ordinaut_kube_fake::FakeApiServer;
use ordinaut_operator::k8s::controllers::{self, ControllerConfig};
use ordinaut_operator::k8s::{KubeObjects, KubeSecrets, KubeSink};
use ordinaut_operator::{AlwaysLeader, Context, MaterializeConfig};
use ordinaut_schedule::clock::SystemClock;
use ordinaut_store::Store;
use ordinaut_store::testing::TestDb;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub const ADMIN: &str = "admin-token-for-tests";
pub use crate::WAIT;

pub struct Cluster {
    pub fake: FakeApiServer,
    pub store: Store,
    pub url: String,
    pub http: reqwest::Client,
    _db: TestDb,
    stop: CancellationToken,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Starts the fake API server, the operator and the gateway.
pub async fn start(config: GatewayConfig) -> Cluster {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (db, store) = TestDb::migrated().await.unwrap();
    let fake = FakeApiServer::new();
    for crd in ordinaut_api::crds() {
        fake.register_crd(&crd);
    }
    let stop = CancellationToken::new();
    spawn_operator(fake.client(), &store, Duration::from_secs(3600), &stop);
    let url = serve_gateway(fake.client(), &store, ADMIN, &config, &stop).await;
    Cluster {
        fake,
        store,
        url,
        http: reqwest::Client::new(),
        _db: db,
        stop,
    }
}

/// Runs the operator's controllers against `client` (ticking every `tick`) until `stop`.
pub fn spawn_operator(
    client: kube::Client,
    store: &Store,
    tick: Duration,
    stop: &CancellationToken,
) {
    let ctx = Context::new(
        store.clone(),
        Arc::new(SystemClock),
        MaterializeConfig::default(),
        Arc::new(KubeObjects::new(client.clone())),
        Arc::new(KubeSink::new(client.clone(), Some("test".into()))),
        Arc::new(AlwaysLeader),
    );
    let cfg = ControllerConfig {
        tick,
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
    };
    tokio::spawn(controllers::run(client, ctx, cfg, None, stop.clone()));
}

/// Serves the gateway (admin token `admin`, writing through `client`) on a free loopback
/// port until `stop`; returns its URL.
pub async fn serve_gateway(
    client: kube::Client,
    store: &Store,
    admin: &'static str,
    config: &GatewayConfig,
    stop: &CancellationToken,
) -> String {
    let secrets = Arc::new(KubeSecrets::new(client.clone()));
    let tokens = Arc::new(Tokens::new(store.clone(), secrets, Some(admin)));
    let ops = Ops::new(
        store.clone(),
        Arc::new(KubeWriter::new(client)),
        Arc::new(SystemClock),
    );
    let mut registry = prometheus_client::registry::Registry::default();
    let state = AppState::new(ops, tokens, config, Metrics::new(&mut registry));
    let app = ordinaut_gateway::router(state, config, stop.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
            .unwrap();
    });
    url
}

/// Creates an Agent with a token Secret (and `apiScopes` when given) in the fake API, and
/// waits until the operator has projected it into `store`.
pub async fn create_agent(
    fake: &FakeApiServer,
    store: &Store,
    ns: &str,
    name: &str,
    token: &str,
    api_scopes: Option<&[&str]>,
) {
    let mut secret = Secret::default();
    secret.metadata.name = Some(format!("{name}-token"));
    secret.metadata.namespace = Some(ns.into());
    secret.data = Some([("token".to_string(), ByteString(token.as_bytes().to_vec()))].into());
    fake.insert(&secret).unwrap();
    let mut spec = json!({
        "scopes": ["core.*"],
        "tokenSecretRef": {"name": format!("{name}-token"), "key": "token"},
    });
    if let Some(s) = api_scopes {
        spec["apiScopes"] = json!(s);
    }
    let agent: Agent = serde_json::from_value(json!({
        "apiVersion": "ordinaut.dev/v1alpha1", "kind": "Agent",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }))
    .unwrap();
    fake.insert(&agent).unwrap();
    let (store, ns, name) = (store.clone(), ns.to_string(), name.to_string());
    wait_for("the Agent's projection", || {
        let (store, ns, name) = (store.clone(), ns.clone(), name.clone());
        async move { store.agent(&ns, &name).await.unwrap().is_some() }
    })
    .await;
}

/// A gateway configuration without a rate limit.
pub fn unlimited() -> GatewayConfig {
    GatewayConfig {
        rate_per_second: 0.0,
        ..GatewayConfig::default()
    }
}

impl Cluster {
    /// Creates an Agent with a token Secret (and `apiScopes` when given), and waits until
    /// the operator has projected it.
    pub async fn agent(&self, ns: &str, name: &str, token: &str, api_scopes: Option<&[&str]>) {
        create_agent(&self.fake, &self.store, ns, name, token, api_scopes).await;
    }

    /// A request with a bearer token (none when `token` is empty).
    pub fn req(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.url));
        if token.is_empty() {
            r
        } else {
            r.bearer_auth(token)
        }
    }

    /// Sends and returns status, headers and the JSON body (Null when empty).
    pub async fn send(
        &self,
        r: reqwest::RequestBuilder,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, headers, body)
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let (s, _, b) = self.send(self.req(reqwest::Method::GET, path, token)).await;
        (s, b)
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let (s, _, b) = self
            .send(self.req(reqwest::Method::POST, path, token).json(&body))
            .await;
        (s, b)
    }
}

/// A Task spec that runs `core.echo` every `every`.
pub fn echo_spec(every: &str) -> Value {
    json!({
        "schedule": {"every": every},
        "pipeline": {"steps": [{"id": "hello", "uses": "core.echo", "with": {"message": "hi"}}]},
    })
}

/// Waits until `check` holds, failing the test after [`WAIT`].
pub async fn wait_for<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    crate::until(WAIT, what, check).await
}
