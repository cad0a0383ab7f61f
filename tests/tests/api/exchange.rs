//! `POST /auth/exchange` (docs/api.md) and the token vault behind it.

use futures::future::join_all;
use integration_tests::google_emulator::{CodeRequest, Endpoint, Fault, FaultKind};
use integration_tests::{Function, Options, Req, Stack};
use serde_json::json;
use shared::grant::Ciphertext;
use shared::ports::{GrantStore as _, TokenSealer as _};

#[tokio::test]
async fn happy_path_returns_the_spec_body_and_stores_only_ciphertext() {
    let stack = Stack::start().await;
    let code = stack
        .google
        .mint_code(CodeRequest::new("u1").offline(true).consent(true));
    let reply = stack.exchange(&code).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = &reply.body;
    assert_eq!(body["user"]["sub"], "u1");
    assert_eq!(body["user"]["email"], "u1@example.com");
    assert_eq!(body["user"]["email_verified"], true);
    assert!(body["user"]["name"].is_string() && body["user"]["picture"].is_string());
    assert!(body["user"].as_object().unwrap().contains_key("hd") && body["user"]["hd"].is_null());
    assert_eq!(body["offline_access"], true);
    let scopes: Vec<&str> = body["granted_scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(scopes.contains(&"openid") && scopes.contains(&"https://www.googleapis.com/auth/userinfo.email"));
    let id_token = body["id_token"].as_str().unwrap();
    let claims = decode_claims(id_token);
    assert_eq!(body["id_token_expires_at"], claims["exp"]);

    let item = stack.grant_item("u1").await.expect("grant stored");
    let ciphertext = item["refresh_token_ct"]
        .as_b()
        .expect("binary ciphertext")
        .as_ref()
        .to_vec();
    let rendered = format!("{item:?}");
    for secret in stack.google.issued_secrets() {
        assert!(!rendered.contains(&secret), "plaintext secret in the item");
        assert!(!ciphertext.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
    assert_eq!(item["status"].as_s().unwrap(), "active");
}

#[tokio::test]
async fn later_sign_in_without_refresh_token_keeps_the_stored_one() {
    let stack = Stack::start().await;
    stack.sign_in("u2").await;
    let before = stack.grant_item("u2").await.unwrap()["refresh_token_ct"].clone();

    let code = stack.google.mint_code(CodeRequest::new("u2").offline(true));
    let reply = stack.exchange(&code).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["offline_access"], true);
    let after = stack.grant_item("u2").await.unwrap()["refresh_token_ct"].clone();
    assert_eq!(before, after, "refresh token kept");

    // The kept token still works: decrypt it and refresh through the emulator.
    let ct = Ciphertext(after.as_b().unwrap().as_ref().to_vec());
    let token = stack
        .sealer
        .open(
            &integration_tests::sub("u2"),
            shared::grant::TokenPurpose::RefreshToken,
            &ct,
        )
        .await
        .expect("decrypt");
    assert!(stack.oauth.refresh(&token, None).await.is_ok());
}

#[tokio::test]
async fn online_only_sign_in_answers_offline_access_false() {
    let stack = Stack::start().await;
    let code = stack.google.mint_code(CodeRequest::new("u3").offline(false));
    let reply = stack.exchange(&code).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["offline_access"], false);
}

/// Each refused request answers the exact problem and leaves the table unchanged,
/// without spending the code at Google.
#[tokio::test]
async fn edge_refusals_change_nothing_and_never_reach_google() {
    let stack = Stack::start().await;
    stack.sign_in("seed").await;
    let before = stack.snapshot().await;
    let token_calls = stack.google.hits().token_authorization_code;
    let code = stack.google.mint_code(CodeRequest::new("u4"));
    let body = json!({ "code": code });
    let post = || Req::post("/auth/exchange");
    let cases = [
        ("missing CSRF header", post().json(&body), 403, "csrf_check_failed"),
        (
            "empty CSRF header",
            post().header("x-requested-with", "").json(&body),
            403,
            "csrf_check_failed",
        ),
        (
            "origin not allowed",
            post()
                .csrf()
                .header("origin", "https://app.example.com.evil.io")
                .json(&body),
            403,
            "csrf_check_failed",
        ),
        (
            "wrong content type",
            post()
                .csrf()
                .header("content-type", "text/plain")
                .text(&body.to_string()),
            415,
            "unsupported_media_type",
        ),
        (
            "no content type",
            post().csrf().text(&body.to_string()),
            415,
            "unsupported_media_type",
        ),
        (
            "malformed JSON",
            post()
                .csrf()
                .header("content-type", "application/json")
                .text("{\"code\":"),
            400,
            "invalid_request",
        ),
        (
            "empty body",
            post().csrf().header("content-type", "application/json").text(""),
            400,
            "invalid_request",
        ),
        (
            "not an object",
            post().csrf().json(&json!([code])),
            400,
            "invalid_request",
        ),
        ("missing code", post().csrf().json(&json!({})), 400, "invalid_request"),
        (
            "empty code",
            post().csrf().json(&json!({"code": ""})),
            400,
            "invalid_request",
        ),
        (
            "code not a string",
            post().csrf().json(&json!({"code": 42})),
            400,
            "invalid_request",
        ),
        (
            "redirect_uri not a string",
            post().csrf().json(&json!({"code": code, "redirect_uri": 1})),
            400,
            "invalid_request",
        ),
        (
            "disallowed redirect_uri",
            post()
                .csrf()
                .json(&json!({"code": code, "redirect_uri": "https://evil.example.com/cb"})),
            400,
            "invalid_request",
        ),
        (
            "oversized body",
            post().csrf().json(&json!({"code": code, "pad": "x".repeat(70_000)})),
            413,
            "payload_too_large",
        ),
    ];
    for (name, req, status, expected) in cases {
        let reply = stack.send(Function::Exchange, req.build()).await;
        assert_eq!((reply.status, reply.code()), (status, expected), "{name}");
        reply.assert_problem(status, expected);
    }
    assert_eq!(
        stack.google.hits().token_authorization_code,
        token_calls,
        "Google never called"
    );
    assert_eq!(stack.snapshot().await, before, "table unchanged");
    // The code was never spent: it still works.
    assert_eq!(stack.exchange(&code).await.status, 200);
}

#[tokio::test]
async fn google_and_id_token_failures_store_nothing() {
    let stack = Stack::start().await;
    stack.sign_in("seed").await;
    let before = stack.snapshot().await;
    let g = &stack.google;

    let used = g.mint_code(CodeRequest::new("u5").offline(true).consent(true));
    assert_eq!(stack.exchange(&used).await.status, 200);
    let before_after_first = stack.snapshot().await;
    stack.exchange(&used).await.assert_problem(400, "invalid_grant");
    assert_eq!(stack.snapshot().await, before_after_first);
    stack
        .exchange("4/not-a-code")
        .await
        .assert_problem(400, "invalid_grant");

    let now = shared::google::id_token::unix_now();
    let bad_tokens = [
        json!({"aud": g.client_secret()}),
        json!({"iss": "https://evil.example.com"}),
        json!({"iat": now - 7200, "exp": now - 3600}),
    ];
    for claims in bad_tokens {
        let code = g.mint_code(
            CodeRequest::new("u6")
                .offline(true)
                .consent(true)
                .claims(claims.clone()),
        );
        stack.exchange(&code).await.assert_problem(401, "invalid_id_token");
    }
    assert!(stack.grant_item("u6").await.is_none());

    g.inject(Fault::status(Endpoint::Token, 503));
    let code = g.mint_code(CodeRequest::new("u7").offline(true).consent(true));
    let reply = stack.exchange(&code).await;
    reply.assert_problem(503, "upstream_unavailable");
    assert!(reply.header("retry-after").unwrap().parse::<u32>().unwrap() >= 1);

    g.inject(Fault::new(Endpoint::Token, FaultKind::DropAfterWork));
    let code = g.mint_code(CodeRequest::new("u7").offline(true).consent(true));
    let calls = g.hits().token_authorization_code;
    stack.exchange(&code).await.assert_problem(502, "upstream_error");
    assert_eq!(
        g.hits().token_authorization_code,
        calls + 1,
        "a possibly spent code is not retried"
    );

    g.inject(Fault::new(
        Endpoint::Token,
        FaultKind::Status {
            status: 200,
            body: Some(json!("<html>")),
            retry_after: None,
        },
    ));
    let code = g.mint_code(CodeRequest::new("u7"));
    stack.exchange(&code).await.assert_problem(502, "upstream_error");

    assert!(
        stack.grant_item("u7").await.is_none(),
        "nothing stored for failed calls"
    );
    assert_ne!(
        before, before_after_first,
        "only the one successful sign-in changed the table"
    );
}

#[tokio::test]
async fn hosted_domain_not_allowed_is_refused_even_with_a_matching_email() {
    let stack = Stack::start_with(Options::default().env("ALLOWED_HOSTED_DOMAINS", "example.org")).await;
    let g = &stack.google;
    let consumer = g.mint_code(CodeRequest::new("h1").claims(json!({"email": "h1@example.org"})));
    stack
        .exchange(&consumer)
        .await
        .assert_problem(403, "domain_not_allowed");
    let other = g.mint_code(CodeRequest::new("h2").hd("other.org"));
    stack.exchange(&other).await.assert_problem(403, "domain_not_allowed");
    assert!(stack.items().await.is_empty());
    let member = g.mint_code(CodeRequest::new("h3").hd("example.org"));
    let reply = stack.exchange(&member).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["user"]["hd"], "example.org");
}

