//! `worker`: Calendar event jobs from SQS for users who are not there (docs/api.md,
//! "Acting for users from your backend"). Every outcome of a message, the batch
//! answer, the outcome events on the bus, and the dead-letter queue.

use integration_tests::google_emulator::{Endpoint, Fault, FaultKind};
use integration_tests::offline::{Invoke as _, retried, sqs_event};
use integration_tests::{Stack, logs};
use serde_json::{Value, json};

fn event() -> Value {
    json!({"summary": "Booking", "start": {"dateTime": "2031-05-01T09:00:00Z"}, "end": {"dateTime": "2031-05-01T10:00:00Z"}})
}

fn job(job_id: &str, sub: &str) -> String {
    json!({"job_id": job_id, "sub": sub, "event": event()}).to_string()
}

fn on_calendar(job_id: &str, sub: &str, calendar: &str) -> String {
    json!({"job_id": job_id, "sub": sub, "calendar_id": calendar, "event": event()}).to_string()
}

#[tokio::test]
async fn a_job_creates_the_event_and_reports_it_on_the_bus() {
    let stack = Stack::start().await;
    stack.connect_calendar("w1").await;
    let bus = stack.bus().await;
    let worker = stack.worker(Some(&bus));
    let answer = worker.invoke(sqs_event(&[job("booking-1", "w1")])).await;
    assert!(retried(&answer).is_empty(), "{answer}");
    let stored = stack.google.events("w1", "primary");
    assert_eq!(stored.len(), 1);
    let events = bus.events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    let (kind, detail) = &events[0];
    assert_eq!(kind, "CalendarEventCreated");
    assert_eq!(detail["job_id"], "booking-1");
    assert_eq!(detail["sub"], "w1");
    assert_eq!(detail["calendar_id"], "primary");
    assert_eq!(detail["calendar_event_id"], stored[0]["id"]);
    assert_eq!(detail["html_link"], stored[0]["htmlLink"]);
    assert_eq!(detail["replayed"], false);
    assert!(detail["event_id"].as_str().is_some_and(|id| !id.is_empty()));
}

#[tokio::test]
async fn a_redelivered_job_and_an_http_request_with_the_same_key_make_one_event() {
    let stack = Stack::start().await;
    let bearer = stack.connect_calendar("w2").await;
    let bus = stack.bus().await;
    let worker = stack.worker(Some(&bus));
    worker.invoke(sqs_event(&[job("booking-2", "w2")])).await;
    let again = worker.invoke(sqs_event(&[job("booking-2", "w2")])).await;
    assert!(retried(&again).is_empty());
    let http = stack.create_event(&bearer, &event(), Some("booking-2")).await;
    assert_eq!(
        http.status, 200,
        "the HTTP request replays the job's event: {}",
        http.body
    );
    assert_eq!(http.header("idempotent-replayed"), Some("true"));
    assert_eq!(stack.google.events("w2", "primary").len(), 1);
    let events = bus.events().await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].1["replayed"], true);
    assert_eq!(
        events[0].1["event_id"], events[1].1["event_id"],
        "same change, same event_id"
    );

    // An HTTP request first, then a job with its key: still one event.
    let first = stack.create_event(&bearer, &event(), Some("booking-3")).await;
    assert_eq!(first.status, 201);
    worker.invoke(sqs_event(&[job("booking-3", "w2")])).await;
    assert_eq!(stack.google.events("w2", "primary").len(), 2);
    assert_eq!(bus.events().await[0].1["replayed"], true);
}

