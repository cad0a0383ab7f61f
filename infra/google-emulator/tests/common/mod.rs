//! Helpers shared by the emulator's integration tests: an HTTP client and
//! an independent RS256 verifier (so tests check signatures, not just shapes).

#![allow(dead_code)] // each test binary uses a different subset

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use data_encoding::BASE64URL_NOPAD;
use google_emulator::{CodeRequest, Emulator, EmulatorConfig};
use reqwest::{Client, Response};
use serde_json::Value;

pub async fn start() -> Emulator {
    Emulator::start(EmulatorConfig::default()).await
}

pub fn client() -> Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

/// `POST /token` with `grant_type=authorization_code`, client auth in the body.
pub async fn exchange(emu: &Emulator, code: &str) -> Response {
    exchange_with(emu, code, "postmessage").await
}

pub async fn exchange_with(emu: &Emulator, code: &str, redirect_uri: &str) -> Response {
    try_exchange_with(emu, code, redirect_uri).await.expect("token request")
}

/// The same request, for faults where no answer comes back.
pub async fn try_exchange(emu: &Emulator, code: &str) -> reqwest::Result<Response> {
    try_exchange_with(emu, code, "postmessage").await
}

async fn try_exchange_with(emu: &Emulator, code: &str, redirect_uri: &str) -> reqwest::Result<Response> {
    client()
        .post(emu.token_url())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", &emu.client_id()),
            ("client_secret", &emu.client_secret()),
        ])
        .send()
        .await
}

pub async fn refresh(emu: &Emulator, refresh_token: &str) -> Response {
    client()
        .post(emu.token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", &emu.client_id()),
            ("client_secret", &emu.client_secret()),
        ])
        .send()
        .await
        .expect("refresh request")
}

/// A refresh asking for a subset of the grant (RFC 6749 §6 `scope`).
pub async fn refresh_scoped(emu: &Emulator, refresh_token: &str, scope: &str) -> Response {
    client()
        .post(emu.token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("scope", scope),
            ("client_id", &emu.client_id()),
            ("client_secret", &emu.client_secret()),
        ])
        .send()
        .await
        .expect("refresh request")
}

/// `events.insert` on the primary calendar with `access_token`: the status.
pub async fn insert_status(emu: &Emulator, access_token: &str) -> u16 {
    let url = format!("{}/calendars/primary/events", emu.calendar_api_url());
    let event = serde_json::json!({
        "summary": "Check",
        "start": {"dateTime": "2031-01-02T09:00:00Z"},
        "end": {"dateTime": "2031-01-02T09:15:00Z"},
    });
    let response = client().post(url).bearer_auth(access_token).json(&event).send().await;
    response.expect("insert request").status().as_u16()
}

/// `POST /emulator/{path}` with a JSON body.
pub async fn control(emu: &Emulator, path: &str, body: Value) -> (u16, Value) {
    let url = format!("{}/emulator/{path}", emu.base_url());
    json_of(
        client()
            .post(url)
            .body(body.to_string())
            .send()
            .await
            .expect("control request"),
    )
    .await
}

/// Signs in `request` and returns the token response JSON (asserting 200).
pub async fn sign_in(emu: &Emulator, request: CodeRequest) -> Value {
    let response = exchange(emu, &emu.mint_code(request)).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("token JSON")
}

pub async fn json_of(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

pub fn scopes_of(token_response: &Value) -> Vec<String> {
    let scope = token_response["scope"].as_str().expect("scope string");
    let mut scopes: Vec<String> = scope.split(' ').map(str::to_owned).collect();
    scopes.sort();
    scopes
}

pub fn decode_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("JWT part");
    serde_json::from_slice(&BASE64URL_NOPAD.decode(part.as_bytes()).expect("base64url")).expect("JSON part")
}

pub fn header_of(token: &str) -> Value {
    decode_part(token, 0)
}

pub fn claims_of(token: &str) -> Value {
    decode_part(token, 1)
}

/// Verifies an RS256 JWT against a JWKS document, by `kid`.
pub fn verifies_with(token: &str, jwks: &Value) -> bool {
    let kid = header_of(token)["kid"].clone();
    let Some(jwk) = jwks["keys"].as_array().unwrap().iter().find(|key| key["kid"] == kid) else {
        return false;
    };
    let b64 = |field: &str| BASE64URL_NOPAD.decode(jwk[field].as_str().unwrap().as_bytes()).unwrap();
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let Ok(signature) = BASE64URL_NOPAD.decode(signature.as_bytes()) else {
        return false;
    };
    let key = RsaPublicKeyComponents {
        n: b64("n"),
        e: b64("e"),
    };
    key.verify(&RSA_PKCS1_2048_8192_SHA256, signing_input.as_bytes(), &signature)
        .is_ok()
}

pub async fn get_json(url: &str) -> (u16, Value) {
    json_of(client().get(url).send().await.expect("GET")).await
}

/// True when the server closed the connection without sending a response
/// (as opposed to a refused connection, a timeout or an HTTP error status).
pub fn connection_dropped(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(hyper_error) = current.downcast_ref::<hyper::Error>() {
            return hyper_error.is_incomplete_message();
        }
        source = current.source();
    }
    false
}
