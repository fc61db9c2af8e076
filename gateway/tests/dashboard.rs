//! The dashboard over HTTP as a browser uses it: what is served without a session, the
//! session cookie, CSRF and scope checks on actions (audited like API calls), and the pages
//! a person reads.
#![allow(clippy::unwrap_used)]

use ordinaut_test_support::dashboard::{ADMIN, csrf_of, echo_task, start, wait_for};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn only_the_login_page_and_assets_are_served_without_a_session() {
    let env = start().await;
    for path in [
        "/ui",
        "/ui/timeline",
        "/ui/runs/0190",
        "/ui/tasks/a/b",
        "/ui/live",
    ] {
        let p = env.get(path, None).await;
        assert_eq!(p.status, 303, "{path}: {}", p.body);
        assert!(
            p.location
                .as_deref()
                .unwrap()
                .starts_with("/ui/login?next="),
            "{path}"
        );
    }
    let p = env.post_form("/ui/tasks/a/b/run-now", None, "csrf=x").await;
    assert_eq!(
        p.status, 303,
        "an action without a session goes to the login page"
    );
    let login = env.get("/ui/login", None).await;
    assert_eq!(login.status, 200);
    assert!(login.body.contains("name=\"token\""), "{}", login.body);
    let js = env.get("/ui/assets/dashboard.js", None).await;
    assert_eq!(js.status, 200);
    assert!(js.body.contains("EventSource"));
    assert_eq!(env.get("/ui/assets/other.js", None).await.status, 404);
    // A forged session cookie is no session.
    let p = env.get("/ui", Some("ordinaut_session=forged")).await;
    assert_eq!(p.status, 303);
}

#[tokio::test]
async fn signing_in_sets_an_http_only_strict_cookie_and_no_page_shows_the_token() {
    let env = start().await;
    let bad = env.post_form("/ui/login", None, "token=wrong&tz=UTC").await;
    assert_eq!(bad.status, 401);
    assert!(bad.body.contains("not valid"), "{}", bad.body);
    assert!(bad.set_cookie.is_none());

    let p = env
        .post_form(
            "/ui/login",
            None,
            &format!("token={ADMIN}&tz=Europe%2FOslo&next=%2Fui%2Ftimeline"),
        )
        .await;
    assert_eq!(p.status, 303);
    assert_eq!(p.location.as_deref(), Some("/ui/timeline"));
    let cookie = p.set_cookie.unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    assert!(!cookie.contains(ADMIN), "the cookie is not the token");
    let session = cookie.split(';').next().unwrap();
    for path in ["/ui", "/ui/timeline"] {
        let page = env.get(path, Some(session)).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(!page.body.contains(ADMIN), "{path} shows the token");
        assert!(
            page.body.contains("Europe/Oslo"),
            "{path} uses the browser's timezone"
        );
    }
    // An open redirect is not followed.
    let p = env
        .post_form(
            "/ui/login",
            None,
            &format!("token={ADMIN}&next=https%3A%2F%2Fevil.example"),
        )
        .await;
    assert_eq!(p.location.as_deref(), Some("/ui"));
    // Signing out ends the session.
    let csrf = csrf_of(&env.get("/ui", Some(session)).await.body).unwrap();
    let out = env
        .post_form("/ui/logout", Some(session), &format!("csrf={csrf}"))
        .await;
    assert_eq!(out.status, 303);
    assert_eq!(env.get("/ui", Some(session)).await.status, 303);
}

#[tokio::test]
async fn a_post_from_another_site_is_refused() {
    let env = start().await;
    let res = env
        .http
        .post(format!("{}/ui/login", env.url))
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={ADMIN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("set-cookie").is_none());
}

