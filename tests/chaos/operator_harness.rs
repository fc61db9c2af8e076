//! The operator scenarios' harness: the fake Kubernetes API served over HTTP (each operator
//! process on a listener of its own, which the scenario can stall), a private database and
//! Redis, real `ordinaut-operator` processes, a memory sampler, and the check that every
//! Task has exactly the occurrences its schedule gives up to its materialized horizon.

use chrono::{DateTime, Duration as ChronoDuration, DurationRound, Utc};
use ordinaut_api::{Pipeline, Task};
use ordinaut_kube_fake::{FakeApiServer, Stall};
use ordinaut_store::Store;
use ordinaut_test_support::net::http_get;
use ordinaut_test_support::{PrivateRedis, TestDb, count, free_port};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Whether the full form runs (`ORDINAUT_CHAOS_FULL=1`); else the short form CI runs.
pub fn full() -> bool {
    std::env::var("ORDINAUT_CHAOS_FULL").is_ok_and(|v| v == "1")
}

/// How far ahead the operators queue occurrences.
pub const HORIZON: &str = "6h";
/// The Lease duration (renew deadline: two thirds of it).
pub const LEASE: &str = "4s";

/// The world of an operator scenario.
pub struct Cluster {
    pub fake: FakeApiServer,
    pub db: TestDb,
    pub store: Store,
    pub redis: PrivateRedis,
    dir: PathBuf,
    /// Every Task's schedule starts here (in the future, so no occurrence falls due, or is
    /// missed, while the scenario runs): the grid the check compares with.
    pub start_at: DateTime<Utc>,
    pids: Arc<Mutex<Vec<u32>>>,
    mem_peak_kib: Arc<AtomicU64>,
    sampling: Arc<AtomicBool>,
}

