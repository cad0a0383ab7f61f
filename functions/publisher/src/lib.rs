//! `publisher`: the table's DynamoDB stream to the team's EventBridge bus. Old and
//! new image of each grant item are compared and the lifecycle events that change
//! means are published (docs/api.md, "Events on the bus"). Events come from
//! the stream, not from the request handlers: a function that dies after its write
//! still produces its event, and a failed write produces none.
//!
//! Records of one shard are handled in order; the first one whose events cannot be
//! sent now is reported (`batchItemFailures`), so the stream retries from it and
//! nothing is lost. An event the bus refuses for good (it never should: a detail
//! is at most 8 KB) is logged and counted, and never holds the shard back. Items
//! other than grants (RISC `jti` records, shared access tokens) produce nothing;
//! the stream filter keeps most of them away already.

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_http::lambda_runtime::LambdaEvent;
use shared::aws::item::{self, DELETE_REASON, GRANT_PREFIX, Item};
use shared::cases::lifecycle::grant_changes;
use shared::entry::{self, Entry, Outcome};
use shared::grant::{Grant, RemovalReason};
use shared::ports::{EventSink, Outgoing, PublishError, StoreError};
use shared::{Boot, Needs};

/// Reads no token and calls no Google endpoint.
pub const NEEDS: Needs = Needs {
    kms: false,
    client_secret: false,
};

pub struct Publisher {
    sink: Option<Arc<dyn EventSink>>,
}

impl Publisher {
    pub fn new(boot: &Boot) -> Self {
        Self::with(boot.event_sink().map(|sink| sink as Arc<dyn EventSink>))
    }

    pub fn with(sink: Option<Arc<dyn EventSink>>) -> Self {
        Self { sink }
    }

    /// A stream batch in, the first record to retry (if any) out.
    pub async fn handle(&self, event: LambdaEvent<Event>) -> DynamoDbEventResponse {
        let entry = Entry::of("stream", &event.context);
        entry::invocation(entry, self.batch(event.payload), |response| Outcome {
            code: if response.batch_item_failures.is_empty() {
                "ok".into()
            } else {
                "retry".into()
            },
            status: None,
        })
        .await
    }

    pub async fn batch(&self, event: Event) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        for record in event.records {
            let sequence = record.change.sequence_number.clone();
            if let Err(why) = self.publish(record).await {
                tracing::warn!(sequence = ?sequence, reason = %why, "stream record not published; it will be retried");
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = sequence;
                response.batch_item_failures.push(failure);
                break;
            }
        }
        response
    }

    /// Publishes a record's events; `Err` when some could not be sent now (the
    /// stream then retries from this record).
    async fn publish(&self, record: EventRecord) -> Result<(), String> {
        let events = changes(record).map_err(|err| err.to_string())?;
        for event in &events {
            let text = |name: &str| event.detail[name].as_str().unwrap_or_default().to_owned();
            tracing::info!(event = event.detail_type, event_id = %text("event_id"), sub = %text("sub"), "lifecycle event");
            shared::telemetry::metric(event.detail_type, 1.0);
        }
        let Some(sink) = self.sink.as_ref().filter(|_| !events.is_empty()) else {
            return Ok(());
        };
        let mut retry = None;
        for (event, result) in events.iter().zip(sink.publish_each(&events).await) {
            match result {
                Ok(()) => {}
                Err(PublishError::Refused(why)) => {
                    shared::telemetry::metric("LifecycleEventRefused", 1.0);
                    tracing::error!(event = event.detail_type, reason = %why, "the bus refused a lifecycle event for good");
                }
                Err(PublishError::Unavailable(why)) => retry = Some(why),
            }
        }
        // Sent again as a whole: consumers deduplicate on `event_id`.
        retry.map_or(Ok(()), Err)
    }
}

/// The lifecycle events one stream record means (none for non-grant items).
fn changes(record: EventRecord) -> Result<Vec<Outgoing>, StoreError> {
    let change = record.change;
    let keys: Item = item::from_image(change.keys);
    let is_grant = keys
        .get("pk")
        .and_then(|pk| pk.as_s().ok())
        .is_some_and(|pk| pk.starts_with(GRANT_PREFIX));
    if !is_grant {
        return Ok(Vec::new());
    }
    let decode = |image: serde_dynamo::Item| -> Result<Option<(Grant, Option<RemovalReason>)>, StoreError> {
        let image = item::from_image(image);
        if image.is_empty() {
            return Ok(None);
        }
        let reason = image
            .get(DELETE_REASON)
            .and_then(|v| v.as_s().ok())
            .and_then(|r| RemovalReason::parse(r));
        Ok(Some((item::decode(&image)?, reason)))
    };
    let old = decode(change.old_image)?;
    let new = decode(change.new_image)?;
    if record.event_name == "REMOVE" {
        let (old, reason) = old.unzip();
        return Ok(grant_changes(old.as_ref(), None, reason.flatten()));
    }
    // The mark written just before a deletion changes nothing a consumer sees.
    if new.as_ref().is_some_and(|(_, reason)| reason.is_some()) {
        return Ok(Vec::new());
    }
    Ok(grant_changes(
        old.as_ref().map(|(g, _)| g),
        new.as_ref().map(|(g, _)| g),
        None,
    ))
}
