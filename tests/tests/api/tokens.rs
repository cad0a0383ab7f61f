//! `tokens`: access tokens for any Google API, by direct invocation (docs/api.md,
//! "Acting for users from your backend"): the payload of every outcome.

use integration_tests::google_emulator::{Endpoint, Fault, FaultKind};
use integration_tests::offline::Invoke as _;
use integration_tests::{CALENDAR_EVENTS, Stack, logs};
use serde_json::{Value, json};

fn error(answer: &Value) -> (u64, &str) {
    let error = &answer["error"];
    assert!(error["detail"].as_str().is_some_and(|d| !d.is_empty()), "{answer}");
    (error["status"].as_u64().unwrap(), error["code"].as_str().unwrap())
}

#[tokio::test]
async fn a_vended_token_has_five_minutes_left_and_works_at_google() {
    let stack = Stack::start().await;
    stack.connect_calendar("t1").await;
    let tokens = stack.tokens();
    let answer = tokens.invoke(json!({"sub": "t1", "scopes": [CALENDAR_EVENTS]})).await;
    assert_eq!(answer["token_type"], "Bearer", "{answer}");
    let now = shared::google::id_token::unix_now();
    assert!(answer["expires_at"].as_i64().unwrap() >= now + 300);
    assert!(answer["scopes"].as_array().unwrap().contains(&json!(CALENDAR_EVENTS)));
    let token = answer["access_token"].as_str().unwrap();
    let created = reqwest::Client::new()
        .post(format!("{}/calendars/primary/events", stack.google.calendar_api_url()))
        .bearer_auth(token)
        .json(&json!({"start": {"date": "2031-01-01"}, "end": {"date": "2031-01-02"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.status(),
        200,
        "the emulator's Calendar accepts the vended token"
    );
    assert!(!logs::captured().contains(token), "the token is never logged");
}

#[tokio::test]
async fn a_warm_container_vends_the_cached_token_without_google() {
    let stack = Stack::start().await;
    stack.connect_calendar("t2").await;
    let tokens = stack.tokens();
    let first = tokens.invoke(json!({"sub": "t2"})).await;
    stack.google.reset_hits();
    let second = tokens.invoke(json!({"sub": "t2"})).await;
    assert_eq!(first["access_token"], second["access_token"]);
    assert_eq!(stack.google.hits().token_refresh, 0);
}

#[tokio::test]
async fn every_refusal_is_a_payload_with_its_status_and_code() {
    let stack = Stack::start().await;
    stack.connect_calendar("t3").await;
    stack.sign_in("t3-online").await;
    let online = stack.google.mint_code(stack.code("t3-offline-less").offline(false));
    assert_eq!(stack.exchange(&online).await.status, 200);
    let tokens = stack.tokens();
    for (request, status, code) in [
        (json!([]), 400, "invalid_request"),
        (json!({}), 400, "invalid_request"),
        (json!({"sub": ""}), 400, "invalid_request"),
        (json!({"sub": "t3", "scopes": "calendar"}), 400, "invalid_request"),
        (json!({"sub": "t3", "scopes": [1]}), 400, "invalid_request"),
        (json!({"sub": "nobody"}), 404, "not_connected"),
        (json!({"sub": "t3-offline-less"}), 409, "offline_access_required"),
    ] {
        let answer = tokens.invoke(request.clone()).await;
        assert_eq!(error(&answer), (status, code), "{request}");
    }
    let drive = "https://www.googleapis.com/auth/drive.readonly";
    let answer = tokens
        .invoke(json!({"sub": "t3", "scopes": [CALENDAR_EVENTS, drive]}))
        .await;
    assert_eq!(error(&answer), (403, "scope_required"));
    assert_eq!(answer["error"]["missing_scopes"], json!([drive]));
}

#[tokio::test]
async fn google_failures_carry_retry_after() {
    let stack = Stack::start().await;
    stack.connect_calendar("t4").await;
    let tokens = stack.tokens();
    stack.google.inject(Fault::new(
        Endpoint::Token,
        FaultKind::Status {
            status: 429,
            body: None,
            retry_after: Some(8),
        },
    ));
    let answer = tokens.invoke(json!({"sub": "t4"})).await;
    assert_eq!(error(&answer), (429, "rate_limited"));
    assert_eq!(answer["error"]["retry_after"], 8);
    stack.google.inject(Fault::status(Endpoint::Token, 503).times(3));
    let answer = tokens.invoke(json!({"sub": "t4"})).await;
    assert_eq!(error(&answer), (503, "upstream_unavailable"));
    assert!(answer["error"]["retry_after"].as_u64().unwrap() >= 1);
    assert!(tokens.invoke(json!({"sub": "t4"})).await["access_token"].is_string());
}

#[tokio::test]
async fn invalid_grant_marks_the_grant_as_on_the_http_route() {
    let stack = Stack::start().await;
    let bearer = stack.connect_calendar("t5").await;
    assert!(stack.google.revoke_user("t5"));
    let tokens = stack.tokens();
    assert_eq!(
        error(&tokens.invoke(json!({"sub": "t5"})).await),
        (401, "reauthorization_required")
    );
    assert_eq!(stack.me(&bearer).await.body["status"], "reauthorization_required");
    stack.google.reset_hits();
    assert_eq!(
        error(&tokens.invoke(json!({"sub": "t5"})).await),
        (401, "reauthorization_required")
    );
    assert_eq!(stack.google.hits().token_refresh, 0, "no Google call for a dead grant");
}
