//! Time-based access and consent screens in Testing: `refresh_token_expires_in`
//! in token responses, and refresh tokens that die when their time is up.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use google_emulator::{CodeRequest, Emulator, EmulatorConfig, PublishingStatus, SCOPE_CALENDAR_EVENTS, TEST_ACCOUNTS};
use serde_json::{Value, json};

const DAY: u64 = 24 * 3600;

fn expires_in(body: &Value) -> Option<u64> {
    body.get("refresh_token_expires_in")
        .map(|value| value.as_u64().expect("a whole number"))
}

#[tokio::test]
async fn time_limited_grant_announces_its_remaining_life() {
    let emu = start().await;
    let body = sign_in(
        &emu,
        CodeRequest::new("u1").refresh_token_lifetime(Duration::from_secs(DAY)),
    )
    .await;
    assert_eq!(expires_in(&body), Some(DAY));
    let refresh_token = body["refresh_token"].as_str().unwrap();
    let (status, refreshed) = json_of(refresh(&emu, refresh_token).await).await;
    assert_eq!(status, 200);
    let left = expires_in(&refreshed).expect("every refresh says it too");
    assert!((DAY - 5..=DAY).contains(&left), "{left}");
    // A narrowed refresh of the same token too.
    let (_, narrowed) = json_of(refresh_scoped(&emu, refresh_token, "openid").await).await;
    assert!(expires_in(&narrowed).is_some());
}

#[tokio::test]
async fn access_until_removed_carries_no_expiry() {
    let emu = start().await;
    let body = sign_in(&emu, CodeRequest::new("u1")).await;
    assert_eq!(expires_in(&body), None);
    let (_, refreshed) = json_of(refresh(&emu, body["refresh_token"].as_str().unwrap()).await).await;
    assert_eq!(expires_in(&refreshed), None);
}

#[tokio::test]
async fn refresh_token_is_refused_once_its_time_is_up() {
    let emu = start().await;
    let request = CodeRequest::new("u1")
        .scopes(["openid", "email", SCOPE_CALENDAR_EVENTS])
        .refresh_token_lifetime(Duration::from_secs(1));
    let body = sign_in(&emu, request).await;
    assert_eq!(expires_in(&body), Some(1));
    let refresh_token = body["refresh_token"].as_str().unwrap();
    assert_eq!(refresh(&emu, refresh_token).await.status(), 200, "still alive");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, error) = json_of(refresh(&emu, refresh_token).await).await;
    assert_eq!(status, 400);
    assert_eq!(
        error,
        json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
    );
    assert_eq!(emu.user_refresh_tokens_live("u1"), 0);
    assert!(emu.granted_scopes("u1").is_empty(), "the grant ended with its time");
    // Signing in again starts a new grant: a refresh token without prompt=consent.
    let again = sign_in(&emu, CodeRequest::new("u1")).await;
    assert!(again["refresh_token"].is_string());
    assert_eq!(expires_in(&again), None);
    assert!(!scopes_of(&again).contains(&SCOPE_CALENDAR_EVENTS.to_owned()));
}

