//! Injected failures: a FIFO queue per endpoint, one unit consumed per request.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Token,
    Jwks,
    Revoke,
    CalendarInsert,
    CalendarGet,
    RiscJwks,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FaultKind {
    /// Answer `status` at once, doing nothing. `body: None` uses a Google-like
    /// error body for the endpoint; a JSON string body is sent as raw text.
    Status {
        status: u16,
        body: Option<Value>,
        retry_after: Option<u32>,
    },
    /// Wait, then behave normally.
    Latency(Duration),
    /// Close the TCP connection without answering and without doing anything.
    DropBeforeWork,
    /// Do the work (spend the code, store the event), then close the
    /// connection without answering: the "lost answer" case.
    DropAfterWork,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    pub endpoint: Endpoint,
    pub kind: FaultKind,
    /// How many matching requests this fault affects.
    pub count: u32,
    /// Calendar endpoints only: affects only requests for this calendar id.
    pub calendar: Option<String>,
}

impl Fault {
    pub fn new(endpoint: Endpoint, kind: FaultKind) -> Self {
        Self {
            endpoint,
            kind,
            count: 1,
            calendar: None,
        }
    }

    pub fn status(endpoint: Endpoint, status: u16) -> Self {
        Self::new(
            endpoint,
            FaultKind::Status {
                status,
                body: None,
                retry_after: None,
            },
        )
    }

    pub fn times(mut self, count: u32) -> Self {
        self.count = count;
        self
    }

    /// Only requests for this calendar (Calendar endpoints) are affected.
    pub fn on_calendar(mut self, calendar_id: &str) -> Self {
        self.calendar = Some(calendar_id.to_owned());
        self
    }
}

/// Control-API form: `{"endpoint":"token","kind":"status","status":503,"count":1}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultBody {
    endpoint: Endpoint,
    kind: String,
    status: Option<u16>,
    body: Option<Value>,
    retry_after: Option<u32>,
    latency_ms: Option<u64>,
    count: Option<u32>,
    calendar: Option<String>,
}

impl TryFrom<FaultBody> for Fault {
    type Error = String;

    fn try_from(body: FaultBody) -> Result<Self, String> {
        let kind = match body.kind.as_str() {
            "status" => FaultKind::Status {
                status: body.status.ok_or("kind \"status\" needs \"status\"")?,
                body: body.body,
                retry_after: body.retry_after,
            },
            "latency" => FaultKind::Latency(Duration::from_millis(
                body.latency_ms.ok_or("kind \"latency\" needs \"latency_ms\"")?,
            )),
            "drop_before" => FaultKind::DropBeforeWork,
            "drop_after" => FaultKind::DropAfterWork,
            other => return Err(format!("unknown fault kind {other:?}")),
        };
        if let FaultKind::Status { status, .. } = kind {
            StatusCode::from_u16(status).map_err(|_| format!("invalid status {status}"))?;
        }
        Ok(Fault {
            endpoint: body.endpoint,
            kind,
            count: body.count.unwrap_or(1),
            calendar: body.calendar,
        })
    }
}

#[derive(Default)]
pub(crate) struct FaultQueues {
    queues: HashMap<Endpoint, VecDeque<(FaultKind, u32, Option<String>)>>,
}

impl FaultQueues {
    pub(crate) fn push(&mut self, fault: Fault) {
        if fault.count > 0 {
            let queue = self.queues.entry(fault.endpoint).or_default();
            queue.push_back((fault.kind, fault.count, fault.calendar));
        }
    }

    /// Consumes one unit of the oldest fault queued for `endpoint`.
    pub(crate) fn take(&mut self, endpoint: Endpoint) -> Option<FaultKind> {
        self.take_for(endpoint, None)
    }

    /// As [`Self::take`], for a request about `calendar`: faults bound to another
    /// calendar are skipped.
    pub(crate) fn take_for(&mut self, endpoint: Endpoint, calendar: Option<&str>) -> Option<FaultKind> {
        let queue = self.queues.get_mut(&endpoint)?;
        let index = queue
            .iter()
            .position(|(_, _, only)| only.is_none() || only.as_deref() == calendar)?;
        let (kind, remaining, _) = &mut queue[index];
        let kind = kind.clone();
        *remaining -= 1;
        if *remaining == 0 {
            queue.remove(index);
        }
        Some(kind)
    }
}

/// Response extension telling the server to close the connection instead of
/// sending this response (an axum handler cannot do that itself).
#[derive(Clone, Copy, Debug)]
pub(crate) struct DropConnection;

pub(crate) fn drop_connection() -> Response {
    let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    response.extensions_mut().insert(DropConnection);
    response
}

/// What a handler does after consulting the fault queue.
pub(crate) enum Gate {
    Proceed { drop_after: bool },
    Respond(Response),
}