impl Cluster {
    pub async fn new() -> Self {
        let (db, store) = TestDb::migrated().await.expect("database");
        let fake = FakeApiServer::new();
        for crd in ordinaut_api::crds() {
            fake.register_crd(&crd);
        }
        let pipeline: Pipeline = serde_yaml::from_str(
            "apiVersion: ordinaut.dev/v1alpha1\nkind: Pipeline\nmetadata: {name: shared, namespace: default}\nspec:\n  steps: [{id: hello, uses: core.echo, with: {msg: hi}}]\n",
        )
        .expect("pipeline");
        fake.insert(&pipeline).expect("insert pipeline");
        let dir = std::env::temp_dir().join(format!("ordinaut-chaos-op-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let start_at = (Utc::now() + ChronoDuration::minutes(30))
            .duration_trunc(ChronoDuration::minutes(1))
            .expect("trunc");
        let cluster = Self {
            fake,
            db,
            store,
            redis: PrivateRedis::start(),
            dir,
            start_at,
            pids: Arc::default(),
            mem_peak_kib: Arc::default(),
            sampling: Arc::new(AtomicBool::new(true)),
        };
        cluster.sample_memory();
        cluster
    }

    /// Applies `n` Tasks `t0..` running the shared Pipeline `every` from `start_at`.
    pub fn apply_tasks(&self, n: usize, every: &str) {
        for i in 0..n {
            let task: Task = serde_yaml::from_str(&format!(
                "apiVersion: ordinaut.dev/v1alpha1\nkind: Task\nmetadata: {{name: t{i}, namespace: default}}\nspec:\n  schedule: {{every: {every}, startAt: '{}'}}\n  pipelineRef: shared\n",
                self.start_at.to_rfc3339()
            ))
            .expect("task");
            self.fake.insert(&task).expect("insert task");
        }
    }

    /// Starts an operator process named `id` on a listener of its own.
    pub async fn start_operator(&self, id: &str) -> Operator {
        let (addr, stall) = self.fake.serve_http_stallable().await.expect("serve");
        let kubeconfig = self.dir.join(format!("kubeconfig-{id}"));
        std::fs::write(
            &kubeconfig,
            ordinaut_kube_fake::kubeconfig_for(addr, "default"),
        )
        .expect("kubeconfig");
        let port = free_port();
        let log = self.dir.join(format!("{id}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_ordinaut-operator"))
            .args([
                "--database-url",
                &self.db.url,
                "--redis-url",
                &self.redis.url(),
            ])
            .args(["--listen-addr", &format!("127.0.0.1:{port}")])
            .args(["--identity", id, "--lease-duration", LEASE])
            .args(["--horizon", HORIZON, "--missed-after", "1h"])
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start ordinaut-operator");
        self.pids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(child.id());
        Operator {
            child,
            port,
            stall,
            log,
        }
    }

    fn sample_memory(&self) {
        let (pids, peak, on) = (
            self.pids.clone(),
            self.mem_peak_kib.clone(),
            self.sampling.clone(),
        );
        std::thread::spawn(move || {
            while on.load(Ordering::SeqCst) {
                let now: Vec<u32> = pids.lock().unwrap_or_else(PoisonError::into_inner).clone();
                for pid in now {
                    if let Some(kib) = rss_kib(pid) {
                        peak.fetch_max(kib, Ordering::SeqCst);
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
    }

    /// The operators' highest resident set so far, in MiB.
    pub fn mem_mib(&self) -> f64 {
        self.mem_peak_kib.load(Ordering::SeqCst) as f64 / 1024.0
    }

    /// How many Tasks in the fake are Ready at their current generation.
    pub fn ready_tasks(&self) -> usize {
        self.fake
            .objects::<Task>()
            .iter()
            .filter(|o| {
                let generation = &o["metadata"]["generation"];
                o["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c["type"] == "Ready"
                            && c["status"] == "True"
                            && (c["observedGeneration"].is_null()
                                || c["observedGeneration"] == *generation)
                    })
                })
            })
            .count()
    }

    /// Live Task projections with a horizon, at generation `generation`.
    pub async fn materialized(&self, generation: i64) -> i64 {
        count(
            &self.store,
            &format!(
                "SELECT count(*) FROM tasks WHERE deleted_at IS NULL \
                 AND materialized_until IS NOT NULL AND generation = {generation}"
            ),
        )
        .await
    }

    /// Compares every live Task's queued occurrences with the grid `start_at + k * every`
    /// up to its `materialized_until`; `deleted` names must have no live projection and
    /// nothing queued.
    pub async fn check(&self, every: ChronoDuration, deleted: &BTreeSet<String>) -> Check {
        type Row = (String, Option<DateTime<Utc>>, Vec<DateTime<Utc>>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT t.name, t.materialized_until, \
                    coalesce(array_agg(d.scheduled_for ORDER BY d.scheduled_for) \
                             FILTER (WHERE d.id IS NOT NULL), '{}') \
             FROM tasks t LEFT JOIN due_work d ON d.task_uid = t.uid AND d.done_at IS NULL \
             WHERE t.deleted_at IS NULL GROUP BY t.uid, t.name, t.materialized_until",
        )
        .fetch_all(self.store.pool())
        .await
        .expect("occurrences");
        let mut c = Check::default();
        let mut live: HashMap<String, usize> = HashMap::new();
        for (name, until, present) in rows {
            *live.entry(name.clone()).or_default() += 1;
            if deleted.contains(&name) {
                c.revived += 1;
                continue;
            }
            let until = until.unwrap_or(self.start_at - ChronoDuration::seconds(1));
            let expected: BTreeSet<DateTime<Utc>> = (0..)
                .map(|k| self.start_at + every * k)
                .take_while(|t| *t <= until)
                .collect();
            let present: BTreeSet<DateTime<Utc>> = present.into_iter().collect();
            c.due += expected.len() as i64;
            c.queued += expected.intersection(&present).count() as i64;
            c.lost += expected.difference(&present).count() as i64;
            c.doubled += present.difference(&expected).count() as i64;
        }
        c.doubled += live.values().map(|n| (*n as i64) - 1).sum::<i64>();
        c.revived += count(
            &self.store,
            &format!(
                "SELECT count(*) FROM due_work d JOIN tasks t ON t.uid = d.task_uid \
                 WHERE t.deleted_at IS NOT NULL AND d.done_at IS NULL AND t.name = ANY('{{{}}}')",
                deleted.iter().cloned().collect::<Vec<_>>().join(",")
            ),
        )
        .await;
        c.tasks = live.len() as i64;
        c
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.sampling.store(false, Ordering::SeqCst);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The outcome of [`Cluster::check`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Check {
    /// Live Task projections.
    pub tasks: i64,
    /// Occurrences the schedules give up to the materialized horizons.
    pub due: i64,
    /// Of those, queued.
    pub queued: i64,
    /// Of those, missing.
    pub lost: i64,
    /// Queued although not on the schedule (or twice).
    pub doubled: i64,
    /// Deleted Tasks with a live projection or a queued occurrence.
    pub revived: i64,
}

impl Check {
    /// Prints the scenario's line, in the format of the worker scenarios: `ran` is what the
    /// operator queued; `overlapped` the writes of a second leader that took effect (deleted
    /// Tasks revived); `max lag` how long the operators took to steady state after the fault.
    pub fn print(&self, scenario: &str, lag: Duration, mem_mib: f64, extra: &str) {
        println!(
            "chaos {scenario:<28} due={} ran={} lost={} doubled={} overlapped={} max_lag={:.2}s mem_hwm={:.1}MiB {extra}",
            self.due,
            self.queued,
            self.lost,
            self.doubled,
            self.revived,
            lag.as_secs_f64(),
            mem_mib
        );
    }

    /// The goal: nothing lost, doubled or revived.
    pub fn assert_goal(&self) {
        assert_eq!(
            (self.lost, self.doubled, self.revived),
            (0, 0, 0),
            "lost, doubled, revived: {self:?}"
        );
        assert!(self.due > 0, "nothing was due: {self:?}");
    }
}

/// A running `ordinaut-operator` process.
pub struct Operator {
    child: Child,
    pub port: u16,
    /// Stalls this operator's connection to the API server.
    pub stall: Stall,
    log: PathBuf,
}

impl Operator {
    /// SIGKILL, and waits for the process to go.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last lines of its log (for a failure message).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// A metric of its `/metrics` (`ordinaut_operator_<name>`), if it answers.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let body = http_get(self.port, "/metrics").await;
        let wanted = format!("ordinaut_operator_{name} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&wanted))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Task reconciles that got past the leadership check and finished (outcome `ready` or
    /// `error`, a refused write among them), per its `/metrics`.
    pub async fn task_reconciles_done(&self) -> f64 {
        http_get(self.port, "/metrics")
            .await
            .lines()
            .filter(|l| {
                l.starts_with("ordinaut_operator_reconciles_total{")
                    && l.contains("kind=\"Task\"")
                    && (l.contains("outcome=\"ready\"") || l.contains("outcome=\"error\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Whether `/readyz` answers 200.
    pub async fn ready(&self) -> bool {
        http_get(self.port, "/readyz")
            .await
            .starts_with("HTTP/1.1 200")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
