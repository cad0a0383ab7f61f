//! `publisher`: the table's DynamoDB stream to the team's EventBridge bus. Old and
//! new image of each grant item are compared and the lifecycle events that change
//! means are published (README, "Reacting to lifecycle events"). Events come from
//! the stream, not from the request handlers: a function that dies after its write
//! still produces its event, and a failed write produces none.
//!
//! Records of one shard are handled in order; the first one whose events cannot be
//! sent is reported (`batchItemFailures`), so the stream retries from it and
//! nothing is lost. Non-grant items (RISC `jti` records) produce nothing.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use shared::aws::item::{self, DELETE_REASON};
use shared::cases::lifecycle::grant_changes;
use shared::grant::Grant;
use shared::ports::{EventSink, Outgoing, StoreError};
use shared::{Boot, Needs};

/// Reads no token and calls no Google endpoint.
pub const NEEDS: Needs = Needs {
    kms: false,
    client_secret: false,
};

#[derive(Deserialize)]
struct StreamEvent {
    #[serde(rename = "Records", default)]
    records: Vec<StreamRecord>,
}

#[derive(Deserialize)]
struct StreamRecord {
    #[serde(rename = "eventName", default)]
    event_name: String,
    dynamodb: Change,
}

#[derive(Deserialize)]
struct Change {
    #[serde(rename = "Keys", default)]
    keys: Map<String, Value>,
    #[serde(rename = "NewImage")]
    new_image: Option<Map<String, Value>>,
    #[serde(rename = "OldImage")]
    old_image: Option<Map<String, Value>>,
    #[serde(rename = "SequenceNumber", default)]
    sequence_number: String,
}

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

    /// A stream batch in, `{"batchItemFailures": [...]}` out.
    pub async fn handle(&self, event: Value) -> Value {
        let event: StreamEvent = match serde_json::from_value(event) {
            Ok(event) => event,
            Err(err) => {
                tracing::error!(error = %err, "not a DynamoDB stream event");
                return json!({"batchItemFailures": []});
            }
        };
        for record in &event.records {
            if let Err(err) = self.publish(record).await {
                tracing::warn!(sequence = %record.dynamodb.sequence_number, error = %err, "stream record not published; it will be retried");
                let failed = json!({"itemIdentifier": record.dynamodb.sequence_number});
                return json!({"batchItemFailures": [failed]});
            }
        }
        json!({"batchItemFailures": []})
    }

    async fn publish(&self, record: &StreamRecord) -> Result<(), StoreError> {
        let events = changes(record)?;
        for event in &events {
            let text = |name: &str| event.detail[name].as_str().unwrap_or_default().to_owned();
            tracing::info!(event = event.detail_type, event_id = %text("event_id"), sub = %text("sub"), "lifecycle event");
            shared::telemetry::metric(event.detail_type, 1.0);
        }
        match &self.sink {
            Some(sink) if !events.is_empty() => sink.publish(&events).await,
            _ => Ok(()),
        }
    }
}

/// The lifecycle events one stream record means (none for non-grant items).
fn changes(record: &StreamRecord) -> Result<Vec<Outgoing>, StoreError> {
    let change = &record.dynamodb;
    let is_grant = change.keys["pk"]["S"]
        .as_str()
        .is_some_and(|pk| pk.starts_with("grant#"));
    if !is_grant {
        return Ok(Vec::new());
    }
    let decode = |image: &Option<Map<String, Value>>| -> Result<Option<(Grant, Option<String>)>, StoreError> {
        let Some(image) = image else { return Ok(None) };
        let reason = image
            .get(DELETE_REASON)
            .and_then(|v| v["S"].as_str())
            .map(str::to_owned);
        Ok(Some((item::decode(&item::from_json(image)?)?, reason)))
    };
    let old = decode(&change.old_image)?;
    let new = decode(&change.new_image)?;
    if record.event_name == "REMOVE" {
        let (old, reason) = old.unzip();
        return Ok(grant_changes(old.as_ref(), None, reason.flatten().as_deref()));
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
