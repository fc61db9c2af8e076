//! `/metrics`, `/healthz` and `/readyz`.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ordinaut_test_support::operator::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn metrics_count_reconciles_and_readyz_waits_for_the_start() {
    let h = Harness::new("2024-03-10T10:05:00Z").await;
    let mut task = task(
        "t",
        "2024-03-10T00:00:00Z",
        &format!("  schedule: {{every: 15m}}\n{ECHO}"),
    );
    h.reconcile(&mut task).await;
    let mut registry = prometheus_client::registry::Registry::default();
    h.rec.context().metrics.register(&mut registry);
    let started = Arc::new(AtomicBool::new(false));
    let stop = CancellationToken::new();
    let (addr, handle) = ordinaut_operator::serve::serve(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(registry),
        h.store.clone(),
        started.clone(),
        stop.clone(),
    )
    .await
    .unwrap();

    let metrics = get(addr, "/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains(r#"ordinaut_operator_reconciles_total{kind="Task",outcome="ready"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("ordinaut_operator_materialized_occurrences_total 10"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ordinaut_operator_reconcile_duration_seconds"),
        "{metrics}"
    );
    assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
    assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
    started.store(true, Ordering::SeqCst);
    assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
    stop.cancel();
    handle.await.unwrap();
}
