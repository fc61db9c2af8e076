//! `<data dir>/dev.json`: written by a running `ordinaut dev` (its pid, the URLs it uses,
//! the private servers it started) and removed when it stops. `ordinaut runs` and
//! `ordinaut task` read it to find the dev instance's database; a second `ordinaut dev` on
//! the same data folder reads it to refuse to start.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use nix::sys::signal::kill;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::CliError;

/// What a running dev instance publishes about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DevState {
    pub pid: u32,
    pub database_url: String,
    pub redis_url: String,
    pub events_stream: String,
    pub dir: String,
    pub started_at: DateTime<Utc>,
    /// Where the gateway listens (`http://127.0.0.1:7474`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_url: Option<String>,
    /// The gateway's admin token (this file is readable only by its owner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    pub private: Vec<PrivateState>,
}

/// A server the dev instance started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrivateState {
    pub name: String,
    pub pid: u32,
    pub port: u16,
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("dev.json")
}

fn alive(pid: u32) -> bool {
    i32::try_from(pid).is_ok_and(|p| kill(Pid::from_raw(p), None).is_ok())
}

/// The state of the dev instance running on `data_dir`; `None` when there is none (no
/// file, or the process that wrote it is gone).
pub fn read(data_dir: &Path) -> Option<DevState> {
    let text = std::fs::read_to_string(path(data_dir)).ok()?;
    let state: DevState = serde_json::from_str(&text).ok()?;
    alive(state.pid).then_some(state)
}

/// Refuses to start when another dev instance runs on this data folder.
pub fn claim(data_dir: &Path) -> Result<(), CliError> {
    if let Some(other) = read(data_dir)
        && other.pid != std::process::id()
    {
        return Err(CliError::failed(anyhow!(
            "another `ordinaut dev` (pid {}, on {}) uses {}; stop it, or give this one its own \
             --data-dir",
            other.pid,
            other.dir,
            data_dir.display()
        )));
    }
    Ok(())
}

pub fn write(data_dir: &Path, state: &DevState) -> Result<(), CliError> {
    std::fs::create_dir_all(data_dir).map_err(CliError::failed)?;
    let text = serde_json::to_string_pretty(state).map_err(CliError::failed)?;
    let tmp = data_dir.join("dev.json.tmp");
    // It holds the admin token: readable by its owner only.
    write_private(&tmp, &text)
        .and_then(|()| std::fs::rename(&tmp, path(data_dir)))
        .map_err(|e| CliError::failed(anyhow!("cannot write {}: {e}", path(data_dir).display())))
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// Removes the file if it is ours.
pub fn release(data_dir: &Path) {
    let ours = std::fs::read_to_string(path(data_dir))
        .ok()
        .and_then(|t| serde_json::from_str::<DevState>(&t).ok())
        .is_some_and(|s| s.pid == std::process::id());
    if ours {
        let _ = std::fs::remove_file(path(data_dir));
    }
}
