//! The edge every entry point shares, HTTP or not: one wrapper per invocation
//! (the deadline that bounds every outbound call, the metrics written as it ends,
//! one log line with the request id, the user and the outcome), the Lambda
//! runtime loop (several invocations at once when Lambda sets
//! `AWS_LAMBDA_MAX_CONCURRENCY` above 1, as on Lambda Managed Instances), SQS
//! batches (`ReportBatchItemFailures`) and the error payload of the direct-invoke
//! functions. Event shapes are `aws_lambda_events`': an event that does not decode
//! is a function error, which Lambda retries, never an empty list of failures.

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;

use aws_lambda_events::event::sqs::SqsBatchResponse;
use lambda_http::lambda_runtime::{self, Context, LambdaEvent, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tokio::time::Instant;
use tracing::{Instrument, field};

use crate::error::ApiError;
use crate::outbound::{deadline_from_epoch_ms, within};

/// What kind of invocation, and which one.
pub struct Entry<'a> {
    /// `http`, `sqs`, `stream`, `invoke`, `schedule`.
    pub kind: &'static str,
    pub request_id: &'a str,
    pub deadline: Option<Instant>,
}

impl<'a> Entry<'a> {
    pub fn of(kind: &'static str, context: &'a Context) -> Self {
        Entry {
            kind,
            request_id: &context.request_id,
            deadline: (context.deadline > 0)
                .then(|| deadline_from_epoch_ms(context.deadline))
                .flatten(),
        }
    }
}

/// How an invocation ended, for its log line.
pub struct Outcome {
    /// `ok`, an error code, or a summary (`2 of 10 to retry`).
    pub code: Cow<'static, str>,
    pub status: Option<u16>,
}

impl Outcome {
    pub fn ok() -> Self {
        Outcome {
            code: Cow::Borrowed("ok"),
            status: None,
        }
    }
}

/// Runs one invocation's `work` within its deadline and metrics scope, under a
/// span that carries the request id (and, once known, the user), then logs one
/// line with how `describe` says it ended.
pub async fn invocation<T, F>(entry: Entry<'_>, work: F, describe: impl FnOnce(&T) -> Outcome) -> T
where
    F: Future<Output = T>,
{
    let started = Instant::now();
    let span = tracing::info_span!(
        "invocation",
        request_id = %entry.request_id,
        entry = entry.kind,
        method = field::Empty,
        route = field::Empty,
        sub = field::Empty,
    );
    let kind = entry.kind;
    async move {
        let output = crate::telemetry::invocation(within(entry.deadline, work)).await;
        let outcome = describe(&output);
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let message = if kind == "http" {
            "request finished"
        } else {
            "invocation finished"
        };
        tracing::info!(code = %outcome.code, status = outcome.status, latency_ms, "{message}");
        output
    }
    .instrument(span)
    .await
}

/// The tokio runtime of a function: one thread when Lambda hands it one invocation
/// at a time (the fastest cold start), as many as the environment has CPUs when
/// it hands it several at once.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let concurrent = std::env::var("AWS_LAMBDA_MAX_CONCURRENCY")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .is_some_and(|n| n > 1);
    let mut builder = if concurrent {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build()
}

/// Hands a typed handler to the Lambda runtime: `E` in, `R` out. An event that
/// does not decode as `E` is reported to Lambda as a function error.
pub async fn run<E, R, H, Fut>(handler: H) -> Result<(), lambda_runtime::Error>
where
    E: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    H: Fn(LambdaEvent<E>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = R> + Send + 'static,
{
    lambda_runtime::run_concurrent(service_fn(move |event: LambdaEvent<E>| {
        let answer = handler(event);
        async move { Ok::<R, Infallible>(answer.await) }
    }))
    .await
}

/// Handles every message of an SQS batch (each with its message id) concurrently,
/// then `settle` decides, for all of them at once and in order, which are done (so a
/// batch's outcomes can leave together) and which must come again: those are
/// reported.
pub async fn each_message<I, T, F, Fut, S, SFut>(messages: Vec<(String, I)>, handle: F, settle: S) -> SqsBatchResponse
where
    F: Fn((String, I)) -> Fut,
    Fut: Future<Output = T>,
    S: FnOnce(Vec<T>) -> SFut,
    SFut: Future<Output = Vec<Disposition>>,
{
    let ids: Vec<String> = messages.iter().map(|(id, _)| id.clone()).collect();
    let handled = futures_util::future::join_all(messages.into_iter().map(handle)).await;
    let dispositions = settle(handled).await;
    debug_assert_eq!(dispositions.len(), ids.len());
    let mut response = SqsBatchResponse::default();
    let retried = dispositions.into_iter().chain(std::iter::repeat(Disposition::Retry));
    for (id, disposition) in ids.into_iter().zip(retried) {
        if disposition == Disposition::Retry {
            response.add_failure(id);
        }
    }
    response
}

/// Whether a message is done (consumed) or must come again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Consumed,
    Retry,
}

/// The answer of a direct invocation that did not do what was asked: the status
/// and code of the error table, and the members the contract names for it
/// (`missing_scopes`, `retry_after`). Always a normal payload, never a function
/// error: the caller's SDK reads it like any answer.
#[derive(Debug, Serialize)]
pub struct ErrorPayload {
    pub error: Map<String, Value>,
}

impl From<&ApiError> for ErrorPayload {
    fn from(err: &ApiError) -> Self {
        let mut error = Map::new();
        error.insert("status".into(), json!(err.status()));
        error.insert("code".into(), json!(err.code()));
        error.insert("detail".into(), json!(err.detail()));
        err.extensions(&mut error, "missing_scopes");
        if let Some(seconds) = err.retry_after() {
            error.insert("retry_after".into(), json!(seconds));
        }
        ErrorPayload { error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_messages_to_retry_are_reported() {
        let messages: Vec<(String, String)> = ["ok", "again", "ok"]
            .iter()
            .zip(["a", "b", "c"])
            .map(|(body, id)| (id.to_string(), body.to_string()))
            .collect();
        let response = each_message(
            messages,
            |(_, body): (String, String)| async move { body },
            |bodies| async move {
                bodies
                    .iter()
                    .map(|body| {
                        if body == "again" {
                            Disposition::Retry
                        } else {
                            Disposition::Consumed
                        }
                    })
                    .collect()
            },
        )
        .await;
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            json!({"batchItemFailures": [{"itemIdentifier": "b"}]})
        );
    }

    #[test]
    fn the_error_payload_names_what_the_caller_needs() {
        let payload = ErrorPayload::from(&ApiError::ScopeRequired {
            scopes: vec!["https://www.googleapis.com/auth/drive".into()],
        });
        let body = serde_json::to_value(&payload).unwrap();
        assert_eq!(body["error"]["status"], 403);
        assert_eq!(body["error"]["code"], "scope_required");
        assert_eq!(
            body["error"]["missing_scopes"][0],
            "https://www.googleapis.com/auth/drive"
        );
        let limited = serde_json::to_value(ErrorPayload::from(&ApiError::RateLimited { retry_after: 7 })).unwrap();
        assert_eq!(limited["error"]["retry_after"], 7);
    }
}
