//! The directory source of `ordinaut dev`: what the Kubernetes API server and the
//! controllers' watches are in a cluster. Every cycle (500 ms) it reads the directory, parses
//! the files that changed (with `ordinaut validate`'s code, so problems are reported as
//! `file:line: field.path: message`), gives objects their identity (uid, generation,
//! creationTimestamp, kept in the database), and calls the operator's reconcile core for
//! what changed: `reconcile` for new and changed objects (and every Task on a tick),
//! `cleanup` for Tasks whose file went away.
//!
//! A file that does not parse, or an object the API server would refuse (unknown kind,
//! schema error), is reported and its last good version keeps running, as with a failed
//! `kubectl apply`. An object that reads but is invalid (a bad schedule, a missing
//! Pipeline) is reconciled: the core marks it not ready and holds its runs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ordinaut_api::{Agent, McpServer, Pipeline, Task, TaskStatus};
use ordinaut_operator::{
    DefinitionReconciler, Kind, MemoryObjects, TASK_RECONCILES_IN_FLIGHT, TaskOutcome,
    TaskReconciler,
};
use ordinaut_store::Store;
use serde_json::{Value, json};

use super::output::{Printer, until};
use super::sink::{DevSink, kind_word, ready_condition};
use crate::validate_cmd::rules::{self, Object};
use crate::validate_cmd::{self, Problem};

type Key = (Kind, String, String);

/// An object as read from a file.
#[derive(Clone)]
enum Loaded {
    Task(Box<Task>),
    Pipeline(Box<Pipeline>),
    McpServer(Box<McpServer>),
    Agent(Box<Agent>),
}

impl Loaded {
    fn meta(&self) -> &kube::api::ObjectMeta {
        match self {
            Loaded::Task(o) => &o.metadata,
            Loaded::Pipeline(o) => &o.metadata,
            Loaded::McpServer(o) => &o.metadata,
            Loaded::Agent(o) => &o.metadata,
        }
    }
    fn meta_mut(&mut self) -> &mut kube::api::ObjectMeta {
        match self {
            Loaded::Task(o) => &mut o.metadata,
            Loaded::Pipeline(o) => &mut o.metadata,
            Loaded::McpServer(o) => &mut o.metadata,
            Loaded::Agent(o) => &mut o.metadata,
        }
    }
    fn kind(&self) -> Kind {
        match self {
            Loaded::Task(_) => Kind::Task,
            Loaded::Pipeline(_) => Kind::Pipeline,
            Loaded::McpServer(_) => Kind::McpServer,
            Loaded::Agent(_) => Kind::Agent,
        }
    }
    fn spec(&self) -> Value {
        let v = match self {
            Loaded::Task(o) => serde_json::to_value(&o.spec),
            Loaded::Pipeline(o) => serde_json::to_value(&o.spec),
            Loaded::McpServer(o) => serde_json::to_value(&o.spec),
            Loaded::Agent(o) => serde_json::to_value(&o.spec),
        };
        v.unwrap_or(Value::Null)
    }
    fn key(&self) -> Key {
        let m = self.meta();
        (
            self.kind(),
            m.namespace.clone().unwrap_or_else(|| "default".into()),
            m.name.clone().unwrap_or_default(),
        )
    }
}

impl From<Object> for Loaded {
    fn from(o: Object) -> Self {
        match o {
            Object::Task(t) => Loaded::Task(t),
            Object::Pipeline(p) => Loaded::Pipeline(p),
            Object::McpServer(m) => Loaded::McpServer(m),
            Object::Agent(a) => Loaded::Agent(a),
        }
    }
}

struct FileEntry {
    text: String,
    /// The objects of its last version that read.
    objects: Vec<Loaded>,
    problems: Vec<Problem>,
}

/// An object the reconcile core has been given.
struct Live {
    object: Loaded,
    /// Spec and annotations as last reconciled (a change of either reconciles again).
    fingerprint: Value,
    file: String,
}

/// What the source was able to load, for the start line.
pub struct Loaded0 {
    pub files: usize,
    pub objects: usize,
}

