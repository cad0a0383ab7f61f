//! `worker`: Calendar event jobs from the SQS jobs queue, for users who are not
//! there (docs/api.md, "Calendar event jobs"). Each message is read once,
//! into a job or the reason it cannot be one, and ends as one `Outcome`: created
//! (consumed, `CalendarEventCreated`), failed for good (consumed,
//! `CalendarEventFailed`) or to retry (reported in `batchItemFailures`, so SQS
//! redelivers it and, after `maxReceiveCount`, moves it to the dead-letter queue).
//! The outcome drives the event, the metric and the log line alike. The events of a
//! batch leave together before their messages are consumed: one the bus cannot take
//! now makes its message a retry; one the bus refuses for good (too large,
//! malformed) is logged and counted and its message consumed, never retried forever.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_http::lambda_runtime::LambdaEvent;
use serde_json::{Map, Value};
use shared::cases::lifecycle::{JobEcho, MAX_ECHOED_CHARS, job_created, job_failed};
use shared::cases::{CalendarEvents, NewEvent};
use shared::entry::{self, Disposition, Entry};
use shared::grant::Grant;
use shared::ports::{EventSink, Outgoing, PublishError};
use shared::telemetry::metric;
use shared::types::{CalendarId, IdempotencyKey, SendUpdates, Sub};
use shared::{ApiError, Boot, Needs};

pub const NEEDS: Needs = Needs {
    kms: true,
    client_secret: true,
};

pub struct Worker {
    events: CalendarEvents,
    sink: Option<Arc<dyn EventSink>>,
}

/// A job message, read: who, which calendar, the event and its idempotency key.
struct Job {
    job_id: IdempotencyKey,
    sub: Sub,
    new: NewEvent,
}

/// What could be read of a message that is not a job, and why it is not.
struct Unreadable {
    job_id: Option<String>,
    sub: Option<String>,
    calendar_id: String,
    error: ApiError,
}

/// How one message ended.
enum Outcome {
    /// The job's event exists: tell the bus, then consume.
    Created(Outgoing),
    /// The job can never succeed as it is: tell the bus, then consume.
    Failed { event: Outgoing, code: &'static str },
    /// Worth another delivery (Google, DynamoDB or KMS unavailable).
    Retry { code: &'static str },
}

impl Outcome {
    fn name(&self) -> &'static str {
        match self {
            Outcome::Created(_) => "created",
            Outcome::Failed { .. } => "failed",
            Outcome::Retry { .. } => "retry",
        }
    }
}

impl Worker {
    /// The table, KMS (refresh and shared access tokens), Google's token endpoint
    /// and Calendar, and the team's bus when `EVENT_BUS_NAME` is set.
    pub fn new(boot: &Boot) -> Self {
        let events = CalendarEvents::new(Arc::new(boot.access_tokens()), boot.calendar());
        Self::with(events, boot.event_sink().map(|sink| sink as Arc<dyn EventSink>))
    }

    pub fn with(events: CalendarEvents, sink: Option<Arc<dyn EventSink>>) -> Self {
        Self { events, sink }
    }

    /// An SQS batch in, the messages to retry out.
    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> SqsBatchResponse {
        let entry = Entry::of("sqs", &event.context);
        let total = event.payload.records.len();
        entry::invocation(entry, self.batch(event.payload), |response| entry::Outcome {
            code: format!("{} of {total} to retry", response.batch_item_failures.len()).into(),
            status: None,
        })
        .await
    }

    pub async fn batch(&self, event: SqsEvent) -> SqsBatchResponse {
        let messages: Vec<(String, Result<Job, Unreadable>)> = event
            .records
            .into_iter()
            .map(|m| {
                (
                    m.message_id.unwrap_or_default(),
                    read_job(m.body.as_deref().unwrap_or("")),
                )
            })
            .collect();
        let grants = Mutex::new(self.read_grants(&messages).await);
        entry::each_message(
            messages,
            |(message_id, read)| {
                let grants = &grants;
                async move {
                    let known = read
                        .as_ref()
                        .ok()
                        .and_then(|job| grants.lock().unwrap().remove(&job.sub));
                    let outcome = self.run(&message_id, read, known).await;
                    (message_id, outcome)
                }
            },
            |outcomes| self.settle(outcomes),
        )
        .await
    }

    /// The grants of the batch's users in one read; each serves its user's first job
    /// of this batch only, and none outlives the invocation.
    async fn read_grants(&self, messages: &[(String, Result<Job, Unreadable>)]) -> HashMap<Sub, Grant> {
        let mut subs: Vec<Sub> = messages
            .iter()
            .filter_map(|(_, read)| read.as_ref().ok().map(|job| job.sub.clone()))
            .collect();
        subs.sort_unstable();
        subs.dedup();
        if subs.len() < 2 {
            return HashMap::new();
        }
        match self.events.access().grants().load_many(&subs).await {
            Ok(grants) => grants.into_iter().map(|g| (g.sub().clone(), g)).collect(),
            Err(err) => {
                tracing::debug!(error = %err, "grants not read together; each job reads its own");
                HashMap::new()
            }
        }
    }

