//! Watches: raw `Api::watch` and kube-runtime's `watcher`.

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio::time::timeout;

use super::common::*;

type Watch = BoxStream<'static, kube::Result<WatchEvent<Widget>>>;

/// The list's resourceVersion (where a watch starts).
async fn list_rv(api: &Api<Widget>) -> String {
    api.list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap()
}

/// A raw watch from `rv`.
async fn watch(api: &Api<Widget>, params: &WatchParams, rv: &str) -> Watch {
    api.watch(params, rv).await.unwrap().boxed()
}

/// The next raw watch event that is not a bookmark; `None` when the watch ended.
async fn next_event(events: &mut Watch) -> Option<WatchEvent<Widget>> {
    loop {
        match timeout(DEADLINE, events.try_next())
            .await
            .expect("a watch event before the deadline")
            .expect("no watch error")
        {
            Some(WatchEvent::Bookmark(_)) => {}
            other => return other,
        }
    }
}

/// Whether the watch ends (only bookmarks before) within the deadline.
async fn ends(events: &mut Watch) -> bool {
    timeout(DEADLINE, async {
        while let Some(ev) = events.try_next().await.unwrap() {
            assert!(matches!(ev, WatchEvent::Bookmark(_)), "{ev:?}");
        }
    })
    .await
    .is_ok()
}

/// The names in a watcher's initial list, up to its `InitDone`.
async fn initial_list<S>(stream: &mut S) -> Vec<String>
where
    S: futures::Stream<Item = Result<watcher::Event<Widget>, watcher::Error>> + Unpin,
{
    let mut names = Vec::new();
    loop {
        match timeout(DEADLINE, stream.try_next())
            .await
            .expect("a watcher event before the deadline")
            .expect("no watcher error")
            .expect("the watcher does not end")
        {
            watcher::Event::InitApply(w) => names.push(w.name_any()),
            watcher::Event::InitDone => return names,
            _ => {}
        }
    }
}

/// The next watcher event that is not part of an initial list.
async fn next_change<S>(stream: &mut S) -> watcher::Event<Widget>
where
    S: futures::Stream<Item = Result<watcher::Event<Widget>, watcher::Error>> + Unpin,
{
    loop {
        let ev = timeout(DEADLINE, stream.try_next())
            .await
            .expect("a watcher event before the deadline")
            .expect("no watcher error")
            .expect("the watcher does not end");
        if matches!(ev, watcher::Event::Apply(_) | watcher::Event::Delete(_)) {
            return ev;
        }
    }
}

async fn resize(api: &Api<Widget>, name: &str, size: i32) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": size}})),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn watcher_sees_added_modified_deleted_in_order() {
    let (_fake, api) = setup();
    let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
    // The initial (empty) list completes before anything is created.
    assert!(initial_list(&mut stream).await.is_empty());
    create(&api, "a", 1).await;
    resize(&api, "a", 2).await;
    api.delete("a", &DeleteParams::default()).await.unwrap();

    let watcher::Event::Apply(added) = next_change(&mut stream).await else {
        panic!("not Apply")
    };
    assert_eq!(added.spec.size, 1);
    let watcher::Event::Apply(modified) = next_change(&mut stream).await else {
        panic!("not Apply")
    };
    assert_eq!(modified.spec.size, 2);
    let watcher::Event::Delete(deleted) = next_change(&mut stream).await else {
        panic!("not Delete")
    };
    assert_eq!(deleted.name_any(), "a");
}

