//! `ordinaut mcp`: a stdio MCP server for desktop agents, bridged to a gateway's streamable
//! HTTP endpoint. Each JSON-RPC message read from stdin (one per line) is POSTed to
//! `<url>/mcp` with the bearer token; the replies (a JSON body or an SSE stream) are written
//! to stdout, one message per line. The session id and protocol version the gateway hands out
//! are sent back on every request. Diagnostics go to stderr; the token is never printed.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::Args;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::CliError;

/// Arguments of `ordinaut mcp`.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// The gateway's base URL (`http://127.0.0.1:7474`). Default: the `ordinaut dev` running
    /// on --data-dir.
    #[arg(long, env = "ORDINAUT_URL")]
    pub url: Option<String>,
    /// The bearer token: the Agent's token (from its token Secret). Default: the admin token
    /// of the `ordinaut dev` running on --data-dir.
    #[arg(long, env = "ORDINAUT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Where a running `ordinaut dev` keeps `dev.json`.
    #[arg(long, env = "ORDINAUT_DATA_DIR", default_value = ".ordinaut")]
    pub data_dir: PathBuf,
}

pub fn run(args: McpArgs) -> Result<(), CliError> {
    let dev = crate::dev::state::read(&args.data_dir);
    let url = args
        .url
        .or_else(|| dev.as_ref().and_then(|d| d.gateway_url.clone()))
        .ok_or_else(|| {
            CliError::invalid(anyhow!(
                "no gateway: give --url (or ORDINAUT_URL), or start `ordinaut dev` first"
            ))
        })?;
    let token = args
        .token
        .or_else(|| dev.as_ref().and_then(|d| d.admin_token.clone()))
        .ok_or_else(|| {
            CliError::invalid(anyhow!(
                "no token: set ORDINAUT_TOKEN to your Agent's token (or give --token)"
            ))
        })?;
    let endpoint = format!("{}/mcp", url.trim_end_matches('/'));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::failed)?;
    runtime.block_on(Bridge::new(endpoint, token).run())
}

struct Bridge {
    http: reqwest::Client,
    endpoint: String,
    token: String,
    session: Option<String>,
    protocol: Option<String>,
    out: tokio::io::Stdout,
}

impl Bridge {
    fn new(endpoint: String, token: String) -> Self {
        Self {
            http: reqwest::Client::new(),
            endpoint,
            token,
            session: None,
            protocol: None,
            out: tokio::io::stdout(),
        }
    }

    async fn run(mut self) -> Result<(), CliError> {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Some(line) = lines.next_line().await.map_err(CliError::failed)? {
            if line.trim().is_empty() {
                continue;
            }
            let message: Value = match serde_json::from_str(&line) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("ordinaut mcp: skipping a line that is not JSON: {e}");
                    continue;
                }
            };
            if let Err(e) = self.forward(&message).await {
                eprintln!("ordinaut mcp: {e}");
                if let Some(id) = message.get("id") {
                    self.write(&json!({"jsonrpc": "2.0", "id": id,
                        "error": {"code": -32000, "message": e.to_string()}}))
                        .await
                        .map_err(CliError::failed)?;
                }
            }
        }
        if let Some(session) = &self.session {
            let _ = self
                .http
                .delete(&self.endpoint)
                .bearer_auth(&self.token)
                .header("mcp-session-id", session)
                .send()
                .await;
        }
        Ok(())
    }

    async fn write(&mut self, message: &Value) -> std::io::Result<()> {
        let mut line = message.to_string();
        line.push('\n');
        self.out.write_all(line.as_bytes()).await?;
        self.out.flush().await
    }

    /// POSTs one message and relays what comes back.
    async fn forward(&mut self, message: &Value) -> anyhow::Result<()> {
        let mut req = self
            .http
            .post(&self.endpoint)
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .json(message);
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        if let Some(p) = &self.protocol {
            req = req.header("mcp-protocol-version", p);
        }
        let mut resp = req.send().await?;
        if let Some(s) = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            self.session = Some(s.to_string());
        }
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            let detail = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["detail"].as_str().map(str::to_string))
                .unwrap_or(body);
            return Err(anyhow!("the gateway answered {status}: {detail}"));
        }
        let sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        if !sse {
            let body = resp.text().await?;
            if !body.trim().is_empty() {
                let reply: Value = serde_json::from_str(&body)?;
                self.note_protocol(&reply);
                self.write(&reply).await?;
            }
            return Ok(());
        }
        // An SSE stream: relay each event's data until the reply to this request.
        let id = message.get("id").cloned();
        let mut buf = String::new();
        while let Some(chunk) = resp.chunk().await? {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let event: String = buf.drain(..end + 2).collect();
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if data.is_empty() || data.iter().all(|d| d.is_empty()) {
                    continue;
                }
                let reply: Value = serde_json::from_str(&data.join("\n"))?;
                self.note_protocol(&reply);
                self.write(&reply).await?;
                if id.is_some() && reply.get("id") == id.as_ref() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The protocol version an `initialize` reply settles, sent on every later request.
    fn note_protocol(&mut self, reply: &Value) {
        if let Some(v) = reply["result"]["protocolVersion"].as_str() {
            self.protocol = Some(v.to_string());
        }
    }
}