    async fn run(&self, message_id: &str, read: Result<Job, Unreadable>, known: Option<Grant>) -> Outcome {
        let outcome = match read {
            Err(bad) => {
                let echo = JobEcho {
                    job_id: bad.job_id.as_deref(),
                    sub: bad.sub.as_deref(),
                    calendar_id: &bad.calendar_id,
                    message_id,
                };
                Outcome::Failed {
                    event: job_failed(&echo, &bad.error),
                    code: bad.error.code(),
                }
            }
            Ok(job) => {
                let calendar = job.new.calendar.as_str().to_owned();
                let job_id = job.job_id.as_str().to_owned();
                match self.events.create(&job.sub, job.new, known).await {
                    Ok(created) => Outcome::Created(job_created(
                        &job_id,
                        &job.sub,
                        &calendar,
                        &created.event,
                        created.replayed,
                    )),
                    Err(err) if err.is_transient() => {
                        tracing::warn!(error = %err, "job failed; it will be retried");
                        Outcome::Retry { code: err.code() }
                    }
                    Err(err) => {
                        let echo = JobEcho {
                            job_id: Some(&job_id),
                            sub: Some(job.sub.as_str()),
                            calendar_id: &calendar,
                            message_id,
                        };
                        Outcome::Failed {
                            event: job_failed(&echo, &err),
                            code: err.code(),
                        }
                    }
                }
            }
        };
        metric(
            match outcome {
                Outcome::Created(_) => "JobCreated",
                Outcome::Failed { .. } => "JobFailed",
                Outcome::Retry { .. } => "JobRetried",
            },
            1.0,
        );
        let (code, detail) = match &outcome {
            Outcome::Created(event) => ("ok", Some(&event.detail)),
            Outcome::Failed { event, code } => (*code, Some(&event.detail)),
            Outcome::Retry { code } => (*code, None),
        };
        let text = |name: &str| detail.and_then(|d| d[name].as_str()).unwrap_or_default().to_owned();
        tracing::info!(
            message_id,
            outcome = outcome.name(),
            code,
            job_id = text("job_id"),
            sub = text("sub"),
            "job done"
        );
        outcome
    }

    /// Sends the batch's outcome events together; a message is consumed once its
    /// own event is sent, or refused for good.
    async fn settle(&self, outcomes: Vec<(String, Outcome)>) -> Vec<Disposition> {
        let events: Vec<Outgoing> = outcomes
            .iter()
            .filter_map(|(_, outcome)| match outcome {
                Outcome::Created(event) | Outcome::Failed { event, .. } => Some(event.clone()),
                Outcome::Retry { .. } => None,
            })
            .collect();
        let mut sent = match (&self.sink, events.is_empty()) {
            (Some(sink), false) => sink.publish_each(&events).await.into_iter(),
            // Without a bus, outcomes are only logged.
            _ => vec![Ok(()); events.len()].into_iter(),
        };
        outcomes
            .iter()
            .map(|(message_id, outcome)| {
                if let Outcome::Retry { .. } = outcome {
                    return Disposition::Retry;
                }
                match sent.next() {
                    Some(Ok(())) => Disposition::Consumed,
                    Some(Err(PublishError::Refused(why))) => {
                        metric("OutcomeEventRefused", 1.0);
                        tracing::error!(message_id, reason = %why, "the bus refused this job's outcome event for good; the job is consumed without it");
                        Disposition::Consumed
                    }
                    Some(Err(PublishError::Unavailable(why))) => {
                        tracing::warn!(message_id, reason = %why, "outcome event not sent; the job will be retried");
                        Disposition::Retry
                    }
                    None => Disposition::Retry,
                }
            })
            .collect()
    }
}

/// Reads a message body once, into a job or the reason it is not one.
fn read_job(body: &str) -> Result<Job, Unreadable> {
    let invalid = |why: &str| ApiError::InvalidJob(why.to_owned());
    let Ok(Value::Object(job)) = serde_json::from_str::<Value>(body) else {
        return Err(Unreadable {
            job_id: None,
            sub: None,
            calendar_id: "primary".into(),
            error: invalid("The job is not a JSON object."),
        });
    };
    // Raw values are cut as soon as they are read: nothing downstream ever holds a
    // huge one.
    let text = |name: &str| job.get(name).and_then(Value::as_str);
    let echoed = |name: &str| text(name).map(|v| v.chars().take(MAX_ECHOED_CHARS + 1).collect::<String>());
    let fail = |error| {
        Err(Unreadable {
            job_id: echoed("job_id"),
            sub: echoed("sub"),
            calendar_id: echoed("calendar_id").unwrap_or_else(|| "primary".into()),
            error,
        })
    };
    let Some(job_id) = text("job_id").and_then(IdempotencyKey::parse) else {
        return fail(invalid("'job_id' must be 1-255 visible ASCII characters."));
    };
    let Some(sub) = text("sub").and_then(Sub::parse) else {
        return fail(invalid("'sub' must be a Google sub: 1-255 visible ASCII characters."));
    };
    let Some(calendar) = optional(&job, "calendar_id", CalendarId::parse, CalendarId::primary()) else {
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
        sub,
        new: NewEvent {
            calendar,
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
