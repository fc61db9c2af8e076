//! `http.request`: an HTTP call from a pipeline step, limited to an allow-list of hosts.
//!
//! Input: `method` (default `GET`), `url`, `headers` (object of strings), `body` (a string,
//! sent as is) or `json` (any JSON, sent as `application/json`), `timeout` (duration), and
//! `allowErrorStatus` (default false: a 4xx/5xx status fails the step; 5xx and 429 are
//! retryable). Output: `{"status": 200, "headers": {...}, "body": <JSON if the response is
//! JSON, else text>}`.

use crate::scope::glob_match;
use crate::{CallContext, Tool, ToolError};
use async_trait::async_trait;
use serde_json::{Map, Value, json};
use std::time::Duration;

/// Limits for `http.request`, set by the worker's flags.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Host globs a step may reach (`api.example.com`, `*.example.com`; `host:port` to pin a
    /// port). Empty: `http.request` is refused everywhere (secure default).
    pub allow_hosts: Vec<String>,
    /// Timeout when the step gives none.
    pub default_timeout: Duration,
    /// Responses larger than this fail the step.
    pub max_response_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            allow_hosts: Vec::new(),
            default_timeout: Duration::from_secs(30),
            max_response_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Whether `url` may be reached under `allow_hosts`.
pub fn host_allowed(allow_hosts: &[String], url: &url::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let with_port = url
        .port_or_known_default()
        .map(|p| format!("{host}:{p}"))
        .unwrap_or_else(|| host.to_string());
    allow_hosts.iter().any(|pattern| {
        if pattern.contains(':') && !pattern.contains('[') && pattern.matches(':').count() == 1 {
            glob_match(pattern, &with_port)
        } else {
            glob_match(pattern, host)
        }
    })
}

/// The `http.request` tool.
pub struct HttpRequest {
    config: HttpConfig,
    client: Result<reqwest::Client, String>,
    schema: Value,
}

impl HttpRequest {
    pub fn new(config: HttpConfig) -> Self {
        let allow = config.allow_hosts.clone();
        let client = reqwest::Client::builder()
            // Follow redirects only to allowed hosts, at most 5.
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= 5 || !host_allowed(&allow, attempt.url()) {
                    attempt.stop()
                } else {
                    attempt.follow()
                }
            }))
            .build()
            .map_err(|e| e.to_string());
        Self {
            config,
            client,
            schema: json!({
                "type": "object",
                "required": ["url"],
                "properties": {
                    "method": {"type": "string", "enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]},
                    "url": {"type": "string"},
                    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                    "body": {"type": "string"},
                    "json": {},
                    "timeout": {"type": "string"},
                    "allowErrorStatus": {"type": "boolean"}
                },
                "not": {"required": ["body", "json"]}
            }),
        }
    }
}

#[async_trait]
impl Tool for HttpRequest {
    fn name(&self) -> &str {
        "http.request"
    }
    fn description(&self) -> &str {
        "Makes an HTTP request to an allowed host and returns status, headers and body."
    }
    fn input_schema(&self) -> Option<&Value> {
        Some(&self.schema)
    }
    async fn call(&self, input: Value, ctx: &CallContext) -> Result<Value, ToolError> {
        let client = self.client.as_ref().map_err(|e| ToolError::Failed {
            message: format!("http client unavailable: {e}"),
            retryable: false,
        })?;
        let url_text = input
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| ToolError::InvalidInput("`url` is required".into()))?;
        let url = url::Url::parse(url_text)
            .map_err(|e| ToolError::InvalidInput(format!("url `{url_text}`: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ToolError::InvalidInput(format!(
                "url `{url_text}`: only http and https are supported"
            )));
        }
        if !host_allowed(&self.config.allow_hosts, &url) {
            return Err(ToolError::Denied(format!(
                "host `{}` is not in the worker's HTTP allow-list (--http-allow-hosts)",
                url.host_str().unwrap_or("")
            )));
        }
        let method_text = input.get("method").and_then(Value::as_str).unwrap_or("GET");
        let method = reqwest::Method::from_bytes(method_text.to_ascii_uppercase().as_bytes())
            .map_err(|_| {
                ToolError::InvalidInput(format!("method `{method_text}` is not an HTTP method"))
            })?;
        let timeout = match input.get("timeout").and_then(Value::as_str) {
            Some(t) => ordinaut_schedule::duration::parse_duration(t)
                .map_err(|e| ToolError::InvalidInput(format!("timeout: {e}")))?,
            None => self.config.default_timeout,
        };
        let mut req = client.request(method, url).timeout(timeout);
        if let Some(headers) = input.get("headers").and_then(Value::as_object) {
            for (k, v) in headers {
                let v = v.as_str().ok_or_else(|| {
                    ToolError::InvalidInput(format!("headers.{k} must be a string"))
                })?;
                req = req.header(k.as_str(), v);
            }
        }
        req = req.header("Idempotency-Key", ctx.idempotency_key.as_str());
        if let Some(body) = input.get("body").and_then(Value::as_str) {
            req = req.body(body.to_string());
        } else if let Some(j) = input.get("json") {
            req = req.json(j);
        }
        let send = async {
            let resp = req.send().await.map_err(classify)?;
            let status = resp.status();
            let mut headers = Map::new();
            for (k, v) in resp.headers() {
                if let Ok(v) = v.to_str() {
                    headers.insert(k.as_str().to_string(), Value::String(v.to_string()));
                }
            }
            let is_json = headers
                .get("content-type")
                .and_then(Value::as_str)
                .is_some_and(|ct| ct.contains("json"));
            let bytes = read_limited(resp, self.config.max_response_bytes).await?;
            let body = if is_json {
                serde_json::from_slice(&bytes)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
            } else {
                Value::String(String::from_utf8_lossy(&bytes).into_owned())
            };
            Ok::<_, ToolError>((status, headers, body))
        };
        let (status, headers, body) = tokio::select! {
            r = send => r?,
            _ = ctx.cancel.cancelled() => return Err(ToolError::Cancelled),
        };
        let allow_error = input
            .get("allowErrorStatus")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if !allow_error && (status.is_client_error() || status.is_server_error()) {
            return Err(ToolError::Failed {
                message: format!("HTTP {status}"),
                retryable: status.is_server_error() || status.as_u16() == 429,
            });
        }
        Ok(json!({"status": status.as_u16(), "headers": headers, "body": body}))
    }
}

