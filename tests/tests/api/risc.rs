//! `POST /risc`: Cross-Account Protection receiver (SPEC §2, §8).

use integration_tests::google_emulator::Signer;
use integration_tests::{Function, Reply, Req, Stack};
use serde_json::json;

async fn deliver(stack: &Stack, token: &str) -> Reply {
    let req = Req::post("/risc")
        .header("content-type", "application/secevent+jwt")
        .text(token);
    stack.send(Function::Risc, req.build()).await
}

#[tokio::test]
async fn tokens_revoked_stops_offline_use_and_replays_have_no_effect() {
    let stack = Stack::start().await;
    let bearer = stack.connect_calendar("r1").await;
    let (set, _jti) = stack.google.risc_set("tokens-revoked", "r1");
    assert_eq!(deliver(&stack, &set).await.status, 202);
    assert_eq!(stack.me(&bearer).await.body["status"], "reauthorization_required");
    stack.assert_events_refused_without_google(&bearer).await;

    // The user connects again; replaying the same jti must not disconnect them.
    let bearer = stack.connect_calendar("r1").await;
    assert_eq!(deliver(&stack, &set).await.status, 202);
    assert_eq!(stack.me(&bearer).await.body["status"], "active");
}

#[tokio::test]
async fn each_event_type_has_its_documented_effect() {
    let stack = Stack::start().await;
    for (kind, expected) in [
        ("account-disabled", "reauthorization_required"),
        ("sessions-revoked", "reauthorization_required"),
        ("token-revoked", "reauthorization_required"),
        ("account-purged", "not_connected"),
        ("account-credential-change-required", "active"),
        ("account-enabled", "active"),
    ] {
        let sub = format!("r-{kind}");
        let bearer = stack.connect_calendar(&sub).await;
        let (set, _) = stack.google.risc_set(kind, &sub);
        assert_eq!(deliver(&stack, &set).await.status, 202, "{kind}");
        assert_eq!(stack.me(&bearer).await.body["status"], expected, "{kind}");
    }
    let (verification, _) = stack.google.risc_set("verification", "state-123");
    assert_eq!(deliver(&stack, &verification).await.status, 202);
    let (unknown_user, _) = stack.google.risc_set("tokens-revoked", "never-seen");
    assert_eq!(deliver(&stack, &unknown_user).await.status, 202);
}

#[tokio::test]
async fn bad_tokens_are_refused_with_rfc8935_errors() {
    let stack = Stack::start().await;
    stack.sign_in("r2").await;
    let before = stack.snapshot().await;
    let g = &stack.google;
    let claims = g.risc_claims("tokens-revoked", "r2");
    let header = json!({"alg": "RS256", "kid": g.risc_kid(), "typ": "JWT"});
    let with = |k: &str, v: serde_json::Value| {
        let mut c = claims.clone();
        c[k] = v;
        g.sign_jwt(header.clone(), c, Signer::Risc)
    };
    let cases = [
        (
            "bad signature",
            g.sign_jwt(header.clone(), claims.clone(), Signer::Foreign),
            "authentication_failed",
        ),
        ("wrong aud", with("aud", json!("other-client")), "authentication_failed"),
        (
            "wrong iss",
            with("iss", json!("https://accounts.google.com")),
            "authentication_failed",
        ),
        (
            "alg none",
            g.sign_jwt(json!({"alg": "none"}), claims.clone(), Signer::NoneAlg),
            "authentication_failed",
        ),
        ("garbage", "not a token".to_owned(), "invalid_request"),
        ("empty", String::new(), "invalid_request"),
    ];
    for (name, token, err) in cases {
        let reply = deliver(&stack, &token).await;
        assert_eq!((reply.status, reply.body["err"].as_str()), (400, Some(err)), "{name}");
    }
    assert_eq!(stack.snapshot().await, before);
}
