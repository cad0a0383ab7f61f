//! Apps on phones (docs/phones.md): an Android or iOS app's server auth code
//! (`redirect_uri: ""`) is exchanged only with `ALLOW_APP_CODES=true`; the apps' own
//! ID tokens are accepted as bearers when their client IDs are configured, nobody
//! else's; a person who signs in on the web and on a phone has one grant.

use data_encoding::BASE64URL_NOPAD;
use integration_tests::google_emulator::{AppPlatform, CodeRequest};
use integration_tests::offline::Invoke as _;
use integration_tests::{CALENDAR_EVENTS, Function, Options, Reply, Req, Stack};
use serde_json::{Value, json};

const ANDROID: &str = "123-android.apps.googleusercontent.com";
const IOS: &str = "123-ios.apps.googleusercontent.com";

/// The configuration of a deployment that serves the team's phone apps.
fn with_phones() -> Options {
    Options::default()
        .env("ALLOW_APP_CODES", "true")
        .env("GOOGLE_APP_CLIENT_IDS", format!("{ANDROID}, {IOS}"))
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&BASE64URL_NOPAD.decode(payload.as_bytes()).unwrap()).unwrap()
}

/// What the app sends: its server auth code, with the empty redirect URI Google
/// issued it for.
fn app_exchange(code: &str) -> Req {
    Req::post("/auth/exchange")
        .csrf()
        .json(&json!({"code": code, "redirect_uri": ""}))
}

fn app_upgrade(bearer: &str, code: &str) -> Req {
    Req::post("/auth/upgrade")
        .csrf()
        .bearer(bearer)
        .json(&json!({"code": code, "scopes": [CALENDAR_EVENTS], "redirect_uri": ""}))
}

#[tokio::test]
async fn an_app_server_auth_code_is_exchanged_when_app_codes_are_allowed() {
    let stack = Stack::start_with(with_phones()).await;
    let code = stack
        .google
        .mint_code(CodeRequest::new("phone1").app(ANDROID).consent(true));
    let reply = stack.send(Function::Exchange, app_exchange(&code).build()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["offline_access"], true);
    assert_eq!(reply.body["user"]["sub"], "phone1");
    let id_token = reply.body["id_token"].as_str().unwrap();
    let issued = claims(id_token);
    assert_eq!(
        (issued["aud"].as_str(), issued["azp"].as_str()),
        (Some(stack.google.client_id().as_str()), Some(ANDROID)),
        "the web client's code, the app as authorized party"
    );

    // The app's later calls carry that ID token; incremental authorization works the same.
    let me = stack.me(id_token).await;
    assert_eq!((me.status, me.body["status"].as_str()), (200, Some("active")));
    let code = stack.google.mint_code(
        CodeRequest::new("phone1")
            .app(ANDROID)
            .scopes(["openid", CALENDAR_EVENTS]),
    );
    let reply = stack
        .send(Function::Upgrade, app_upgrade(id_token, &code).build())
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body["granted_scopes"]
            .as_array()
            .unwrap()
            .contains(&json!(CALENDAR_EVENTS))
    );
}

