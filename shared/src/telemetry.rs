//! Logs and metrics. Logs are JSON lines for CloudWatch carrying the request id,
//! route, status, latency, outcome code and user `sub`; never a token, code or
//! secret (values that could hold one are `Secret`s, whose Debug output is
//! redacted). Metrics are CloudWatch Embedded Metric Format lines on stdout: no API
//! call, no extra latency. Within an invocation ([`invocation`]) they are gathered
//! and written when it ends, one document per dimension set with every value kept
//! (EMF value arrays): a job used to cost three metric lines, a batch of ten jobs
//! now costs two, about half the log volume CloudWatch Logs bills for a batch.

use std::cell::RefCell;
use std::future::Future;
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
    record(name, value, "Count", None);
}

/// How long one call to a Google endpoint took.
pub fn latency(endpoint: &str, took: Duration) {
    record(
        "GoogleLatency",
        took.as_secs_f64() * 1000.0,
        "Milliseconds",
        Some(endpoint),
    );
}

/// Values per metric in one EMF document (CloudWatch's limit); more start another.
const MAX_VALUES: usize = 100;

tokio::task_local! {
    /// The metrics of the invocation being handled (the concurrent jobs of a batch
    /// run in its task and share it).
    static PENDING: RefCell<Pending>;
}

/// Runs one invocation's handler and writes the metrics it recorded when it ends.
pub async fn invocation<F: Future>(handler: F) -> F::Output {
    PENDING
        .scope(RefCell::default(), async {
            let output = handler.await;
            let documents = PENDING.with(|pending| pending.take().documents(now_ms()));
            documents.iter().for_each(write);
            output
        })
        .await
}

/// The sum of the values `name` was recorded with so far in this invocation (unit
/// tests of the use cases: an alarmed metric is part of the contract).
#[cfg(test)]
pub(crate) fn recorded(name: &str) -> f64 {
    PENDING.with(|pending| {
        let pending = pending.borrow();
        let all = pending.0.iter().flat_map(|(_, set)| set.iter());
        all.filter(|series| series.name == name)
            .flat_map(|series| series.values.iter())
            .sum()
    })
}

fn record(name: &str, value: f64, unit: &'static str, endpoint: Option<&str>) {
    let gathered = PENDING.try_with(|pending| pending.borrow_mut().add(name, value, unit, endpoint));
    if gathered.is_err() {
        // Outside an invocation (cold start): written at once.
        write(&emf_line(name, value, unit, endpoint));
    }
}

fn write(document: &Value) {
    // Only deployed functions (which call `init`) write metrics; tests stay quiet.
    if FUNCTION.get().is_some() {
        println!("{document}");
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One metric's values, in the order recorded.
struct Series {
    name: String,
    unit: &'static str,
    values: Vec<f64>,
}

/// The metrics of one invocation, by dimension set (`Endpoint` or none).
#[derive(Default)]
struct Pending(Vec<(Option<String>, Vec<Series>)>);

impl Pending {
    fn add(&mut self, name: &str, value: f64, unit: &'static str, endpoint: Option<&str>) {
        let set = match self.0.iter().position(|(e, _)| e.as_deref() == endpoint) {
            Some(i) => &mut self.0[i].1,
            None => {
                self.0.push((endpoint.map(str::to_owned), Vec::new()));
                &mut self.0.last_mut().expect("just pushed").1
            }
        };
        match set.iter_mut().find(|series| series.name == name) {
            Some(series) => series.values.push(value),
            None => set.push(Series {
                name: name.to_owned(),
                unit,
                values: vec![value],
            }),
        }
    }

    /// One document per dimension set and per hundred values of a metric.
    fn documents(&self, timestamp: u64) -> Vec<Value> {
        let mut documents = Vec::new();
        for (endpoint, set) in &self.0 {
            let longest = set.iter().map(|series| series.values.len()).max().unwrap_or(0);
            for start in (0..longest).step_by(MAX_VALUES) {
                let chunk: Vec<(&Series, &[f64])> = set
                    .iter()
                    .filter(|series| series.values.len() > start)
                    .map(|series| {
                        let end = series.values.len().min(start + MAX_VALUES);
                        (series, &series.values[start..end])
                    })
                    .collect();
                documents.push(emf_document(timestamp, endpoint.as_deref(), &chunk));
            }
        }
        documents
    }
}

/// One EMF document: each metric with its unit and its value (an array for several
/// values), under the `Function` dimension (and `Endpoint`).
fn emf_document(timestamp: u64, endpoint: Option<&str>, metrics: &[(&Series, &[f64])]) -> Value {
    let dimensions = match endpoint {
        Some(_) => json!([["Function", "Endpoint"]]),
        None => json!([["Function"]]),
    };
    let names: Vec<Value> = metrics
        .iter()
        .map(|(series, _)| json!({"Name": series.name, "Unit": series.unit}))
        .collect();
    let mut document = json!({
        "_aws": {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": dimensions,
                "Metrics": names,
            }],
        },
        "Function": FUNCTION.get().map_or("unknown", String::as_str),
    });
    for (series, values) in metrics {
        document[series.name.as_str()] = match values {
            [one] => json!(one),
            many => json!(many),
        };
    }
    if let Some(endpoint) = endpoint {
        document["Endpoint"] = json!(endpoint);
    }
    document
}