fn classify(e: reqwest::Error) -> ToolError {
    if e.is_timeout() {
        ToolError::Failed {
            message: format!("request timed out: {e}"),
            retryable: true,
        }
    } else {
        ToolError::Failed {
            message: format!("request failed: {e}"),
            retryable: e.is_connect() || e.is_request(),
        }
    }
}

async fn read_limited(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, ToolError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(classify)? {
        if out.len() + chunk.len() > max {
            return Err(ToolError::Failed {
                message: format!("response larger than {max} bytes"),
                retryable: false,
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn allow(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn allow_list_matches_hosts_and_optional_ports() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert!(host_allowed(
            &allow(&["api.example.com"]),
            &u("https://api.example.com/x")
        ));
        assert!(!host_allowed(
            &allow(&["api.example.com"]),
            &u("https://evil.com/api.example.com")
        ));
        assert!(host_allowed(
            &allow(&["*.example.com"]),
            &u("http://a.b.example.com")
        ));
        assert!(!host_allowed(
            &allow(&["*.example.com"]),
            &u("http://example.com.evil.io")
        ));
        assert!(host_allowed(
            &allow(&["127.0.0.1:8080"]),
            &u("http://127.0.0.1:8080/")
        ));
        assert!(!host_allowed(
            &allow(&["127.0.0.1:8080"]),
            &u("http://127.0.0.1:9090/")
        ));
        assert!(!host_allowed(&[], &u("http://127.0.0.1/")));
    }

    /// A one-shot HTTP/1.1 server on loopback answering with `status` and a JSON body.
    async fn serve_once(
        status: &'static str,
        body: &'static str,
    ) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let n = sock.read(&mut buf).await.unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            sock.write_all(response.as_bytes()).await.unwrap();
            request
        });
        (port, handle)
    }

    #[tokio::test]
    async fn request_to_an_allowed_host_returns_status_headers_and_json_body() {
        let (port, server) = serve_once("200 OK", r#"{"temp": 21.5}"#).await;
        let tool = HttpRequest::new(HttpConfig {
            allow_hosts: allow(&["127.0.0.1"]),
            ..HttpConfig::default()
        });
        let out = tool
            .call(
                json!({"method": "POST", "url": format!("http://127.0.0.1:{port}/w"), "json": {"q": 1}, "headers": {"x-trace": "t1"}}),
                &CallContext::for_test("get"),
            )
            .await
            .unwrap();
        assert_eq!(out["status"], 200);
        assert_eq!(out["body"], json!({"temp": 21.5}));
        let request = server.await.unwrap();
        assert!(request.starts_with("POST /w HTTP/1.1"), "{request}");
        assert!(request.to_ascii_lowercase().contains("x-trace: t1"));
        assert!(
            request
                .to_ascii_lowercase()
                .contains("idempotency-key: test:get")
        );
        assert!(request.ends_with(r#"{"q":1}"#));
    }

    #[tokio::test]
    async fn error_status_fails_the_step_and_5xx_is_retryable() {
        let (port, _server) = serve_once("503 Service Unavailable", "{}").await;
        let tool = HttpRequest::new(HttpConfig {
            allow_hosts: allow(&["127.0.0.1"]),
            ..HttpConfig::default()
        });
        let err = tool
            .call(
                json!({"url": format!("http://127.0.0.1:{port}/")}),
                &CallContext::for_test("s"),
            )
            .await
            .unwrap_err();
        assert!(err.is_retryable());
        assert!(err.to_string().contains("503"), "{err}");
    }

    #[tokio::test]
    async fn hosts_outside_the_allow_list_are_refused_without_a_request() {
        let tool = HttpRequest::new(HttpConfig::default());
        let err = tool
            .call(
                json!({"url": "http://127.0.0.1:1/"}),
                &CallContext::for_test("s"),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ToolError::Denied(_)), "{err}");
        let err = tool
            .call(
                json!({"url": "file:///etc/passwd"}),
                &CallContext::for_test("s"),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ToolError::InvalidInput(_)), "{err}");
    }
}
