//! A small custom resource with a status subresource, and helpers.

use std::time::Duration;

use kube::api::{Api, PostParams};
use kube::{CustomResource, CustomResourceExt};
use ordinaut_kube_fake::FakeApiServer;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Generous upper bound for anything asynchronous; conditions normally hold in milliseconds.
pub const DEADLINE: Duration = Duration::from_secs(10);

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "test.ordinaut.dev",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus"
)]
pub struct WidgetSpec {
    pub size: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WidgetStatus {
    pub ready: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A fake server serving `Widget` (registered from its CRD), and an `Api` in `default`.
pub fn setup() -> (FakeApiServer, Api<Widget>) {
    let fake = FakeApiServer::new();
    fake.register_crd(&Widget::crd());
    let api = Api::default_namespaced(fake.client());
    (fake, api)
}

pub fn widget(name: &str, size: i32) -> Widget {
    Widget::new(name, WidgetSpec { size, color: None })
}

pub async fn create(api: &Api<Widget>, name: &str, size: i32) -> Widget {
    api.create(&PostParams::default(), &widget(name, size))
        .await
        .unwrap()
}

/// The collection path of widgets in `default`, as kube builds it.
pub fn widgets_path() -> String {
    "/apis/test.ordinaut.dev/v1/namespaces/default/widgets".to_string()
}

pub fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}
