//! Apps on phones: server auth codes (redeemed with `redirect_uri=""`, the app
//! as `azp`) and the ID tokens Android and iOS apps get at sign-in.

mod common;

use common::*;
use google_emulator::{AppPlatform, CodeRequest, SCOPE_CALENDAR_EVENTS};
use serde_json::json;

const ANDROID: &str = "android-app.apps.googleusercontent.com";
const IOS: &str = "ios-app.apps.googleusercontent.com";

#[tokio::test]
async fn a_server_auth_code_is_redeemed_with_an_empty_redirect_uri() {
    let emu = start().await;
    let code = emu.mint_code(CodeRequest::new("u1").app(ANDROID));
    let (status, error) = json_of(exchange(&emu, &code).await).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid_grant")),
        "not a popup code"
    );
    let (status, body) = json_of(exchange_with(&emu, &code, "").await).await;
    assert_eq!(status, 200);
    assert!(body["refresh_token"].is_string());
    let id_token = body["id_token"].as_str().unwrap();
    let (_, jwks) = get_json(&emu.jwks_url()).await;
    assert!(verifies_with(id_token, &jwks));
    let claims = claims_of(id_token);
    assert_eq!(claims["aud"], emu.client_id(), "issued to the web client");
    assert_eq!(claims["azp"], ANDROID, "for the app");
    assert_eq!(claims["sub"], "u1");
}

#[tokio::test]
async fn a_web_code_is_not_redeemed_with_an_empty_redirect_uri() {
    let emu = start().await;
    let code = emu.mint_code(CodeRequest::new("u1"));
    let (status, error) = json_of(exchange_with(&emu, &code, "").await).await;
    assert_eq!(status, 400);
    assert_eq!(error["error"], "invalid_grant");
    assert_eq!(error["error_description"], "redirect_uri_mismatch");
    // Leaving redirect_uri out entirely is a malformed request.
    let response = client()
        .post(emu.token_url())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", &emu.client_id()),
            ("client_secret", &emu.client_secret()),
        ])
        .send()
        .await
        .unwrap();
    let (status, error) = json_of(response).await;
    assert_eq!((status, error["error"].as_str()), (400, Some("invalid_request")));
    assert_eq!(exchange(&emu, &code).await.status(), 200, "the code was not spent");
}

#[tokio::test]
async fn web_and_phone_sign_ins_share_one_grant() {
    let emu = start().await;
    let web = sign_in(&emu, CodeRequest::new("u1")).await;
    let phone = emu.mint_code(CodeRequest::new("u1").app(IOS).scopes([SCOPE_CALENDAR_EVENTS]));
    let (status, body) = json_of(exchange_with(&emu, &phone, "").await).await;
    assert_eq!(status, 200);
    assert!(
        body.get("refresh_token").is_none(),
        "the grant already has a live refresh token"
    );
    assert_eq!(scopes_of(&body).len(), 4, "include_granted_scopes: the union");
    // The web client's refresh token now covers Calendar, and refreshes as the web client.
    let (_, refreshed) = json_of(refresh(&emu, web["refresh_token"].as_str().unwrap()).await).await;
    assert!(scopes_of(&refreshed).contains(&SCOPE_CALENDAR_EVENTS.to_owned()));
    let claims = claims_of(refreshed["id_token"].as_str().unwrap());
    assert_eq!(
        (&claims["aud"], &claims["azp"]),
        (&json!(emu.client_id()), &json!(emu.client_id()))
    );
}

#[tokio::test]
async fn app_sign_in_id_tokens() {
    let emu = start().await;
    let (_, jwks) = get_json(&emu.jwks_url()).await;
    let android = emu.app_id_token("u1", AppPlatform::Android, ANDROID);
    assert!(verifies_with(&android, &jwks));
    let claims = claims_of(&android);
    assert_eq!(
        (&claims["aud"], &claims["azp"]),
        (&json!(emu.client_id()), &json!(ANDROID))
    );
    let ios = emu.app_id_token("u1", AppPlatform::Ios, IOS);
    let claims = claims_of(&ios);
    assert_eq!((&claims["aud"], &claims["azp"]), (&json!(IOS), &json!(IOS)));
    assert_eq!(claims["sub"], "u1");
    assert_eq!(claims["iss"], "https://accounts.google.com");
}

#[tokio::test]
async fn phone_flows_over_the_control_api() {
    let emu = start().await;
    let (status, minted) = control(&emu, "codes", json!({"sub": "u1", "app_client_id": ANDROID})).await;
    assert_eq!(status, 200);
    let (status, body) = json_of(exchange_with(&emu, minted["code"].as_str().unwrap(), "").await).await;
    assert_eq!(status, 200);
    assert_eq!(claims_of(body["id_token"].as_str().unwrap())["azp"], ANDROID);

    let (status, body) = control(
        &emu,
        "id-token",
        json!({"sub": "u1", "platform": "ios", "app_client_id": IOS, "claims": {"email": "x@example.com"}}),
    )
    .await;
    assert_eq!(status, 200);
    let claims = claims_of(body["id_token"].as_str().unwrap());
    assert_eq!(
        (&claims["aud"], &claims["email"]),
        (&json!(IOS), &json!("x@example.com"))
    );
    let (_, body) = control(
        &emu,
        "id-token",
        json!({"sub": "u1", "platform": "android", "app_client_id": ANDROID}),
    )
    .await;
    let claims = claims_of(body["id_token"].as_str().unwrap());
    assert_eq!(
        (&claims["aud"], &claims["azp"]),
        (&json!(emu.client_id()), &json!(ANDROID))
    );

    for bad in [
        json!({"sub": "u1", "platform": "ios"}),
        json!({"sub": "u1", "app_client_id": IOS}),
        json!({"sub": "u1", "platform": "ios", "app_client_id": ""}),
        json!({"sub": "u1", "platform": "windows", "app_client_id": IOS}),
    ] {
        assert_eq!(control(&emu, "id-token", bad.clone()).await.0, 400, "{bad}");
    }
}
