//! Token endpoint, revocation and ID tokens behave like Google's.

mod common;

use common::*;
use google_emulator::{CodeRequest, Emulator, EmulatorConfig, SCOPE_CALENDAR_EVENTS, SCOPE_OPENID};
use serde_json::json;

#[tokio::test]
async fn code_is_single_use() {
    let emu = start().await;
    let code = emu.mint_code(CodeRequest::new("u1"));
    assert_eq!(exchange(&emu, &code).await.status(), 200);
    let (status, body) = json_of(exchange(&emu, &code).await).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": "invalid_grant", "error_description": "Bad Request"})
    );
}

#[tokio::test]
async fn token_response_carries_verified_id_token() {
    let emu = start().await;
    let body = sign_in(&emu, CodeRequest::new("u1").hd("example.org")).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    let id_token = body["id_token"].as_str().unwrap();
    let (_, jwks) = get_json(&emu.jwks_url()).await;
    assert!(verifies_with(id_token, &jwks));
    assert_eq!(
        header_of(id_token),
        json!({"alg": "RS256", "kid": emu.current_kid(), "typ": "JWT"})
    );
    let claims = claims_of(id_token);
    assert_eq!(claims["iss"], "https://accounts.google.com");
    assert_eq!(claims["aud"], emu.client_id());
    assert_eq!(claims["azp"], emu.client_id());
    assert_eq!(claims["sub"], "u1");
    assert_eq!(claims["email"], "u1@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["hd"], "example.org");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600);
}

#[tokio::test]
async fn hd_is_absent_for_consumer_accounts() {
    let emu = start().await;
    let body = sign_in(&emu, CodeRequest::new("u1")).await;
    assert!(claims_of(body["id_token"].as_str().unwrap()).get("hd").is_none());
}

#[tokio::test]
async fn claim_overrides_reach_the_exchanged_id_token() {
    let emu = start().await;
    let secret = emu.client_secret();
    let request = CodeRequest::new("u1").claims(json!({"aud": secret, "exp": null}));
    let body = sign_in(&emu, request).await;
    let claims = claims_of(body["id_token"].as_str().unwrap());
    assert_eq!(claims["aud"], secret);
    assert!(claims.get("exp").is_none());
}

#[tokio::test]
async fn raw_id_token_is_returned_verbatim_or_omitted() {
    let emu = start().await;
    let body = sign_in(&emu, CodeRequest::new("u1").raw_id_token("not.a.jwt")).await;
    assert_eq!(body["id_token"], "not.a.jwt");
    let body = sign_in(&emu, CodeRequest::new("u2").raw_id_token("")).await;
    assert!(body.get("id_token").is_none());
}

#[tokio::test]
async fn refresh_token_only_on_first_offline_sign_in_or_consent() {
    let emu = start().await;
    let online = sign_in(&emu, CodeRequest::new("u1").offline(false)).await;
    assert!(online.get("refresh_token").is_none());
    let first = sign_in(&emu, CodeRequest::new("u1")).await;
    assert!(first["refresh_token"].is_string());
    let again = sign_in(&emu, CodeRequest::new("u1")).await;
    assert!(again.get("refresh_token").is_none());
    assert_eq!(emu.user_refresh_tokens_live("u1"), 1);
    let forced = sign_in(&emu, CodeRequest::new("u1").consent(true)).await;
    assert!(forced["refresh_token"].is_string());
    assert_ne!(forced["refresh_token"], first["refresh_token"]);
    assert_eq!(emu.user_refresh_tokens_live("u1"), 2);
}

#[tokio::test]
async fn include_granted_scopes_returns_the_union() {
    let emu = start().await;
    sign_in(&emu, CodeRequest::new("u1")).await;
    let upgrade = sign_in(&emu, CodeRequest::new("u1").scopes([SCOPE_CALENDAR_EVENTS])).await;
    let scopes = scopes_of(&upgrade);
    assert_eq!(scopes.len(), 4, "{scopes:?}");
    assert!(scopes.contains(&SCOPE_CALENDAR_EVENTS.to_owned()));
    assert!(scopes.contains(&SCOPE_OPENID.to_owned()));

    let calendar_only = CodeRequest::new("u1")
        .scopes([SCOPE_CALENDAR_EVENTS])
        .include_granted_scopes(false);
    let body = sign_in(&emu, calendar_only).await;
    assert_eq!(scopes_of(&body), vec![SCOPE_CALENDAR_EVENTS.to_owned()]);
    assert!(body.get("id_token").is_none(), "no openid, no ID token");
    let narrow = CodeRequest::new("u1")
        .scopes([SCOPE_OPENID])
        .include_granted_scopes(false);
    assert_eq!(scopes_of(&sign_in(&emu, narrow).await), vec![SCOPE_OPENID.to_owned()]);
    // The grant itself keeps everything ever granted.
    assert_eq!(emu.granted_scopes("u1").len(), 4);
}

#[tokio::test]
async fn wrong_redirect_uri_is_invalid_grant_and_keeps_the_code() {
    let emu = start().await;
    let code = emu.mint_code(CodeRequest::new("u1"));
    let (status, body) = json_of(exchange_with(&emu, &code, "https://evil.example").await).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "redirect_uri_mismatch");
    assert_eq!(exchange(&emu, &code).await.status(), 200);
}