#[tokio::test]
async fn allow_listed_redirect_uri_is_sent_to_google() {
    let stack = Stack::start_with(Options::default().env("ALLOWED_REDIRECT_URIS", "https://app.example.com/cb")).await;
    let code = stack
        .google
        .mint_code(CodeRequest::new("r1").redirect_uri("https://app.example.com/cb"));
    let req = Req::post("/auth/exchange")
        .csrf()
        .json(&json!({"code": code, "redirect_uri": "https://app.example.com/cb"}));
    assert_eq!(stack.send(Function::Exchange, req.build()).await.status, 200);
}

#[tokio::test]
async fn copied_ciphertext_cannot_be_decrypted_for_another_user() {
    let stack = Stack::start().await;
    stack.sign_in("victim").await;
    let item = stack.grant_item("victim").await.unwrap();
    let ct = Ciphertext(item["refresh_token_ct"].as_b().unwrap().as_ref().to_vec());
    assert!(
        stack
            .sealer
            .open(
                &integration_tests::sub("victim"),
                shared::grant::TokenPurpose::RefreshToken,
                &ct
            )
            .await
            .is_ok()
    );
    assert!(
        stack
            .sealer
            .open(
                &integration_tests::sub("attacker"),
                shared::grant::TokenPurpose::RefreshToken,
                &ct
            )
            .await
            .is_err(),
        "KMS refuses another owner's context"
    );
}

