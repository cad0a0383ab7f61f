//! `POST /calendar/events`: act for the user while they are offline (docs/api.md).

use integration_tests::google_emulator::{Endpoint, Fault, FaultKind};
use integration_tests::{Function, Req, Stack};
use serde_json::{Value, json};

fn event() -> Value {
    json!({
        "summary": "Dentist",
        "location": "Main St 1",
        "start": {"dateTime": "2031-03-01T10:00:00+01:00"},
        "end": {"dateTime": "2031-03-01T11:00:00+01:00"},
        "attendees": [{"email": "friend@example.com"}]
    })
}

#[tokio::test]
async fn full_flow_creates_the_event_at_google() {
    let stack = Stack::start().await;
    let bearer = stack.connect_calendar("ev1").await;
    let req = Req::post("/calendar/events?sendUpdates=all")
        .bearer(&bearer)
        .json(&event());
    let reply = stack.send(Function::Events, req.build()).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let stored = stack.google.stored_events("ev1", "primary");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].event["summary"], "Dentist");
    assert_eq!(stored[0].event["location"], "Main St 1");
    assert_eq!(stored[0].send_updates.as_deref(), Some("all"));
    assert_eq!(reply.body, stored[0].event, "the 201 body is Google's event unchanged");
    assert!(reply.body["htmlLink"].is_string() && reply.body["id"].is_string());
}

#[tokio::test]
async fn warm_second_event_makes_one_calendar_call_and_no_token_call() {
    let stack = Stack::start().await;
    let bearer = stack.connect_calendar("ev2").await;
    assert_eq!(stack.create_event(&bearer, &event(), None).await.status, 201);
    stack.google.reset_hits();
    assert_eq!(stack.create_event(&bearer, &event(), None).await.status, 201);
    let hits = stack.google.hits();
    assert_eq!(
        (hits.calendar_insert, hits.token_refresh, hits.token_authorization_code),
        (1, 0, 0)
    );
}

#[tokio::test]
async fn same_idempotency_key_creates_one_event() {
    let stack = Stack::start().await;
    let bearer = stack.connect_calendar("ev3").await;
    let first = stack.create_event(&bearer, &event(), Some("order-1")).await;
    assert_eq!(first.status, 201);
    let second = stack.create_event(&bearer, &event(), Some("order-1")).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.body["id"], second.body["id"]);
    assert_eq!(stack.google.events("ev3", "primary").len(), 1);
    // Another key is another event.
    assert_eq!(stack.create_event(&bearer, &event(), Some("order-2")).await.status, 201);
    assert_eq!(stack.google.events("ev3", "primary").len(), 2);
}

#[tokio::test]
async fn dropped_answer_after_the_insert_still_yields_one_event() {
    let stack = Stack::start().await;
    let bearer = stack.connect_calendar("ev4").await;
    // Within one request: the retry meets Google's 409 and returns the event.
    stack
        .google
        .inject(Fault::new(Endpoint::CalendarInsert, FaultKind::DropAfterWork));
    let reply = stack.create_event(&bearer, &event(), Some("k-1")).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(stack.google.events("ev4", "primary").len(), 1);
    // Across requests: every attempt of the first call is lost; the client retries.
    stack
        .google
        .inject(Fault::new(Endpoint::CalendarInsert, FaultKind::DropAfterWork).times(3));
    let lost = stack.create_event(&bearer, &event(), Some("k-2")).await;
    lost.assert_problem(503, "upstream_unavailable");
    let retry = stack.create_event(&bearer, &event(), Some("k-2")).await;
    assert_eq!((retry.status, retry.header("idempotent-replayed")), (200, Some("true")));
    assert_eq!(stack.google.events("ev4", "primary").len(), 2);
}

