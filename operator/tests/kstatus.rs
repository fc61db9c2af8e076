//! The statuses the operator writes, one per situation a GitOps user meets (valid, each
//! reason a person must fix, waiting for an McpServer, suspended, a spec edit not yet seen,
//! a missed run), produced by the reconcile core against real PostgreSQL and checked against
//! kstatus' rules. They are kept in `operator/tests/fixtures/statuses.json`, where
//! `scripts/chart-checks.sh` runs the Argo CD health Lua (docs/gitops.md) and kstatus' rules
//! on them: the health checks are tested on what the operator writes, not on samples written
//! by hand. Regenerate with `ORDINAUT_BLESS=1 cargo nextest run -p ordinaut-operator --test
//! kstatus` after a deliberate change.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use chrono::Duration;
use ordinaut_api::{Agent, McpServer, Pipeline, Task};
use ordinaut_operator::{DefinitionReconciler, Kind};
use ordinaut_test_support::operator::*;
use serde_json::{Value, json};

/// kstatus' generic rules for a custom resource (sigs.k8s.io/cli-utils
/// `pkg/kstatus/status`, `checkGenericProperties`): deleting → InProgress; a top-level
/// `status.observedGeneration` behind `metadata.generation` → InProgress; `Reconciling=True`
/// → InProgress; `Stalled=True` → Failed; anything else → Current. chart-checks.sh runs the
/// same rules in Python, independently, on the fixture this test writes.
fn kstatus(obj: &Value) -> &'static str {
    if obj["metadata"].get("deletionTimestamp").is_some() {
        return "InProgress";
    }
    if let (Some(generation), Some(observed)) = (
        obj["metadata"]["generation"].as_i64(),
        obj["status"]["observedGeneration"].as_i64(),
    ) && observed != generation
    {
        return "InProgress";
    }
    let conditions = obj["status"]["conditions"].as_array().cloned();
    for c in conditions.unwrap_or_default() {
        match (c["type"].as_str(), c["status"].as_str()) {
            (Some("Reconciling"), Some("True")) => return "InProgress",
            (Some("Stalled"), Some("True")) => return "Failed",
            _ => {}
        }
    }
    "Current"
}

/// The object as `kubectl get -o json` shows it, without what varies between runs (uid,
/// creation time).
fn shown(kind: &str, name: &str, generation: i64, spec: Value, status: Option<Value>) -> Value {
    let mut obj = json!({
        "apiVersion": "ordinaut.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "default", "generation": generation},
        "spec": spec,
    });
    if let Some(status) = status {
        obj["status"] = status;
    }
    obj
}

struct Case {
    name: &'static str,
    kstatus: &'static str,
    argocd: &'static str,
    object: Value,
}

fn yaml<K: serde::de::DeserializeOwned>(kind: &str, name: &str, spec: &str) -> K {
    serde_yaml::from_str(&format!(
        "apiVersion: ordinaut.dev/v1alpha1\nkind: {kind}\nmetadata: {{name: {name}, namespace: default, uid: {name}-uid, generation: 1}}\nspec:\n{spec}"
    ))
    .unwrap()
}

/// Reconciles a Task and returns it as the API server would show it.
async fn task_case(h: &Harness, name: &str, spec: &str) -> (Task, Value) {
    let mut t = task(name, "2025-03-10T00:00:00Z", spec);
    h.reconcile(&mut t).await;
    let status = h.sink.status_of(Kind::Task, "default", name);
    let obj = shown("Task", name, 1, json!(t.spec), status);
    (t, obj)
}