/// Turns a consumed fault into the gate decision (sleeping for latency).
pub(crate) async fn apply(endpoint: Endpoint, fault: Option<FaultKind>) -> Gate {
    match fault {
        None => Gate::Proceed { drop_after: false },
        Some(FaultKind::Latency(delay)) => {
            tokio::time::sleep(delay).await;
            Gate::Proceed { drop_after: false }
        }
        Some(FaultKind::DropBeforeWork) => Gate::Respond(drop_connection()),
        Some(FaultKind::DropAfterWork) => Gate::Proceed { drop_after: true },
        Some(FaultKind::Status {
            status,
            body,
            retry_after,
        }) => Gate::Respond(status_response(endpoint, status, body, retry_after)),
    }
}

/// Marks `response` to be dropped when the fault asked for it.
pub(crate) fn finish(response: Response, drop_after: bool) -> Response {
    if drop_after { drop_connection() } else { response }
}

fn status_response(endpoint: Endpoint, status: u16, body: Option<Value>, retry_after: Option<u32>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match body.unwrap_or_else(|| default_body(endpoint, code)) {
        Value::String(text) => (code, [(header::CONTENT_TYPE, "text/html; charset=UTF-8")], text).into_response(),
        json_body => (code, axum::Json(json_body)).into_response(),
    };
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

fn default_body(endpoint: Endpoint, status: StatusCode) -> Value {
    match endpoint {
        Endpoint::Token | Endpoint::Revoke => oauth_error_body(status),
        Endpoint::CalendarInsert | Endpoint::CalendarGet | Endpoint::Jwks | Endpoint::RiscJwks => {
            api_error_body(status)
        }
    }
}

fn oauth_error_body(status: StatusCode) -> Value {
    match status.as_u16() {
        429 => json!({"error": "rate_limit_exceeded", "error_description": "Rate Limit Exceeded"}),
        400..=499 => json!({"error": "invalid_request", "error_description": "Bad Request"}),
        _ => json!({"error": "internal_failure", "error_description": "Backend Error"}),
    }
}

/// Google API error JSON (`{"error":{"code","message","errors":[...],"status"}}`).
fn api_error_body(status: StatusCode) -> Value {
    let (reason, domain, message, grpc) = match status.as_u16() {
        400 => ("badRequest", "global", "Bad Request", "INVALID_ARGUMENT"),
        401 => ("authError", "global", "Invalid Credentials", "UNAUTHENTICATED"),
        403 => ("forbidden", "global", "Forbidden", "PERMISSION_DENIED"),
        404 => ("notFound", "global", "Not Found", "NOT_FOUND"),
        409 => ("conflict", "global", "Conflict", "ABORTED"),
        429 => (
            "rateLimitExceeded",
            "usageLimits",
            "Rate Limit Exceeded",
            "RESOURCE_EXHAUSTED",
        ),
        503 => (
            "backendError",
            "global",
            "The service is currently unavailable.",
            "UNAVAILABLE",
        ),
        _ => ("backendError", "global", "Backend Error", "INTERNAL"),
    };
    json!({"error": {
        "code": status.as_u16(),
        "message": message,
        "errors": [{"message": message, "domain": domain, "reason": reason}],
        "status": grpc,
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_is_fifo_and_counts_down() {
        let mut queues = FaultQueues::default();
        queues.push(Fault::status(Endpoint::Token, 503).times(2));
        queues.push(Fault::new(Endpoint::Token, FaultKind::DropBeforeWork));
        queues.push(Fault::status(Endpoint::Jwks, 500).times(0));
        assert!(matches!(
            queues.take(Endpoint::Token),
            Some(FaultKind::Status { status: 503, .. })
        ));
        assert!(matches!(
            queues.take(Endpoint::Token),
            Some(FaultKind::Status { status: 503, .. })
        ));
        assert_eq!(queues.take(Endpoint::Token), Some(FaultKind::DropBeforeWork));
        assert_eq!(queues.take(Endpoint::Token), None);
        assert_eq!(queues.take(Endpoint::Jwks), None);
    }

    #[test]
    fn control_form_parses_each_kind() {
        let parse = |v: Value| Fault::try_from(serde_json::from_value::<FaultBody>(v).unwrap());
        let fault = parse(json!({"endpoint": "calendar_insert", "kind": "latency", "latency_ms": 5})).unwrap();
        assert_eq!(fault.kind, FaultKind::Latency(Duration::from_millis(5)));
        assert_eq!(fault.count, 1);
        let fault = parse(json!({"endpoint": "token", "kind": "drop_after", "count": 3})).unwrap();
        assert_eq!((fault.kind, fault.count), (FaultKind::DropAfterWork, 3));
        assert!(parse(json!({"endpoint": "token", "kind": "status"})).is_err());
        assert!(parse(json!({"endpoint": "token", "kind": "explode"})).is_err());
    }
}