#[tokio::test]
async fn invalid_bodies_are_refused_before_google() {
    let stack = Stack::start().await;
    let bearer = stack.connect_calendar("ev5").await;
    stack.google.reset_hits();
    let t = |s: &str| json!({"dateTime": s});
    let cases = [
        (json!([1, 2]), None),
        (json!({"end": t("2031-01-01T10:00:00Z")}), Some("start")),
        (json!({"start": t("2031-01-01T10:00:00Z")}), Some("end")),
        (
            json!({"start": {"date": "2031-02-30"}, "end": {"date": "2031-03-01"}}),
            Some("start"),
        ),
        (
            json!({"start": t("tomorrow"), "end": t("2031-01-01T11:00:00Z")}),
            Some("start"),
        ),
        (
            json!({"start": {"date": "2031-01-01"}, "end": t("2031-01-02T10:00:00Z")}),
            Some("end"),
        ),
        (
            json!({"start": t("2031-01-01T10:00:00Z"), "end": t("2031-01-01T10:00:00Z")}),
            Some("end"),
        ),
        (
            json!({"start": {"date": "2031-01-01", "dateTime": "2031-01-01T10:00:00Z"}, "end": {"date": "2031-01-02"}}),
            Some("start"),
        ),
        (
            json!({"start": t("2031-01-01 10:00:00Z"), "end": t("2031-01-01T11:00:00Z")}),
            Some("start"),
        ),
    ];
    for (body, field) in cases {
        let reply = stack.create_event(&bearer, &body, None).await;
        reply.assert_problem(422, "invalid_event");
        let errors = reply.body["errors"].as_array().unwrap();
        assert!(
            errors
                .iter()
                .all(|e| e["message"].as_str().is_some_and(|m| !m.is_empty()))
        );
        if let Some(field) = field {
            assert!(errors.iter().any(|e| e["field"] == field), "{body}: {errors:?}");
        }
    }
    let big = json!({"start": t("2031-01-01T10:00:00Z"), "end": t("2031-01-01T11:00:00Z"), "description": "x".repeat(70_000)});
    stack
        .create_event(&bearer, &big, None)
        .await
        .assert_problem(413, "payload_too_large");
    let wrong_type = Req::post("/calendar/events")
        .bearer(&bearer)
        .header("content-type", "text/plain")
        .text("{}");
    stack
        .send(Function::Events, wrong_type.build())
        .await
        .assert_problem(415, "unsupported_media_type");
    for bad_id in [json!(123), json!("UPPER-CASE"), json!("abc")] {
        let mut body = event();
        body["id"] = bad_id;
        let reply = stack.create_event(&bearer, &body, None).await;
        reply.assert_problem(422, "invalid_event");
        assert_eq!(reply.body["errors"][0]["field"], "id");
    }
    let bad_key = stack.create_event(&bearer, &event(), Some("has space")).await;
    bad_key.assert_problem(400, "invalid_request");
    for not_json in ["{", "not json", "{\"start\": }"] {
        let req = Req::post("/calendar/events")
            .bearer(&bearer)
            .header("content-type", "application/json")
            .text(not_json);
        stack
            .send(Function::Events, req.build())
            .await
            .assert_problem(400, "invalid_request");
    }
    for calendar in ["%2E", "..", "%2E%2E", "a%0Ab", "tab%09", &"c".repeat(1025)] {
        let req = Req::post(&format!("/calendar/events?calendarId={calendar}"))
            .bearer(&bearer)
            .json(&event());
        let reply = stack.send(Function::Events, req.build()).await;
        reply.assert_problem(400, "invalid_request");
        assert!(
            reply.body["detail"].as_str().unwrap().contains("calendarId"),
            "{calendar}"
        );
    }
    let bad_updates = Req::post("/calendar/events?sendUpdates=sometimes")
        .bearer(&bearer)
        .json(&event());
    stack
        .send(Function::Events, bad_updates.build())
        .await
        .assert_problem(400, "invalid_request");
    let hits = stack.google.hits();
    assert_eq!((hits.calendar_insert, hits.token_refresh), (0, 0));
}

#[tokio::test]
async fn without_calendar_scope_or_grant_the_answer_is_scope_required() {
    let stack = Stack::start().await;
    let bearer = stack.sign_in("ev6").await;
    let reply = stack.create_event(&bearer, &event(), None).await;
    reply.assert_problem(403, "scope_required");
    assert_eq!(
        reply.body["required_scopes"],
        json!(["https://www.googleapis.com/auth/calendar.events"])
    );
    let stranger = stack.google.id_token("nobody");
    stack
        .create_event(&stranger, &event(), None)
        .await
        .assert_problem(403, "scope_required");
    assert_eq!(stack.google.hits().token_refresh, 0);
}