#[tokio::test]
async fn client_authentication() {
    let emu = start().await;
    let code = emu.mint_code(CodeRequest::new("u1"));
    let form = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", "postmessage"),
    ];
    let send = |id: String, secret: String| {
        client()
            .post(emu.token_url())
            .basic_auth(id, Some(secret))
            .form(&form)
            .send()
    };
    let (status, body) = json_of(send(emu.client_id(), "wrong".into()).await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"error": "invalid_client", "error_description": "The OAuth client was not found."})
    );
    let response = send("other.apps.googleusercontent.com".into(), emu.client_secret()).await;
    assert_eq!(response.unwrap().status(), 401);
    let response = send(emu.client_id(), emu.client_secret()).await;
    assert_eq!(response.unwrap().status(), 200, "HTTP Basic is accepted");
}

#[tokio::test]
async fn malformed_token_requests() {
    let emu = start().await;
    let post = |form: Vec<(&'static str, String)>| client().post(emu.token_url()).form(&form).send();
    let creds = || vec![("client_id", emu.client_id()), ("client_secret", emu.client_secret())];
    let mut form = creds();
    form.push(("grant_type", "password".into()));
    let (status, body) = json_of(post(form).await.unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unsupported_grant_type")));
    let mut form = creds();
    form.push(("grant_type", "authorization_code".into()));
    let (status, body) = json_of(post(form).await.unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
    let mut form = creds();
    form.extend([("grant_type", "authorization_code".into()), ("code", "4/0Anope".into())]);
    form.push(("redirect_uri", "postmessage".into()));
    let (status, body) = json_of(post(form).await.unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn refresh_grant_issues_a_new_access_token() {
    let emu = start().await;
    let first = sign_in(&emu, CodeRequest::new("u1")).await;
    sign_in(&emu, CodeRequest::new("u1").scopes([SCOPE_CALENDAR_EVENTS])).await;
    let (status, body) = json_of(refresh(&emu, first["refresh_token"].as_str().unwrap()).await).await;
    assert_eq!(status, 200);
    assert!(body.get("refresh_token").is_none());
    assert_ne!(body["access_token"], first["access_token"]);
    assert_eq!(scopes_of(&body).len(), 4, "refresh covers the whole grant");
    let id_token = body["id_token"].as_str().expect("openid granted → id_token");
    assert_eq!(claims_of(id_token)["sub"], "u1");

    let (status, body) = json_of(refresh(&emu, "1//0gunknown").await).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
    );
}

#[tokio::test]
async fn revoke_kills_the_whole_grant() {
    let emu = start().await;
    let first = sign_in(&emu, CodeRequest::new("u1")).await;
    let refresh_token = first["refresh_token"].as_str().unwrap();
    let revoke = |token: String| client().post(emu.revoke_url()).form(&[("token", token)]).send();
    let (status, body) = json_of(revoke(refresh_token.into()).await.unwrap()).await;
    assert_eq!((status, body), (200, json!({})));
    assert_eq!(refresh(&emu, refresh_token).await.status(), 400);
    assert_eq!(emu.user_refresh_tokens_live("u1"), 0);
    let (status, body) = json_of(revoke(refresh_token.into()).await.unwrap()).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": "invalid_token", "error_description": "Token expired or revoked"})
    );
    let again = sign_in(&emu, CodeRequest::new("u1")).await;
    assert!(again["refresh_token"].is_string(), "a revoked grant starts over");
}

#[tokio::test]
async fn revoking_an_access_token_in_the_query_revokes_the_refresh_token() {
    let emu = start().await;
    let body = sign_in(&emu, CodeRequest::new("u1")).await;
    let url = format!("{}?token={}", emu.revoke_url(), body["access_token"].as_str().unwrap());
    assert_eq!(client().post(url).send().await.unwrap().status(), 200);
    assert_eq!(
        refresh(&emu, body["refresh_token"].as_str().unwrap()).await.status(),
        400
    );
}

#[tokio::test]
async fn jwks_has_google_cache_control() {
    let emu = Emulator::start(EmulatorConfig {
        jwks_max_age_secs: 42,
        ..EmulatorConfig::default()
    })
    .await;
    let response = client().get(emu.jwks_url()).send().await.unwrap();
    let cache_control = response.headers()["cache-control"].to_str().unwrap().to_owned();
    assert_eq!(cache_control, "public, max-age=42, must-revalidate, no-transform");
    let (_, jwks) = json_of(response).await;
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["alg"].as_str(), key["use"].as_str()),
        (Some("RSA"), Some("RS256"), Some("sig"))
    );
    assert_eq!(key["kid"], emu.current_kid());
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn rotation_publishes_new_and_previous_key() {
    let emu = start().await;
    let old_kid = emu.current_kid();
    let old_token = emu.id_token("u1");
    emu.rotate_keys();
    let new_kid = emu.current_kid();
    assert_ne!(new_kid, old_kid);
    let (_, jwks) = get_json(&emu.jwks_url()).await;
    let kids: Vec<_> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(kids, vec![json!(new_kid), json!(old_kid)]);
    assert!(verifies_with(&old_token, &jwks));
    assert!(verifies_with(&emu.id_token("u1"), &jwks));
    emu.rotate_keys();
    let (_, jwks) = get_json(&emu.jwks_url()).await;
    assert!(!verifies_with(&old_token, &jwks), "two rotations retire the first key");
}

#[tokio::test]
async fn revoking_any_token_ends_every_token_of_the_grant() {
    let emu = start().await;
    let first = sign_in(
        &emu,
        CodeRequest::new("u1").scopes([SCOPE_OPENID, SCOPE_CALENDAR_EVENTS]),
    )
    .await;
    let second = sign_in(&emu, CodeRequest::new("u1").consent(true)).await;
    let other = sign_in(&emu, CodeRequest::new("u2").scopes([SCOPE_CALENDAR_EVENTS])).await;
    let first_refresh = first["refresh_token"].as_str().unwrap();
    let second_refresh = second["refresh_token"].as_str().unwrap();
    let (_, narrowed) = json_of(refresh_scoped(&emu, second_refresh, SCOPE_CALENDAR_EVENTS).await).await;
    let access_tokens = [&first, &second, &narrowed].map(|body| body["access_token"].as_str().unwrap().to_owned());
    assert_eq!(insert_status(&emu, &access_tokens[2]).await, 200);
    assert_eq!(emu.user_refresh_tokens_live("u1"), 2);

    // Revoking the second refresh token ends the first one and every access token too.
    let response = client()
        .post(emu.revoke_url())
        .form(&[("token", second_refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    for refresh_token in [first_refresh, second_refresh] {
        let (status, body) = json_of(refresh(&emu, refresh_token).await).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    }
    for token in &access_tokens {
        assert_eq!(insert_status(&emu, token).await, 401);
    }
    assert!(emu.granted_scopes("u1").is_empty());
    // Another user's grant is untouched.
    assert_eq!(insert_status(&emu, other["access_token"].as_str().unwrap()).await, 200);
    assert_eq!(
        refresh(&emu, other["refresh_token"].as_str().unwrap()).await.status(),
        200
    );
}

#[tokio::test]
async fn revoking_an_access_token_ends_every_refresh_token_of_the_grant() {
    let emu = start().await;
    let first = sign_in(&emu, CodeRequest::new("u1")).await;
    let second = sign_in(&emu, CodeRequest::new("u1").consent(true)).await;
    let response = client()
        .post(emu.revoke_url())
        .form(&[("token", first["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    for body in [&first, &second] {
        assert_eq!(
            refresh(&emu, body["refresh_token"].as_str().unwrap()).await.status(),
            400
        );
    }
    assert_eq!(emu.user_refresh_tokens_live("u1"), 0);
}
