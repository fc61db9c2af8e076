//! `ordinaut state`: agent memory from the command line, against a real database: put with
//! compare-and-set (a stale write exits 1 naming the current version), get (value on stdout),
//! list, delete, history; a value that is not JSON exits 2 with the fix.
#![allow(clippy::unwrap_used)]

use ordinaut_store::testing::TestDb;
use ordinaut_test_support::cli::*;

fn state(db: &TestDb, args: &[&str]) -> (i32, String, String) {
    let out = ordinaut(&["state"])
        .args(args)
        .args(["--database-url", &db.url])
        .env("USER", "alice")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn put_get_list_delete_with_compare_and_set() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (db, store) = rt.block_on(TestDb::migrated()).unwrap();
    let owner = ["--owner", "task:inbox"];

    let (code, out, err) = state(
        &db,
        &[
            &["put", "cursors/inbox", "41", "--if-version", "0"][..],
            &owner,
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.trim(),
        "cursors/inbox = 41  (version 1 of task:inbox in default)"
    );

    // A writer still at version 0: refused, naming the current version; nothing written.
    let (code, _, err) = state(
        &db,
        &[
            &["put", "cursors/inbox", "99", "--if-version", "0"][..],
            &owner,
        ]
        .concat(),
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("current version 1"), "{err}");
    let (code, out, err) = state(&db, &[&["get", "cursors/inbox"][..], &owner].concat());
    assert_eq!((code, out.trim()), (0, "41"), "{err}");
    assert_eq!(err.trim(), "version 1 of task:inbox in default");

    // Not JSON: exit 2, saying how to quote a string.
    let (code, _, err) = state(&db, &[&["put", "note", "hello"][..], &owner].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(r#"'"hello"'"#), "{err}");

    let (code, _, err) = state(
        &db,
        &[&["put", "note", r#""hello""#, "--ttl", "7d"][..], &owner].concat(),
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = state(&db, &["list"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["KEY", "OWNER", "VERSION", "VALUE"]
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["cursors/inbox", "task:inbox", "1", "41"]
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["note", "task:inbox", "1", r#""hello""#]
    );

    let (code, out, _) = state(
        &db,
        &[&["delete", "note", "--if-version", "1"][..], &owner].concat(),
    );
    assert_eq!(
        (code, out.trim()),
        (0, "deleted note of task:inbox (version 2)")
    );
    let (code, _, err) = state(&db, &[&["get", "note"][..], &owner].concat());
    assert_eq!(code, 1);
    assert!(err.contains("no key `note`"), "{err}");
    let (code, out, _) = state(
        &db,
        &[&["history", "note", "--output", "json"][..], &owner].concat(),
    );
    assert_eq!(code, 0);
    let ops: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["op"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ops, ["delete", "put"]);

    // Audited as the user.
    let actors: Vec<(String,)> = rt
        .block_on(
            sqlx::query_as("SELECT DISTINCT actor FROM audit_log WHERE action LIKE 'state.%'")
                .fetch_all(store.pool()),
        )
        .unwrap();
    assert_eq!(actors, [("cli:alice".to_string(),)]);
}