#[tokio::test]
async fn permanent_failures_are_consumed_and_reported_with_their_code() {
    let stack = Stack::start().await;
    stack.connect_calendar("w3").await;
    stack.sign_in("w3-no-calendar").await;
    let dead = "w3-dead";
    stack.connect_calendar(dead).await;
    assert!(stack.google.revoke_user(dead));
    let bus = stack.bus().await;
    let worker = stack.worker(Some(&bus));
    let cases = [
        ("not json".to_owned(), "invalid_job"),
        (json!({"sub": "w3", "event": event()}).to_string(), "invalid_job"),
        (json!({"job_id": "j", "event": event()}).to_string(), "invalid_job"),
        (
            json!({"job_id": "has space", "sub": "w3", "event": event()}).to_string(),
            "invalid_job",
        ),
        (
            json!({"job_id": "j", "sub": "w3", "calendar_id": "..", "event": event()}).to_string(),
            "invalid_job",
        ),
        (
            json!({"job_id": "j", "sub": "w3", "event": {"start": {"date": "2031-02-30"}}}).to_string(),
            "invalid_event",
        ),
        (job("j-unknown", "nobody"), "not_connected"),
        (job("j-scope", "w3-no-calendar"), "scope_required"),
        (job("j-dead", dead), "reauthorization_required"),
        (
            on_calendar("j-missing", "w3", "no-such-calendar@example.com"),
            "not_found",
        ),
    ];
    stack
        .google
        .inject(Fault::status(Endpoint::CalendarInsert, 404).on_calendar("no-such-calendar@example.com"));
    for (body, code) in &cases {
        let answer = worker.invoke(sqs_event(std::slice::from_ref(body))).await;
        assert!(retried(&answer).is_empty(), "{code}: consumed, not retried");
        let events = bus.events().await;
        assert_eq!(events.len(), 1, "{code}: {events:?}");
        assert_eq!(events[0].0, "CalendarEventFailed");
        assert_eq!(events[0].1["code"], *code, "{body}");
        assert!(events[0].1["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    assert!(stack.google.events("w3", "primary").is_empty());
    let me = stack.me(&stack.google.id_token(dead)).await;
    assert_eq!(
        me.body["status"], "reauthorization_required",
        "invalid_grant marks the grant"
    );
}

#[tokio::test]
async fn transient_failures_are_retried_and_send_no_outcome() {
    let stack = Stack::start().await;
    stack.connect_calendar("w4").await;
    let bus = stack.bus().await;
    let worker = stack.worker(Some(&bus));
    for fault in [
        Fault::status(Endpoint::CalendarInsert, 503).times(3),
        Fault::new(
            Endpoint::CalendarInsert,
            FaultKind::Status {
                status: 429,
                body: None,
                retry_after: Some(7),
            },
        ),
        Fault::new(Endpoint::CalendarInsert, FaultKind::DropAfterWork).times(3),
    ] {
        stack.google.inject(fault);
        let answer = worker.invoke(sqs_event(&[job("flaky", "w4")])).await;
        assert_eq!(retried(&answer), ["m0"]);
        assert!(bus.events().await.is_empty(), "no outcome before the job is done");
    }
    // The lost answers had created the event: the redelivery finds it.
    let answer = worker.invoke(sqs_event(&[job("flaky", "w4")])).await;
    assert!(retried(&answer).is_empty());
    assert_eq!(stack.google.events("w4", "primary").len(), 1);
    assert_eq!(bus.events().await[0].1["replayed"], true);
}

#[tokio::test]
async fn a_mixed_batch_reports_exactly_the_transient_messages() {
    let stack = Stack::start().await;
    for sub in ["wa", "wb", "wc"] {
        stack.connect_calendar(sub).await;
    }
    let bus = stack.bus().await;
    let worker = stack.worker(Some(&bus));
    stack.google.inject(
        Fault::status(Endpoint::CalendarInsert, 503)
            .times(100)
            .on_calendar("flaky"),
    );
    let batch = [
        job("ok-1", "wa"),
        on_calendar("t-1", "wa", "flaky"),
        job("ok-2", "wb"),
        "{".to_owned(),
        on_calendar("t-2", "wb", "flaky"),
        job("ok-3", "wc"),
        job("gone", "nobody"),
        on_calendar("t-3", "wc", "flaky"),
        job("ok-4", "wa"),
        json!({"job_id": "bad", "sub": "wa", "event": []}).to_string(),
    ];
    let answer = worker.invoke(sqs_event(&batch)).await;
    assert_eq!(retried(&answer), ["m1", "m4", "m7"]);
    let events = bus.events().await;
    let created = events.iter().filter(|(kind, _)| kind == "CalendarEventCreated").count();
    let failed = events.iter().filter(|(kind, _)| kind == "CalendarEventFailed").count();
    assert_eq!((created, failed), (4, 3));
}

#[tokio::test]
async fn a_warm_batch_for_one_user_refreshes_once() {
    let stack = Stack::start().await;
    stack.connect_calendar("w5").await;
    let worker = stack.worker(None);
    stack.google.reset_hits();
    let jobs: Vec<String> = (0..10).map(|i| job(&format!("b-{i}"), "w5")).collect();
    let answer = worker.invoke(sqs_event(&jobs)).await;
    assert!(retried(&answer).is_empty());
    let hits = stack.google.hits();
    assert_eq!(hits.calendar_insert, 10);
    assert!(
        hits.token_refresh <= 1,
        "at most one refresh for a warm batch: {}",
        hits.token_refresh
    );
    stack.google.reset_hits();
    worker.invoke(sqs_event(&[job("b-next", "w5")])).await;
    assert_eq!(
        (stack.google.hits().token_refresh, stack.google.hits().calendar_insert),
        (0, 1)
    );
}

#[tokio::test]
async fn a_bus_that_is_down_makes_the_message_transient() {
    let stack = Stack::start().await;
    stack.connect_calendar("w6").await;
    let worker = stack.worker_with_bus_down().await;
    let answer = worker.invoke(sqs_event(&[job("j", "w6")])).await;
    assert_eq!(retried(&answer), ["m0"], "the outcome could not be sent");
    // Without EVENT_BUS_NAME outcomes are only logged and the message is consumed.
    let answer = stack.worker(None).invoke(sqs_event(&[job("j", "w6")])).await;
    assert!(retried(&answer).is_empty());
    assert_eq!(stack.google.events("w6", "primary").len(), 1);
}

#[tokio::test]
async fn a_job_that_keeps_failing_reaches_the_dead_letter_queue() {
    let stack = Stack::start().await;
    stack.connect_calendar("w7").await;
    let (queue, dlq) = stack.jobs_queue(5).await;
    let sqs = stack.sqs();
    sqs.send_message()
        .queue_url(&queue)
        .message_body(on_calendar("doomed", "w7", "down"))
        .send()
        .await
        .unwrap();
    stack.google.inject(
        Fault::status(Endpoint::CalendarInsert, 503)
            .times(1000)
            .on_calendar("down"),
    );
    let worker = stack.worker(None);
    // What Lambda's event source mapping does: receive, invoke, delete what was consumed.
    for _ in 0..6 {
        let out = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        let bodies: Vec<String> = messages.iter().map(|m| m.body().unwrap().to_owned()).collect();
        let answer = worker.invoke(sqs_event(&bodies)).await;
        for (i, message) in messages.iter().enumerate() {
            let handle = message.receipt_handle().unwrap();
            if retried(&answer).contains(&format!("m{i}")) {
                sqs.change_message_visibility()
                    .queue_url(&queue)
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .unwrap();
            } else {
                sqs.delete_message()
                    .queue_url(&queue)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
    let dead = sqs
        .receive_message()
        .queue_url(&dlq)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].body().unwrap().contains("doomed"));
}

#[tokio::test]
async fn no_token_code_or_secret_reaches_an_event_or_a_log_line() {
    let stack = Stack::start().await;
    stack.connect_calendar("w8").await;
    let bus = stack.bus().await;
    let worker = stack.worker(Some(&bus));
    worker
        .invoke(sqs_event(&[job("hygiene", "w8"), job("hygiene-2", "nobody")]))
        .await;
    let events = format!("{:?}", bus.events().await);
    let logs = logs::captured();
    for secret in stack.google.issued_secrets() {
        assert!(!events.contains(&secret), "an event holds an issued secret");
        assert!(!logs.contains(&secret), "a log line holds an issued secret");
    }
}
