//! `worker`: Calendar event jobs from the SQS jobs queue, for users who are not
//! there (README, "Acting for users from your backend"). Each message ends as
//! created (consumed, `CalendarEventCreated`), a permanent failure (consumed,
//! `CalendarEventFailed`) or a transient failure (reported in `batchItemFailures`,
//! so SQS redelivers it and, after `maxReceiveCount`, moves it to the dead-letter
//! queue). The outcome events of a batch leave in one `PutEvents` before their
//! messages are consumed; a message whose event could not be sent is transient.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use shared::batch::{self, Disposition, SqsEvent, SqsMessage};
use shared::cases::lifecycle::{job_created, job_failed};
use shared::cases::prefetch::PrefetchedGrants;
use shared::cases::{AccessTokens, CalendarEvents, NewEvent};
use shared::ports::{EventSink, Outgoing};
use shared::types::{CalendarId, IdempotencyKey, SendUpdates};
use shared::{ApiError, Boot, Needs};

pub const NEEDS: Needs = Needs {
    kms: true,
    client_secret: true,
};

pub struct Worker {
    events: CalendarEvents,
    sink: Option<Arc<dyn EventSink>>,
    /// The batch's grants, read together before its jobs run.
    grants: Option<Arc<PrefetchedGrants>>,
}

/// A job message, read: who, which calendar, the event and its idempotency key.
struct Job {
    job_id: IdempotencyKey,
    sub: String,
    new: NewEvent,
}

/// Why a message could not become a job, with what could be read of it.
struct Unreadable {
    job_id: Option<String>,
    sub: Option<String>,
    calendar: String,
    error: ApiError,
}

impl Worker {
    /// The table, KMS `Decrypt`/`Encrypt`, Google's token endpoint and Calendar, and
    /// the team's bus when `EVENT_BUS_NAME` is set.
    pub fn new(boot: &Boot) -> Self {
        let grants = Arc::new(PrefetchedGrants::new(boot.grants()));
        let access = AccessTokens::new(grants.clone(), boot.sealer(), boot.google_oauth());
        let sink = boot.event_sink().map(|sink| sink as Arc<dyn EventSink>);
        Self {
            grants: Some(grants),
            ..Self::with(CalendarEvents::new(Arc::new(access), boot.calendar()), sink)
        }
    }

    /// Without reading a batch's grants together: each job reads its own.
    pub fn with(events: CalendarEvents, sink: Option<Arc<dyn EventSink>>) -> Self {
        Self {
            events,
            sink,
            grants: None,
        }
    }

    /// An SQS batch in, `{"batchItemFailures": [...]}` out.
    pub async fn handle(&self, event: Value) -> Value {
        let response = match serde_json::from_value::<SqsEvent>(event) {
            Ok(event) => {
                if let Some(grants) = &self.grants {
                    grants.prefetch(&users(&event)).await;
                }
                let response = batch::each_message(event, |message| self.one(message), |all| self.settle(all)).await;
                if let Some(grants) = &self.grants {
                    grants.clear();
                }
                response
            }
            Err(err) => {
                tracing::error!(error = %err, "not an SQS event");
                Default::default()
            }
        };
        serde_json::to_value(response).unwrap_or_else(|_| json!({"batchItemFailures": []}))
    }

    async fn one(&self, message: SqsMessage) -> Handled {
        let (outcome, calendar) = match read_job(&message.body) {
            Err(unreadable) => {
                let event = job_failed(
                    unreadable.job_id.as_deref(),
                    unreadable.sub.as_deref(),
                    &unreadable.calendar,
                    &message.message_id,
                    &unreadable.error,
                );
                (Err((unreadable.error, event)), unreadable.calendar)
            }
            Ok(job) => {
                let calendar = job.new.calendar.as_str().to_owned();
                let job_id = job.job_id.as_str().to_owned();
                let result = self.events.create(&job.sub, job.new).await;
                let outcome = match result {
                    Ok(created) => Ok(job_created(
                        &job_id,
                        &job.sub,
                        &calendar,
                        &created.event,
                        created.replayed,
                    )),
                    Err(err) => {
                        let event = job_failed(Some(&job_id), Some(&job.sub), &calendar, &message.message_id, &err);
                        Err((err, event))
                    }
                };
                (outcome, calendar)
            }
        };
        let event = match outcome {
            Ok(event) => event,
            Err((err, _)) if err.is_transient() => {
                tracing::warn!(message_id = %message.message_id, code = err.code(), error = %err, "job failed; it will be retried");
                return Handled::Retry;
            }
            Err((err, event)) => {
                tracing::info!(message_id = %message.message_id, code = err.code(), "job failed for good");
                event
            }
        };
        shared::telemetry::metric(
            if event.detail_type == "CalendarEventCreated" {
                "JobCreated"
            } else {
                "JobFailed"
            },
            1.0,
        );
        tracing::info!(
            message_id = %message.message_id,
            calendar,
            outcome = event.detail_type,
            job_id = event.detail["job_id"].as_str().unwrap_or_default(),
            sub = event.detail["sub"].as_str().unwrap_or_default(),
            "job done"
        );
        Handled::Report {
            message_id: message.message_id,
            event,
        }
    }

