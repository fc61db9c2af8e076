//! Every command of the README, run as written: the fenced ```sh commands that start with
//! `ordinaut ` run through `sh` with the built binary first on PATH, from the workspace
//! root, and their output (stdout then stderr) is compared with the ```text block that
//! follows. Other commands (`cargo build`, `bash scripts/test.sh`…) are skipped and printed.
//!
//! In expected output, `…` stands for any text and a leading `HH:MM:SS ` time is ignored. A
//! command whose expected output has a `^C` line runs until the lines before it have
//! appeared (in order, other lines may come between), gets SIGINT, and must then print the
//! lines after it. Commands run against a fresh database and a unique Redis stream
//! (`DATABASE_URL`, `REDIS_URL`, `ORDINAUT_EVENTS_STREAM`, `ORDINAUT_DATA_DIR`), so a
//! README `ordinaut dev` and the `ordinaut runs` after it see the same, empty, instance.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use ordinaut_store::testing::TestDb;
use ordinaut_test_support::cli::{Dev, wait_for};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A command and the output the document shows for it.
#[derive(Debug)]
struct Example {
    line: usize,
    command: String,
    expected: Option<Vec<String>>,
}

/// The commands of ```sh blocks, each with the ```text block that follows its block (for
/// the block's last command).
fn examples(markdown: &str) -> Vec<Example> {
    let mut out: Vec<Example> = Vec::new();
    let mut block: Option<(String, Vec<String>)> = None;
    let mut last_sh_end: Option<usize> = None;
    for (n, line) in markdown.lines().enumerate() {
        match &mut block {
            None => {
                if let Some(lang) = line.trim_start().strip_prefix("```") {
                    block = Some((lang.trim().to_string(), Vec::new()));
                }
            }
            Some((lang, lines)) => {
                if line.trim_start().starts_with("```") {
                    if lang == "sh" {
                        let first = out.len();
                        for (i, l) in lines.iter().enumerate() {
                            let command = l.split(" #").next().unwrap_or("").trim();
                            if !command.is_empty() && !command.starts_with('#') {
                                out.push(Example {
                                    line: n + 1 - lines.len() + i,
                                    command: command.to_string(),
                                    expected: None,
                                });
                            }
                        }
                        last_sh_end = (out.len() > first).then_some(out.len() - 1);
                    } else if lang == "text" {
                        if let Some(i) = last_sh_end.take() {
                            out[i].expected = Some(lines.clone());
                        }
                    } else {
                        last_sh_end = None;
                    }
                    block = None;
                } else {
                    lines.push(line.to_string());
                }
            }
        }
    }
    out
}

/// Drops a leading `HH:MM:SS ` (the time `ordinaut dev` puts on its lines).
fn untimed(line: &str) -> &str {
    let b = line.as_bytes();
    let timed = b.len() > 9
        && b[2] == b':'
        && b[5] == b':'
        && b[8] == b' '
        && [0, 1, 3, 4, 6, 7].iter().all(|&i| b[i].is_ascii_digit());
    if timed { &line[9..] } else { line }
}

