//! Lifecycle and job events onto the team's EventBridge bus (`EVENT_BUS_NAME`),
//! `Source: google-offline-access`, through `json_rpc` (one `PutEvents` per ten
//! events: a worker's batch of outcomes, a stream record's events). PutEvents
//! reports failures per entry: `publish_each` says which, `publish` fails if any
//! did, and the caller sends again (consumers deduplicate on `detail.event_id`).

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
        self.publish_each(events).await.into_iter().collect()
    }

    /// One `PutEvents` per ten events; an entry EventBridge refused fails alone.
    async fn publish_each(&self, events: &[Outgoing]) -> Vec<Result<(), StoreError>> {
        let mut results = Vec::with_capacity(events.len());
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
            match self.rpc.call("PutEvents", request).await {
                Ok(answer) => results.extend(entry_results(&answer, chunk.len())),
                Err(err) => results.extend(chunk.iter().map(|_| Err(err.clone()))),
            }
        }
        results
    }
}

/// PutEvents' answer, entry by entry: `Entries[i]` has an `EventId`, or an
/// `ErrorCode` when entry `i` was refused. An answer that cannot be matched to the
/// request fails every entry it does not clear.
fn entry_results(answer: &Value, sent: usize) -> Vec<Result<(), StoreError>> {
    let refused = |reason: &str| StoreError::Unavailable {
        service: "EventBridge",
        reason: reason.to_owned(),
    };
    let failed = answer.get("FailedEntryCount").and_then(Value::as_u64).unwrap_or(0);
    match answer.get("Entries").and_then(Value::as_array) {
        Some(entries) if entries.len() == sent => entries
            .iter()
            .map(|entry| match entry.get("ErrorCode").and_then(Value::as_str) {
                Some(code) => Err(refused(code)),
                None => Ok(()),
            })
            .collect(),
        _ if failed == 0 => (0..sent).map(|_| Ok(())).collect(),
        _ => (0..sent)
            .map(|_| Err(refused(&format!("{failed} of {sent} entries failed"))))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refused_entry_fails_alone() {
        let answer = json!({"FailedEntryCount": 1, "Entries": [
            {"EventId": "a"}, {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}, {"EventId": "c"}
        ]});
        let results = entry_results(&answer, 3);
        assert!(results[0].is_ok() && results[2].is_ok());
        assert!(matches!(&results[1], Err(StoreError::Unavailable { reason, .. }) if reason == "ThrottlingException"));
    }

    #[test]
    fn an_answer_that_does_not_match_the_request_clears_nothing_that_failed() {
        assert!(
            entry_results(&json!({"FailedEntryCount": 0}), 2)
                .iter()
                .all(Result::is_ok)
        );
        let unmatched = entry_results(&json!({"FailedEntryCount": 1, "Entries": []}), 2);
        assert_eq!(unmatched.len(), 2);
        assert!(unmatched.iter().all(Result::is_err));
    }
}
