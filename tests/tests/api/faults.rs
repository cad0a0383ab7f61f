//! Worst-day behaviour (docs/api.md, "Error codes" and "Choices behind the behaviour"):
//! AWS unreachable, Google slower than our timeout, Google failing then recovering. Each
//! answer is the documented one, and nothing is left half-written.

use std::time::Duration;

use integration_tests::google_emulator::{CodeRequest, Endpoint, Fault, FaultKind};
use integration_tests::{Function, Options, Req, Stack, send_to};
use lambda_http::RequestExt;
use serde_json::json;

fn event() -> serde_json::Value {
    json!({"start": {"dateTime": "2031-06-01T09:00:00Z"}, "end": {"dateTime": "2031-06-01T10:00:00Z"}})
}

#[tokio::test]
async fn dynamodb_and_kms_unreachable_is_503_with_retry_after() {
    let stack = Stack::start().await;
    let bearer = stack.connect_calendar("f1").await;
    let before = stack.snapshot().await;
    let offline = stack.container_without_aws().await;

    let code = stack
        .google
        .mint_code(CodeRequest::new("f2").offline(true).consent(true));
    let req = Req::post("/auth/exchange").csrf().json(&json!({ "code": code }));
    let reply = send_to(&offline, Function::Exchange, req.build()).await;
    reply.assert_problem(503, "upstream_unavailable");
    assert!(reply.header("retry-after").unwrap().parse::<u32>().unwrap() >= 1);

    stack.google.reset_hits();
    let req = Req::post("/calendar/events").bearer(&bearer).json(&event());
    send_to(&offline, Function::Events, req.build())
        .await
        .assert_problem(503, "upstream_unavailable");
    assert_eq!(stack.google.hits().calendar_insert, 0, "no event without the grant");

    send_to(&offline, Function::Account, Req::get("/me").bearer(&bearer).build())
        .await
        .assert_problem(503, "upstream_unavailable");
    assert_eq!(stack.snapshot().await, before, "nothing written anywhere");
}

#[tokio::test]
async fn token_endpoint_slower_than_our_timeout_is_503_and_the_code_is_not_resent() {
    let stack = Stack::start().await;
    stack
        .google
        .inject(Fault::new(Endpoint::Token, FaultKind::Latency(Duration::from_secs(4))));
    let code = stack
        .google
        .mint_code(CodeRequest::new("f3").offline(true).consent(true));
    let started = std::time::Instant::now();
    stack.exchange(&code).await.assert_problem(503, "upstream_unavailable");
    assert!(started.elapsed() < Duration::from_secs(4), "our 2 s test timeout fired");
    assert_eq!(
        stack.google.hits().token_authorization_code,
        1,
        "a code is never sent twice"
    );
    assert!(stack.items().await.is_empty());
}

#[tokio::test]
async fn calendar_timeouts_and_5xx_are_retried_into_exactly_one_event() {
    let stack = Stack::start().await;
    let bearer = stack.connect_calendar("f4").await;
    stack.google.inject(Fault::new(
        Endpoint::CalendarInsert,
        FaultKind::Latency(Duration::from_secs(3)),
    ));
    stack.google.inject(Fault::status(Endpoint::CalendarInsert, 503));
    let reply = stack.create_event(&bearer, &event(), None).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(
        stack.google.events("f4", "primary").len(),
        1,
        "the slow first attempt and the retries made one event"
    );
    assert_eq!(stack.google.hits().calendar_insert, 3, "at most three attempts");
}

#[tokio::test]
async fn calendar_401_refreshes_once_and_retries() {
    let stack = Stack::start().await;
    let bearer = stack.connect_calendar("f5").await;
    assert_eq!(stack.create_event(&bearer, &event(), None).await.status, 201);
    stack.google.expire_access_tokens("f5");
    stack.google.reset_hits();
    assert_eq!(stack.create_event(&bearer, &event(), None).await.status, 201);
    let hits = stack.google.hits();
    assert_eq!((hits.calendar_insert, hits.token_refresh), (2, 1));
}

#[tokio::test]
async fn parallel_events_across_users_with_one_key_each_create_one_event_per_user() {
    let stack = Stack::start().await;
    let users: Vec<String> = (0..6).map(|i| format!("par{i}")).collect();
    let mut bearers = Vec::new();
    for user in &users {
        bearers.push(stack.connect_calendar(user).await);
    }
    let stack = &stack;
    let calls = bearers.iter().flat_map(|bearer| {
        (0..4).map(move |_| async move { stack.create_event(bearer, &event(), Some("same-key")).await })
    });
    let replies = futures::future::join_all(calls).await;
    for reply in &replies {
        assert!(matches!(reply.status, 200 | 201), "{}", reply.body);
    }
    for user in &users {
        assert_eq!(
            stack.google.events(user, "primary").len(),
            1,
            "{user}: one event for one key"
        );
    }
    let created = replies.iter().filter(|r| r.status == 201).count();
    assert_eq!(created, users.len(), "one 201 per user, the other requests are replays");
}

#[tokio::test]
async fn a_google_that_hangs_gets_503_before_the_invocation_deadline() {
    // Each call may take 8 s and is tried 3 times: without the invocation's deadline
    // this request would take more than 24 s, past a 15 s function timeout.
    let stack = Stack::start_with(Options::default().env("HTTP_TIMEOUT_MS", "8000")).await;
    let bearer = stack.connect_calendar("f-deadline").await;
    let hang = FaultKind::Latency(Duration::from_secs(60));
    stack
        .google
        .inject(Fault::new(Endpoint::CalendarInsert, hang).times(10));
    let mut context = lambda_http::Context::default();
    context.request_id = "req-deadline".into();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    context.deadline = now_ms + 4_000;
    let event = json!({"start": {"date": "2031-01-01"}, "end": {"date": "2031-01-02"}});
    let req = Req::post("/calendar/events")
        .bearer(&bearer)
        .json(&event)
        .build()
        .with_lambda_context(context);
    let started = std::time::Instant::now();
    let reply = stack.send(Function::Events, req).await;
    reply.assert_problem(503, "upstream_unavailable");
    assert!(reply.header("retry-after").is_some());
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(3_500),
        "answered before the deadline: {took:?}"
    );
    assert_eq!(reply.body["request_id"], "req-deadline");
}
