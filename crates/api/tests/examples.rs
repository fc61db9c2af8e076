//! Every manifest under `examples/` reads into its type and passes the CRD's CEL rules.

use kube::core::cel::Validator;
use serde::Deserialize;
use serde_json::Value;

#[test]
fn examples_read_into_their_types_and_pass_the_cel_rules() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let crds = ordinaut_api::crds();
    let mut seen = 0;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
    {
        let text = std::fs::read_to_string(path).expect("read example");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value =
                Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let kind = value["kind"].as_str().unwrap_or_default().to_string();
            let yaml = serde_yaml::to_string(&value).expect("re-serialize");
            let typed = match kind.as_str() {
                "Task" => serde_yaml::from_str::<ordinaut_api::Task>(&yaml).map(|_| ()),
                "Pipeline" => serde_yaml::from_str::<ordinaut_api::Pipeline>(&yaml).map(|_| ()),
                "McpServer" => serde_yaml::from_str::<ordinaut_api::McpServer>(&yaml).map(|_| ()),
                "Agent" => serde_yaml::from_str::<ordinaut_api::Agent>(&yaml).map(|_| ()),
                other => panic!("{}: unexpected kind {other:?}", path.display()),
            };
            typed.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let crd = crds
                .iter()
                .find(|c| c.spec.names.kind == kind)
                .expect("CRD for kind");
            let schema = crd.spec.versions[0]
                .schema
                .clone()
                .and_then(|s| s.open_api_v3_schema);
            let schema = serde_json::to_value(schema.expect("schema")).expect("schema JSON");
            if let Err(errors) = Validator::new().validate(&schema, &value, None) {
                panic!("{}: CEL rules fail: {errors:?}", path.display());
            }
            seen += 1;
        }
    }
    assert!(
        seen >= 4,
        "expected the documented examples, found {seen} documents"
    );
}
