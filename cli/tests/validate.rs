//! `ordinaut validate`, run as the built binary on the examples and on fixtures with known
//! mistakes at known lines.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/validate")
        .join(name)
        .display()
        .to_string()
}

fn validate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ordinaut"))
        .arg("validate")
        .args(args)
        .current_dir(workspace())
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// The problem lines as (line, path) pairs, for `file`.
fn located(o: &Output, file: &str) -> Vec<(usize, String)> {
    stdout(o)
        .lines()
        .map(|l| {
            let rest = l
                .strip_prefix(&format!("{file}:"))
                .unwrap_or_else(|| panic!("{l}"));
            let (line, rest) = rest.split_once(": ").unwrap();
            let (path, _) = rest.split_once(": ").unwrap();
            (line.parse().unwrap(), path.to_string())
        })
        .collect()
}

#[test]
fn the_examples_validate_clean() {
    let o = validate(&["-f", "examples"]);
    assert!(
        o.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&o),
        stderr(&o)
    );
    assert_eq!(stdout(&o), "", "no problems on stdout");
    for example in [
        "agent.yaml",
        "hello-every-minute.yaml",
        "pipeline-morning-briefing.yaml",
        "task-morning-briefing.yaml",
    ] {
        assert!(
            stderr(&o).contains(&format!("examples/{example}: ok (1 document)")),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn each_mistake_is_reported_at_its_line_and_the_exit_code_is_nonzero() {
    let file = fixture("mistakes.yaml");
    let o = validate(&["-f", &file]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(
        located(&o, &file),
        [
            (8, "spec.schedule.rrule.BYMONTHDAY".to_string()),
            (9, "spec.schedule.timezone".to_string()),
            (17, "spec".to_string()),
            (30, "spec.steps[0].with.x".to_string()),
            (31, "spec.steps[1].id".to_string()),
            (33, "spec.steps[1].timeout".to_string()),
            (47, "spec.schedule.catchup.policy".to_string()),
        ],
        "{out}"
    );
    assert!(
        out.contains("unknown timezone `Mars/Olympus_Mons`"),
        "{out}"
    );
    assert!(
        out.contains("BYMONTHDAY is not allowed with FREQ=WEEKLY"),
        "{out}"
    );
    assert!(out.contains("unknown field `shedule`"), "{out}");
    assert!(
        out.contains("unknown variant `Sometimes`, expected one of `None`, `Latest`, `All`"),
        "{out}"
    );
    assert!(!out.contains("Secret"), "other kinds are skipped: {out}");
    assert!(
        stderr(&o).contains(&format!("{file}: 7 problems (5 documents)")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_cel_rules_are_checked_without_an_api_server() {
    let file = fixture("cel-rules.yaml");
    let o = validate(&["-f", &file]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let expected = [
        format!("{file}:6: spec.schedule: set exactly one of rrule, cron, at, every or on"),
        format!("{file}:10: spec.schedule.endAt: endAt must be after startAt"),
        format!("{file}:5: spec: set exactly one of pipelineRef or pipeline"),
        format!("{file}:18: metadata.name: an McpServer name must not contain '.'"),
        format!("{file}:24: spec.transport.http.headers[0]: set exactly one of value or valueFrom"),
        format!("{file}:29: kind: unknown kind `Gadget`"),
    ];
    for line in expected {
        assert!(out.contains(&line), "missing `{line}` in:\n{out}");
    }
}

#[test]
fn task_params_are_checked_against_a_pipeline_found_among_the_files() {
    let dir = fixture("params");
    let o = validate(&["-f", &dir]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.starts_with(&format!("{dir}/task.yaml:9: spec.params: does not match")),
        "{out}"
    );
    assert_eq!(out.lines().count(), 1, "{out}");
    // Alone, the Task's pipeline is unknown (it may exist in the cluster): nothing to check.
    let o = validate(&["-f", &format!("{dir}/task.yaml")]);
    assert!(o.status.success(), "{}", stdout(&o));
}

#[test]
fn a_missing_file_is_a_usage_error() {
    let o = validate(&["-f", "does/not/exist.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("does/not/exist.yaml: no such file or directory"),
        "{}",
        stderr(&o)
    );
}

/// A temporary folder for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ordinaut-validate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_binary_file_is_a_problem_not_ok() {
    let dir = scratch("binary");
    let file = dir.join("garbage.yaml");
    // An ELF header, then bytes that are not UTF-8.
    let mut bytes = b"\x7fELF\x02\x01\x01\n\n".to_vec();
    bytes.extend((0u8..=255).rev());
    std::fs::write(&file, &bytes).unwrap();
    let text = file.display().to_string();
    let o = validate(&["-f", &text]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(located(&o, &text), [(3, "(file)".to_string())]);
    assert!(
        stdout(&o).contains("is not YAML text: invalid UTF-8"),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains(&format!("{text}: 1 problem (0 documents)")),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("ok ("), "{}", stderr(&o));
}

#[test]
fn an_oversized_document_is_refused_naming_the_limit_and_its_neighbours_still_validate() {
    let dir = scratch("oversized");
    let file = dir.join("big.yaml");
    let small = "apiVersion: ordinaut.dev/v1alpha1\nkind: Task\nmetadata: {name: small}\nspec:\n  schedule: {every: 1h}\n  pipeline:\n    steps:\n      - {id: a, uses: core.echo, with: {m: hi}}\n";
    let big = format!(
        "apiVersion: ordinaut.dev/v1alpha1\nkind: Task\nmetadata: {{name: big}}\nspec:\n  schedule: {{every: 1h}}\n  pipeline:\n    steps:\n      - {{id: a, uses: core.echo, with: {{m: \"{}\"}}}}\n",
        "x".repeat(1_100_000)
    );
    std::fs::write(&file, format!("{small}---\n{big}")).unwrap();
    let text = file.display().to_string();
    let o = validate(&["-f", &text]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // At the document's `---` line.
    assert_eq!(located(&o, &text), [(9, "(document)".to_string())]);
    let out = stdout(&o);
    assert!(out.contains("over the limit of 1048576"), "{out}");
    assert!(out.contains("limit: manifest size"), "{out}");
    assert!(
        stderr(&o).contains(&format!("{text}: 1 problem (1 document)")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_nul_character_in_any_manifest_string_is_refused_naming_the_field() {
    let dir = scratch("nul");
    let file = dir.join("nul.yaml");
    std::fs::write(
        &file,
        "apiVersion: ordinaut.dev/v1alpha1\nkind: Task\nmetadata: {name: t}\nspec:\n  schedule: {every: 1h}\n  pipeline:\n    steps:\n      - {id: a, uses: core.echo, with: {m: \"a\\0b\"}}\n",
    )
    .unwrap();
    let text = file.display().to_string();
    let o = validate(&["-f", &text]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("spec.pipeline.steps[0].with.m: contains a NUL character"),
        "{out}"
    );
}

#[test]
fn a_task_finished_cycle_is_refused_naming_the_cycle() {
    let dir = fixture("cycle");
    let o = validate(&["-f", &dir]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    let file = format!("{dir}/tasks.yaml");
    // Each Task on the circle, at its taskFinished name; d only follows it.
    let lines: Vec<(usize, String)> = located(&o, &file);
    assert_eq!(
        lines,
        [
            (10, "spec.schedule.on.taskFinished.name".to_string()),
            (24, "spec.schedule.on.taskFinished.name".to_string()),
            (38, "spec.schedule.on.taskFinished.name".to_string()),
        ],
        "{out}"
    );
    assert!(
        out.contains("taskFinished triggers form a cycle (a after c after b after a)"),
        "{out}"
    );
}