#[tokio::test]
async fn revoked_grant_needs_reauthorization_until_the_user_signs_in_again() {
    let stack = Stack::start().await;
    let bearer = stack.connect_calendar("ev7").await;
    stack.google.revoke_user("ev7");
    stack
        .create_event(&bearer, &event(), None)
        .await
        .assert_problem(401, "reauthorization_required");
    let me = stack.me(&bearer).await;
    assert_eq!(
        (me.body["status"].as_str(), me.body["offline_access"].as_bool()),
        (Some("reauthorization_required"), Some(false))
    );
    assert!(
        !stack.grant_item("ev7").await.unwrap().contains_key("refresh_token_ct"),
        "dead token dropped"
    );

    stack.assert_events_refused_without_google(&bearer).await;

    let bearer = stack.connect_calendar("ev7").await;
    assert_eq!(stack.me(&bearer).await.body["status"], "active");
    assert_eq!(stack.create_event(&bearer, &event(), None).await.status, 201);
}

#[tokio::test]
async fn google_failures_map_to_the_spec_answers() {
    let stack = Stack::start().await;
    let bearer = stack.connect_calendar("ev8").await;
    let g = &stack.google;

    g.inject(Fault::new(
        Endpoint::CalendarInsert,
        FaultKind::Status {
            status: 429,
            body: None,
            retry_after: Some(7),
        },
    ));
    let reply = stack.create_event(&bearer, &event(), None).await;
    reply.assert_problem(429, "rate_limited");
    assert_eq!(reply.header("retry-after"), Some("7"));

    // A user's first refresh, from a cold container (no token of theirs in the
    // fleet's table yet): the token endpoint fails once, then works.
    let cold = stack.another_container(&Default::default());
    let first = stack.connect_calendar("ev8-first").await;
    g.inject(Fault::status(Endpoint::Token, 503));
    let req = Req::post("/calendar/events").bearer(&first).json(&event());
    assert_eq!(
        integration_tests::send_to(&cold, Function::Events, req.build())
            .await
            .status,
        201
    );

    let cold = stack.another_container(&Default::default());
    let never = stack.connect_calendar("ev8-never").await;
    g.inject(Fault::status(Endpoint::Token, 503).times(3));
    let req = Req::post("/calendar/events").bearer(&never).json(&event());
    let reply = integration_tests::send_to(&cold, Function::Events, req.build()).await;
    reply.assert_problem(503, "upstream_unavailable");
    assert!(reply.header("retry-after").unwrap().parse::<u32>().unwrap() >= 1);

    g.inject(Fault::status(Endpoint::CalendarInsert, 500).times(3));
    stack
        .create_event(&bearer, &event(), None)
        .await
        .assert_problem(503, "upstream_unavailable");
    assert_eq!(g.events("ev8", "primary").len(), 0, "failed inserts created nothing");
    assert_eq!(g.events("ev8-first", "primary").len(), 1);
}

#[tokio::test]
async fn calendar_id_is_encoded_into_the_path_and_insufficient_permission_is_scope_required() {
    let stack = Stack::start().await;
    let bearer = stack.connect_calendar("ev9").await;
    let req = Req::post("/calendar/events?calendarId=team%40example.com%2Fx")
        .bearer(&bearer)
        .json(&event());
    assert_eq!(stack.send(Function::Events, req.build()).await.status, 201);
    assert_eq!(stack.google.events("ev9", "team@example.com/x").len(), 1);

    let before = stack.snapshot().await;
    stack.google.inject(Fault::new(Endpoint::CalendarInsert, FaultKind::Status {
        status: 403,
        body: Some(json!({"error": {"code": 403, "message": "Request had insufficient authentication scopes.", "errors": [{"reason": "insufficientPermissions"}]}})),
        retry_after: None,
    }));
    stack
        .create_event(&bearer, &event(), None)
        .await
        .assert_problem(403, "scope_required");
    assert_eq!(stack.snapshot().await, before, "grant not edited");
}