    /// Sends the batch's outcome events in one go; a message is consumed only once
    /// its own event is sent.
    async fn settle(&self, handled: Vec<Handled>) -> Vec<Disposition> {
        let Some(sink) = &self.sink else {
            return handled.iter().map(Handled::disposition_unsent).collect();
        };
        let mut reported = Vec::with_capacity(handled.len());
        let mut events = Vec::with_capacity(handled.len());
        for one in handled {
            match one {
                Handled::Retry => reported.push(None),
                Handled::Report { message_id, event } => {
                    reported.push(Some(message_id));
                    events.push(event);
                }
            }
        }
        let mut sent = if events.is_empty() {
            Vec::new().into_iter()
        } else {
            sink.publish_each(&events).await.into_iter()
        };
        reported
            .into_iter()
            .map(|message_id| {
                let Some(message_id) = message_id else {
                    return Disposition::Retry;
                };
                match sent.next() {
                    Some(Ok(())) => Disposition::Consumed,
                    Some(Err(err)) => {
                        tracing::warn!(message_id, error = %err, "outcome event not sent; the job will be retried");
                        Disposition::Retry
                    }
                    None => Disposition::Retry,
                }
            })
            .collect()
    }
}

/// One message, handled: to retry, or done once its outcome event is sent.
enum Handled {
    Retry,
    Report { message_id: String, event: Outgoing },
}

impl Handled {
    /// Without a bus, outcomes are only logged: a reported message is done.
    fn disposition_unsent(&self) -> Disposition {
        match self {
            Handled::Retry => Disposition::Retry,
            Handled::Report { .. } => Disposition::Consumed,
        }
    }
}

/// The distinct users the batch's readable jobs are for.
fn users(event: &SqsEvent) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Who {
        sub: Option<String>,
    }
    let mut subs: Vec<String> = event
        .records
        .iter()
        .filter_map(|m| serde_json::from_str::<Who>(&m.body).ok()?.sub)
        .filter(|sub| !sub.trim().is_empty())
        .collect();
    subs.sort_unstable();
    subs.dedup();
    subs
}

fn read_job(body: &str) -> Result<Job, Unreadable> {
    let unreadable = |job_id: Option<&str>, sub: Option<&str>, calendar: &str, error: ApiError| Unreadable {
        job_id: job_id.map(str::to_owned),
        sub: sub.map(str::to_owned),
        calendar: calendar.to_owned(),
        error,
    };
    let invalid = |why: &str| ApiError::InvalidJob(why.to_owned());
    let Ok(Value::Object(job)) = serde_json::from_str::<Value>(body) else {
        return Err(unreadable(
            None,
            None,
            "primary",
            invalid("The job is not a JSON object."),
        ));
    };
    let text = |name: &str| job.get(name).and_then(Value::as_str);
    let calendar = text("calendar_id").unwrap_or("primary");
    let fail = |error| Err(unreadable(text("job_id"), text("sub"), calendar, error));
    let Some(job_id) = text("job_id").and_then(IdempotencyKey::parse) else {
        return fail(invalid("'job_id' must be 1-255 visible ASCII characters."));
    };
    let Some(sub) = text("sub").filter(|s| !s.trim().is_empty()) else {
        return fail(invalid("'sub' must be a non-empty string."));
    };
    let Some(calendar_id) = optional(&job, "calendar_id", CalendarId::parse, CalendarId::primary()) else {
        return fail(invalid(
            "'calendar_id' must be 1-1024 characters, not '.' or '..', without control characters.",
        ));
    };
    let Some(send_updates) = optional(&job, "send_updates", SendUpdates::parse, SendUpdates::default()) else {
        return fail(invalid("'send_updates' must be all, externalOnly or none."));
    };
    let event = match shared::event::validate(job.get("event").cloned().unwrap_or(Value::Null)) {
        Ok(event) => event,
        Err(errors) => return fail(ApiError::InvalidEvent(errors)),
    };
    Ok(Job {
        sub: sub.to_owned(),
        new: NewEvent {
            calendar: calendar_id,
            send_updates,
            key: Some(job_id.clone()),
            event,
        },
        job_id,
    })
}