/// The operator's core as the source drives it.
pub struct Core {
    pub objects: Arc<MemoryObjects>,
    pub sink: Arc<DevSink>,
    pub tasks: TaskReconciler,
    pub defs: DefinitionReconciler,
}

/// The directory source.
pub struct Source {
    dir: PathBuf,
    store: Store,
    objects: Arc<MemoryObjects>,
    sink: Arc<DevSink>,
    tasks: TaskReconciler,
    defs: DefinitionReconciler,
    printer: Arc<Printer>,
    files: BTreeMap<String, FileEntry>,
    live: BTreeMap<Key, Live>,
    /// Tasks whose last reconcile failed (retried next cycle), with the error shown.
    failing: HashMap<Key, String>,
    /// The state line last printed per object.
    shown: HashMap<Key, String>,
    duplicates: BTreeSet<Key>,
    tick: Duration,
    last_tick: Instant,
    /// Whether leftovers of earlier sessions were removed (once, after the first load).
    swept: bool,
}

impl Source {
    pub fn new(
        dir: PathBuf,
        store: Store,
        core: Core,
        printer: Arc<Printer>,
        tick: Duration,
    ) -> Self {
        Self {
            dir,
            store,
            objects: core.objects,
            sink: core.sink,
            tasks: core.tasks,
            defs: core.defs,
            printer,
            files: BTreeMap::new(),
            live: BTreeMap::new(),
            failing: HashMap::new(),
            shown: HashMap::new(),
            duplicates: BTreeSet::new(),
            tick,
            last_tick: Instant::now(),
            swept: false,
        }
    }

    /// What is loaded now.
    pub fn loaded(&self) -> Loaded0 {
        Loaded0 {
            files: self.files.len(),
            objects: self.live.len(),
        }
    }

    /// One cycle: read the directory, reconcile what changed (everything on a tick).
    pub async fn cycle(&mut self) {
        self.read_files();
        let desired = self.desired().await;
        let tick = self.last_tick.elapsed() >= self.tick;
        if tick {
            self.last_tick = Instant::now();
        }
        self.apply(desired, tick).await;
        if !self.swept {
            self.swept = true;
            self.sweep_leftovers().await;
        }
    }