async fn task_cases(h: &Harness) -> Vec<Case> {
    let weather: McpServer = yaml(
        "McpServer",
        "weather",
        "  transport: {http: {url: 'http://127.0.0.1:1/mcp'}}\n",
    );
    let mut weather_found = weather.clone();
    weather_found.status = Some(
        serde_json::from_value(json!({
            "lastDiscoveryTime": "2025-03-10T10:00:00Z",
            "tools": [{"name": "forecast"}],
        }))
        .unwrap(),
    );
    h.objects.put_mcp_server(weather_found);
    h.objects.put_mcp_server(yaml(
        "McpServer",
        "fresh",
        "  transport: {http: {url: 'http://127.0.0.1:1/mcp'}}\n",
    ));
    h.objects.put_agent(yaml::<Agent>(
        "Agent",
        "bot",
        "  scopes: ['weather.*', 'fresh.*', 'gone.*']\n",
    ));
    h.objects
        .put_agent(yaml::<Agent>("Agent", "narrow", "  scopes: ['other.*']\n"));
    let uses = |agent: &str, tool: &str| {
        format!(
            "  schedule: {{every: 15m}}\n  agentRef: {agent}\n  pipeline:\n    steps: [{{id: call, uses: {tool}}}]\n"
        )
    };
    let table: Vec<(&str, &str, &str, String)> = vec![
        (
            "task-valid",
            "Current",
            "Healthy",
            format!("  schedule: {{every: 15m}}\n{ECHO}"),
        ),
        (
            "task-invalid-schedule",
            "Failed",
            "Degraded",
            format!("  schedule: {{cron: '61 * * * *'}}\n{ECHO}"),
        ),
        (
            "task-pipeline-not-found",
            "Failed",
            "Degraded",
            "  schedule: {every: 15m}\n  pipelineRef: nowhere\n".into(),
        ),
        (
            "task-agent-not-found",
            "Failed",
            "Degraded",
            format!("  schedule: {{every: 15m}}\n  agentRef: nobody\n{ECHO}"),
        ),
        (
            "task-mcp-server-not-found",
            "Failed",
            "Degraded",
            uses("bot", "gone.tool"),
        ),
        (
            "task-tool-not-found",
            "Failed",
            "Degraded",
            uses("bot", "weather.rain"),
        ),
        (
            "task-scope-denied",
            "Failed",
            "Degraded",
            uses("narrow", "weather.forecast"),
        ),
        (
            "task-tool-without-agent",
            "Failed",
            "Degraded",
            "  schedule: {every: 15m}\n  pipeline:\n    steps: [{id: call, uses: weather.forecast}]\n"
                .to_string(),
        ),
        (
            "task-waiting-for-discovery",
            "InProgress",
            "Progressing",
            uses("bot", "fresh.anything"),
        ),
        (
            "task-uses-a-discovered-tool",
            "Current",
            "Healthy",
            uses("bot", "weather.forecast"),
        ),
        (
            "task-suspended",
            "Current",
            "Suspended",
            format!("  schedule: {{every: 15m}}\n  suspend: true\n{ECHO}"),
        ),
        (
            "task-exhausted",
            "Current",
            "Healthy",
            format!("  schedule: {{at: '2025-03-10T08:00:00Z'}}\n{ECHO}"),
        ),
    ];
    let mut out = Vec::new();
    for (name, ks, argocd, spec) in table {
        let (_, object) = task_case(h, name, &spec).await;
        out.push(Case {
            name,
            kstatus: ks,
            argocd,
            object,
        });
    }
    // A spec edit the operator has not reconciled yet: generation 2, status of 1.
    let (_, mut object) = task_case(
        h,
        "task-edit-not-yet-seen",
        &format!("  schedule: {{every: 15m}}\n{ECHO}"),
    )
    .await;
    object["metadata"]["generation"] = json!(2);
    out.push(Case {
        name: "task-edit-not-yet-seen",
        kstatus: "InProgress",
        argocd: "Progressing",
        object,
    });
    // Created, no status yet: kstatus has nothing to go on and says Current (its generic
    // rules need status.observedGeneration or a condition); Argo CD waits.
    let fresh = task(
        "task-no-status-yet",
        "2025-03-10T00:00:00Z",
        &format!("  schedule: {{every: 15m}}\n{ECHO}"),
    );
    out.push(Case {
        name: "task-no-status-yet",
        kstatus: "Current",
        argocd: "Progressing",
        object: shown("Task", "task-no-status-yet", 1, json!(fresh.spec), None),
    });
    out
}

async fn definition_cases(h: &Harness) -> Vec<Case> {
    let defs = DefinitionReconciler::new(h.rec.context().clone());
    let good: Pipeline = yaml(
        "Pipeline",
        "pipeline-valid",
        "  steps: [{id: a, uses: core.echo}]\n",
    );
    defs.pipeline(&good).await.unwrap();
    let bad: Pipeline = yaml(
        "Pipeline",
        "pipeline-invalid",
        "  steps: [{id: a, uses: core.echo, if: '[['}]\n",
    );
    defs.pipeline(&bad).await.unwrap();
    // A header from a Secret that does not exist: discovery cannot start; retried.
    let secretless: McpServer = yaml(
        "McpServer",
        "mcpserver-secret-missing",
        "  transport:\n    http:\n      url: 'http://127.0.0.1:1/mcp'\n      headers: [{name: Authorization, valueFrom: {secretKeyRef: {name: absent, key: token}}}]\n",
    );
    assert!(
        defs.mcp_server(&secretless).await.is_err(),
        "a missing Secret is retried"
    );
    let status = |kind, name| h.sink.status_of(kind, "default", name);
    vec![
        Case {
            name: "pipeline-valid",
            kstatus: "Current",
            argocd: "Healthy",
            object: shown(
                "Pipeline",
                "pipeline-valid",
                1,
                json!(good.spec),
                status(Kind::Pipeline, "pipeline-valid"),
            ),
        },
        Case {
            name: "pipeline-invalid",
            kstatus: "Failed",
            argocd: "Degraded",
            object: shown(
                "Pipeline",
                "pipeline-invalid",
                1,
                json!(bad.spec),
                status(Kind::Pipeline, "pipeline-invalid"),
            ),
        },
        Case {
            name: "mcpserver-secret-missing",
            kstatus: "InProgress",
            argocd: "Progressing",
            object: shown(
                "McpServer",
                "mcpserver-secret-missing",
                1,
                json!(secretless.spec),
                status(Kind::McpServer, "mcpserver-secret-missing"),
            ),
        },
    ]
}

