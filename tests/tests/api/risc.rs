//! `POST /risc`: Cross-Account Protection receiver (docs/api.md).

use integration_tests::google_emulator::Signer;
use integration_tests::{Function, Reply, Req, Stack};
use serde_json::json;
use shared::ports::{GrantStore as _, TokenSealer as _};

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
        (
            "iat 8 days old",
            with("iat", json!(shared::google::id_token::unix_now() - 8 * 24 * 3600)),
            "invalid_request",
        ),
        (
            "iat 10 min in the future",
            with("iat", json!(shared::google::id_token::unix_now() + 600)),
            "invalid_request",
        ),
        ("iat missing", with("iat", serde_json::Value::Null), "invalid_request"),
        ("garbage", "not a token".to_owned(), "invalid_request"),
        ("empty", String::new(), "invalid_request"),
    ];
    for (name, token, err) in cases {
        let reply = deliver(&stack, &token).await;
        assert_eq!((reply.status, reply.body["err"].as_str()), (400, Some(err)), "{name}");
    }
    assert_eq!(stack.snapshot().await, before);
}

/// A signed token with `event` (full URI) about `subject`.
fn set_about(stack: &Stack, uri: &str, subject: serde_json::Value) -> String {
    let g = &stack.google;
    let mut claims = g.risc_claims("sessions-revoked", "unused");
    claims["events"] = json!({ uri: { "subject": subject } });
    let header = json!({"alg": "RS256", "kid": g.risc_kid(), "typ": "JWT"});
    g.sign_jwt(header, claims, Signer::Risc)
}

#[tokio::test]
async fn look_alike_types_and_other_issuers_change_nothing() {
    let stack = Stack::start().await;
    stack.connect_calendar("r3").await;
    let before = stack.snapshot().await;
    let google_subject = json!({"subject_type": "iss-sub", "iss": "https://accounts.google.com/", "sub": "r3"});
    for token in [
        set_about(
            &stack,
            "https://evil.example/secevent/risc/event-type/account-purged",
            google_subject.clone(),
        ),
        set_about(
            &stack,
            "https://schemas.openid.net/secevent/oauth/event-type/account-purged",
            google_subject,
        ),
        set_about(
            &stack,
            "https://schemas.openid.net/secevent/risc/event-type/account-purged",
            json!({"subject_type": "iss-sub", "iss": "https://evil.example/", "sub": "r3"}),
        ),
    ] {
        assert_eq!(deliver(&stack, &token).await.status, 202);
    }
    assert_eq!(
        stack.snapshot().await.matches("grant#").count(),
        before.matches("grant#").count()
    );
    assert!(stack.grant_item("r3").await.is_some(), "not purged");
}

#[tokio::test]
async fn token_revoked_by_prefix_finds_the_grant_of_that_token_only() {
    let stack = Stack::start().await;
    let bearer = stack.connect_calendar("r4").await;
    let other = stack.connect_calendar("r5").await;
    let grant = stack.grants.load(&integration_tests::sub("r4")).await.unwrap().unwrap();
    let token = stack
        .sealer
        .open(
            &integration_tests::sub("r4"),
            shared::grant::TokenPurpose::RefreshToken,
            &grant.refresh_token.unwrap().ciphertext,
        )
        .await
        .unwrap();
    let prefix: String = token.expose().chars().take(16).collect();
    let uri = "https://schemas.openid.net/secevent/oauth/event-type/token-revoked";
    let subject = json!({"subject_type": "oauth_token", "token_type": "refresh_token",
        "token_identifier_alg": "prefix", "token": prefix});
    assert_eq!(deliver(&stack, &set_about(&stack, uri, subject)).await.status, 202);
    assert_eq!(stack.me(&bearer).await.body["status"], "reauthorization_required");
    assert_eq!(stack.me(&other).await.body["status"], "active");
    let unknown = json!({"subject_type": "oauth_token", "token_type": "refresh_token",
        "token_identifier_alg": "hash_base64_sha512_sha512", "token": "bm8gc3VjaCB0b2tlbg=="});
    let before = stack.snapshot().await;
    assert_eq!(deliver(&stack, &set_about(&stack, uri, unknown)).await.status, 202);
    let after = stack.snapshot().await;
    assert_eq!(after.matches("grant#").count(), before.matches("grant#").count());
    assert_eq!(stack.me(&other).await.body["status"], "active");
}
