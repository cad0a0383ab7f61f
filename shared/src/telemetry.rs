//! Logs and metrics. Logs are JSON lines for CloudWatch carrying the request id,
//! route, status, latency, outcome code and user `sub`; never a token, code or
//! secret (values that could hold one are `Secret`s, whose Debug output is
//! redacted). Metrics are CloudWatch Embedded Metric Format lines on stdout: no API
//! call, no extra latency.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tracing_subscriber::EnvFilter;

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "GoogleOfflineAccess";

/// Crates that log raw events, requests or bodies at debug/trace level (a bearer
/// token, a code, a security event token). `RUST_LOG` cannot open them up.
const CAPPED: &[&str] = &[
    "lambda_runtime",
    "lambda_runtime_api_client",
    "lambda_http",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
    "oauth2",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_config",
    "aws_sdk_dynamodb",
    "aws_sdk_kms",
    "aws_sdk_eventbridge",
    "aws_sdk_secretsmanager",
    "tower",
];

static FUNCTION: OnceLock<String> = OnceLock::new();

/// The log filter for `spec` (`RUST_LOG` syntax), with the raw-event crates capped
/// at `info` whatever `spec` asks for.
pub fn filter(spec: &str) -> EnvFilter {
    let mut filter = EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new("info"));
    for target in CAPPED {
        if let Ok(directive) = format!("{target}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// Logging for a function's process. Metrics carry the deployed function's name
/// (`AWS_LAMBDA_FUNCTION_NAME`, so stacks stay apart), else the binary's.
pub fn init(function: &str) {
    let name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| function.to_owned());
    let _ = FUNCTION.set(name);
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_env_filter(filter(&spec))
        .try_init();
}

/// Records the user on the current request's log line.
pub fn record_subject(sub: &str) {
    tracing::Span::current().record("sub", sub);
}

/// A count (usually 1) of something that happened.
pub fn metric(name: &str, value: f64) {
    emit(&emf_line(name, value, "Count", None));
}

/// How long one call to a Google endpoint took.
pub fn latency(endpoint: &str, took: Duration) {
    emit(&emf_line(
        "GoogleLatency",
        took.as_secs_f64() * 1000.0,
        "Milliseconds",
        Some(endpoint),
    ));
}

fn emit(line: &Value) {
    // Only deployed functions (which call `init`) write metrics; tests stay quiet.
    if FUNCTION.get().is_some() {
        println!("{line}");
    }
}

/// One EMF document: the metric under the `Function` dimension (and `Endpoint`).
pub fn emf_line(name: &str, value: f64, unit: &str, endpoint: Option<&str>) -> Value {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let dimensions = match endpoint {
        Some(_) => json!([["Function", "Endpoint"]]),
        None => json!([["Function"]]),
    };
    let mut line = json!({
        "_aws": {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": dimensions,
                "Metrics": [{"Name": name, "Unit": unit}],
            }],
        },
        "Function": FUNCTION.get().map_or("unknown", String::as_str),
    });
    line[name] = json!(value);
    if let Some(endpoint) = endpoint {
        line["Endpoint"] = json!(endpoint);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn rust_log_trace_cannot_open_the_raw_event_crates() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter("trace,lambda_runtime=trace"))
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "lambda_runtime", "event: Bearer eyJ.raw-event-token");
            tracing::debug!(target: "lambda_http", "request code=4/raw-code");
            tracing::trace!(target: "shared", "our own trace line");
        });
        let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert!(logs.contains("our own trace line"), "{logs}");
        assert!(
            !logs.contains("raw-event-token") && !logs.contains("raw-code"),
            "{logs}"
        );
    }

    #[test]
    fn metric_lines_are_embedded_metric_format() {
        let line = emf_line("RefreshInvalidGrant", 1.0, "Count", None);
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        for dimension in directive["Dimensions"][0].as_array().unwrap() {
            assert!(line[dimension.as_str().unwrap()].is_string());
        }
        let name = directive["Metrics"][0]["Name"].as_str().unwrap();
        assert_eq!(line[name], 1.0);
        assert!(line["_aws"]["Timestamp"].as_u64().unwrap() > 0);
        let timed = emf_line("GoogleLatency", 12.5, "Milliseconds", Some("token endpoint"));
        assert_eq!(timed["Endpoint"], "token endpoint");
    }
}
