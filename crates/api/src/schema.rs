//! Schema helpers shared by the custom resources: the shapes `schemars` cannot derive in a
//! form the Kubernetes API server accepts (free-form JSON, `metav1.Condition` lists).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// A free-form JSON object kept as written (`x-kubernetes-preserve-unknown-fields`):
/// JSON Schemas, templated step arguments, Task params.
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Any JSON value (object, list, string, number, boolean) kept as written. Structural schemas
/// allow a missing `type` only together with `x-kubernetes-preserve-unknown-fields`.
pub fn preserve_unknown_any(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// A list of `metav1.Condition` as Kubernetes declares it: a list-map keyed by `type`, so
/// server-side apply merges conditions one by one instead of replacing the whole list.
pub fn conditions(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = <Vec<Condition>>::json_schema(generator);
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema
}
