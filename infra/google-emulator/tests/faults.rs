//! Each fault kind as a real HTTP client observes it, and the hit counters.

mod common;

use std::time::{Duration, Instant};

use common::*;
use google_emulator::{CodeRequest, Endpoint, Fault, FaultKind, Hits, SCOPE_CALENDAR};
use serde_json::json;

#[tokio::test]
async fn status_fault_answers_with_googles_error_and_retry_after() {
    let emu = start().await;
    emu.inject(Fault::new(
        Endpoint::Token,
        FaultKind::Status {
            status: 503,
            body: None,
            retry_after: Some(7),
        },
    ));
    let code = emu.mint_code(CodeRequest::new("u1"));
    let response = exchange(&emu, &code).await;
    assert_eq!(response.headers()["retry-after"], "7");
    let (status, body) = json_of(response).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("internal_failure")));
    assert_eq!(
        exchange(&emu, &code).await.status(),
        200,
        "the fault did nothing; the code is intact"
    );
}

#[tokio::test]
async fn calendar_429_has_rate_limit_body_and_custom_bodies_pass_through() {
    let emu = start().await;
    emu.inject(Fault::status(Endpoint::CalendarInsert, 429));
    let body = json!({"error": {"code": 403, "errors": [{"reason": "rateLimitExceeded"}]}});
    let custom = FaultKind::Status {
        status: 403,
        body: Some(body.clone()),
        retry_after: None,
    };
    emu.inject(Fault::new(Endpoint::CalendarInsert, custom));
    emu.inject(Fault::new(
        Endpoint::Jwks,
        FaultKind::Status {
            status: 200,
            body: Some(json!("<html>not json</html>")),
            retry_after: None,
        },
    ));
    let url = format!("{}/calendars/primary/events", emu.calendar_api_url());
    let post = || client().post(&url).bearer_auth("ya29.x").json(&json!({})).send();
    let (status, first) = json_of(post().await.unwrap()).await;
    assert_eq!(status, 429);
    assert_eq!(first["error"]["errors"][0]["reason"], "rateLimitExceeded");
    assert_eq!(json_of(post().await.unwrap()).await, (403, body));
    assert_eq!(
        post().await.unwrap().status(),
        401,
        "queue drained: normal behaviour again"
    );
    let text = client().get(emu.jwks_url()).send().await.unwrap().text().await.unwrap();
    assert_eq!(text, "<html>not json</html>");
}

#[tokio::test]
async fn latency_fault_delays_then_behaves_normally() {
    let emu = start().await;
    emu.inject(Fault::new(
        Endpoint::Jwks,
        FaultKind::Latency(Duration::from_millis(300)),
    ));
    let started = Instant::now();
    let (status, jwks) = get_json(&emu.jwks_url()).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(status, 200);
    assert_eq!(jwks["keys"][0]["kid"], emu.current_kid());
    let started = Instant::now();
    get_json(&emu.jwks_url()).await;
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn drop_before_work_closes_the_connection_and_spends_nothing() {
    let emu = start().await;
    emu.inject(Fault::new(Endpoint::Token, FaultKind::DropBeforeWork));
    let code = emu.mint_code(CodeRequest::new("u1"));
    let error = try_exchange(&emu, &code).await.unwrap_err();
    assert!(connection_dropped(&error), "{error:?}");
    assert_eq!(emu.user_refresh_tokens_live("u1"), 0);
    assert_eq!(exchange(&emu, &code).await.status(), 200);
}

#[tokio::test]
async fn drop_after_work_spends_the_code_without_answering() {
    let emu = start().await;
    emu.inject(Fault::new(Endpoint::Token, FaultKind::DropAfterWork));
    let code = emu.mint_code(CodeRequest::new("u1"));
    assert!(try_exchange(&emu, &code).await.is_err());
    assert_eq!(emu.user_refresh_tokens_live("u1"), 1, "the work was done");
    assert_eq!(exchange(&emu, &code).await.status(), 400, "the code is spent");
}

#[tokio::test]
async fn drop_after_work_on_insert_stores_the_event() {
    let emu = start().await;
    let body = sign_in(&emu, CodeRequest::new("u1").scopes([SCOPE_CALENDAR])).await;
    emu.inject(Fault::new(Endpoint::CalendarInsert, FaultKind::DropAfterWork).times(2));
    let url = format!("{}/calendars/primary/events", emu.calendar_api_url());
    let token = body["access_token"].as_str().unwrap();
    let post = || {
        client()
            .post(&url)
            .bearer_auth(token)
            .json(&json!({"summary": "x"}))
            .send()
    };
    assert!(connection_dropped(&post().await.unwrap_err()));
    assert!(connection_dropped(&post().await.unwrap_err()));
    assert_eq!(post().await.unwrap().status(), 200);
    assert_eq!(emu.events("u1", "primary").len(), 3);
}

#[tokio::test]
async fn hit_counters_count_every_request_including_faulted_ones() {
    let emu = start().await;
    let body = sign_in(&emu, CodeRequest::new("u1")).await;
    emu.inject(Fault::status(Endpoint::Token, 500));
    refresh(&emu, body["refresh_token"].as_str().unwrap()).await;
    refresh(&emu, body["refresh_token"].as_str().unwrap()).await;
    get_json(&emu.jwks_url()).await;
    get_json(&emu.risc_jwks_url()).await;
    client()
        .post(emu.revoke_url())
        .form(&[("token", "nope")])
        .send()
        .await
        .unwrap();
    let calendar = emu.calendar_api_url();
    client()
        .post(format!("{calendar}/calendars/primary/events"))
        .send()
        .await
        .unwrap();
    client()
        .get(format!("{calendar}/calendars/primary/events/abcde"))
        .send()
        .await
        .unwrap();
    client()
        .post(emu.token_url())
        .form(&[("grant_type", "magic")])
        .send()
        .await
        .unwrap();
    let expected = Hits {
        token_authorization_code: 1,
        token_refresh: 2,
        token_other: 1,
        jwks: 1,
        revoke: 1,
        calendar_insert: 1,
        calendar_get: 1,
        risc_jwks: 1,
    };
    assert_eq!(emu.hits(), expected);
    emu.reset_hits();
    assert_eq!(emu.hits(), Hits::default());
}
