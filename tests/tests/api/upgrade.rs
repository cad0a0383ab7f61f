//! `POST /auth/upgrade`: incremental authorization (docs/api.md).

use futures::future::join_all;
use integration_tests::google_emulator::{CodeRequest, Signer};
use integration_tests::{CALENDAR_EVENTS, Function, Req, Stack};
use serde_json::json;
use shared::ports::{GrantStore as _, TokenSealer as _};

#[tokio::test]
async fn upgrade_grants_calendar_and_the_stored_token_carries_it() {
    let stack = Stack::start().await;
    let bearer = stack.sign_in("up1").await;
    let code = stack
        .google
        .mint_code(CodeRequest::new("up1").scopes(["openid", CALENDAR_EVENTS]));
    let reply = stack.upgrade(&bearer, &code, &[CALENDAR_EVENTS]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let scopes = reply.body["granted_scopes"].as_array().unwrap();
    assert!(scopes.contains(&json!(CALENDAR_EVENTS)) && scopes.contains(&json!("openid")));
    assert!(
        scopes.contains(&json!("https://www.googleapis.com/auth/userinfo.email")),
        "union kept"
    );
    assert_eq!(reply.body["offline_access"], true);

    let grant = stack
        .grants
        .load(&integration_tests::sub("up1"))
        .await
        .unwrap()
        .unwrap();
    let refresh = stack
        .sealer
        .open(
            &integration_tests::sub("up1"),
            shared::grant::TokenPurpose::RefreshToken,
            &grant.refresh_token.as_ref().unwrap().ciphertext,
        )
        .await
        .unwrap();
    let access = stack.oauth.refresh(&refresh, None).await.unwrap();
    assert!(
        access.scopes.unwrap().allows_calendar_writes(),
        "refreshed token carries Calendar"
    );
}

#[tokio::test]
async fn forged_bearers_are_refused_with_401() {
    let stack = Stack::start().await;
    stack.sign_in("up2").await;
    let g = &stack.google;
    let now = shared::google::id_token::unix_now();
    let claims = g.id_token_claims("up2");
    let with = |patch: serde_json::Value| {
        let mut c = claims.clone();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let header = json!({"alg": "RS256", "kid": g.current_kid()});
    let forgeries = [
        ("garbage", "garbage".to_owned()),
        (
            "alg none",
            g.sign_jwt(json!({"alg": "none"}), claims.clone(), Signer::NoneAlg),
        ),
        (
            "HS256 with public key",
            g.sign_jwt(
                json!({"alg": "HS256", "kid": g.current_kid()}),
                claims.clone(),
                Signer::Hs256WithPublicKey,
            ),
        ),
        (
            "foreign key",
            g.sign_jwt(header.clone(), claims.clone(), Signer::Foreign),
        ),
        (
            "wrong aud",
            g.sign_jwt(header.clone(), with(json!({"aud": "other"})), Signer::Current),
        ),
        (
            "expired",
            g.sign_jwt(
                header.clone(),
                with(json!({"iat": now - 7200, "exp": now - 3600})),
                Signer::Current,
            ),
        ),
    ];
    let code = g.mint_code(CodeRequest::new("up2").scopes(["openid", CALENDAR_EVENTS]));
    let before = stack.snapshot().await;
    for (name, bearer) in forgeries {
        let reply = stack.upgrade(&bearer, &code, &[CALENDAR_EVENTS]).await;
        reply.assert_problem(401, "unauthenticated");
        assert_eq!(
            reply.header("www-authenticate"),
            Some(r#"Bearer error="invalid_token""#),
            "{name}"
        );
    }
    let missing = Req::post("/auth/upgrade").csrf().json(&json!({"code": code}));
    let reply = stack.send(Function::Upgrade, missing.build()).await;
    reply.assert_problem(401, "unauthenticated");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    assert_eq!(stack.snapshot().await, before);
}

#[tokio::test]
async fn code_of_another_account_is_refused_and_nothing_changes() {
    let stack = Stack::start().await;
    let bearer = stack.sign_in("alice").await;
    stack.sign_in("mallory").await;
    let before = stack.snapshot().await;
    let code = stack
        .google
        .mint_code(CodeRequest::new("mallory").scopes(["openid", CALENDAR_EVENTS]));
    stack
        .upgrade(&bearer, &code, &[CALENDAR_EVENTS])
        .await
        .assert_problem(403, "account_mismatch");
    assert_eq!(stack.snapshot().await, before);
}

#[tokio::test]
async fn unticked_scope_is_reported_missing_and_what_was_granted_is_stored() {
    let stack = Stack::start().await;
    let bearer = stack.sign_in("up3").await;
    let extra = "https://www.googleapis.com/auth/drive.file";
    let code = stack
        .google
        .mint_code(CodeRequest::new("up3").scopes(["openid", extra]));
    let reply = stack.upgrade(&bearer, &code, &[CALENDAR_EVENTS, extra]).await;
    reply.assert_problem(403, "scope_not_granted");
    assert_eq!(reply.body["missing_scopes"], json!([CALENDAR_EVENTS]));
    assert!(
        stack
            .grants
            .load(&integration_tests::sub("up3"))
            .await
            .unwrap()
            .unwrap()
            .scopes
            .contains(extra)
    );
}

#[tokio::test]
async fn online_only_user_gets_409_and_nothing_changes() {
    let stack = Stack::start().await;
    let first = stack.google.mint_code(CodeRequest::new("up4").offline(false));
    let bearer = stack.exchange(&first).await.body["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = stack.snapshot().await;
    let code = stack.google.mint_code(
        CodeRequest::new("up4")
            .offline(false)
            .scopes(["openid", CALENDAR_EVENTS]),
    );
    stack
        .upgrade(&bearer, &code, &[CALENDAR_EVENTS])
        .await
        .assert_problem(409, "offline_access_required");
    assert_eq!(stack.snapshot().await, before);
}

#[tokio::test]
async fn scopes_must_be_a_list_of_strings() {
    let stack = Stack::start().await;
    let bearer = stack.sign_in("up5").await;
    for scopes in [json!("calendar"), json!([1]), json!({})] {
        let req = Req::post("/auth/upgrade")
            .csrf()
            .bearer(&bearer)
            .json(&json!({"code": "x", "scopes": scopes}));
        stack
            .send(Function::Upgrade, req.build())
            .await
            .assert_problem(400, "invalid_request");
    }
    let req = Req::post("/auth/upgrade").bearer(&bearer).json(&json!({"code": "x"}));
    stack
        .send(Function::Upgrade, req.build())
        .await
        .assert_problem(403, "csrf_check_failed");
}

#[tokio::test]
async fn sixteen_concurrent_upgrades_keep_all_sixteen_scopes() {
    let stack = Stack::start().await;
    let bearer = stack.sign_in("up6").await;
    let scopes: Vec<String> = (0..16)
        .map(|i| format!("https://www.googleapis.com/auth/extra.{i}"))
        .collect();
    let codes: Vec<String> = scopes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            stack.google.mint_code(
                CodeRequest::new("up6")
                    .scopes(["openid".to_owned(), s.clone()])
                    .include_granted_scopes(false)
                    .consent(i % 3 == 0),
            )
        })
        .collect();
    let (stack, bearer) = (&stack, &bearer);
    let replies = join_all(
        codes
            .iter()
            .zip(&scopes)
            .map(|(c, s)| async move { stack.upgrade(bearer, c, &[s.as_str()]).await }),
    )
    .await;
    assert!(
        replies.iter().all(|r| r.status == 200),
        "{:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let grant = stack
        .grants
        .load(&integration_tests::sub("up6"))
        .await
        .unwrap()
        .unwrap();
    for s in &scopes {
        assert!(grant.scopes.contains(s), "{s} lost");
    }
    let token = stack
        .sealer
        .open(
            &integration_tests::sub("up6"),
            shared::grant::TokenPurpose::RefreshToken,
            &grant.refresh_token.as_ref().unwrap().ciphertext,
        )
        .await
        .unwrap();
    assert!(stack.oauth.refresh(&token, None).await.is_ok());
}
