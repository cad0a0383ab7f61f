//! Lifecycle and job events onto the team's EventBridge bus (`EVENT_BUS_NAME`),
//! `Source: google-offline-access`, through the SDK's `PutEvents`. Entries are
//! grouped into requests by count (10) and by size (EventBridge's 256 KB per request,
//! measured as it measures), so one large entry never sinks a whole batch; a request
//! EventBridge refuses as a whole is sent again entry by entry, and PutEvents'
//! per-entry answers say which entry failed and whether for good (`Refused`: too
//! large, malformed) or for now (`Unavailable`: throttled, internal error).

use async_trait::async_trait;
use aws_sdk_eventbridge::types::{PutEventsRequestEntry, PutEventsResultEntry};

use super::call;
use crate::ports::{EventSink, Outgoing, PublishError, StoreError};

/// The `Source` of every event on the bus.
pub const SOURCE: &str = "google-offline-access";
/// PutEvents takes at most this many entries per call.
const MAX_ENTRIES: usize = 10;
/// PutEvents takes at most 256 KB per call (the sum of its entries' sizes).
const MAX_REQUEST_BYTES: usize = 256 * 1024;

pub struct EventBridgeSink {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeSink {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: String) -> Self {
        Self { client, bus }
    }

    fn entry(&self, event: &Outgoing) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(event.detail_type)
            .detail(event.detail.to_string())
            .build()
    }

    /// One `PutEvents`; its answer entry by entry.
    async fn put(&self, entries: Vec<PutEventsRequestEntry>) -> Result<Vec<Result<(), PublishError>>, StoreError> {
        let sent = entries.len();
        let out = call(
            "EventBridge",
            self.client.put_events().set_entries(Some(entries)).send(),
        )
        .await?;
        let answers = out.entries.unwrap_or_default();
        if answers.len() != sent {
            let failed = out.failed_entry_count;
            let result = |_| match failed {
                0 => Ok(()),
                n => Err(PublishError::Unavailable(format!("{n} of {sent} entries failed"))),
            };
            return Ok((0..sent).map(result).collect());
        }
        Ok(answers.iter().map(entry_result).collect())
    }
}

#[async_trait]
impl EventSink for EventBridgeSink {
    async fn publish_each(&self, events: &[Outgoing]) -> Vec<Result<(), PublishError>> {
        let entries: Vec<PutEventsRequestEntry> = events.iter().map(|e| self.entry(e)).collect();
        let mut results = Vec::with_capacity(events.len());
        for group in groups(&entries) {
            let chunk = entries[group.clone()].to_vec();
            match self.put(chunk).await {
                Ok(answers) => results.extend(answers),
                Err(StoreError::Unavailable { reason, .. }) => {
                    results.extend(group.map(|_| Err(PublishError::Unavailable(reason.clone()))));
                }
                // The request as a whole was refused: each entry alone says which one.
                Err(_) if group.len() > 1 => {
                    for i in group {
                        results.push(match self.put(vec![entries[i].clone()]).await {
                            Ok(mut one) => one.pop().unwrap_or(Ok(())),
                            Err(err) => Err(refusal(err)),
                        });
                    }
                }
                Err(err) => results.push(Err(refusal(err))),
            }
        }
        results
    }
}

/// A request that failed although EventBridge answered: for good unless transient.
fn refusal(err: StoreError) -> PublishError {
    match err {
        StoreError::Unavailable { reason, .. } => PublishError::Unavailable(reason),
        other => PublishError::Refused(other.to_string()),
    }
}

/// PutEvents' answer for one entry: an `EventId`, or an `ErrorCode` that is
/// transient (throttling, internal failures) or says the entry itself is wrong.
fn entry_result(answer: &PutEventsResultEntry) -> Result<(), PublishError> {
    match answer.error_code() {
        None => Ok(()),
        Some(code @ ("MalformedDetail" | "InvalidArgument" | "ValidationException")) => {
            Err(PublishError::Refused(code.to_owned()))
        }
        Some(code) => Err(PublishError::Unavailable(code.to_owned())),
    }
}

/// An entry's size as EventBridge counts it toward the 256 KB of a request.
fn size(entry: &PutEventsRequestEntry) -> usize {
    [
        entry.source(),
        entry.detail_type(),
        entry.detail(),
        entry.event_bus_name(),
    ]
    .iter()
    .map(|part| part.map_or(0, str::len))
    .sum::<usize>()
        + entry.resources().iter().map(String::len).sum::<usize>()
        + 14 // the timestamp EventBridge adds
}

/// Consecutive groups of at most ten entries and 256 KB; an entry larger than that
/// alone is a group of its own (EventBridge refuses it, and only it).
fn groups(entries: &[PutEventsRequestEntry]) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, entry) in entries.iter().enumerate() {
        let size = size(entry);
        if i > start && (i - start == MAX_ENTRIES || bytes + size > MAX_REQUEST_BYTES) {
            groups.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < entries.len() {
        groups.push(start..entries.len());
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(detail_bytes: usize) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .source(SOURCE)
            .detail_type("CalendarEventFailed")
            .detail("x".repeat(detail_bytes))
            .build()
    }

    #[test]
    fn requests_are_grouped_by_count_and_by_size() {
        let small: Vec<_> = (0..23).map(|_| entry(100)).collect();
        assert_eq!(groups(&small), vec![0..10, 10..20, 20..23]);
        let mixed = vec![entry(100), entry(200 * 1024), entry(100 * 1024), entry(100)];
        assert_eq!(
            groups(&mixed),
            vec![0..2, 2..4],
            "a third large entry starts a new request"
        );
        let huge = vec![entry(300 * 1024), entry(100)];
        assert_eq!(groups(&huge), vec![0..1, 1..2]);
        assert!(groups(&[]).is_empty());
    }

    #[test]
    fn entry_errors_tell_refused_from_transient() {
        let answer = |code: &str| PutEventsResultEntry::builder().error_code(code).build();
        assert!(matches!(
            entry_result(&answer("MalformedDetail")),
            Err(PublishError::Refused(_))
        ));
        assert!(matches!(
            entry_result(&answer("ThrottlingException")),
            Err(PublishError::Unavailable(_))
        ));
        assert!(entry_result(&PutEventsResultEntry::builder().event_id("e").build()).is_ok());
    }
}
