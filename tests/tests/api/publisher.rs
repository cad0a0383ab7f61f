//! `publisher`: lifecycle events from the table's real stream records (read from
//! moto, turned into the Lambda event shape) to the bus (docs/api.md, "Events on
//! the bus").

use integration_tests::google_emulator::Signer;
use integration_tests::offline::{Invoke as _, retried};
use integration_tests::{CALENDAR_EVENTS, Function, Req, Stack, logs};
use serde_json::{Value, json};
use shared::ports::{GrantStore as _, TokenSealer as _};

/// The records not seen yet, as one stream event.
async fn new_records(stack: &Stack, seen: &mut usize) -> Value {
    let records = stack.stream_records().await;
    let fresh = records[*seen..].to_vec();
    *seen = records.len();
    json!({ "Records": fresh })
}

async fn deliver(stack: &Stack, token: &str) {
    let req = Req::post("/risc")
        .header("content-type", "application/secevent+jwt")
        .text(token);
    assert_eq!(stack.send(Function::Risc, req.build()).await.status, 202);
}

#[tokio::test]
async fn each_transition_yields_exactly_its_documented_event() {
    let stack = Stack::start().await;
    let bus = stack.bus().await;
    let publisher = stack.publisher(Some(&bus));
    let mut seen = 0;
    let mut step = async |what: &str| -> Vec<(String, Value)> {
        let records = new_records(&stack, &mut seen).await;
        let answer = publisher.invoke(records).await;
        assert!(retried(&answer).is_empty(), "{what}: {answer}");
        bus.events().await
    };

    let bearer = stack.sign_in("p1").await;
    let events = step("sign-in").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "GrantConnected");
    assert_eq!(events[0].1["sub"], "p1");
    assert_eq!(events[0].1["email"], "p1@example.com");
    assert!(events[0].1["scopes"].as_array().unwrap().contains(&json!("openid")));

    let code = stack
        .google
        .mint_code(stack.code("p1").scopes(["openid", CALENDAR_EVENTS]));
    assert_eq!(stack.upgrade(&bearer, &code, &[CALENDAR_EVENTS]).await.status, 200);
    let events = step("upgrade").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "GrantScopesChanged");
    assert_eq!(events[0].1["added"], json!([CALENDAR_EVENTS]));
    assert_eq!(events[0].1["removed"], json!([]));

    assert!(stack.google.revoke_user("p1"));
    let event = json!({"start": {"date": "2031-01-01"}, "end": {"date": "2031-01-02"}});
    stack
        .create_event(&bearer, &event, None)
        .await
        .assert_problem(401, "reauthorization_required");
    let events = step("invalid_grant").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "GrantReauthorizationRequired");
    assert_eq!(events[0].1["reason"], "invalid_grant");

    let bearer = stack.connect_calendar("p1").await;
    let events = step("reconnect").await;
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["GrantConnected", "GrantScopesChanged"], "{events:?}");

    let (set, _) = stack.google.risc_set("tokens-revoked", "p1");
    deliver(&stack, &set).await;
    let events = step("RISC revocation").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "GrantReauthorizationRequired");
    assert_eq!(events[0].1["reason"], "risc:tokens-revoked");

    stack.connect_calendar("p1").await;
    step("reconnect").await;
    let disconnect = Req::new("DELETE", "/me/google").bearer(&bearer).build();
    assert_eq!(stack.send(Function::Account, disconnect).await.status, 204);
    let events = step("disconnect").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0].0.as_str(), &events[0].1["reason"]),
        ("GrantDisconnected", &json!("user"))
    );

    stack.connect_calendar("p2").await;
    step("p2").await;
    let (set, _) = stack.google.risc_set("account-purged", "p2");
    deliver(&stack, &set).await;
    let events = step("RISC purge").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "GrantDisconnected");
    assert_eq!(events[0].1["reason"], "risc:account-purged");

    let everything = format!("{:?}", stack.stream_records().await);
    assert!(everything.contains("risc-jti#"), "the jti records are in the stream");
    let logs = logs::captured();
    for secret in stack.google.issued_secrets() {
        assert!(!logs.contains(&secret));
    }
}