/// Actions run through the API's operations: refused without the CSRF token, refused (and
/// audited as refused) outside the token's scopes, done and audited within them.
#[tokio::test]
async fn actions_need_the_csrf_token_and_the_scope_and_are_audited() {
    let env = start().await;
    env.agent(
        "team",
        "reader",
        "reader-token",
        Some(&["tasks:read", "runs:read"]),
    )
    .await;
    let spec = echo_task("reader", json!({"every": "1h"}));
    let (s, b) = env
        .api(
            Method::POST,
            "/v1/tasks",
            ADMIN,
            Some(json!({"name": "report", "namespace": "team", "spec": spec})),
        )
        .await;
    assert_eq!(s, 201, "{b}");

    let reader = env.login("reader-token").await;
    let page = env.get("/ui/tasks/team/report", Some(&reader.cookie)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        !page.body.contains("data-action=\"run-now\""),
        "no run-now button without runs:write"
    );
    assert!(
        page.body.contains("<code>runs:write</code>"),
        "the page says which scope is missing"
    );

    let forged = env
        .post_form(
            "/ui/tasks/team/report/run-now",
            Some(&reader.cookie),
            "csrf=forged",
        )
        .await;
    assert_eq!(forged.status, 403);
    assert!(forged.body.contains("CSRF"), "{}", forged.body);

    let csrf = format!("csrf={}", reader.csrf);
    let refused = env
        .post_form("/ui/tasks/team/report/run-now", Some(&reader.cookie), &csrf)
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("lacks the API scope `runs:write`"),
        "{}",
        refused.body
    );

    let admin = env.login(ADMIN).await;
    let done = env
        .post_form(
            "/ui/tasks/team/report/run-now",
            Some(&admin.cookie),
            &format!("csrf={}", admin.csrf),
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some("/ui/tasks/team/report"));
    let after = env.get("/ui/tasks/team/report", Some(&admin.cookie)).await;
    assert!(
        after.body.contains("correlation id"),
        "the result is shown once: {}",
        after.body
    );

    let (s, audit) = env
        .api(Method::GET, "/v1/audit?action=task.run-now", ADMIN, None)
        .await;
    assert_eq!(s, 200, "{audit}");
    let entries = audit["items"].as_array().unwrap();
    let by = |actor: &str| entries.iter().find(|e| e["actor"] == actor).cloned();
    let refused = by("agent:team/reader").expect("the refusal is audited");
    assert_eq!(refused["allowed"], false);
    let allowed = by("admin").expect("the action is audited");
    assert_eq!(allowed["allowed"], true);
    assert!(allowed["correlationId"].is_string());
}

/// The overview puts a Task whose last run failed first, the run page shows the failing
/// step's error, and the Task page lists the scheduler's next occurrences.
#[tokio::test]
async fn failures_come_first_and_link_to_their_error() {
    let env = start().await;
    env.agent("team", "bot", "bot-token", None).await;
    for (name, schedule) in [
        ("aaa-fine", json!({"every": "1h"})),
        (
            "zzz-daily",
            json!({"cron": "0 8 * * MON-FRI", "timezone": "Europe/Berlin"}),
        ),
    ] {
        let (s, b) = env
            .api(
                Method::POST,
                "/v1/tasks",
                ADMIN,
                Some(
                    json!({"name": name, "namespace": "team", "spec": echo_task("bot", schedule)}),
                ),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
    let failing = json!({
        "schedule": {"every": "1h"}, "agentRef": "bot",
        "pipeline": {"steps": [{"id": "fetch", "uses": "core.fail",
            "with": {"message": "upstream answered 503", "retryable": false}}]},
    });
    let (s, b) = env
        .api(
            Method::POST,
            "/v1/tasks",
            ADMIN,
            Some(json!({"name": "mmm-sync", "namespace": "team", "spec": failing})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = env
        .api(Method::POST, "/v1/tasks/team/mmm-sync/run-now", ADMIN, None)
        .await;
    assert_eq!(s, 200, "{b}");

    wait_for("the failed run", || async {
        let (_, runs) = env
            .api(Method::GET, "/v1/runs?status=failed", ADMIN, None)
            .await;
        runs["items"].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    let admin = env.login(ADMIN).await;
    let cookie = admin.cookie.clone();
    wait_for("the failed run on the overview", || {
        let (env, cookie) = (&env, cookie.clone());
        async move {
            let body = env.get("/ui", Some(&cookie)).await.body;
            // The Tasks reach the store through the sync loop, in no set order: wait for all.
            body.contains("badge bad\">Failed") && body.contains("data-task=\"team/zzz-daily\"")
        }
    })
    .await;
    let body = env.get("/ui", Some(&cookie)).await.body;
    let pos = |name: &str| body.find(&format!("data-task=\"team/{name}\"")).unwrap();
    assert!(
        pos("mmm-sync") < pos("aaa-fine"),
        "the failure is listed first"
    );
    assert!(body.contains("weekdays at 08:00"), "schedules in words");

    let run_id = body
        .split("/ui/runs/")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let run = env.get(&format!("/ui/runs/{run_id}"), Some(&cookie)).await;
    assert_eq!(run.status, 200, "{}", run.body);
    assert!(run.body.contains("upstream answered 503"), "{}", run.body);
    assert!(run.body.contains("core.fail"));

    let task = env.get("/ui/tasks/team/zzz-daily", Some(&cookie)).await;
    assert_eq!(task.status, 200);
    assert_eq!(
        task.body.matches("<li data-row>").count(),
        20,
        "the next 20 occurrences"
    );
    assert!(task.body.contains("kind: Task"), "the manifest as YAML");
}