/// The EMF document of a single value.
fn emf_line(name: &str, value: f64, unit: &'static str, endpoint: Option<&str>) -> Value {
    let series = Series {
        name: name.to_owned(),
        unit,
        values: vec![value],
    };
    emf_document(now_ms(), endpoint, &[(&series, &series.values)])
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

    #[tokio::test]
    async fn an_invocations_metrics_leave_as_one_document_per_dimension_set() {
        let documents = invocation(async {
            metric("JobCreated", 1.0);
            latency("Calendar insert", Duration::from_millis(12));
            metric("JobFailed", 1.0);
            metric("JobCreated", 1.0);
            latency("Calendar insert", Duration::from_millis(30));
            latency("token endpoint", Duration::from_millis(7));
            PENDING.with(|pending| pending.borrow().documents(1))
        })
        .await;
        assert_eq!(documents.len(), 3, "{documents:?}");
        let counts = &documents[0];
        let directive = &counts["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Dimensions"], json!([["Function"]]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "JobCreated", "Unit": "Count"}, {"Name": "JobFailed", "Unit": "Count"}])
        );
        assert_eq!(counts["JobCreated"], json!([1.0, 1.0]));
        assert_eq!(counts["JobFailed"], json!(1.0));
        assert_eq!(counts["_aws"]["Timestamp"], 1);
        assert_eq!(documents[1]["Endpoint"], "Calendar insert");
        assert_eq!(documents[1]["GoogleLatency"], json!([12.0, 30.0]));
        assert_eq!(
            documents[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function", "Endpoint"]])
        );
        assert_eq!(documents[2]["Endpoint"], "token endpoint");
        assert_eq!(documents[2]["GoogleLatency"], json!(7.0));
    }

    #[tokio::test]
    async fn the_concurrent_jobs_of_a_batch_share_their_invocations_documents() {
        let job = |n: u64| async move {
            tokio::time::sleep(Duration::from_millis(n)).await;
            metric("JobCreated", 1.0);
        };
        let documents = invocation(async {
            futures_util::future::join_all([job(2), job(1), job(0)]).await;
            PENDING.with(|pending| pending.borrow().documents(1))
        })
        .await;
        assert_eq!(documents.len(), 1, "{documents:?}");
        assert_eq!(documents[0]["JobCreated"], json!([1.0, 1.0, 1.0]));
    }

    #[test]
    fn more_than_a_hundred_values_start_another_document() {
        let mut pending = Pending::default();
        for _ in 0..150 {
            pending.add("EventPublished", 1.0, "Count", None);
        }
        pending.add("RefreshFailed", 1.0, "Count", None);
        let documents = pending.documents(1);
        assert_eq!(documents.len(), 2);
        assert_eq!(documents[0]["EventPublished"].as_array().unwrap().len(), 100);
        assert_eq!(documents[0]["RefreshFailed"], json!(1.0));
        assert_eq!(documents[1]["EventPublished"].as_array().unwrap().len(), 50);
        assert!(documents[1].get("RefreshFailed").is_none());
        let names = &documents[1]["_aws"]["CloudWatchMetrics"][0]["Metrics"];
        assert_eq!(names, &json!([{"Name": "EventPublished", "Unit": "Count"}]));
    }
}
