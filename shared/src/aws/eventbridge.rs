//! Lifecycle and job events onto the team's EventBridge bus (`EVENT_BUS_NAME`),
//! `Source: google-offline-access`. PutEvents reports failures per entry; any
//! failed entry fails the whole call, so the caller sends again (consumers
//! deduplicate on `detail.event_id`).

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::call;
use crate::cases::lifecycle::SOURCE;
use crate::ports::{EventSink, Outgoing, StoreError};

/// PutEvents takes at most this many entries per call.
const MAX_ENTRIES: usize = 10;

pub struct EventBridgeSink {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeSink {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: String) -> Self {
        Self { client, bus }
    }
}

#[async_trait]
impl EventSink for EventBridgeSink {
    async fn publish(&self, events: &[Outgoing]) -> Result<(), StoreError> {
        for chunk in events.chunks(MAX_ENTRIES) {
            let entries = chunk
                .iter()
                .map(|event| {
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(SOURCE)
                        .detail_type(event.detail_type)
                        .detail(event.detail.to_string())
                        .build()
                })
                .collect();
            let out = call(
                "EventBridge",
                self.client.put_events().set_entries(Some(entries)).send(),
            )
            .await?;
            if out.failed_entry_count > 0 {
                return Err(StoreError::Unavailable {
                    service: "EventBridge",
                    reason: format!("{} of {} entries failed", out.failed_entry_count, chunk.len()),
                });
            }
        }
        Ok(())
    }
}