#[tokio::test]
async fn concurrent_exchanges_keep_every_scope_and_a_working_refresh_token() {
    let stack = Stack::start().await;
    let g = &stack.google;
    let codes: Vec<String> = (0..16)
        .map(|i| {
            let scope = format!("https://www.googleapis.com/auth/extra.{i}");
            g.mint_code(
                CodeRequest::new("c1")
                    .scopes(["openid".to_owned(), scope])
                    .include_granted_scopes(false)
                    .offline(i % 2 == 0)
                    .consent(i % 4 == 0),
            )
        })
        .collect();
    let replies = join_all(codes.iter().map(|code| stack.exchange(code))).await;
    assert!(
        replies.iter().all(|r| r.status == 200),
        "{:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let grant = stack.grants.load(&integration_tests::sub("c1")).await.unwrap().unwrap();
    for i in 0..16 {
        assert!(
            grant
                .scopes
                .contains(&format!("https://www.googleapis.com/auth/extra.{i}")),
            "scope {i} lost"
        );
    }
    let token = stack
        .sealer
        .open(
            &integration_tests::sub("c1"),
            shared::grant::TokenPurpose::RefreshToken,
            &grant.refresh_token.as_ref().unwrap().ciphertext,
        )
        .await
        .unwrap();
    assert!(
        stack.oauth.refresh(&token, None).await.is_ok(),
        "stored refresh token works"
    );
}

fn decode_claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = data_encoding::BASE64URL_NOPAD.decode(payload.as_bytes()).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}