#[tokio::test]
async fn ending_time_based_access_now() {
    let emu = start().await;
    let request = CodeRequest::new("u1").refresh_token_lifetime(Duration::from_secs(3 * DAY));
    let body = sign_in(&emu, request).await;
    let refresh_token = body["refresh_token"].as_str().unwrap();
    assert_eq!(emu.expire_refresh_tokens("u1"), 1);
    assert_eq!(refresh(&emu, refresh_token).await.status(), 400);
    assert_eq!(emu.expire_refresh_tokens("u1"), 0);

    let (status, minted) = control(&emu, "codes", json!({"sub": "u2", "refresh_token_lifetime_secs": 3600})).await;
    assert_eq!(status, 200);
    let (_, body) = json_of(exchange(&emu, minted["code"].as_str().unwrap()).await).await;
    assert_eq!(expires_in(&body), Some(3600));
    let (status, expired) = control(&emu, "users/u2/expire-refresh-tokens", json!({})).await;
    assert_eq!((status, expired), (200, json!({"expired": 1})));
    let (status, error) = json_of(refresh(&emu, body["refresh_token"].as_str().unwrap()).await).await;
    assert_eq!((status, error["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn revoking_an_expired_refresh_token_says_it_is_dead() {
    let emu = start().await;
    let body = sign_in(
        &emu,
        CodeRequest::new("u1").refresh_token_lifetime(Duration::from_secs(60)),
    )
    .await;
    emu.expire_refresh_tokens("u1");
    let response = client()
        .post(emu.revoke_url())
        .form(&[("token", body["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    let (status, error) = json_of(response).await;
    assert_eq!((status, error["error"].as_str()), (400, Some("invalid_token")));
}

fn testing(announce: bool) -> EmulatorConfig {
    EmulatorConfig {
        publishing_status: PublishingStatus::Testing,
        testing_announces_expiry: announce,
        ..EmulatorConfig::default()
    }
}

#[tokio::test]
async fn a_consent_screen_in_testing_gives_seven_day_refresh_tokens() {
    let emu = Emulator::start(testing(true)).await;
    let body = sign_in(&emu, CodeRequest::new("u1")).await;
    assert_eq!(expires_in(&body), Some(7 * DAY));
    // A shorter time-based access wins.
    let body = sign_in(
        &emu,
        CodeRequest::new("u2").refresh_token_lifetime(Duration::from_secs(DAY)),
    )
    .await;
    assert_eq!(expires_in(&body), Some(DAY));
    let (_, config) = get_json(&format!("{}/emulator/config", emu.base_url())).await;
    assert_eq!(config["publishing_status"], "testing");

    // Whether Google's answer says so is not documented: the silent variant.
    let silent = Emulator::start(testing(false)).await;
    let body = sign_in(&silent, CodeRequest::new("u1")).await;
    assert_eq!(expires_in(&body), None);
    let (_, refreshed) = json_of(refresh(&silent, body["refresh_token"].as_str().unwrap()).await).await;
    assert_eq!(expires_in(&refreshed), None);
    let body = sign_in(
        &silent,
        CodeRequest::new("u2").refresh_token_lifetime(Duration::from_secs(DAY)),
    )
    .await;
    assert_eq!(expires_in(&body), Some(DAY), "time-based access is always announced");

    let production = start().await;
    let (_, config) = get_json(&format!("{}/emulator/config", production.base_url())).await;
    assert_eq!(config["publishing_status"], "in_production");
}

const ORIGIN: &str = "http://127.0.0.1:5173";

fn popup_params(emu: &Emulator, access_type: &str) -> Vec<(String, String)> {
    [
        ("client_id", emu.client_id()),
        ("scope", "openid email profile".to_owned()),
        ("redirect_uri", "postmessage".to_owned()),
        ("response_type", "code".to_owned()),
        ("include_granted_scopes", "true".to_owned()),
        ("origin", ORIGIN.to_owned()),
        ("request_id", "r1".to_owned()),
        ("access_type", access_type.to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// Posts the consent form with a chosen access duration; the status and the page.
async fn allow_for(emu: &Emulator, duration: &str) -> (u16, String) {
    let mut form = popup_params(emu, "offline");
    form.push(("prompt".to_owned(), "consent".to_owned()));
    form.push(("account".to_owned(), TEST_ACCOUNTS[0].sub.to_owned()));
    form.push(("access_duration".to_owned(), duration.to_owned()));
    let url = format!("{}/o/oauth2/v2/auth", emu.base_url());
    let response = client().post(url).form(&form).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn code_in(html: &str) -> Option<String> {
    let marker = r#"<script type="application/json" id="gis-data">"#;
    let start = html.find(marker)? + marker.len();
    let end = start + html[start..].find("</script>")?;
    let data: Value = serde_json::from_str(&html[start..end]).ok()?;
    data["response"]["code"].as_str().map(str::to_owned)
}

#[tokio::test]
async fn consent_screen_offers_time_based_access_for_offline_requests() {
    let emu = start().await;
    let url = format!("{}/o/oauth2/v2/auth", emu.base_url());
    let html = client()
        .get(&url)
        .query(&popup_params(&emu, "offline"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"<fieldset id="access-duration">"#));
    for (id, value) in [
        ("duration-until-removed", ""),
        ("duration-1h", "3600"),
        ("duration-1d", "86400"),
        ("duration-7d", "604800"),
    ] {
        assert!(
            html.contains(&format!(r#"name="access_duration" id="{id}" value="{value}""#)),
            "{id}"
        );
        assert!(
            html.contains(&format!(r#"<label class="duration" for="{id}">"#)),
            "{id}"
        );
    }
    assert!(
        html.contains(r#"id="duration-until-removed" value="" checked>"#),
        "the default"
    );

    let online = client()
        .get(&url)
        .query(&popup_params(&emu, "online"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !online.contains("access_duration"),
        "no refresh token, nothing to limit"
    );

    let testing = Emulator::start(testing(true)).await;
    let url = format!("{}/o/oauth2/v2/auth", testing.base_url());
    let query = popup_params(&testing, "offline");
    let html = client()
        .get(&url)
        .query(&query)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("consent screen is in Testing"));
}

#[tokio::test]
async fn allow_with_a_limited_time_mints_a_time_limited_code() {
    let emu = start().await;
    let (status, html) = allow_for(&emu, "86400").await;
    assert_eq!(status, 200);
    let (_, body) = json_of(exchange(&emu, &code_in(&html).unwrap()).await).await;
    assert_eq!(expires_in(&body), Some(DAY));

    let (status, html) = allow_for(&emu, "").await;
    assert_eq!(status, 200);
    let (_, body) = json_of(exchange(&emu, &code_in(&html).unwrap()).await).await;
    assert!(body["refresh_token"].is_string());
    assert_eq!(expires_in(&body), None, "until I remove access");

    for bad in ["0", "-5", "1.5", "soon", "99999999999"] {
        let (status, html) = allow_for(&emu, bad).await;
        assert_eq!(status, 400, "{bad}");
        assert!(html.contains("invalid_request") && code_in(&html).is_none(), "{bad}");
    }
}

#[tokio::test]
async fn binary_runs_a_consent_screen_in_testing() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_google-emulator"))
        .args(["--port", "0", "--publishing-status", "testing"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the binary");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("google-emulator listening on ")
        .map(str::to_owned);
    let config = match &base {
        Some(base) => Some(get_json(&format!("{base}/emulator/config")).await),
        None => None,
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let (status, config) = config.unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    assert_eq!((status, &config["publishing_status"]), (200, &json!("testing")));
}
