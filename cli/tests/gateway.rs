//! The gateway of `ordinaut dev`, driven by the official `mcp` Python client acting as an
//! agent, over streamable HTTP and over `ordinaut mcp` (stdio): it schedules an `every` Task
//! (written as a manifest into the watched folder), reads its next runs and a succeeded run;
//! a wrong token is refused and another agent's Task is invisible.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use ordinaut_store::testing::TestDb;
use ordinaut_test_support::cli::*;

const BOT: &str = "bot-secret-token-1";
const OTHER: &str = "other-secret-token-2";

const AGENTS: &str = "\
apiVersion: ordinaut.dev/v1alpha1
kind: Agent
metadata: {name: bot, namespace: default}
spec:
  scopes: [\"core.*\"]
  tokenSecretRef: {name: bot-token, key: token}
---
apiVersion: ordinaut.dev/v1alpha1
kind: Agent
metadata: {name: other, namespace: default}
spec:
  tokenSecretRef: {name: other-token, key: token}
";

fn python() -> PathBuf {
    ordinaut_test_support::python::mcp_python()
}

fn secret(dir: &Path, name: &str, value: &str) {
    let d = dir.join("default").join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("token"), value).unwrap();
}

fn agent_script(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mcp_agent.py");
    let out = Command::new(python())
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    let text = text(&out);
    assert!(out.status.success(), "the agent failed:\n{text}");
    text
}

#[test]
fn a_python_mcp_agent_schedules_and_reads_its_task_over_http_and_stdio() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(TestDb::empty()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    write(dir.path(), "agents.yaml", AGENTS);
    secret(secrets.path(), "bot-token", BOT);
    secret(secrets.path(), "other-token", OTHER);
    let port = unused_port();
    let mut cmd = ordinaut(&["dev", &dir.path().display().to_string()]);
    cmd.args(["--database-url", &db.url, "--redis-url", &redis_url()])
        .args([
            "--events-stream",
            &format!("test:gw:{}", uuid::Uuid::new_v4().simple()),
        ])
        .args(["--data-dir", &data.path().display().to_string()])
        .args(["--secrets-dir", &secrets.path().display().to_string()])
        .args(["--gateway-addr", &format!("127.0.0.1:{port}")]);
    let mut dev = Dev::start(cmd);
    dev.wait_line(0, "gateway on ", Duration::from_secs(60));
    dev.wait_line(0, "watching ", Duration::from_secs(60));
    let url = format!("http://127.0.0.1:{port}");

    // dev.json names the gateway and holds the admin token: readable by its owner only.
    let state = data.path().join("dev.json");
    let mode = std::fs::metadata(&state).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "dev.json mode {mode:o}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(state["gatewayUrl"], url.as_str());
    assert!(state["adminToken"].as_str().is_some_and(|t| t.len() > 32));

    agent_script(&["http", &url, BOT, OTHER, "beat-http"]);
    // The folder stays the source of truth: the Task is a manifest in it.
    let file = dir.path().join("agents/default/bot/beat-http.yaml");
    let manifest = std::fs::read_to_string(&file).unwrap();
    assert!(manifest.contains("agentRef: bot"), "{manifest}");

    agent_script(&["stdio", &url, BOT, OTHER, "beat-stdio", bin()]);
    assert!(
        dir.path()
            .join("agents/default/bot/beat-stdio.yaml")
            .exists()
    );

    let status = dev.stop(Signal::SIGTERM, Duration::from_secs(30));
    assert!(status.success(), "{status}\n{}", dev.output());
}

/// The "Connect an agent" section of the README.
fn readme_section() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let start = readme.find("## Connect an agent").unwrap();
    let end = readme[start + 3..]
        .find("\n## ")
        .map_or(readme.len(), |i| start + 3 + i);
    readme[start..end].to_string()
}

/// The fenced blocks of `lang` in `markdown`.
fn blocks(markdown: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start().strip_prefix("```")) {
            (None, Some(l)) if l.trim() == lang => current = Some(String::new()),
            (Some(_), Some(_)) => out.push(current.take().unwrap()),
            (Some(text), None) => {
                text.push_str(line);
                text.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// Every command and client configuration of the README's "Connect an agent" section, run
/// as written against an `ordinaut dev` of `examples/agent.yaml` (the address put in).
#[test]
fn the_readme_connect_an_agent_examples_run_as_written() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(TestDb::empty()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let manifests = work.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    std::fs::copy(examples.join("agent.yaml"), manifests.join("agent.yaml")).unwrap();
    let port = unused_port();
    let url = format!("http://127.0.0.1:{port}");
    let section = readme_section().replace("http://127.0.0.1:7474", &url);
    let sh = blocks(&section, "sh");
    assert!(sh.len() >= 3, "{section}");
    let bin_dir = Path::new(bin()).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    let script = |body: &str| {
        let out = Command::new("sh")
            .args(["-ec", body])
            .current_dir(work.path())
            .env("PATH", &path)
            .env_remove("DATABASE_URL")
            .env_remove("ORDINAUT_DATA_DIR")
            .output()
            .unwrap();
        let t = text(&out);
        assert!(out.status.success(), "{body}\n{t}");
        t
    };
    // The token first (the gateway reads it from the secrets folder), then the instance.
    script(&sh[0]);
    let mut cmd = ordinaut(&["dev", "manifests"]);
    cmd.current_dir(work.path())
        .args(["--database-url", &db.url, "--redis-url", &redis_url()])
        .args([
            "--events-stream",
            &format!("test:gw:{}", uuid::Uuid::new_v4().simple()),
        ])
        .args(["--gateway-addr", &format!("127.0.0.1:{port}")]);
    let mut dev = Dev::start(cmd);
    dev.wait_line(0, "watching ", Duration::from_secs(60));

    // The exports of the first block (its token stays), then every other block.
    let exports: Vec<&str> = sh[0].lines().filter(|l| l.starts_with("export ")).collect();
    let out = script(&format!("{}\n{}", exports.join("\n"), sh[1..].join("\n")));
    assert!(out.contains("\"name\":\"standup\""), "{out}");
    assert!(out.contains("task.create"), "the audit list: {out}");
    assert!(work.path().join("openapi.json").exists());

    let token = std::fs::read_to_string(
        work.path()
            .join(".ordinaut/secrets/default/assistant-token/token"),
    )
    .unwrap();
    for config in blocks(&section, "json") {
        let file = work.path().join("client.json");
        let config = config.replace("<the agent's token>", token.trim()).replace(
            "\"command\": \"ordinaut\"",
            &format!("\"command\": \"{}\"", bin()),
        );
        std::fs::write(&file, config).unwrap();
        let out = agent_script(&["config", &file.display().to_string()]);
        assert!(
            out.contains("ok ") && out.contains("schedule_task"),
            "{out}"
        );
    }
    let status = dev.stop(Signal::SIGTERM, Duration::from_secs(30));
    assert!(status.success(), "{status}\n{}", dev.output());
}
