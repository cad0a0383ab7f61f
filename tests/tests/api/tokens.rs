//! `tokens`: access tokens for any Google API, by direct invocation (docs/api.md,
//! "Acting for users from your backend"): the payload of every outcome, and tokens
//! that carry exactly the scopes asked for.

use std::collections::BTreeMap;

use integration_tests::google_emulator::{Endpoint, Fault, FaultKind, SCOPE_EMAIL};
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

/// Whether Google's Calendar accepts an event insert with `token` (it checks the
/// scopes the token itself carries, not the user's grant).
async fn calendar_insert_status(stack: &Stack, token: &Value) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/calendars/primary/events", stack.google.calendar_api_url()))
        .bearer_auth(token.as_str().expect("an access token"))
        .json(&json!({"start": {"date": "2031-01-01"}, "end": {"date": "2031-01-02"}}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_vended_token_carries_exactly_the_requested_scopes_and_without_scopes_every_granted_one() {
    let stack = Stack::start().await;
    let bearer = stack.connect_calendar("t6").await;
    let granted = stack.me(&bearer).await.body["granted_scopes"].clone();
    assert_eq!(granted.as_array().unwrap().len(), 4, "{granted}");
    let tokens = stack.tokens();
    stack.google.reset_hits();

    let calendar_only = tokens.invoke(json!({"sub": "t6", "scopes": [CALENDAR_EVENTS]})).await;
    assert_eq!(calendar_only["scopes"], json!([CALENDAR_EVENTS]), "{calendar_only}");
    // `email` asks for `userinfo.email`; the answer names it as Google does.
    let email_only = tokens.invoke(json!({"sub": "t6", "scopes": ["email"]})).await;
    assert_eq!(email_only["scopes"], json!([SCOPE_EMAIL]), "{email_only}");
    let everything = tokens.invoke(json!({"sub": "t6"})).await;
    assert_eq!(everything["scopes"], granted, "{everything}");

    // Google was asked for exactly those subsets (no scope: the whole grant)...
    let asked = &stack.google.refresh_hits().by_user_and_scope["t6"];
    let expected = BTreeMap::from([CALENDAR_EVENTS, SCOPE_EMAIL, ""].map(|scope| (scope.to_owned(), 1)));
    assert_eq!(asked, &expected);
    // ...and each token carries its subset: Calendar looks at the token's own scopes.
    assert_eq!(
        calendar_insert_status(&stack, &calendar_only["access_token"]).await,
        200
    );
    assert_eq!(calendar_insert_status(&stack, &email_only["access_token"]).await, 403);
    assert_eq!(calendar_insert_status(&stack, &everything["access_token"]).await, 200);
}

#[tokio::test]
async fn the_reported_scopes_are_those_googles_answer_names() {
    let stack = Stack::start().await;
    stack.connect_calendar("t7").await;
    // Google's answer names more than was asked for: the caller is told what it got.
    stack.google.inject(Fault::new(
        Endpoint::Token,
        FaultKind::Status {
            status: 200,
            body: Some(json!({
                "access_token": "ya29.wider-than-asked", "token_type": "Bearer", "expires_in": 3599,
                "scope": format!("{CALENDAR_EVENTS} openid"),
            })),
            retry_after: None,
        },
    ));
    let answer = stack
        .tokens()
        .invoke(json!({"sub": "t7", "scopes": [CALENDAR_EVENTS]}))
        .await;
    assert_eq!(answer["scopes"], json!([CALENDAR_EVENTS, "openid"]), "{answer}");
}

#[tokio::test]
async fn google_refusing_a_narrowed_refresh_is_scope_required_and_the_grant_lives_on() {
    let stack = Stack::start().await;
    let bearer = stack.connect_calendar("t8").await;
    stack.google.inject(Fault::new(
        Endpoint::Token,
        FaultKind::Status {
            status: 400,
            body: Some(json!({"error": "invalid_scope", "error_description": "Bad scope"})),
            retry_after: None,
        },
    ));
    let tokens = stack.tokens();
    let answer = tokens.invoke(json!({"sub": "t8", "scopes": [CALENDAR_EVENTS]})).await;
    assert_eq!(error(&answer), (403, "scope_required"));
    assert_eq!(stack.me(&bearer).await.body["status"], "active", "never marked dead");
    let answer = tokens.invoke(json!({"sub": "t8", "scopes": [CALENDAR_EVENTS]})).await;
    assert_eq!(answer["scopes"], json!([CALENDAR_EVENTS]), "{answer}");
}
