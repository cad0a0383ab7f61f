//! Forged tokens, RISC security event tokens and issued-secret tracking.

mod common;

use aws_lc_rs::hmac;
use common::*;
use data_encoding::BASE64URL_NOPAD;
use google_emulator::{CodeRequest, Signer};
use serde_json::json;

#[tokio::test]
async fn id_token_helper_is_valid_and_uses_the_latest_profile() {
    let emu = start().await;
    let (_, jwks) = get_json(&emu.jwks_url()).await;
    let token = emu.id_token("u1");
    assert!(verifies_with(&token, &jwks));
    assert_eq!(claims_of(&token)["email"], "u1@example.com");
    sign_in(
        &emu,
        CodeRequest::new("u1").email("someone@corp.example").hd("corp.example"),
    )
    .await;
    let claims = claims_of(&emu.id_token("u1"));
    assert_eq!(
        (claims["email"].as_str(), claims["hd"].as_str()),
        (Some("someone@corp.example"), Some("corp.example"))
    );
    let tweaked = claims_of(&emu.id_token_with_claims("u1", json!({"iss": "evil", "hd": null})));
    assert_eq!(tweaked["iss"], "evil");
    assert!(tweaked.get("hd").is_none());
}

#[tokio::test]
async fn signers_produce_the_intended_forgeries() {
    let emu = start().await;
    let (_, jwks) = get_json(&emu.jwks_url()).await;
    let claims = emu.id_token_claims("u1");
    let rs256 = json!({"alg": "RS256", "kid": emu.current_kid(), "typ": "JWT"});

    assert!(verifies_with(
        &emu.sign_jwt(rs256.clone(), claims.clone(), Signer::Current),
        &jwks
    ));
    let foreign = emu.sign_jwt(rs256.clone(), claims.clone(), Signer::Foreign);
    assert!(!verifies_with(&foreign, &jwks), "foreign key is never published");

    let none = emu.sign_jwt(json!({"alg": "none", "typ": "JWT"}), claims.clone(), Signer::NoneAlg);
    assert!(none.ends_with('.'));
    assert_eq!(claims_of(&none), claims);

    let hs = emu.sign_jwt(
        json!({"alg": "HS256", "typ": "JWT"}),
        claims.clone(),
        Signer::Hs256WithPublicKey,
    );
    let pem = emu.current_public_key_pem();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    let (input, signature) = hs.rsplit_once('.').unwrap();
    let key = hmac::Key::new(hmac::HMAC_SHA256, pem.as_bytes());
    let signature = BASE64URL_NOPAD.decode(signature.as_bytes()).unwrap();
    assert!(hmac::verify(&key, input.as_bytes(), &signature).is_ok());
}

#[tokio::test]
async fn risc_tokens_look_like_googles() {
    let emu = start().await;
    let (token, jti) = emu.risc_set("tokens-revoked", "u1");
    let response = client().get(emu.risc_jwks_url()).send().await.unwrap();
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public, max-age=")
    );
    let (_, risc_jwks) = json_of(response).await;
    assert!(verifies_with(&token, &risc_jwks));
    let (_, id_jwks) = get_json(&emu.jwks_url()).await;
    assert!(!verifies_with(&token, &id_jwks), "RISC key is separate");
    assert_eq!(
        header_of(&token),
        json!({"alg": "RS256", "kid": emu.risc_kid(), "typ": "JWT"})
    );
    let claims = claims_of(&token);
    assert_eq!(claims["iss"], emu.risc_issuer());
    assert_eq!(claims["aud"], emu.client_id());
    assert_eq!(claims["jti"], jti);
    assert!(claims.get("exp").is_none());
    assert_eq!(
        claims["events"]["https://schemas.openid.net/secevent/oauth/event-type/tokens-revoked"],
        json!({"subject": {"subject_type": "iss-sub", "iss": "https://accounts.google.com/", "sub": "u1"}})
    );
    let (_, other_jti) = emu.risc_set("account-disabled", "u1");
    assert_ne!(other_jti, jti);
    let signed = emu.sign_jwt(
        header_of(&token),
        emu.risc_claims("sessions-revoked", "u1"),
        Signer::Risc,
    );
    assert!(verifies_with(&signed, &risc_jwks));
}

#[tokio::test]
async fn issued_secrets_lists_every_secret() {
    let emu = start().await;
    let code = emu.mint_code(CodeRequest::new("u1"));
    let body = sign_in(&emu, CodeRequest::new("u2")).await;
    let secrets = emu.issued_secrets();
    for expected in [
        emu.client_secret(),
        code,
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    ] {
        assert!(secrets.contains(&expected), "{expected} missing");
    }
    let refreshed = json_of(refresh(&emu, body["refresh_token"].as_str().unwrap()).await)
        .await
        .1;
    assert!(
        emu.issued_secrets()
            .contains(&refreshed["access_token"].as_str().unwrap().to_owned())
    );
}

#[tokio::test]
async fn dropping_the_emulator_stops_the_server() {
    let emu = start().await;
    let url = emu.jwks_url();
    assert_eq!(client().get(&url).send().await.unwrap().status(), 200);
    drop(emu);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(client().get(&url).send().await.is_err());
}
