//! Lifecycle and job events onto the team's EventBridge bus (`EVENT_BUS_NAME`),
//! `Source: google-offline-access`, through `json_rpc` (one `PutEvents` per job
//! and per stream record). PutEvents reports failures per entry; any failed entry
//! fails the whole call, so the caller sends again (consumers deduplicate on
//! `detail.event_id`).

use async_trait::async_trait;
use serde_json::{Value, json};

use super::json_rpc::JsonRpc;
use crate::cases::lifecycle::SOURCE;
use crate::ports::{EventSink, Outgoing, StoreError};

/// PutEvents takes at most this many entries per call.
const MAX_ENTRIES: usize = 10;

pub struct EventBridgeSink {
    rpc: JsonRpc,
    bus: String,
}

impl EventBridgeSink {
    pub fn new(rpc: JsonRpc, bus: String) -> Self {
        Self { rpc, bus }
    }
}

#[async_trait]
impl EventSink for EventBridgeSink {
    async fn publish(&self, events: &[Outgoing]) -> Result<(), StoreError> {
        for chunk in events.chunks(MAX_ENTRIES) {
            let entries: Vec<Value> = chunk
                .iter()
                .map(|event| {
                    json!({
                        "EventBusName": self.bus,
                        "Source": SOURCE,
                        "DetailType": event.detail_type,
                        "Detail": event.detail.to_string(),
                    })
                })
                .collect();
            let request = json!({ "Entries": entries }).to_string().into_bytes();
            let answer = self.rpc.call("PutEvents", request).await?;
            let failed = answer.get("FailedEntryCount").and_then(Value::as_u64).unwrap_or(0);
            if failed > 0 {
                return Err(StoreError::Unavailable {
                    service: "EventBridge",
                    reason: format!("{failed} of {} entries failed", chunk.len()),
                });
            }
        }
        Ok(())
    }
}
