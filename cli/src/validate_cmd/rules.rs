//! The checks of `ordinaut validate`, per document: kind and apiVersion, the typed schema
//! (serde, unknown fields rejected), then the operator's own validation
//! (`ordinaut_reconcile_core::validate`: the CEL rules, schedules and timezones, durations, retry
//! policies, pipelines, and a Task's params against its pipeline's params schema), so the
//! CLI and the operator cannot disagree.

use chrono::Utc;
use ordinaut_api::constants::API_VERSION;
use ordinaut_api::{Agent, McpServer, Pipeline, PipelineSpec, Task};
use ordinaut_reconcile_core::validate;
use serde::de::DeserializeOwned;

use super::{Document, Problem, strip_location};

const KINDS: [&str; 4] = ["Task", "Pipeline", "McpServer", "Agent"];
const TOP_LEVEL: [&str; 5] = ["apiVersion", "kind", "metadata", "spec", "status"];

/// A document read into its type.
pub enum Object {
    Task(Box<Task>),
    Pipeline(Box<Pipeline>),
    McpServer(Box<McpServer>),
    Agent(Box<Agent>),
}

/// Problems of every document; Pipelines in the set resolve Tasks' `pipelineRef`s.
pub fn check_all(docs: &[Document]) -> Vec<Problem> {
    let (objects, mut problems) = read_all(docs);
    problems.extend(check_objects(&objects));
    problems
}

/// The documents that read as Ordinaut objects, and the problems of those that do not
/// (wrong kind or apiVersion, schema errors): what the API server would refuse.
pub fn read_all(docs: &[Document]) -> (Vec<(&Document, Object)>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut objects = Vec::new();
    for doc in docs {
        let mut report = |path: &str, message: String, line: Option<usize>| {
            problems.push(Problem {
                file: doc.file.clone(),
                line: line.unwrap_or_else(|| doc.lines.line_of(path)),
                path: path.to_string(),
                message,
            });
        };
        if let Some(object) = read_object(doc, &mut report) {
            objects.push((doc, object));
        }
    }
    (objects, problems)
}

/// The semantic problems of objects that read (what the operator would report in status).
pub fn check_objects(objects: &[(&Document, Object)]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (doc, object) in objects {
        let mut report = |path: String, message: String| {
            problems.push(Problem {
                file: doc.file.clone(),
                line: doc.lines.line_of(&path),
                path,
                message,
            });
        };
        check_object(object, objects, &mut report);
    }
    problems
}

/// Where `read_object` reports: path, message, and the line when serde knows it exactly.
type ReadReport<'a> = dyn FnMut(&str, String, Option<usize>) + 'a;

/// Kind, apiVersion, top-level fields and the typed read; `None` when the document is not
/// an Ordinaut object or does not read.
fn read_object(doc: &Document, report: &mut ReadReport<'_>) -> Option<Object> {
    let kind = doc.value.get("kind").and_then(|k| k.as_str());
    let api_version = doc.value.get("apiVersion").and_then(|k| k.as_str());
    let ours = api_version.is_some_and(|v| v.starts_with("ordinaut.dev/"));
    let kind = match kind {
        Some(kind) if KINDS.contains(&kind) => kind,
        // Other resources (Secrets, ConfigMaps…) may sit next to ours: not ours to judge.
        _ if !ours => return None,
        Some(other) => {
            report(
                "kind",
                format!(
                    "unknown kind `{other}`; Ordinaut kinds are {}",
                    KINDS.join(", ")
                ),
                None,
            );
            return None;
        }
        None => {
            report(
                "kind",
                format!("missing kind; one of {}", KINDS.join(", ")),
                None,
            );
            return None;
        }
    };
    if api_version != Some(API_VERSION) {
        let got = api_version.unwrap_or("nothing");
        report(
            "apiVersion",
            format!("must be `{API_VERSION}` for a {kind}, got `{got}`"),
            None,
        );
    }
    if let Some(map) = doc.value.as_mapping() {
        for key in map.keys() {
            let key = key.as_str().unwrap_or("?");
            if !TOP_LEVEL.contains(&key) {
                report(
                    key,
                    format!(
                        "unknown field `{key}`, expected one of {}",
                        TOP_LEVEL.join(", ")
                    ),
                    None,
                );
            }
        }
    }
    match kind {
        "Task" => typed::<Task>(doc, report).map(|o| Object::Task(Box::new(o))),
        "Pipeline" => typed::<Pipeline>(doc, report).map(|o| Object::Pipeline(Box::new(o))),
        "McpServer" => typed::<McpServer>(doc, report).map(|o| Object::McpServer(Box::new(o))),
        _ => typed::<Agent>(doc, report).map(|o| Object::Agent(Box::new(o))),
    }
}

fn typed<T: DeserializeOwned>(doc: &Document, report: &mut ReadReport<'_>) -> Option<T> {
    match serde_yaml::from_str::<T>(&doc.text) {
        Ok(object) => Some(object),
        Err(e) => {
            // serde_yaml writes `path: message` when the error is below the root.
            let message = strip_location(&e);
            let (path, message) = match message.split_once(": ") {
                Some((path, rest)) if is_path(path) => (path.to_string(), rest.to_string()),
                _ => ("(document)".to_string(), message),
            };
            // serde's position points at the bad key or value itself: better than the path's.
            report(&path, message, e.location().map(|l| l.line()));
            None
        }
    }
}

fn is_path(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._[]-".contains(c))
}

fn check_object(
    object: &Object,
    all: &[(&Document, Object)],
    report: &mut dyn FnMut(String, String),
) {
    let problems = match object {
        Object::Task(task) => {
            // The anchor of an RRULE without DTSTART: the creation day, or today for a
            // manifest that has not been created yet.
            let created = task
                .metadata
                .creation_timestamp
                .as_ref()
                .and_then(ordinaut_reconcile_core::time::chrono_time)
                .unwrap_or_else(Utc::now);
            let mut problems =
                validate::task_problems(&task.spec, created, referenced_pipeline(task, all));
            problems.extend(chain_cycle(task, all));
            problems
        }
        Object::Pipeline(p) => validate::pipeline_spec_problems(&p.spec, "spec"),
        Object::McpServer(m) => validate::mcp_server_problems(m.metadata.name.as_deref(), &m.spec),
        Object::Agent(a) => validate::agent_problems(&a.spec),
    };
    for p in problems {
        report(p.path, p.message);
    }
}

/// The taskFinished cycle a Task is on, among the Tasks of its namespace in the set.
fn chain_cycle(task: &Task, all: &[(&Document, Object)]) -> Option<validate::Problem> {
    let name = task.metadata.name.as_deref()?;
    let others = all.iter().filter_map(|(_, o)| match o {
        Object::Task(t) if t.metadata.namespace == task.metadata.namespace => Some((
            t.metadata.name.clone()?,
            ordinaut_reconcile_core::chains::follows(&t.spec)?.to_string(),
        )),
        _ => None,
    });
    ordinaut_reconcile_core::chains::task_cycle(name, &task.spec, others)
}

/// The Pipeline a Task's `pipelineRef` names, among the validated documents.
fn referenced_pipeline<'a>(
    task: &Task,
    all: &'a [(&Document, Object)],
) -> Option<&'a PipelineSpec> {
    let name = task.spec.pipeline_ref.as_ref()?;
    all.iter().find_map(|(_, o)| match o {
        Object::Pipeline(p)
            if p.metadata.name.as_ref() == Some(name)
                && p.metadata.namespace == task.metadata.namespace =>
        {
            Some(&p.spec)
        }
        _ => None,
    })
}
