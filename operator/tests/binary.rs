//! The `ordinaut-operator` binary's own surface.
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn crdgen_prints_every_crd() {
    let out = Command::new(env!("CARGO_BIN_EXE_ordinaut-operator"))
        .arg("crdgen")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for name in [
        "tasks.ordinaut.dev",
        "pipelines.ordinaut.dev",
        "mcpservers.ordinaut.dev",
        "agents.ordinaut.dev",
    ] {
        assert!(text.contains(&format!("name: {name}")), "{name} missing");
    }
    assert_eq!(text.matches("kind: CustomResourceDefinition").count(), 4);
}

#[test]
fn every_flag_has_an_environment_variable_in_the_help() {
    let out = Command::new(env!("CARGO_BIN_EXE_ordinaut-operator"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for env in [
        "DATABASE_URL",
        "REDIS_URL",
        "POD_NAMESPACE",
        "POD_NAME",
        "ORDINAUT_HORIZON",
        "ORDINAUT_TICK_INTERVAL",
        "ORDINAUT_LEADER_ELECTION",
    ] {
        assert!(
            help.contains(&format!("[env: {env}")),
            "{env} missing from --help"
        );
    }
}

#[test]
fn without_a_database_url_it_exits_non_zero_with_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_ordinaut-operator"))
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--database-url"), "{err}");
}
