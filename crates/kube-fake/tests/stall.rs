//! One client's connection stalled (`serve_http_stallable`): its requests and its watch
//! wait while the other clients are served, and go on when resumed.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use ordinaut_kube_fake::{FakeApiServer, Stall};

async fn client(addr: std::net::SocketAddr) -> kube::Client {
    // A workspace build enables both of rustls's providers; pick one as the binaries do.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    kube::Client::try_from(config).unwrap()
}

fn config_map(name: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.into());
    cm
}

/// Waits (with a generous deadline) until `n` requests or frames wait on `stall`.
async fn until_waiting(stall: &Stall, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while stall.waiting() < n {
        assert!(Instant::now() < deadline, "nothing waits on the stall");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_clients_requests_wait_while_the_others_are_served() {
    let fake = FakeApiServer::new();
    let (a_addr, a_stall) = fake.serve_http_stallable().await.unwrap();
    let (b_addr, _b_stall) = fake.serve_http_stallable().await.unwrap();
    let a: Api<ConfigMap> = Api::namespaced(client(a_addr).await, "default");
    let b: Api<ConfigMap> = Api::namespaced(client(b_addr).await, "default");
    a.create(&PostParams::default(), &config_map("before"))
        .await
        .unwrap();

    a_stall.stall();
    let pending = tokio::spawn(async move {
        a.create(&PostParams::default(), &config_map("late"))
            .await
            .map(|_| ())
    });
    until_waiting(&a_stall, 1).await;
    assert_eq!(a_stall.requests_to("/configmaps"), 2);
    b.create(&PostParams::default(), &config_map("other"))
        .await
        .unwrap();
    assert!(b.get_opt("before").await.unwrap().is_some());
    assert!(!pending.is_finished(), "a stalled request was answered");
    assert!(
        fake.object::<ConfigMap>("default", "late").is_none(),
        "a stalled request was served"
    );

    a_stall.resume();
    pending.await.unwrap().unwrap();
    assert!(fake.object::<ConfigMap>("default", "late").is_some());
    assert_eq!(a_stall.waiting(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_clients_watch_pauses_and_then_delivers() {
    let fake = FakeApiServer::new();
    let (a_addr, a_stall) = fake.serve_http_stallable().await.unwrap();
    let b_addr = fake.serve_http().await.unwrap();
    let a: Api<ConfigMap> = Api::namespaced(client(a_addr).await, "default");
    let b: Api<ConfigMap> = Api::namespaced(client(b_addr).await, "default");
    let rv = fake.resource_version().to_string();
    let mut events = a.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    let first = events.next().await.unwrap().unwrap();
    assert!(matches!(first, WatchEvent::Bookmark(_)), "{first:?}");

    a_stall.stall();
    b.create(&PostParams::default(), &config_map("x"))
        .await
        .unwrap();
    until_waiting(&a_stall, 1).await;
    assert!(
        futures::FutureExt::now_or_never(events.next()).is_none(),
        "an event came through the stall"
    );
    a_stall.resume();
    let event = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .expect("the event after resume")
        .unwrap()
        .unwrap();
    assert!(
        matches!(&event, WatchEvent::Added(cm) if cm.metadata.name.as_deref() == Some("x")),
        "{event:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_at_stalls_at_the_first_matching_request_which_waits_too() {
    let fake = FakeApiServer::new();
    let (addr, stall) = fake.serve_http_stallable().await.unwrap();
    let a: Api<ConfigMap> = Api::namespaced(client(addr).await, "default");
    a.create(&PostParams::default(), &config_map("x"))
        .await
        .unwrap();
    stall.stall_at("/configmaps/x");
    assert!(a.get_opt("other").await.unwrap().is_none(), "not matching");
    assert!(!stall.is_stalled());
    let pending = tokio::spawn(async move { a.get("x").await.map(|_| ()) });
    until_waiting(&stall, 1).await;
    assert!(stall.is_stalled());
    assert!(!pending.is_finished());
    stall.resume();
    pending.await.unwrap().unwrap();
}
