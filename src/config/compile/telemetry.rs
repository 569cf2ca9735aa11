//! `telemetry`: OpenTelemetry traces exported over OTLP/gRPC (SPEC §7, "Traces"). Off
//! when the section is absent. Read once when `ward serve` starts: the exporter and the
//! tracing layer are installed before the first check, and a reload that changes this
//! section is logged as needing a restart.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::config::{Dur, Errors};

/// The `telemetry` section, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// The OTLP/gRPC collector, `http://host:4317` (or `https://`).
    pub otlp_endpoint: String,
    /// The share of checks without a `traceparent` that start a sampled trace (0.0 to
    /// 1.0). A check with one follows its sampled flag instead.
    pub sample_ratio: f64,
    /// `service.name` of the exported resource.
    pub service_name: String,
    /// Finished spans held for export at most; spans beyond it are dropped, never waited
    /// for.
    pub queue_size: usize,
    /// How long spans wait in the queue before a batch is sent.
    pub batch_delay: Duration,
    /// The deadline of one export call to the collector.
    pub export_timeout: Duration,
}

/// Defaults of the optional keys.
const DEFAULT_SAMPLE_RATIO: f64 = 1.0;
const DEFAULT_QUEUE_SIZE: usize = 2048;
const DEFAULT_BATCH_DELAY: Duration = Duration::from_secs(5);
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest queue accepted: each held span is a few hundred bytes.
const MAX_QUEUE_SIZE: usize = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTelemetry {
    otlp_endpoint: String,
    sample_ratio: Option<f64>,
    service_name: Option<String>,
    queue_size: Option<usize>,
    batch_delay: Option<Dur>,
    export_timeout: Option<Dur>,
}

/// `telemetry`, or `None` when it is absent (or invalid: the error is in `errors`).
pub(super) fn compile_telemetry(value: Value, errors: &mut Errors) -> Option<TelemetryConfig> {
    if value.is_null() {
        return None;
    }
    let raw: RawTelemetry = errors.parse("telemetry", value)?;
    let before = errors.count();
    let endpoint = raw.otlp_endpoint.trim().to_string();
    match endpoint.split_once("://") {
        Some(("http" | "https", rest)) if !rest.is_empty() && !rest.starts_with('/') => {}
        _ => errors.add(
            "telemetry.otlp_endpoint",
            format!(
                "`{endpoint}` is not an OTLP/gRPC endpoint: use http://host:4317 or https://host:4317"
            ),
        ),
    }
    let sample_ratio = raw.sample_ratio.unwrap_or(DEFAULT_SAMPLE_RATIO);
    if !(0.0..=1.0).contains(&sample_ratio) {
        errors.add("telemetry.sample_ratio", "a fraction from 0.0 to 1.0");
    }
    let service_name = raw.service_name.unwrap_or_else(|| "ward".to_string());
    if service_name.trim().is_empty() {
        errors.add("telemetry.service_name", "must not be empty");
    }
    let queue_size = raw.queue_size.unwrap_or(DEFAULT_QUEUE_SIZE);
    if !(1..=MAX_QUEUE_SIZE).contains(&queue_size) {
        errors.add(
            "telemetry.queue_size",
            format!("must be from 1 to {MAX_QUEUE_SIZE} spans"),
        );
    }
    let batch_delay = raw.batch_delay.map_or(DEFAULT_BATCH_DELAY, |d| d.0);
    if batch_delay.is_zero() {
        errors.add("telemetry.batch_delay", "must be greater than 0s");
    }
    let export_timeout = raw.export_timeout.map_or(DEFAULT_EXPORT_TIMEOUT, |d| d.0);
    if export_timeout.is_zero() {
        errors.add("telemetry.export_timeout", "must be greater than 0s");
    }
    (errors.count() == before).then_some(TelemetryConfig {
        otlp_endpoint: endpoint,
        sample_ratio,
        service_name,
        queue_size,
        batch_delay,
        export_timeout,
    })
}