    /// Tasks, McpServers and Agents a previous session left in this database but that this
    /// folder does not define are removed (their queued runs withdrawn, history kept), so
    /// the instance runs exactly what the folder says.
    async fn sweep_leftovers(&mut self) {
        let defined = |kind: Kind, ns: &str, name: &str| {
            self.live
                .contains_key(&(kind, ns.to_string(), name.to_string()))
        };
        let tasks = match self.store.live_tasks().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "listing tasks failed");
                return;
            }
        };
        let mut leftovers = Vec::new();
        for (uid, ns, name) in tasks {
            if !defined(Kind::Task, &ns, &name) {
                leftovers.push((uid, ns, name));
            }
        }
        for (uid, ns, name) in leftovers {
            if let Ok(withdrawn) = self.store.delete_task(uid).await {
                self.printer.emit(
                    "removed",
                    &format!(
                        "task {ns}/{name}: removed (left by an earlier session, not in {}; {withdrawn} queued run(s) withdrawn; history kept)",
                        self.dir.display()
                    ),
                    json!({"kind": "Task", "object": format!("{ns}/{name}"), "withdrawn": withdrawn}),
                );
            }
        }
        if let Ok(servers) = self.store.mcp_servers().await {
            for m in servers {
                if !defined(Kind::McpServer, &m.namespace, &m.name) {
                    let _ = self.store.delete_mcp_server(&m.namespace, &m.name).await;
                }
            }
        }
        if let Ok(agents) = self.store.agents().await {
            for a in agents {
                if !defined(Kind::Agent, &a.namespace, &a.name) {
                    let _ = self.store.delete_agent(&a.namespace, &a.name).await;
                }
            }
        }
    }

    fn read_files(&mut self) {
        let paths = match validate_cmd::expand(std::slice::from_ref(&self.dir)) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the directory");
                return;
            }
        };
        let mut seen = BTreeSet::new();
        for path in paths {
            let file = path.display().to_string();
            seen.insert(file.clone());
            // A file being written may be unreadable for a moment: try again next cycle.
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            if self.files.get(&file).is_some_and(|f| f.text == text) {
                continue;
            }
            self.load_file(&file, text);
        }
        let gone: Vec<String> = self
            .files
            .keys()
            .filter(|f| !seen.contains(*f))
            .cloned()
            .collect();
        for file in gone {
            self.files.remove(&file);
            self.printer.emit(
                "file.removed",
                &format!("{file}: removed"),
                json!({"file": file}),
            );
        }
    }

    fn load_file(&mut self, file: &str, text: String) {
        let (docs, mut problems) = validate_cmd::read_documents(file, &text);
        let (objects, read_problems) = rules::read_all(&docs);
        let refused = !problems.is_empty() || !read_problems.is_empty();
        problems.extend(read_problems);
        problems.extend(rules::check_objects(&objects));
        problems.sort_by(|a, b| (a.line, &a.path).cmp(&(b.line, &b.path)));
        problems.dedup();
        let loaded: Vec<Loaded> = objects.into_iter().map(|(_, o)| o.into()).collect();
        let previous = self.files.remove(file);
        let had_problems = previous.as_ref().is_some_and(|p| !p.problems.is_empty());
        let objects = if refused {
            previous.map(|p| p.objects).unwrap_or_default()
        } else {
            loaded
        };
        for p in &problems {
            self.printer.emit(
                "problem",
                &p.to_string(),
                json!({"file": p.file, "line": p.line, "path": p.path, "message": p.message}),
            );
        }
        if refused {
            let keeping = if objects.is_empty() {
                "nothing from it is loaded".to_string()
            } else {
                format!(
                    "its last good version ({} object(s)) keeps running",
                    objects.len()
                )
            };
            self.printer.emit(
                "file.refused",
                &format!("{file}: not loaded: {keeping}; fix it and save"),
                json!({"file": file, "keeping": objects.len()}),
            );
        } else if problems.is_empty() && had_problems {
            self.printer
                .emit("file.ok", &format!("{file}: ok"), json!({"file": file}));
        }
        self.files.insert(
            file.to_string(),
            FileEntry {
                text,
                objects,
                problems,
            },
        );
    }

    /// The objects the directory declares, snoozes applied.
    async fn desired(&mut self) -> BTreeMap<Key, (Loaded, String)> {
        let snoozes: HashMap<(String, String), DateTime<Utc>> = match self.store.dev_snoozes().await
        {
            Ok(s) => s
                .into_iter()
                .map(|s| ((s.namespace, s.name), s.until))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read snoozes");
                HashMap::new()
            }
        };
        let mut desired: BTreeMap<Key, (Loaded, String)> = BTreeMap::new();
        let mut duplicates = BTreeSet::new();
        for (file, entry) in &self.files {
            for object in &entry.objects {
                let key = object.key();
                if let Some((_, first)) = desired.get(&key) {
                    if !self.duplicates.contains(&key) {
                        self.printer.emit(
                            "problem",
                            &format!(
                                "{file}: {} {}/{} is also defined in {first}; the one in {first} is used",
                                kind_word(key.0),
                                key.1,
                                key.2
                            ),
                            json!({"file": file, "message": "duplicate object", "object": format!("{}/{}", key.1, key.2)}),
                        );
                    }
                    duplicates.insert(key);
                    continue;
                }
                let mut object = object.clone();
                object.meta_mut().namespace = Some(key.1.clone());
                if let Loaded::Task(t) = &mut object
                    && let Some(until) = snoozes.get(&(key.1.clone(), key.2.clone()))
                {
                    t.spec.snooze_until = Some(*until);
                }
                desired.insert(key, (object, file.clone()));
            }
        }
        self.duplicates = duplicates;
        desired
    }

    async fn apply(&mut self, desired: BTreeMap<Key, (Loaded, String)>, tick: bool) {
        let removed_definitions = self.remove_gone(&desired).await;
        let (changed, changed_definitions) = self.record_changed(desired).await;
        let definitions_changed = removed_definitions || changed_definitions;

        let keys: Vec<Key> = self.live.keys().cloned().collect();
        for key in keys.iter().filter(|k| k.0 != Kind::Task) {
            if changed.contains(key) {
                self.reconcile_definition(key).await;
            }
        }
        let wanted: Vec<(Key, bool)> = keys
            .iter()
            .filter(|k| k.0 == Kind::Task)
            .filter(|k| {
                changed.contains(*k) || definitions_changed || tick || self.failing.contains_key(*k)
            })
            .map(|k| (k.clone(), changed.contains(k)))
            .collect();
        self.reconcile_tasks(wanted).await;
    }

    /// Removes the live objects the directory no longer declares; `true` when a definition
    /// (not a Task) went.
    async fn remove_gone(&mut self, desired: &BTreeMap<Key, (Loaded, String)>) -> bool {
        let gone: Vec<Key> = self
            .live
            .keys()
            .filter(|k| !desired.contains_key(*k))
            .cloned()
            .collect();
        let mut definitions_changed = false;
        for key in gone {
            let Some(live) = self.live.remove(&key) else {
                continue;
            };
            self.shown.remove(&key);
            self.failing.remove(&key);
            self.sink.forget(key.0, &key.1, &key.2);
            if matches!(live.object, Loaded::Task(_)) {
                self.remove_task(key, live).await;
            } else {
                definitions_changed = true;
                self.remove_definition(&key, &live.object).await;
            }
        }
        definitions_changed
    }

    /// A Task gone from the directory: its queue is withdrawn (put back on failure, so the
    /// cleanup is retried next cycle).
    async fn remove_task(&mut self, key: Key, live: Live) {
        let Loaded::Task(task) = &live.object else {
            return;
        };
        let object = format!("{}/{}", key.1, key.2);
        let removed = self.tasks.cleanup(task).await;
        match removed {
            Ok(withdrawn) => self.printer.emit(
                "removed",
                &format!(
                    "task {object}: removed ({withdrawn} queued run(s) withdrawn; history kept)"
                ),
                json!({"kind": "Task", "object": object, "withdrawn": withdrawn}),
            ),
            Err(e) => {
                self.printer.emit(
                    "error",
                    &format!("task {object}: removing failed: {e}; retrying"),
                    json!({"kind": "Task", "object": object, "error": e.to_string()}),
                );
                self.live.insert(key, live);
            }
        }
    }

    /// A Pipeline, McpServer or Agent gone from the directory.
    async fn remove_definition(&mut self, key: &Key, object: &Loaded) {
        let name = format!("{}/{}", key.1, key.2);
        match object {
            Loaded::Pipeline(_) => self.objects.remove_pipeline(&key.1, &key.2),
            Loaded::McpServer(_) => {
                self.objects.remove_mcp_server(&key.1, &key.2);
                // Workers stop using it (and close its process) at their next sync.
                if let Err(e) = self.defs.mcp_server_deleted(&key.1, &key.2).await {
                    self.printer.note(&format!("mcp server {name}: {e}"));
                }
            }
            Loaded::Agent(_) => {
                self.objects.remove_agent(&key.1, &key.2);
                if let Err(e) = self.defs.agent_deleted(&key.1, &key.2).await {
                    self.printer.note(&format!("agent {name}: {e}"));
                }
            }
            Loaded::Task(_) => {}
        }
        self.printer.emit(
            "removed",
            &format!("{} {name}: removed", kind_word(key.0)),
            json!({"kind": key.0.as_str(), "object": name}),
        );
    }

    /// New or changed objects get their identity (uid, generation, creation time) and go
    /// live; returns their keys, and whether a definition (not a Task) is among them.
    async fn record_changed(
        &mut self,
        desired: BTreeMap<Key, (Loaded, String)>,
    ) -> (BTreeSet<Key>, bool) {
        let mut changed: BTreeSet<Key> = BTreeSet::new();
        let mut definitions_changed = false;
        for (key, (mut object, file)) in desired {
            let spec = object.spec();
            let fingerprint = json!({"spec": spec, "annotations": object.meta().annotations});
            if let Some(live) = self.live.get_mut(&key)
                && live.fingerprint == fingerprint
            {
                live.file = file;
                continue;
            }
            let id = match self
                .store
                .dev_identity(key.0.as_str(), &key.1, &key.2, &storable_spec(&spec))
                .await
            {
                Ok(id) => id,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot record an object's identity; retrying");
                    continue;
                }
            };
            let meta = object.meta_mut();
            meta.uid = Some(id.uid.to_string());
            meta.generation = Some(id.generation);
            meta.creation_timestamp = Some(ordinaut_operator::status::k8s_time(id.created_at));
            if key.0 != Kind::Task {
                definitions_changed = true;
            }
            changed.insert(key.clone());
            self.live.insert(
                key,
                Live {
                    object,
                    fingerprint,
                    file,
                },
            );
        }
        (changed, definitions_changed)
    }

    /// Reconciles Tasks concurrently, as the Task controller does (so their store calls are
    /// batched), and reports the outcomes in order.
    async fn reconcile_tasks(&mut self, wanted: Vec<(Key, bool)>) {
        let limit = Arc::new(tokio::sync::Semaphore::new(usize::from(
            TASK_RECONCILES_IN_FLIGHT,
        )));
        let mut running = tokio::task::JoinSet::new();
        for (i, (key, changed)) in wanted.into_iter().enumerate() {
            let Some(Live {
                object: Loaded::Task(task),
                ..
            }) = self.live.get(&key)
            else {
                continue;
            };
            let mut task = (**task).clone();
            task.status = self
                .sink
                .status_of(Kind::Task, &key.1, &key.2)
                .and_then(|s| serde_json::from_value::<TaskStatus>(s).ok());
            let (rec, limit) = (self.tasks.clone(), limit.clone());
            running.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let result = rec.reconcile(&task).await;
                (i, key, changed, task, result)
            });
        }
        let mut done = Vec::with_capacity(running.len());
        while let Some(joined) = running.join_next().await {
            match joined {
                Ok(d) => done.push(d),
                Err(e) => tracing::warn!(error = %e, "a task reconcile did not finish"),
            }
        }
        done.sort_by_key(|d| d.0);
        for (_, key, changed, task, result) in done {
            self.report_task(&key, changed, &task, result);
        }
    }

    async fn reconcile_definition(&mut self, key: &Key) {
        let Some(live) = self.live.get(key) else {
            return;
        };
        let mut object = live.object.clone();
        let status = self.sink.status_of(key.0, &key.1, &key.2);
        let result = match &mut object {
            Loaded::Pipeline(p) => {
                self.objects.put_pipeline((**p).clone());
                p.status = status.and_then(|s| serde_json::from_value(s).ok());
                self.defs.pipeline(p).await
            }
            Loaded::McpServer(m) => {
                m.status = status.and_then(|s| serde_json::from_value(s).ok());
                self.objects.put_mcp_server((**m).clone());
                let result = self.defs.mcp_server(m).await;
                // Tasks check their tools against the catalog the discovery just wrote.
                let mut discovered = (**m).clone();
                discovered.status = self
                    .sink
                    .status_of(key.0, &key.1, &key.2)
                    .and_then(|s| serde_json::from_value(s).ok());
                self.objects.put_mcp_server(discovered);
                result
            }
            Loaded::Agent(a) => {
                self.objects.put_agent((**a).clone());
                a.status = status.and_then(|s| serde_json::from_value(s).ok());
                self.defs.agent(a).await
            }
            Loaded::Task(_) => return,
        };
        let object_name = format!("{}/{}", key.1, key.2);
        let word = kind_word(key.0);
        match result {
            Ok(valid) => {
                let message = self
                    .sink
                    .status_of(key.0, &key.1, &key.2)
                    .and_then(|s| ready_condition(&s))
                    .map(|(_, reason, message)| format!("{reason}: {message}"))
                    .unwrap_or_default();
                let line = if valid {
                    format!("{word} {object_name}: valid")
                } else {
                    format!("{word} {object_name}: not valid: {message}")
                };
                self.printer.emit(
                    "object",
                    &line,
                    json!({"kind": key.0.as_str(), "object": object_name, "valid": valid, "message": message}),
                );
            }
            Err(e) => self.printer.emit(
                "error",
                &format!("{word} {object_name}: {e}"),
                json!({"kind": key.0.as_str(), "object": object_name, "error": e.to_string()}),
            ),
        }
    }

    fn report_task(
        &mut self,
        key: &Key,
        changed: bool,
        task: &Task,
        result: Result<TaskOutcome, ordinaut_operator::ReconcileError>,
    ) {
        let object = format!("{}/{}", key.1, key.2);
        match result {
            Ok(outcome) => {
                self.failing.remove(key);
                let status = self.sink.status_of(Kind::Task, &key.1, &key.2);
                let (state, line, fields) = describe(task, &outcome, status.as_ref());
                if changed || self.shown.get(key) != Some(&state) {
                    let mut fields = fields;
                    fields["object"] = json!(object);
                    fields["generation"] = json!(task.metadata.generation);
                    self.printer
                        .emit("task", &format!("task {object}: {line}"), fields);
                    self.shown.insert(key.clone(), state);
                }
            }
            Err(e) => {
                let message = e.to_string();
                if self.failing.get(key) != Some(&message) {
                    self.printer.emit(
                        "error",
                        &format!("task {object}: {message}; retrying"),
                        json!({"object": object, "error": message}),
                    );
                }
                self.failing.insert(key.clone(), message);
            }
        }
    }
}