/// A Task whose occurrences were missed (workers down for two hours, `catchup: None`):
/// `lastRunStatus: Missed`.
async fn missed_case() -> Case {
    let h = Harness::new("2025-03-10T10:05:00Z").await;
    let mut t = task(
        "task-missed",
        "2025-03-10T00:00:00Z",
        &format!("  schedule: {{cron: '*/15 * * * *', catchup: {{policy: None}}}}\n{ECHO}"),
    );
    h.reconcile(&mut t).await;
    h.advance(Duration::hours(2));
    h.reconcile(&mut t).await;
    let status = t.status.as_ref().unwrap();
    assert_eq!(status.last_run_status.as_deref(), Some("Missed"));
    assert_eq!(status.counters.missed, 8);
    let status = h.sink.status_of(Kind::Task, "default", "task-missed");
    Case {
        name: "task-missed",
        kstatus: "Current",
        argocd: "Healthy",
        object: shown("Task", "task-missed", 1, json!(t.spec), status),
    }
}

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/statuses.json")
}

#[tokio::test]
async fn the_statuses_the_operator_writes_read_right_under_kstatus_and_match_the_fixture() {
    let h = Harness::new("2025-03-10T10:05:00Z").await;
    let mut cases = task_cases(&h).await;
    cases.extend(definition_cases(&h).await);
    cases.push(missed_case().await);

    let mut wrong = Vec::new();
    for c in &cases {
        let got = kstatus(&c.object);
        if got != c.kstatus {
            wrong.push(format!(
                "{}: kstatus {got}, expected {}: {:#}",
                c.name, c.kstatus, c.object["status"]
            ));
        }
        for cond in c.object["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert_eq!(cond["observedGeneration"], 1, "{}: {cond}", c.name);
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Each reason a Task can be stalled with is covered, with its message naming a field.
    let reason_of = |name: &str| {
        let c = cases.iter().find(|c| c.name == name).unwrap();
        let stalled = c.object["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Stalled")
            .cloned();
        stalled.map(|s| {
            (
                s["reason"].as_str().unwrap().to_string(),
                s["message"].as_str().unwrap().to_string(),
            )
        })
    };
    for (name, reason, field) in [
        (
            "task-invalid-schedule",
            "InvalidSchedule",
            "spec.schedule.cron",
        ),
        (
            "task-pipeline-not-found",
            "PipelineNotFound",
            "spec.pipelineRef",
        ),
        ("task-agent-not-found", "AgentNotFound", "spec.agentRef"),
        (
            "task-mcp-server-not-found",
            "McpServerNotFound",
            "spec.pipeline.steps[0].uses",
        ),
        (
            "task-tool-not-found",
            "ToolNotFound",
            "spec.pipeline.steps[0].uses",
        ),
        (
            "task-scope-denied",
            "ScopeDenied",
            "spec.pipeline.steps[0].uses",
        ),
        (
            "task-tool-without-agent",
            "ScopeDenied",
            "spec.pipeline.steps[0].uses",
        ),
    ] {
        let (r, message) =
            reason_of(name).unwrap_or_else(|| panic!("{name}: no Stalled condition"));
        assert_eq!(r, reason, "{name}");
        assert!(message.contains(field), "{name}: {message}");
    }
    assert_eq!(
        h.warnings().iter().filter(|w| *w == "ToolNotFound").count(),
        1,
        "one Warning per mistake"
    );

    let fixture = json!(
        cases
            .iter()
            .map(|c| json!({
                "name": c.name,
                "expect": {"kstatus": c.kstatus, "argocd": c.argocd},
                "object": c.object,
            }))
            .collect::<Vec<_>>()
    );
    let text = serde_json::to_string_pretty(&fixture).unwrap() + "\n";
    let path = fixture_path();
    if std::env::var_os("ORDINAUT_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{} differs from the statuses the operator writes now; if the change is deliberate, run \
         `ORDINAUT_BLESS=1 cargo nextest run -p ordinaut-operator --test kstatus` and commit it \
         (scripts/chart-checks.sh tests the Argo CD health check on it)",
        path.display()
    );
}
