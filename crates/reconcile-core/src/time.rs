//! Kubernetes `metav1.Time` to and from chrono instants.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// A chrono instant as a Kubernetes `Time`.
pub fn k8s_time(t: DateTime<Utc>) -> Time {
    let ts = Timestamp::new(
        t.timestamp(),
        i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    )
    .unwrap_or(Timestamp::UNIX_EPOCH);
    Time(ts)
}

/// A Kubernetes `Time` as a chrono instant.
pub fn chrono_time(t: &Time) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(
        t.0.as_second(),
        u32::try_from(t.0.subsec_nanosecond()).unwrap_or(0),
    )
}