#[tokio::test]
async fn watch_replays_changes_after_the_given_resource_version() {
    let (_fake, api) = setup();
    create(&api, "before", 1).await;
    let rv = list_rv(&api).await;
    create(&api, "after", 2).await;
    resize(&api, "after", 3).await;

    let mut events = watch(&api, &WatchParams::default(), &rv).await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match next_event(&mut events).await {
            Some(WatchEvent::Added(w)) => seen.push(("ADDED", w.name_any(), w.spec.size)),
            Some(WatchEvent::Modified(w)) => seen.push(("MODIFIED", w.name_any(), w.spec.size)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        seen,
        vec![
            ("ADDED", "after".to_string(), 2),
            ("MODIFIED", "after".to_string(), 3)
        ]
    );
}

#[tokio::test]
async fn watch_from_an_expired_resource_version_is_410_gone() {
    let (fake, api) = setup();
    create(&api, "a", 1).await;
    let rv = list_rv(&api).await;
    fake.expire_watch_history();

    let mut events = watch(&api, &WatchParams::default(), &rv).await;
    match next_event(&mut events).await {
        Some(WatchEvent::Error(status)) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
        }
        other => panic!("expected a 410 watch error, got {other:?}"),
    }
    assert!(next_event(&mut events).await.is_none());

    // A fresh list hands out a resourceVersion that can be watched again.
    let rv = list_rv(&api).await;
    let mut events = watch(&api, &WatchParams::default(), &rv).await;
    create(&api, "b", 1).await;
    match next_event(&mut events).await {
        Some(WatchEvent::Added(w)) => assert_eq!(w.name_any(), "b"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn history_limit_makes_old_resource_versions_expire() {
    let (fake, api) = setup();
    fake.set_watch_history_limit(2);
    let rv = list_rv(&api).await;
    for i in 0..3 {
        create(&api, &format!("w{i}"), 1).await;
    }
    let mut events = watch(&api, &WatchParams::default(), &rv).await;
    let first = timeout(DEADLINE, events.try_next()).await.unwrap().unwrap();
    assert!(
        matches!(first, Some(WatchEvent::Error(ref s)) if s.code == 410),
        "{first:?}"
    );
}

#[tokio::test]
async fn watcher_recovers_from_410_by_relisting() {
    let (fake, api) = setup();
    create(&api, "a", 1).await;
    let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
    assert_eq!(initial_list(&mut stream).await, vec!["a"]);
    // (The watcher is lazy: its watch call happens on the next poll, after the expiry.)
    fake.expire_watch_history();
    create(&api, "b", 1).await;

    // The watcher reports the 410, re-lists (seeing b in the new initial list) and watches on.
    let mut saw_gone = false;
    let mut relisted = Vec::new();
    loop {
        match timeout(DEADLINE, stream.next()).await.unwrap().unwrap() {
            Err(watcher::Error::WatchError(status)) => {
                assert_eq!(status.code, 410);
                saw_gone = true;
            }
            Err(other) => panic!("unexpected watcher error {other}"),
            Ok(watcher::Event::InitApply(w)) => relisted.push(w.name_any()),
            Ok(watcher::Event::InitDone) => break,
            Ok(_) => {}
        }
    }
    assert!(saw_gone, "the watcher saw the 410");
    assert_eq!(relisted, vec!["a", "b"]);

    resize(&api, "b", 5).await;
    let watcher::Event::Apply(w) = next_change(&mut stream).await else {
        panic!("not Apply")
    };
    assert_eq!((w.name_any().as_str(), w.spec.size), ("b", 5));
}

#[tokio::test]
async fn streaming_list_watcher_gets_initial_events_then_changes() {
    let (_fake, api) = setup();
    create(&api, "a", 1).await;
    let mut stream = watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    assert_eq!(initial_list(&mut stream).await, vec!["a"]);
    create(&api, "b", 1).await;
    let watcher::Event::Apply(w) = next_change(&mut stream).await else {
        panic!("not Apply")
    };
    assert_eq!(w.name_any(), "b");
}

#[tokio::test]
async fn label_selected_watch_sees_objects_leave_and_enter_the_selection() {
    let (_fake, api) = setup();
    let rv = list_rv(&api).await;
    let mut events = watch(&api, &WatchParams::default().labels("tier=web"), &rv).await;
    create(&api, "a", 1).await; // not selected
    let pp = PatchParams::default();
    let label = |tier: &str| Patch::Merge(json!({"metadata": {"labels": {"tier": tier}}}));
    api.patch("a", &pp, &label("web")).await.unwrap(); // enters
    api.patch("a", &pp, &label("db")).await.unwrap(); // leaves
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match next_event(&mut events).await {
            Some(WatchEvent::Added(w)) => seen.push(("ADDED", w.labels()["tier"].clone())),
            Some(WatchEvent::Deleted(w)) => seen.push(("DELETED", w.labels()["tier"].clone())),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        seen,
        vec![("ADDED", "web".to_string()), ("DELETED", "db".to_string())]
    );
}

#[tokio::test]
async fn watches_end_at_their_timeout() {
    let (_fake, api) = setup();
    let rv = list_rv(&api).await;
    let mut events = watch(&api, &WatchParams::default().timeout(1), &rv).await;
    assert!(
        ends(&mut events).await,
        "the watch ended after timeoutSeconds"
    );
}

#[tokio::test]
async fn expiring_history_closes_open_watches() {
    let (fake, api) = setup();
    let rv = list_rv(&api).await;
    let mut events = watch(&api, &WatchParams::default(), &rv).await;
    assert_eq!(fake.open_watches(), 1);
    fake.expire_watch_history();
    assert!(ends(&mut events).await, "the open watch was closed");
    assert_eq!(fake.open_watches(), 0);
}

#[tokio::test]
async fn a_paged_initial_list_gives_every_object_once_and_the_watch_goes_on() {
    let (_fake, api) = setup();
    let names: Vec<String> = (0..7).map(|i| format!("w{i}")).collect();
    for n in &names {
        create(&api, n, 1).await;
    }
    let mut stream = watcher(api.clone(), watcher::Config::default().page_size(3)).boxed();
    assert_eq!(initial_list(&mut stream).await, names);
    resize(&api, "w6", 9).await;
    let watcher::Event::Apply(w) = next_change(&mut stream).await else {
        panic!("not Apply")
    };
    assert_eq!((w.name_any().as_str(), w.spec.size), ("w6", 9));
}