/// `expected` with `…` standing for any text matches `actual`.
fn matches(expected: &str, actual: &str) -> bool {
    let (expected, actual) = (untimed(expected.trim_end()), untimed(actual.trim_end()));
    let parts: Vec<&str> = expected.split('…').collect();
    if parts.len() == 1 {
        return expected == actual;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !actual.starts_with(first) || actual.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &actual[first.len()..];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Every expected line matches an actual line, in order.
fn in_order(expected: &[String], actual: &[String]) -> Result<(), String> {
    let mut at = 0;
    for e in expected {
        match actual[at..].iter().position(|a| matches(e, a)) {
            Some(i) => at += i + 1,
            None => return Err(format!("no line matching `{e}` (after line {at})")),
        }
    }
    Ok(())
}

struct Env {
    bin_dir: tempfile::TempDir,
    data: tempfile::TempDir,
    db: TestDb,
    stream: String,
}

impl Env {
    fn command(&self, line: &str) -> Command {
        let path = format!(
            "{}:{}",
            self.bin_dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = Command::new("sh");
        c.args(["-c", line])
            .current_dir(workspace())
            .env("PATH", path)
            .env("DATABASE_URL", &self.db.url)
            .env("REDIS_URL", ordinaut_test_support::cli::redis_url())
            .env("ORDINAUT_EVENTS_STREAM", &self.stream)
            .env("ORDINAUT_DATA_DIR", self.data.path())
            .env_remove("ORDINAUT_OUTPUT");
        c
    }
}

fn run_document(path: &Path) {
    let markdown = std::fs::read_to_string(path).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let env = Env {
        bin_dir: tempfile::tempdir().unwrap(),
        data: tempfile::tempdir().unwrap(),
        db: rt.block_on(TestDb::empty()).unwrap(),
        stream: format!("test:readme:{}", uuid::Uuid::new_v4().simple()),
    };
    std::os::unix::fs::symlink(
        ordinaut_test_support::cli::bin(),
        env.bin_dir.path().join("ordinaut"),
    )
    .unwrap();
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let mut ran = 0;
    for ex in examples(&markdown) {
        if !ex.command.starts_with("ordinaut ") {
            println!(
                "{name}:{}: skipped (not an ordinaut command): {}",
                ex.line, ex.command
            );
            continue;
        }
        ran += 1;
        let expected = ex.expected.clone().unwrap_or_default();
        if let Some(stop) = expected.iter().position(|l| l.trim() == "^C") {
            // `exec`, so that the signal reaches the command rather than the shell.
            let mut dev = Dev::start(env.command(&format!("exec {}", ex.command)));
            let (before, after) = (&expected[..stop], &expected[stop + 1..]);
            wait_for(
                Duration::from_secs(120),
                &format!("{name}:{}: {}", ex.line, ex.command),
                || in_order(before, &dev.lines()).ok(),
            );
            let status = dev.stop(Signal::SIGINT, Duration::from_secs(60));
            assert!(
                status.success(),
                "{name}:{}: {status}\n{}",
                ex.line,
                dev.output()
            );
            let lines = dev.lines();
            if let Err(e) = in_order(
                after,
                &lines[lines.len().saturating_sub(after.len() + 20)..],
            ) {
                panic!("{name}:{}: {}: {e}\n{}", ex.line, ex.command, dev.output());
            }
        } else {
            let out = env.command(&ex.command).output().unwrap();
            let text = ordinaut_test_support::cli::text(&out);
            if let Some(expected) = &ex.expected {
                let actual: Vec<&str> = text.lines().collect();
                let same = actual.len() == expected.len()
                    && expected.iter().zip(&actual).all(|(e, a)| matches(e, a));
                assert!(
                    same,
                    "{name}:{}: {}\nexpected:\n{}\nactual:\n{text}",
                    ex.line,
                    ex.command,
                    expected.join("\n")
                );
            }
            assert!(
                out.status.success() || ex.command.starts_with("ordinaut validate"),
                "{name}:{}: {} failed: {text}",
                ex.line,
                ex.command
            );
        }
        println!("{name}:{}: ok: {}", ex.line, ex.command);
    }
    assert!(ran > 0, "{name} has no ordinaut command");
}

#[test]
fn every_ordinaut_command_of_the_readme_prints_what_it_shows() {
    run_document(&workspace().join("README.md"));
}

#[test]
fn expected_output_matches_with_ellipses_and_times() {
    assert!(matches(
        "task … next run … (in …)",
        "task x: next run 2026 (in 5s)"
    ));
    assert!(matches(
        "12:00:00 run default/a started …",
        "09:41:07 run default/a started (schedule, attempt 1) 01a2"
    ));
    assert!(!matches("run default/a started", "run default/b started"));
    assert!(!matches("a…b", "ab-c"));
    assert!(matches("ok", "ok  "));
    let md = "```sh\ncargo build\nordinaut x --y # note\n```\n\nprose\n\n```text\nout\n```\n```sh\nordinaut z\n```\n";
    let ex = examples(md);
    assert_eq!(ex.len(), 3);
    assert_eq!(ex[1].command, "ordinaut x --y");
    assert_eq!(ex[1].expected.as_deref(), Some(&["out".to_string()][..]));
    assert_eq!(ex[2].expected, None);
    assert!(
        in_order(
            &["a".into(), "c".into()],
            &["a".into(), "b".into(), "c".into()]
        )
        .is_ok()
    );
    assert!(
        in_order(
            &["c".into(), "a".into()],
            &["a".into(), "b".into(), "c".into()]
        )
        .is_err()
    );
}

#[test]
fn installed_as_kubectl_ordinaut_it_answers_as_a_kubectl_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("kubectl-ordinaut");
    std::os::unix::fs::symlink(ordinaut_test_support::cli::bin(), &plugin).unwrap();
    let out = Command::new(&plugin).arg("--help").output().unwrap();
    let text = ordinaut_test_support::cli::text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Usage: kubectl ordinaut [OPTIONS] <COMMAND>")
            || text.contains("Usage: kubectl ordinaut <COMMAND>"),
        "{text}"
    );
    let out = Command::new(&plugin)
        .args([
            "schedule",
            "preview",
            "--cron",
            "0 9 * * *",
            "--after",
            "2025-01-01T00:00:00Z",
            "--count",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2025-01-01T09:00:00+00:00\n"
    );
    let out = Command::new(&plugin)
        .args(["task", "--help"])
        .output()
        .unwrap();
    let text = ordinaut_test_support::cli::text(&out);
    assert!(text.contains("Usage: kubectl ordinaut task"), "{text}");
    assert!(
        text.contains("kubectl ordinaut run-now NAME [-n NS] [--context CTX]"),
        "{text}"
    );
}