#[tokio::test]
async fn without_app_codes_allowed_an_empty_redirect_uri_is_refused_before_google() {
    // The apps' client IDs alone do not allow their codes.
    let stack = Stack::start_with(Options::default().env("GOOGLE_APP_CLIENT_IDS", ANDROID)).await;
    let bearer = stack.sign_in("phone2").await;
    let before = stack.snapshot().await;
    let code = stack.google.mint_code(CodeRequest::new("phone2").app(ANDROID));
    let exchanges = stack.google.hits().token_authorization_code;

    let reply = stack.send(Function::Exchange, app_exchange(&code).build()).await;
    reply.assert_problem(400, "invalid_request");
    let reply = stack.send(Function::Upgrade, app_upgrade(&bearer, &code).build()).await;
    reply.assert_problem(400, "invalid_request");
    assert_eq!(
        stack.google.hits().token_authorization_code,
        exchanges,
        "the code never reached Google's token endpoint"
    );
    assert_eq!(stack.snapshot().await, before, "nothing stored");

    // The code was not spent: a deployment that allows app codes redeems it.
    let phones = stack.another_container(&with_phones());
    let reply = integration_tests::send_to(&phones, Function::Exchange, app_exchange(&code).build()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

async fn me_status(stack: &Stack, bearer: &str) -> Reply {
    stack
        .send(Function::Account, Req::get("/me").bearer(bearer).build())
        .await
}

#[tokio::test]
async fn the_apps_id_tokens_are_bearers_when_their_client_ids_are_configured() {
    let stack = Stack::start_with(with_phones()).await;
    stack.sign_in("phone3").await;
    let g = &stack.google;
    let ios = g.app_id_token("phone3", AppPlatform::Ios, IOS);
    let android = g.app_id_token("phone3", AppPlatform::Android, ANDROID);
    assert_eq!(
        (claims(&ios)["aud"].as_str(), claims(&ios)["azp"].as_str()),
        (Some(IOS), Some(IOS))
    );
    for (platform, bearer) in [("iOS", &ios), ("Android", &android)] {
        let me = me_status(&stack, bearer).await;
        assert_eq!(me.status, 200, "{platform}: {}", me.body);
        assert_eq!(me.body["user"]["sub"], "phone3", "{platform}");
        assert_eq!(me.body["status"], "active", "{platform}: the web sign-in's grant");
    }

    // Another party's tokens: a foreign audience, or a foreign authorized party.
    let web = g.client_id();
    for (what, bearer) in [
        (
            "foreign iOS app",
            g.app_id_token("phone3", AppPlatform::Ios, "999-other.apps.googleusercontent.com"),
        ),
        (
            "foreign Android app",
            g.app_id_token("phone3", AppPlatform::Android, "999-other.apps.googleusercontent.com"),
        ),
        (
            "foreign aud, our azp",
            g.id_token_with_claims(
                "phone3",
                json!({"aud": "999-other.apps.googleusercontent.com", "azp": web}),
            ),
        ),
    ] {
        let me = me_status(&stack, &bearer).await;
        me.assert_problem(401, "unauthenticated");
        assert_eq!(
            me.header("www-authenticate"),
            Some(r#"Bearer error="invalid_token""#),
            "{what}"
        );
    }

    // A deployment that does not name the apps refuses their own-audience tokens.
    let web_only = Stack::start().await;
    let ios = web_only.google.app_id_token("phone3", AppPlatform::Ios, IOS);
    me_status(&web_only, &ios).await.assert_problem(401, "unauthenticated");
}

#[tokio::test]
async fn the_same_person_on_the_web_and_on_a_phone_has_one_grant() {
    let stack = Stack::start_with(with_phones()).await;
    let web_bearer = stack.sign_in("phone4").await;
    let code = stack.google.mint_code(
        CodeRequest::new("phone4")
            .app(IOS)
            .scopes(["openid", "email", "profile", CALENDAR_EVENTS])
            .consent(true),
    );
    let reply = stack.send(Function::Exchange, app_exchange(&code).build()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let items: Vec<_> = stack
        .items()
        .await
        .into_iter()
        .filter(|item| item.get("sub").and_then(|v| v.as_s().ok()).map(String::as_str) == Some("phone4"))
        .collect();
    assert_eq!(items.len(), 1, "one grant: {items:?}");
    assert_eq!(
        items[0]["pk"].as_s().unwrap(),
        &format!("grant#{}#phone4", stack.google.client_id()),
        "kept under the web client, whose refresh tokens server auth codes give"
    );
    // The web page sees what the phone granted, and the backend can act on it.
    let me = stack.me(&web_bearer).await;
    assert_eq!(me.body["offline_access"], true);
    assert!(
        me.body["granted_scopes"]
            .as_array()
            .unwrap()
            .contains(&json!(CALENDAR_EVENTS)),
        "{}",
        me.body
    );
    let vended = stack
        .tokens()
        .invoke(json!({"sub": "phone4", "scopes": [CALENDAR_EVENTS]}))
        .await;
    assert!(vended["access_token"].is_string(), "{vended}");
}
