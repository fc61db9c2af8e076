//! The operator stays responsive whatever a rule costs: with abusive RRULEs in the cluster
//! (a SECONDLY rule with COUNT=4,000,000,000 from 1970, a rule listing every second of the
//! day that keeps only the last, a YEARLY rule just under the per-period candidate limit and
//! one over it), an ordinary Task applied after them becomes Ready, and every abusive Task
//! gets a status (Ready, or Stalled naming the limit). The controllers run on a
//! single-threaded runtime here, so schedule work that walked every instance on the async
//! thread, or that never ended, fails this test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, PostParams};
use ordinaut_api::Task;
use ordinaut_kube_fake::FakeApiServer;
use ordinaut_operator::k8s::controllers::{self, ControllerConfig};
use ordinaut_operator::k8s::{KubeObjects, KubeSink};
use ordinaut_operator::{AlwaysLeader, Context, MaterializeConfig};
use ordinaut_schedule::clock::ManualClock;
use ordinaut_store::testing::TestDb;
use ordinaut_test_support::operator::*;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Generous: CI is a loaded two-core machine.
const WAIT: Duration = Duration::from_secs(60);

fn list(from: u32, to: u32) -> String {
    (from..=to)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn task(name: &str, schedule: &str) -> Task {
    serde_yaml::from_str(&format!(
        "apiVersion: ordinaut.dev/v1alpha1\nkind: Task\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  schedule: {schedule}\n{ECHO}"
    ))
    .unwrap()
}

fn ready(obj: &Value) -> Option<(String, String, String)> {
    ordinaut_test_support::operator::ready_condition(obj)
}

#[tokio::test(flavor = "current_thread")]
async fn an_ordinary_task_becomes_ready_while_abusive_rules_are_checked() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let fake = FakeApiServer::new();
    for crd in ordinaut_api::crds() {
        fake.register_crd(&crd);
    }
    let client = fake.client();
    let ctx = Context::new(
        store.clone(),
        Arc::new(ManualClock::new(t("2026-03-10T10:05:00Z"))),
        MaterializeConfig::default(),
        Arc::new(KubeObjects::new(client.clone())),
        Arc::new(KubeSink::new(client.clone(), Some("test".into()))),
        Arc::new(AlwaysLeader),
    );
    let stop = CancellationToken::new();
    let cfg = ControllerConfig {
        tick: Duration::from_secs(3600),
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
    };
    let handle = tokio::spawn(controllers::run(
        client.clone(),
        ctx,
        cfg,
        None,
        stop.clone(),
    ));

    let every_second = format!(
        "BYHOUR={};BYMINUTE={};BYSECOND={}",
        list(0, 23),
        list(0, 59),
        list(0, 59)
    );
    let abusive = [
        (
            "secondly-count",
            "{rrule: \"DTSTART:19700101T000000Z\\nFREQ=SECONDLY;COUNT=4000000000\"}".to_string(),
        ),
        (
            "daily-last-second",
            format!("{{rrule: \"FREQ=DAILY;{every_second};BYSETPOS=-1\"}}"),
        ),
        (
            "monthly-many-seconds",
            format!(
                "{{rrule: \"FREQ=MONTHLY;BYMONTHDAY=1,2,3,4,5,6,7,8,9,10,11;{every_second};BYSETPOS=-1,1\"}}"
            ),
        ),
        (
            "yearly-over-limit",
            format!("{{rrule: \"FREQ=YEARLY;{every_second};BYSETPOS=-1\"}}"),
        ),
    ];
    let api: Api<Task> = Api::namespaced(client, "default");
    for (name, schedule) in &abusive {
        api.create(&PostParams::default(), &task(name, schedule))
            .await
            .unwrap();
    }
    api.create(
        &PostParams::default(),
        &task("ordinary", "{every: 15m, startAt: '2026-03-10T00:00:00Z'}"),
    )
    .await
    .unwrap();

    let obj = fake
        .wait_for_object::<Task>("default", "ordinary", WAIT, |o| {
            ready(o).is_some_and(|(s, _, _)| s == "True")
        })
        .await
        .unwrap();
    assert_eq!(obj["status"]["nextRunTime"], "2026-03-10T10:15:00Z");

    for (name, _) in &abusive {
        let obj = fake
            .wait_for_object::<Task>("default", name, WAIT, |o| ready(o).is_some())
            .await
            .unwrap();
        let (status, reason, message) = ready(&obj).unwrap();
        if status != "True" {
            assert!(
                message.contains("1000000") || message.contains("1,000,000"),
                "{name}: {reason}: {message}"
            );
        }
    }
    let (_, _, over) =
        ready(&fake.object::<Task>("default", "yearly-over-limit").unwrap()).unwrap();
    assert!(over.contains("candidate"), "{over}");
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), handle).await;
}
