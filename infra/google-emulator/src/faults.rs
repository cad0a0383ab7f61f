//! Injected failures: a FIFO queue per endpoint, one unit consumed per request.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::server::{Shared, lock};

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
    /// Hold each request until `parties` requests of this fault are in flight
    /// at once, then let them all proceed normally: a request is answered
    /// only if its callers really run concurrently. With a count above
    /// `parties`, the requests are held in successive groups of `parties`.
    /// If a group is not complete within `timeout`, every request of the
    /// group fails, and so does each later request of this fault (the
    /// barrier is broken): a 400 naming the barrier (an OAuth `invalid_request`
    /// on the token and revoke endpoints, `badRequest` elsewhere), which no
    /// client retries, so a test that does not run its calls at once fails
    /// rather than hangs or passes on a retry.
    Barrier { parties: u32, timeout: Duration },
}

/// How long a [`FaultKind::Barrier`] waits for its group by default.
pub const DEFAULT_BARRIER_TIMEOUT: Duration = Duration::from_secs(15);

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

    /// A [`FaultKind::Barrier`] for `parties` requests (count = `parties`).
    pub fn barrier(endpoint: Endpoint, parties: u32, timeout: Duration) -> Self {
        Self::new(endpoint, FaultKind::Barrier { parties, timeout }).times(parties)
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

/// Control-API form: `{"endpoint":"token","kind":"status","status":503,"count":1}`,
/// `{"endpoint":"token","kind":"barrier","parties":8,"timeout_ms":15000}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultBody {
    endpoint: Endpoint,
    kind: String,
    status: Option<u16>,
    body: Option<Value>,
    retry_after: Option<u32>,
    latency_ms: Option<u64>,
    parties: Option<u32>,
    timeout_ms: Option<u64>,
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
            "barrier" => FaultKind::Barrier {
                parties: body
                    .parties
                    .filter(|parties| *parties > 0)
                    .ok_or("kind \"barrier\" needs \"parties\" (at least 1)")?,
                timeout: body.timeout_ms.map_or(DEFAULT_BARRIER_TIMEOUT, Duration::from_millis),
            },
            other => return Err(format!("unknown fault kind {other:?}")),
        };
        if let FaultKind::Status { status, .. } = kind {
            StatusCode::from_u16(status).map_err(|_| format!("invalid status {status}"))?;
        }
        let default_count = match kind {
            FaultKind::Barrier { parties, .. } => parties,
            _ => 1,
        };
        Ok(Fault {
            endpoint: body.endpoint,
            kind,
            count: body.count.unwrap_or(default_count),
            calendar: body.calendar,
        })
    }
}

/// One queued fault and what is left of it.
struct Queued {
    kind: FaultKind,
    remaining: u32,
    calendar: Option<String>,
    /// Shared by every request a barrier fault holds.
    barrier: Option<Arc<Barrier>>,
}

/// One unit of a fault, as a request consumed it.
pub(crate) enum Taken {
    Kind(FaultKind),
    /// A unit of a [`FaultKind::Barrier`], with the state its requests share.
    Barrier(Arc<Barrier>),
}

impl Taken {
    #[cfg(test)]
    fn kind(&self) -> Option<&FaultKind> {
        match self {
            Self::Kind(kind) => Some(kind),
            Self::Barrier(_) => None,
        }
    }
}

#[derive(Default)]
pub(crate) struct FaultQueues {
    queues: HashMap<Endpoint, VecDeque<Queued>>,
}

impl FaultQueues {
    pub(crate) fn push(&mut self, fault: Fault) {
        if fault.count > 0 {
            let barrier = match fault.kind {
                FaultKind::Barrier { parties, timeout } => Some(Arc::new(Barrier::new(parties, timeout))),
                _ => None,
            };
            let queue = self.queues.entry(fault.endpoint).or_default();
            queue.push_back(Queued {
                kind: fault.kind,
                remaining: fault.count,
                calendar: fault.calendar,
                barrier,
            });
        }
    }

    /// Consumes one unit of the oldest fault queued for `endpoint`.
    pub(crate) fn take(&mut self, endpoint: Endpoint) -> Option<Taken> {
        self.take_for(endpoint, None)
    }

