//! Structured JSON logs for CloudWatch. Fields carry the request id, route, status,
//! latency, outcome code and user `sub`; never a token, code or secret (values that
//! could hold one are wrapped in `Secret`, whose Debug output is redacted).

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_env_filter(filter)
        .try_init();
}