/// An optional string member, parsed; `None` when present but invalid.
fn optional<T>(job: &Map<String, Value>, name: &str, parse: impl Fn(&str) -> Option<T>, default: T) -> Option<T> {
    match job.get(name) {
        None | Some(Value::Null) => Some(default),
        Some(Value::String(raw)) => parse(raw),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::Secret;
    use shared::cases::SignIn;
    use shared::memory::{FakeGoogle, MemoryGrants, MemorySealer, MemorySink};
    use shared::types::CALENDAR_EVENTS_SCOPE;

    /// A worker over the in-memory ports, with `sub` connected with Calendar.
    async fn worker(sub: &str) -> (Worker, Arc<MemorySink>) {
        let grants = Arc::new(MemoryGrants::default());
        let sealer = Arc::new(MemorySealer::default());
        let google = Arc::new(FakeGoogle::default());
        google.code("c1", sub, &["openid", CALENDAR_EVENTS_SCOPE], Some("1//rt"));
        let sign_in = SignIn::new(google.clone(), google.clone(), sealer.clone(), grants.clone());
        sign_in.exchange(&Secret::new("c1"), "postmessage").await.unwrap();
        let access = Arc::new(AccessTokens::new(grants, sealer, google.clone()));
        let sink = Arc::new(MemorySink::default());
        let worker = Worker::with(
            CalendarEvents::new(access, google),
            Some(sink.clone() as Arc<dyn EventSink>),
        );
        (worker, sink)
    }

    fn batch(jobs: &[(&str, &str)]) -> Value {
        let records: Vec<Value> = jobs
            .iter()
            .map(|(message_id, body)| json!({"messageId": message_id, "body": body}))
            .collect();
        json!({ "Records": records })
    }

    fn job(job_id: &str, sub: &str) -> String {
        json!({"job_id": job_id, "sub": sub,
               "event": {"start": {"date": "2031-01-01"}, "end": {"date": "2031-01-02"}}})
        .to_string()
    }

    #[tokio::test]
    async fn a_batch_sends_its_outcomes_in_one_call() {
        let (worker, sink) = worker("u1").await;
        let (a, b) = (job("a", "u1"), job("b", "u1"));
        let answer = worker
            .handle(batch(&[("m1", &a), ("m2", "not json"), ("m3", &b)]))
            .await;
        assert_eq!(answer, json!({"batchItemFailures": []}));
        assert_eq!(*sink.calls.lock().unwrap(), 1);
        let sent: Vec<&str> = sink.sent.lock().unwrap().iter().map(|e| e.detail_type).collect();
        assert_eq!(
            sent,
            ["CalendarEventCreated", "CalendarEventFailed", "CalendarEventCreated"]
        );
    }

    #[tokio::test]
    async fn an_outcome_the_bus_refuses_makes_only_its_message_transient() {
        let (worker, sink) = worker("u1").await;
        sink.refused_jobs.lock().unwrap().push("b".into());
        let (a, b, c) = (job("a", "u1"), job("b", "u1"), job("c", "u1"));
        let answer = worker.handle(batch(&[("m1", &a), ("m2", &b), ("m3", &c)])).await;
        assert_eq!(answer, json!({"batchItemFailures": [{"itemIdentifier": "m2"}]}));
        let sent: Vec<String> = sink
            .sent
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.detail["job_id"].to_string())
            .collect();
        assert_eq!(sent, ["\"a\"", "\"c\""]);
    }

    #[tokio::test]
    async fn a_batch_with_nothing_to_report_makes_no_call() {
        let (worker, sink) = worker("u1").await;
        *sink.unavailable.lock().unwrap() = true;
        let answer = worker.handle(batch(&[("m1", &job("a", "u1"))])).await;
        assert_eq!(answer, json!({"batchItemFailures": [{"itemIdentifier": "m1"}]}));
        assert_eq!(*sink.calls.lock().unwrap(), 1, "the outcome was offered once");
        let answer = worker.handle(json!({"Records": []})).await;
        assert_eq!(answer, json!({"batchItemFailures": []}));
        assert_eq!(*sink.calls.lock().unwrap(), 1, "an empty batch sends nothing");
    }
}