    /// As [`Self::take`], for a request about `calendar`: faults bound to another
    /// calendar are skipped.
    pub(crate) fn take_for(&mut self, endpoint: Endpoint, calendar: Option<&str>) -> Option<Taken> {
        let queue = self.queues.get_mut(&endpoint)?;
        let index = queue
            .iter()
            .position(|queued| queued.calendar.is_none() || queued.calendar.as_deref() == calendar)?;
        let queued = &mut queue[index];
        let taken = match &queued.barrier {
            Some(barrier) => Taken::Barrier(barrier.clone()),
            None => Taken::Kind(queued.kind.clone()),
        };
        queued.remaining -= 1;
        if queued.remaining == 0 {
            queue.remove(index);
        }
        Some(taken)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Waiting,
    Released,
    Broken,
}

/// A group of requests that wait for one another ([`FaultKind::Barrier`]).
pub(crate) struct Barrier {
    parties: u32,
    timeout: Duration,
    state: Mutex<BarrierState>,
}

struct BarrierState {
    /// Requests of the current group waiting so far.
    waiting: u32,
    /// The current group's phase; each waiter keeps its group's sender alive.
    group: Arc<watch::Sender<Phase>>,
    broken: bool,
}

/// How a request's wait at a barrier ended.
enum Passage {
    /// Its whole group was in flight; `last` is the request that completed it.
    Released { last: bool },
    /// The group did not fill in time (`breaker` is the request that saw the
    /// timeout first), or the barrier was already broken.
    Broken { breaker: bool, message: String },
}

impl Barrier {
    fn new(parties: u32, timeout: Duration) -> Self {
        Self {
            parties: parties.max(1),
            timeout,
            state: Mutex::new(BarrierState {
                waiting: 0,
                group: Arc::new(watch::channel(Phase::Waiting).0),
                broken: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BarrierState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn pass(&self) -> Passage {
        let group = {
            let mut state = self.lock();
            if state.broken {
                let message = format!(
                    "emulator barrier broken earlier: a group of {} requests was not in flight at once within {} ms",
                    self.parties,
                    self.timeout.as_millis()
                );
                return Passage::Broken {
                    breaker: false,
                    message,
                };
            }
            state.waiting += 1;
            if state.waiting >= self.parties {
                state.group.send_replace(Phase::Released);
                state.waiting = 0;
                state.group = Arc::new(watch::channel(Phase::Waiting).0);
                return Passage::Released { last: true };
            }
            state.group.clone()
        };
        let mut phase = group.subscribe();
        let waited = tokio::time::timeout(self.timeout, phase.wait_for(|phase| *phase != Phase::Waiting)).await;
        if let Ok(Ok(phase)) = waited
            && *phase == Phase::Released
        {
            return Passage::Released { last: false };
        }
        let mut state = self.lock();
        match *group.borrow() {
            Phase::Released => return Passage::Released { last: false },
            Phase::Broken => {
                return Passage::Broken {
                    breaker: false,
                    message: self.broken_message(state.waiting),
                };
            }
            Phase::Waiting => {}
        }
        // The first waiter to time out breaks the barrier for its whole group.
        let message = self.broken_message(state.waiting);
        state.broken = true;
        group.send_replace(Phase::Broken);
        Passage::Broken { breaker: true, message }
    }

    fn broken_message(&self, arrived: u32) -> String {
        format!(
            "emulator barrier broken: {arrived} of {} requests were in flight after {} ms",
            self.parties,
            self.timeout.as_millis()
        )
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

/// Turns a consumed fault into the gate decision (sleeping for latency,
/// waiting at a barrier).
pub(crate) async fn apply(shared: &Shared, endpoint: Endpoint, fault: Option<Taken>) -> Gate {
    let kind = match fault {
        None => return Gate::Proceed { drop_after: false },
        Some(Taken::Barrier(barrier)) => return pass_barrier(shared, endpoint, &barrier).await,
        Some(Taken::Kind(kind)) => kind,
    };
    match kind {
        FaultKind::Latency(delay) => {
            tokio::time::sleep(delay).await;
            Gate::Proceed { drop_after: false }
        }
        FaultKind::DropBeforeWork => Gate::Respond(drop_connection()),
        FaultKind::DropAfterWork => Gate::Proceed { drop_after: true },
        FaultKind::Status {
            status,
            body,
            retry_after,
        } => Gate::Respond(status_response(endpoint, status, body, retry_after)),
        // Queued barriers are always taken as `Taken::Barrier`.
        FaultKind::Barrier { .. } => Gate::Proceed { drop_after: false },
    }
}

/// Waits at the barrier; counts the groups released and the barriers broken.
async fn pass_barrier(shared: &Shared, endpoint: Endpoint, barrier: &Barrier) -> Gate {
    match barrier.pass().await {
        Passage::Released { last } => {
            if last {
                lock(shared).barriers.released += 1;
            }
            Gate::Proceed { drop_after: false }
        }
        Passage::Broken { breaker, message } => {
            if breaker {
                lock(shared).barriers.broken += 1;
            }
            tracing::warn!(?endpoint, "{message}");
            Gate::Respond(barrier_response(endpoint, &message))
        }
    }
}

/// The answer to a request held at a broken barrier: a 400 no client retries.
fn barrier_response(endpoint: Endpoint, message: &str) -> Response {
    let body = match endpoint {
        Endpoint::Token | Endpoint::Revoke => json!({"error": "invalid_request", "error_description": message}),
        Endpoint::CalendarInsert | Endpoint::CalendarGet | Endpoint::Jwks | Endpoint::RiscJwks => {
            json!({"error": {
                "code": 400,
                "message": message,
                "errors": [{"message": message, "domain": "global", "reason": "badRequest"}],
                "status": "INVALID_ARGUMENT",
            }})
        }
    };
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
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
        let mut take = |endpoint| queues.take(endpoint).and_then(|taken| taken.kind().cloned());
        assert!(matches!(
            take(Endpoint::Token),
            Some(FaultKind::Status { status: 503, .. })
        ));
        assert!(matches!(
            take(Endpoint::Token),
            Some(FaultKind::Status { status: 503, .. })
        ));
        assert_eq!(take(Endpoint::Token), Some(FaultKind::DropBeforeWork));
        assert_eq!(take(Endpoint::Token), None);
        assert_eq!(take(Endpoint::Jwks), None);
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
        let fault = parse(json!({"endpoint": "token", "kind": "barrier", "parties": 8})).unwrap();
        let kind = FaultKind::Barrier {
            parties: 8,
            timeout: DEFAULT_BARRIER_TIMEOUT,
        };
        assert_eq!((fault.kind, fault.count), (kind, 8), "count defaults to the parties");
        let fault = parse(
            json!({"endpoint": "calendar_insert", "kind": "barrier", "parties": 2, "timeout_ms": 50, "count": 4}),
        )
        .unwrap();
        let kind = FaultKind::Barrier {
            parties: 2,
            timeout: Duration::from_millis(50),
        };
        assert_eq!((fault.kind, fault.count), (kind, 4));
        assert!(parse(json!({"endpoint": "token", "kind": "barrier"})).is_err());
        assert!(parse(json!({"endpoint": "token", "kind": "barrier", "parties": 0})).is_err());
    }

    #[tokio::test]
    async fn barrier_releases_whole_groups_and_breaks_for_good_on_timeout() {
        let barrier = Arc::new(Barrier::new(2, Duration::from_millis(200)));
        let (a, b) = tokio::join!(barrier.pass(), barrier.pass());
        let released = |passage: &Passage| matches!(passage, Passage::Released { .. });
        assert!(released(&a) && released(&b));
        assert!(matches!(b, Passage::Released { last: true }));
        // A lone request of the next group times out and breaks the barrier.
        assert!(matches!(barrier.pass().await, Passage::Broken { breaker: true, .. }));
        // Later requests fail at once, even a complete pair.
        let (c, d) = tokio::join!(barrier.pass(), barrier.pass());
        assert!(matches!(c, Passage::Broken { breaker: false, .. }));
        assert!(matches!(d, Passage::Broken { breaker: false, .. }));
    }
}
