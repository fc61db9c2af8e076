//! A cluster for the dashboard's tests: the fake Kubernetes API, the operator's controllers
//! (ticking every second, so a Task's status shows its last run within seconds), a worker
//! that runs the pipelines, and the gateway with the dashboard on a free port; plus a
//! browser-like client (session cookie, CSRF token, no redirects followed). Feature
//! `dashboard`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ordinaut_gateway::GatewayConfig;
use ordinaut_kube_fake::FakeApiServer;
use ordinaut_operator::k8s::KubeSecrets;
use ordinaut_store::Store;
use ordinaut_store::testing::TestDb;
use ordinaut_worker::{Executor, Worker, WorkerConfig};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub const ADMIN: &str = "admin-token-for-dashboard-tests";
pub const WAIT: Duration = Duration::from_secs(60);

pub struct Env {
    pub fake: FakeApiServer,
    pub store: Store,
    pub url: String,
    /// Follows no redirects: tests look at them.
    pub http: reqwest::Client,
    _db: TestDb,
    stop: CancellationToken,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn worker(client: kube::Client, store: &Store, stop: &CancellationToken) {
    let secrets = Arc::new(KubeSecrets::new(client));
    let pool = ordinaut_tools::mcp::McpPool::new(ordinaut_tools::mcp::PoolConfig::default());
    let mut tools = ordinaut_tools::builtin::registry(Default::default());
    tools.set_provider(Arc::new(pool.clone()));
    let agents = Arc::new(ordinaut_worker::mcp::Agents::default());
    let sync =
        ordinaut_worker::mcp::DefinitionSync::new(store.clone(), pool, secrets, agents.clone())
            .shared();
    tokio::spawn(sync.clone().run(Duration::from_millis(500), stop.clone()));
    let config = WorkerConfig {
        worker_id: "dashboard-test".into(),
        poll_interval: Duration::from_millis(200),
        ..WorkerConfig::default()
    };
    let executor = Arc::new(Executor::new(tools, config.default_step_timeout));
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(ordinaut_worker::Metrics::new(&mut registry));
    let worker = Worker::new(store.clone(), executor, config, metrics)
        .with_agents(agents)
        .with_sync(sync);
    tokio::spawn(worker.run(stop.clone()));
}

/// Starts everything.
pub async fn start() -> Env {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (db, store) = TestDb::migrated().await.unwrap();
    let fake = FakeApiServer::new();
    for crd in ordinaut_api::crds() {
        fake.register_crd(&crd);
    }
    let client = fake.client();
    let stop = CancellationToken::new();
    crate::gateway::spawn_operator(client.clone(), &store, Duration::from_secs(1), &stop);
    worker(client.clone(), &store, &stop);
    let config = GatewayConfig {
        rate_per_second: 0.0,
        ..GatewayConfig::default()
    };
    let url = crate::gateway::serve_gateway(client, &store, ADMIN, &config, &stop).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Env {
        fake,
        store,
        url,
        http,
        _db: db,
        stop,
    }
}

/// A signed-in browser: its session cookie and the page's CSRF token.
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

/// A page as fetched: status, `Location`, body.
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookie: Option<String>,
    pub body: String,
}

/// The `content` of `<meta name="csrf-token">`.
pub fn csrf_of(body: &str) -> Option<String> {
    let at = body.find("name=\"csrf-token\" content=\"")? + 27;
    Some(body[at..].split('"').next()?.to_string())
}

impl Env {
    /// Creates an Agent with a token Secret (and `apiScopes`), waits for its projection.
    pub async fn agent(&self, ns: &str, name: &str, token: &str, api_scopes: Option<&[&str]>) {
        crate::gateway::create_agent(&self.fake, &self.store, ns, name, token, api_scopes).await;
    }

    /// A REST call with a bearer token.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let res = r.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn page_of(res: reqwest::Response) -> Page {
        let header = |k: &str| {
            res.headers()
                .get(k)
                .map(|v| v.to_str().unwrap().to_string())
        };
        let (location, set_cookie) = (header("location"), header("set-cookie"));
        Page {
            status: res.status().as_u16(),
            location,
            set_cookie,
            body: res.text().await.unwrap(),
        }
    }

    /// `GET` with an optional session cookie.
    pub async fn get(&self, path: &str, cookie: Option<&str>) -> Page {
        let mut r = self.http.get(format!("{}{path}", self.url));
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        Self::page_of(r.send().await.unwrap()).await
    }

    /// A form `POST` (`body` url-encoded by the caller).
    pub async fn post_form(&self, path: &str, cookie: Option<&str>, body: &str) -> Page {
        let mut r = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string());
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        Self::page_of(r.send().await.unwrap()).await
    }

    /// Signs in with `token` and reads the CSRF token of the overview.
    pub async fn login(&self, token: &str) -> Session {
        let p = self
            .post_form("/ui/login", None, &format!("token={token}&tz=UTC"))
            .await;
        assert_eq!(p.status, 303, "{}", p.body);
        let cookie = p.set_cookie.unwrap().split(';').next().unwrap().to_string();
        let overview = self.get("/ui", Some(&cookie)).await;
        assert_eq!(overview.status, 200, "{}", overview.body);
        let csrf = csrf_of(&overview.body).expect("the page carries a CSRF token");
        Session { cookie, csrf }
    }
}

/// A Task spec acting for `agent` that runs `core.echo` every `every`.
pub fn echo_task(agent: &str, schedule: Value) -> Value {
    json!({
        "schedule": schedule,
        "agentRef": agent,
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
