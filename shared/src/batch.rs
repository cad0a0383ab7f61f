//! The edge of the entry points without an HTTP route (queue, stream, direct
//! invocation): the runtime loop with the invocation's deadline, and queue batches
//! (`ReportBatchItemFailures`) where every message is handled concurrently and the
//! ids of those to retry are reported back, so one bad message never fails the
//! others. The business logic only ever sees one message.

use std::future::Future;

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::outbound::{deadline_from_epoch_ms, with_deadline};

/// Hands a JSON-in, JSON-out handler to the Lambda runtime, with every outbound
/// call bounded by the invocation's deadline and its metrics written as it ends.
pub async fn run<F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(Value) -> Fut,
    Fut: Future<Output = Value>,
{
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let deadline = deadline_from_epoch_ms(event.context.deadline);
        let answer = handler(event.payload);
        crate::telemetry::invocation(async move {
            let answer = match deadline {
                Some(deadline) => with_deadline(deadline, answer).await,
                None => answer.await,
            };
            Ok::<_, std::convert::Infallible>(answer)
        })
    }))
    .await
}

/// An SQS event as Lambda delivers it (only what the worker reads).
#[derive(Debug, Deserialize)]
pub struct SqsEvent {
    #[serde(rename = "Records", default)]
    pub records: Vec<SqsMessage>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SqsMessage {
    #[serde(rename = "messageId")]
    pub message_id: String,
    #[serde(default)]
    pub body: String,
}

/// The answer that tells Lambda which items to retry.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub failures: Vec<ItemFailure>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub id: String,
}

/// Whether a message is done (consumed) or must come again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Consumed,
    Retry,
}

/// Handles every message concurrently, then `settle` decides, for all of them at
/// once and in order, which are done (so a batch's outcomes can leave in one call);
/// the ones to retry are reported.
pub async fn each_message<T, F, Fut, S, SFut>(event: SqsEvent, handle: F, settle: S) -> BatchResponse
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = T>,
    S: FnOnce(Vec<T>) -> SFut,
    SFut: Future<Output = Vec<Disposition>>,
{
    let ids: Vec<String> = event.records.iter().map(|m| m.message_id.clone()).collect();
    let handled = futures_util::future::join_all(event.records.into_iter().map(handle)).await;
    let dispositions = settle(handled).await;
    debug_assert_eq!(dispositions.len(), ids.len());
    BatchResponse {
        failures: ids
            .into_iter()
            .zip(dispositions.into_iter().chain(std::iter::repeat(Disposition::Retry)))
            .filter(|(_, d)| *d == Disposition::Retry)
            .map(|(id, _)| ItemFailure { id })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_messages_to_retry_are_reported() {
        let event: SqsEvent = serde_json::from_value(serde_json::json!({"Records": [
            {"messageId": "a", "body": "ok"}, {"messageId": "b", "body": "again"}, {"messageId": "c", "body": "ok"}
        ]}))
        .unwrap();
        let response = each_message(
            event,
            |m| async move { m.body },
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
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": "b"}]})
        );
    }
}
