//! `ordinaut dev`'s write path: Task manifests in the watched folder. A new Task goes to
//! `DIR/agents/<namespace>/<agent>/<task>.yaml` (`_admin` for Tasks without an Agent); a
//! change or deletion goes to the file that defines the Task, wherever it is in the folder
//! (a multi-document file is written back document by document: its comments are lost).
//! Files are replaced atomically (a temporary file renamed over), so the folder watcher
//! never reads half a file.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use ordinaut_api::Task;
use serde_json::Value;
use tokio::sync::Mutex;

use super::{AGENT_LABEL, TaskWriter, WriteError, manifest};

/// Writes Task manifests under a folder.
pub struct DirWriter {
    root: PathBuf,
    /// One write at a time: a read-modify-write of a file must not interleave with another.
    lock: Mutex<()>,
}

/// Where a Task is defined: the file, its documents, and which one is the Task.
struct Found {
    path: PathBuf,
    docs: Vec<Value>,
    index: usize,
}

impl DirWriter {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            lock: Mutex::new(()),
        }
    }

    /// The file a new Task is written to.
    pub fn path_for(&self, namespace: &str, agent: Option<&str>, name: &str) -> PathBuf {
        self.root
            .join("agents")
            .join(namespace)
            .join(agent.unwrap_or("_admin"))
            .join(format!("{name}.yaml"))
    }

    fn find(&self, namespace: &str, name: &str) -> Result<Option<Found>, WriteError> {
        let mut files = Vec::new();
        walk(&self.root, &mut files)
            .map_err(|e| WriteError::Failed(format!("cannot list {}: {e}", self.root.display())))?;
        for path in files {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let docs = read_docs(&text);
            if let Some(index) = docs.iter().position(|d| is_task(d, namespace, name)) {
                return Ok(Some(Found { path, docs, index }));
            }
        }
        Ok(None)
    }
}

fn is_task(doc: &Value, namespace: &str, name: &str) -> bool {
    let meta = &doc["metadata"];
    doc["kind"] == "Task"
        && doc["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("ordinaut.dev/"))
        && meta["name"] == name
        && meta["namespace"].as_str().unwrap_or("default") == namespace
}

/// The documents of a YAML file as JSON (documents that do not read are skipped: the
/// folder watcher reports them).
fn read_docs(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .filter_map(|d| serde_yaml::Value::deserialize(d).ok())
        .filter(|v| !v.is_null())
        .filter_map(|v| serde_json::to_value(v).ok())
        .collect()
}

/// Appends the `.yaml`/`.yml` files under `dir` to `out`, recursively, in path order (the
/// order `ordinaut validate` and the directory writer read a manifest folder in).
pub fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

fn render(docs: &[Value]) -> Result<String, WriteError> {
    let mut out = String::new();
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(
            &serde_yaml::to_string(d)
                .map_err(|e| WriteError::Failed(format!("cannot render YAML: {e}")))?,
        );
    }
    Ok(out)
}

/// Writes `text` to `path` through a temporary file renamed over it.
fn write_atomic(path: &Path, text: &str) -> Result<(), WriteError> {
    let fail =
        |e: std::io::Error| WriteError::Failed(format!("cannot write {}: {e}", path.display()));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    // Not `.yaml`: the watcher must not read the temporary file.
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    std::fs::write(&tmp, text).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

fn parse_task(doc: &Value, what: &str) -> Result<Task, WriteError> {
    serde_json::from_value(doc.clone())
        .map_err(|e| WriteError::Failed(format!("the manifest of Task {what} does not read: {e}")))
}

#[async_trait]
impl TaskWriter for DirWriter {
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<Task>, WriteError> {
        match self.find(namespace, name)? {
            Some(f) => parse_task(&f.docs[f.index], &format!("{namespace}/{name}")).map(Some),
            None => Ok(None),
        }
    }

    async fn create(&self, task: &Task) -> Result<(), WriteError> {
        let _guard = self.lock.lock().await;
        let namespace = task.metadata.namespace.as_deref().unwrap_or("default");
        let name = task.metadata.name.as_deref().unwrap_or_default();
        if let Some(f) = self.find(namespace, name)? {
            return Err(WriteError::Conflict(format!(
                "a Task {namespace}/{name} exists already (in {}); choose another name or \
                 update that one",
                f.path.display()
            )));
        }
        let agent = task
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(AGENT_LABEL))
            .map(String::as_str);
        let path = self.path_for(namespace, agent, name);
        write_atomic(&path, &render(&[manifest(task)])?)
    }

    async fn patch(&self, namespace: &str, name: &str, patch: &Value) -> Result<(), WriteError> {
        let _guard = self.lock.lock().await;
        let Some(mut f) = self.find(namespace, name)? else {
            return Err(WriteError::NotFound(format!("{namespace}/{name}")));
        };
        json_patch::merge(&mut f.docs[f.index], patch);
        // The result must still read as a Task before it replaces the file.
        parse_task(&f.docs[f.index], &format!("{namespace}/{name}"))?;
        write_atomic(&f.path, &render(&f.docs)?)
    }

    async fn delete(&self, namespace: &str, name: &str) -> Result<(), WriteError> {
        let _guard = self.lock.lock().await;
        let Some(mut f) = self.find(namespace, name)? else {
            return Err(WriteError::NotFound(format!("{namespace}/{name}")));
        };
        f.docs.remove(f.index);
        if f.docs.is_empty() {
            std::fs::remove_file(&f.path)
                .map_err(|e| WriteError::Failed(format!("cannot remove {}: {e}", f.path.display())))
        } else {
            write_atomic(&f.path, &render(&f.docs)?)
        }
    }

    fn describe(&self) -> String {
        format!("the folder {}", self.root.display())
    }
}
