//! Fixtures for the operator's tests (feature `operator`): a fresh database, a manual clock,
//! in-memory objects and sink, Tasks from YAML strings, and the controllers on a fake API
//! server.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use ordinaut_api::{Task, TaskStatus};
use ordinaut_operator::{
    AlwaysLeader, Context, Kind, MaterializeConfig, MemoryObjects, MemorySink, NoticeType,
    TaskOutcome, TaskReconciler,
};
use ordinaut_schedule::clock::ManualClock;
use ordinaut_store::Store;
use ordinaut_store::testing::TestDb;

pub fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

pub struct Harness {
    pub _db: TestDb,
    pub store: Store,
    pub clock: ManualClock,
    pub objects: Arc<MemoryObjects>,
    pub sink: Arc<MemorySink>,
    pub rec: TaskReconciler,
}

impl Harness {
    pub async fn new(start: &str) -> Self {
        Self::with_config(start, MaterializeConfig::default()).await
    }

    pub async fn with_config(start: &str, config: MaterializeConfig) -> Self {
        let (db, store) = TestDb::migrated().await.unwrap();
        let clock = ManualClock::new(t(start));
        let objects = Arc::new(MemoryObjects::default());
        let sink = Arc::new(MemorySink::default());
        let ctx = Context::new(
            store.clone(),
            Arc::new(clock.clone()),
            config,
            objects.clone(),
            sink.clone(),
            Arc::new(AlwaysLeader),
        );
        Self {
            _db: db,
            store,
            clock,
            objects,
            sink,
            rec: TaskReconciler::new(ctx),
        }
    }

    /// Reconciles and, like the API server, stores the written status on the object.
    pub async fn reconcile(&self, task: &mut Task) -> TaskOutcome {
        let outcome = self.rec.reconcile(task).await.unwrap();
        task.status = self.status(task);
        outcome
    }

    pub fn status(&self, task: &Task) -> Option<TaskStatus> {
        self.sink
            .status_of(
                Kind::Task,
                task.metadata.namespace.as_deref().unwrap(),
                task.metadata.name.as_deref().unwrap(),
            )
            .map(|v| serde_json::from_value(v).unwrap())
    }

    pub fn warnings(&self) -> Vec<String> {
        self.sink
            .notices()
            .into_iter()
            .filter(|(_, n)| n.type_ == NoticeType::Warning)
            .map(|(_, n)| n.reason)
            .collect()
    }

    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }

    /// `(scheduled_for, trigger)` of every queued (not leased, not done) row of `task`.
    pub async fn queued(&self, task: &Task) -> Vec<(DateTime<Utc>, String)> {
        self.store
            .task_occurrences(uid(task))
            .await
            .unwrap()
            .into_iter()
            .filter(|r| !r.3)
            .map(|r| (r.0, r.2))
            .collect()
    }

    pub async fn count(&self, task: &Task, trigger: &str) -> usize {
        self.queued(task)
            .await
            .iter()
            .filter(|r| r.1 == trigger)
            .count()
    }
}

pub fn uid(task: &Task) -> uuid::Uuid {
    uuid::Uuid::parse_str(task.metadata.uid.as_deref().unwrap()).unwrap()
}

/// A Task from the YAML of its spec (indented two spaces), created at `created`.
pub fn task(name: &str, created: &str, spec: &str) -> Task {
    let yaml = format!(
        "apiVersion: ordinaut.dev/v1alpha1\nkind: Task\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n{spec}"
    );
    let mut task: Task = serde_yaml::from_str(&yaml).unwrap();
    task.metadata.uid = Some(uuid::Uuid::new_v4().to_string());
    task.metadata.generation = Some(1);
    task.metadata.creation_timestamp = Some(ordinaut_operator::status::k8s_time(t(created)));
    task
}

/// Replaces the spec from YAML and bumps the generation, as the API server would.
pub fn edit(task: &mut Task, spec: &str) {
    let fresh = self::task("x", "2025-01-01T00:00:00Z", spec);
    task.spec = fresh.spec;
    task.metadata.generation = Some(task.metadata.generation.unwrap_or(1) + 1);
}

pub fn ready(task: &Task) -> (String, String, String) {
    let c = task
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .clone();
    (c.status, c.reason, c.message)
}

pub const ECHO: &str = "  pipeline:\n    steps: [{id: hello, uses: core.echo}]\n";

/// The controllers running against an in-process fake API server (every CRD registered) and
/// a fresh database, stopped when dropped.
pub struct Running {
    pub fake: ordinaut_kube_fake::FakeApiServer,
    pub store: Store,
    pub _db: TestDb,
    pub stop: tokio_util::sync::CancellationToken,
    pub handle: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
        self.handle.abort();
    }
}

/// A fake API server with Ordinaut's CRDs registered.
pub fn fake_api() -> ordinaut_kube_fake::FakeApiServer {
    let fake = ordinaut_kube_fake::FakeApiServer::new();
    for crd in ordinaut_api::crds() {
        fake.register_crd(&crd);
    }
    fake
}

/// Starts the controllers on `fake` with a manual clock at 2024-03-10T10:05:00Z and the
/// given `tick`; `extend` adds what a test needs to the context (Secrets, MCP pods, …).
pub async fn start_controllers(
    fake: ordinaut_kube_fake::FakeApiServer,
    tick: std::time::Duration,
    extend: impl FnOnce(Context, &kube::Client) -> Context,
) -> Running {
    use ordinaut_operator::k8s::controllers::{self, ControllerConfig};
    use ordinaut_operator::k8s::{KubeObjects, KubeSink};
    let (db, store) = TestDb::migrated().await.unwrap();
    let client = fake.client();
    let ctx = Context::new(
        store.clone(),
        Arc::new(ManualClock::new(t("2024-03-10T10:05:00Z"))),
        MaterializeConfig::default(),
        Arc::new(KubeObjects::new(client.clone())),
        Arc::new(KubeSink::new(client.clone(), Some("test".into()))),
        Arc::new(AlwaysLeader),
    );
    let ctx = extend(ctx, &client);
    let stop = tokio_util::sync::CancellationToken::new();
    let cfg = ControllerConfig {
        tick,
        backoff_base: std::time::Duration::from_millis(50),
        backoff_max: std::time::Duration::from_millis(500),
    };
    let handle = tokio::spawn(controllers::run(client, ctx, cfg, None, stop.clone()));
    Running {
        fake,
        store,
        _db: db,
        stop,
        handle,
    }
}

/// A Lease elector for `ordinaut/ordinaut-operator` on `fake`, with a 15 s lease, on `clock`.
pub fn lease_elector(
    fake: &ordinaut_kube_fake::FakeApiServer,
    clock: &ManualClock,
    id: &str,
) -> ordinaut_operator::leader::LeaseElector {
    ordinaut_operator::leader::LeaseElector::new(
        kube::Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(
            fake.client(),
            "ordinaut",
        ),
        "ordinaut-operator",
        id,
        std::time::Duration::from_secs(15),
        Arc::new(clock.clone()),
    )
}

/// An object's (as JSON) `Ready` condition: status, reason and message (message empty when
/// absent); `None` before the condition is written.
pub fn ready_condition(obj: &serde_json::Value) -> Option<(String, String, String)> {
    let c = obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?;
    Some((
        c["status"].as_str()?.to_string(),
        c["reason"].as_str()?.to_string(),
        c["message"].as_str().unwrap_or_default().to_string(),
    ))
}