#[tokio::test]
async fn redelivered_records_yield_the_same_event_ids_and_jti_items_none() {
    let stack = Stack::start().await;
    let bus = stack.bus().await;
    let publisher = stack.publisher(Some(&bus));
    stack.connect_calendar("p3").await;
    let (set, _) = stack.google.risc_set("sessions-revoked", "p3");
    deliver(&stack, &set).await;
    let records = json!({ "Records": stack.stream_records().await });
    publisher.invoke(records.clone()).await;
    let first: Vec<Value> = bus
        .events()
        .await
        .into_iter()
        .map(|(_, d)| d["event_id"].clone())
        .collect();
    publisher.invoke(records).await;
    let again: Vec<Value> = bus
        .events()
        .await
        .into_iter()
        .map(|(_, d)| d["event_id"].clone())
        .collect();
    assert_eq!(first.len(), 3, "connected, scopes changed, reauthorization required");
    assert_eq!(first, again);

    let jti_only: Vec<Value> = stack
        .stream_records()
        .await
        .into_iter()
        .filter(|r| {
            r["dynamodb"]["Keys"]["pk"]["S"]
                .as_str()
                .is_some_and(|pk| pk.starts_with("risc-jti#"))
        })
        .collect();
    assert!(!jti_only.is_empty());
    let answer = publisher.invoke(json!({ "Records": jti_only })).await;
    assert!(retried(&answer).is_empty());
    assert!(bus.events().await.is_empty());
}

#[tokio::test]
async fn a_bus_that_is_down_fails_the_records_and_the_retry_loses_nothing() {
    let stack = Stack::start().await;
    stack.connect_calendar("p4").await;
    let records = json!({ "Records": stack.stream_records().await });
    let first_sequence = records["Records"][0]["dynamodb"]["SequenceNumber"].clone();
    let down = stack.publisher_with_bus_down().await;
    let answer = down.invoke(records.clone()).await;
    assert_eq!(answer["batchItemFailures"], json!([{"itemIdentifier": first_sequence}]));

    let bus = stack.bus().await;
    let answer = stack.publisher(Some(&bus)).invoke(records).await;
    assert!(retried(&answer).is_empty());
    let kinds: Vec<String> = bus.events().await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["GrantConnected", "GrantScopesChanged"]);
}

#[tokio::test]
async fn token_revoked_by_hash_reaches_the_grant_and_the_bus() {
    let stack = Stack::start().await;
    stack.connect_calendar("p5").await;
    let bus = stack.bus().await;
    let publisher = stack.publisher(Some(&bus));
    let mut seen = stack.stream_records().await.len();
    let g = &stack.google;
    let grant = stack.grants.load(&integration_tests::sub("p5")).await.unwrap().unwrap();
    let sealed = grant.refresh_token.expect("a stored refresh token");
    let refresh = stack
        .sealer
        .open(
            &integration_tests::sub("p5"),
            shared::grant::TokenPurpose::RefreshToken,
            &sealed.ciphertext,
        )
        .await
        .unwrap();
    let mut claims = g.risc_claims("token-revoked", "p5");
    let uri = claims["events"].as_object().unwrap().keys().next().unwrap().clone();
    claims["events"][&uri] = json!({"subject": {
        "subject_type": "oauth_token", "token_type": "refresh_token",
        "token_identifier_alg": "hash_base64_sha512_sha512",
        "token": shared::grant::TokenIds::of(&refresh).hash,
    }});
    let header = json!({"alg": "RS256", "kid": g.risc_kid(), "typ": "JWT"});
    deliver(&stack, &g.sign_jwt(header, claims, Signer::Risc)).await;
    let answer = publisher.invoke(new_records(&stack, &mut seen).await).await;
    assert!(retried(&answer).is_empty());
    let events = bus.events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].1["reason"], "risc:token-revoked");
}
