//! `worker` batches over the in-memory ports (no moto, no emulator): how a batch's
//! outcome events leave and which messages come again, including one oversized
//! message among healthy ones.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::{Value, json};
use shared::Secret;
use shared::cases::{AccessTokens, CalendarEvents, SignIn};
use shared::memory::{FakeGoogle, MemoryGrants, MemorySealer, MemorySink};
use shared::ports::EventSink;
use shared::system::Ambient;
use shared::types::CALENDAR_EVENTS_SCOPE;
use worker::Worker;

/// A worker over the in-memory ports, with `sub` connected with Calendar.
async fn worker(sub: &str) -> (Worker, Arc<MemorySink>) {
    let grants = Arc::new(MemoryGrants::default());
    let sealer = Arc::new(MemorySealer::default());
    let google = Arc::new(FakeGoogle::default());
    google.code("c1", sub, &["openid", CALENDAR_EVENTS_SCOPE], Some("1//rt"));
    let ambient = Ambient::system();
    let sign_in = SignIn::new(
        google.clone(),
        google.clone(),
        sealer.clone(),
        grants.clone(),
        ambient.clone(),
    );
    sign_in.exchange(&Secret::new("c1"), "postmessage").await.unwrap();
    let access = Arc::new(AccessTokens::new(grants, sealer, google.clone(), ambient));
    let sink = Arc::new(MemorySink::default());
    let worker = Worker::with(
        CalendarEvents::new(access, google),
        Some(sink.clone() as Arc<dyn EventSink>),
    );
    (worker, sink)
}

fn batch(jobs: &[(&str, &str)]) -> SqsEvent {
    let records: Vec<Value> = jobs
        .iter()
        .map(|(message_id, body)| json!({"messageId": message_id, "body": body}))
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

fn job(job_id: &str, sub: &str) -> String {
    json!({"job_id": job_id, "sub": sub,
           "event": {"start": {"date": "2031-01-01"}, "end": {"date": "2031-01-02"}}})
    .to_string()
}

fn retried(response: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

#[tokio::test]
async fn a_batch_sends_its_outcomes_in_one_call() {
    let (worker, sink) = worker("u1").await;
    let (a, b) = (job("a", "u1"), job("b", "u1"));
    let answer = worker.batch(batch(&[("m1", &a), ("m2", "not json"), ("m3", &b)])).await;
    assert!(retried(&answer).is_empty());
    assert_eq!(*sink.calls.lock().unwrap(), 1);
    let sent: Vec<&str> = sink.sent.lock().unwrap().iter().map(|e| e.detail_type).collect();
    assert_eq!(
        sent,
        ["CalendarEventCreated", "CalendarEventFailed", "CalendarEventCreated"]
    );
}

#[tokio::test]
async fn an_outcome_the_bus_cannot_take_now_makes_only_its_message_come_again() {
    let (worker, sink) = worker("u1").await;
    sink.throttled_jobs.lock().unwrap().push("b".into());
    let (a, b, c) = (job("a", "u1"), job("b", "u1"), job("c", "u1"));
    let answer = worker.batch(batch(&[("m1", &a), ("m2", &b), ("m3", &c)])).await;
    assert_eq!(retried(&answer), ["m2"]);
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
    let answer = worker.batch(batch(&[("m1", &job("a", "u1"))])).await;
    assert_eq!(retried(&answer), ["m1"]);
    assert_eq!(*sink.calls.lock().unwrap(), 1, "the outcome was offered once");
    let answer = worker.batch(batch(&[])).await;
    assert!(retried(&answer).is_empty());
    assert_eq!(*sink.calls.lock().unwrap(), 1, "an empty batch sends nothing");
}

#[tokio::test]
async fn one_message_of_250_kb_never_holds_back_nine_healthy_jobs() {
    let (worker, sink) = worker("u1").await;
    // EventBridge's limit for one entry's detail is far below this; the sink
    // refuses anything over 8 KB for good, as a too-large entry is refused.
    *sink.max_detail_bytes.lock().unwrap() = Some(8 * 1024);
    let huge = json!({"job_id": "x".repeat(250 * 1024), "sub": "u1"}).to_string();
    let jobs: Vec<String> = (0..9).map(|n| job(&format!("ok-{n}"), "u1")).collect();
    let mut messages: Vec<(String, &str)> = jobs
        .iter()
        .enumerate()
        .map(|(n, body)| (format!("m{n}"), body.as_str()))
        .collect();
    messages.insert(4, ("big".into(), huge.as_str()));
    let refs: Vec<(&str, &str)> = messages.iter().map(|(id, body)| (id.as_str(), *body)).collect();
    let answer = worker.batch(batch(&refs)).await;
    assert!(
        retried(&answer).is_empty(),
        "nothing comes again: {:?}",
        retried(&answer)
    );
    let sent = sink.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 10, "the oversized job's event was cut to fit, and sent");
    let failed = sent.iter().find(|e| e.detail_type == "CalendarEventFailed").unwrap();
    assert_eq!(failed.detail["truncated"], true);
    assert!(failed.detail.to_string().len() <= 8 * 1024);
    assert_eq!(
        sent.iter().filter(|e| e.detail_type == "CalendarEventCreated").count(),
        9
    );
}

#[tokio::test]
async fn an_outcome_refused_for_good_is_consumed_not_retried_forever() {
    let (worker, sink) = worker("u1").await;
    *sink.max_detail_bytes.lock().unwrap() = Some(10);
    let answer = worker.batch(batch(&[("m1", &job("a", "u1"))])).await;
    assert!(retried(&answer).is_empty(), "consumed, logged and counted");
    assert!(sink.sent.lock().unwrap().is_empty());
}