/// (state for change detection, text, JSON fields) of a reconciled Task.
fn describe(task: &Task, outcome: &TaskOutcome, status: Option<&Value>) -> (String, String, Value) {
    let condition = status.and_then(ready_condition);
    let schedule = task.spec.schedule.summary().unwrap_or_default();
    match outcome {
        TaskOutcome::Ready {
            next_run_time: Some(next),
            ..
        } => {
            let tz: chrono_tz::Tz = task
                .spec
                .schedule
                .timezone
                .parse()
                .unwrap_or(chrono_tz::UTC);
            let local = next
                .with_timezone(&tz)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let snoozed = task
                .spec
                .snooze_until
                .filter(|t| *t > Utc::now())
                .map(|t| {
                    format!(
                        " (snoozed until {})",
                        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    )
                })
                .unwrap_or_default();
            (
                format!("ready{snoozed}"),
                format!(
                    "ready, {schedule}, next run {local} ({}){snoozed}",
                    until(*next, Utc::now())
                ),
                json!({"ready": true, "schedule": schedule, "nextRunTime": next}),
            )
        }
        TaskOutcome::Ready { .. } => {
            let (reason, message) = condition
                .map(|(_, r, m)| (r, m))
                .unwrap_or_else(|| ("Valid".into(), "no run is coming".into()));
            (
                format!("ready:{reason}"),
                format!("ready, {schedule}, no run coming: {message}"),
                json!({"ready": true, "schedule": schedule, "reason": reason, "message": message}),
            )
        }
        TaskOutcome::Invalid { reason } => {
            let message = condition.map(|(_, _, m)| m).unwrap_or_default();
            (
                format!("invalid:{reason}:{message}"),
                format!("not ready: {reason}: {message}"),
                json!({"ready": false, "reason": reason, "message": message}),
            )
        }
        TaskOutcome::Follower => (
            "follower".into(),
            "not reconciled (not the leader)".into(),
            json!({"ready": false}),
        ),
    }
}

/// The directory must exist before anything starts.
pub fn check_dir(dir: &Path) -> Result<(), String> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(format!(
            "{}: no such directory; give the folder of your Task, Pipeline, McpServer and Agent YAML",
            dir.display()
        ))
    }
}

/// `spec` with NUL characters written as `\0` (keys too): PostgreSQL cannot store U+0000,
/// and the identity row only tells one version of a spec from the next. The object itself
/// keeps its text, so validation refuses it, naming the field (Ready=False), instead of the
/// identity being retried forever.
fn storable_spec(spec: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    let clean = |s: &str| s.replace('\0', "\\0");
    match spec {
        Value::String(s) if s.contains('\0') => Value::String(clean(s)),
        Value::Array(items) => Value::Array(items.iter().map(storable_spec).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (clean(k), storable_spec(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}
