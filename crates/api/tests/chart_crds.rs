//! The Helm chart carries the CRDs (`charts/ordinaut/files/crds/`, rendered by
//! `templates/crds.yaml`, so `helm upgrade` upgrades them): its copies must be exactly the
//! generated ones, so a chart never installs a stale schema.

use std::collections::BTreeSet;
use std::path::PathBuf;

use ordinaut_api::crd::default_crds_dir;

fn chart_crds_dir() -> PathBuf {
    default_crds_dir()
        .parent()
        .expect("crds/ has a parent (the workspace root)")
        .join("charts/ordinaut/files/crds")
}

#[test]
fn chart_crds_are_exactly_the_generated_crds() {
    let dir = chart_crds_dir();
    let rendered = ordinaut_api::render_all().expect("render CRDs");
    let mut stale = Vec::new();
    for crd in &rendered {
        let path = dir.join(&crd.file_name);
        match std::fs::read_to_string(&path) {
            Ok(copy) if copy == crd.yaml => {}
            Ok(_) => stale.push(format!("{} differs from the types", path.display())),
            Err(e) => stale.push(format!("{} cannot be read: {e}", path.display())),
        }
    }
    let expected: BTreeSet<&str> = rendered.iter().map(|c| c.file_name.as_str()).collect();
    for entry in std::fs::read_dir(&dir).expect("read charts/ordinaut/files/crds/") {
        let name = entry
            .expect("dir entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if !expected.contains(name.as_str()) {
            stale.push(format!(
                "{}/{name} is not a generated CRD (the chart would install it)",
                dir.display()
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "the chart's CRDs drifted:\n  {}\nRun `cargo run -p ordinaut-api --bin crdgen`, then \
         `cp crds/*.yaml charts/ordinaut/files/crds/`, and commit both.",
        stale.join("\n  ")
    );
}

#[test]
fn chart_crds_match_the_committed_crds_folder() {
    let chart = chart_crds_dir();
    for entry in std::fs::read_dir(default_crds_dir()).expect("read crds/") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path.file_name().expect("file name");
            let committed = std::fs::read_to_string(&path).expect("read committed CRD");
            let copy = std::fs::read_to_string(chart.join(name)).unwrap_or_default();
            assert!(
                committed == copy,
                "charts/ordinaut/files/crds/{} is not a copy of crds/{}: `cp crds/*.yaml charts/ordinaut/files/crds/`",
                name.to_string_lossy(),
                name.to_string_lossy()
            );
        }
    }
}
