//! A `scope` parameter on a refresh asks for a subset of the grant (RFC 6749 §6).

mod common;

use common::*;
use google_emulator::{CodeRequest, SCOPE_CALENDAR, SCOPE_CALENDAR_EVENTS, SCOPE_EMAIL, SCOPE_OPENID, SCOPE_PROFILE};
use serde_json::Value;

async fn calendar_grant(emu: &google_emulator::Emulator, sub: &str) -> String {
    let scopes = [SCOPE_OPENID, SCOPE_EMAIL, SCOPE_PROFILE, SCOPE_CALENDAR_EVENTS];
    let body = sign_in(emu, CodeRequest::new(sub).scopes(scopes)).await;
    body["refresh_token"].as_str().unwrap().to_owned()
}

fn access_token(body: &Value) -> &str {
    body["access_token"].as_str().unwrap()
}

#[tokio::test]
async fn a_narrowed_token_carries_exactly_the_requested_scopes() {
    let emu = start().await;
    let refresh_token = calendar_grant(&emu, "u1").await;
    let (status, body) = json_of(refresh_scoped(&emu, &refresh_token, SCOPE_CALENDAR_EVENTS).await).await;
    assert_eq!(status, 200);
    assert_eq!(body["scope"], SCOPE_CALENDAR_EVENTS);
    assert!(body.get("id_token").is_none(), "no openid asked, no ID token");
    assert_eq!(insert_status(&emu, access_token(&body)).await, 200);
}

#[tokio::test]
async fn calendar_refuses_a_token_narrowed_away_from_calendar() {
    let emu = start().await;
    let refresh_token = calendar_grant(&emu, "u1").await;
    let (status, body) = json_of(refresh_scoped(&emu, &refresh_token, "openid email").await).await;
    assert_eq!(status, 200);
    assert_eq!(scopes_of(&body), vec![SCOPE_EMAIL.to_owned(), SCOPE_OPENID.to_owned()]);
    assert!(body["id_token"].is_string());
    // The grant has Calendar; this token does not, and Calendar looks at the token.
    assert!(emu.granted_scopes("u1").contains(&SCOPE_CALENDAR_EVENTS.to_owned()));
    assert_eq!(insert_status(&emu, access_token(&body)).await, 403);
    let (_, full) = json_of(refresh(&emu, &refresh_token).await).await;
    assert_eq!(scopes_of(&full).len(), 4, "without scope: the whole grant");
    assert_eq!(insert_status(&emu, access_token(&full)).await, 200);
}

#[tokio::test]
async fn a_scope_outside_the_grant_is_invalid_scope_and_kills_nothing() {
    let emu = start().await;
    let refresh_token = calendar_grant(&emu, "u1").await;
    // `calendar` is broader than the granted `calendar.events`: no stand-in.
    for scope in [
        SCOPE_CALENDAR.to_owned(),
        format!("{SCOPE_CALENDAR_EVENTS} https://www.googleapis.com/auth/drive"),
        "openid calendar.events".to_owned(),
    ] {
        let (status, body) = json_of(refresh_scoped(&emu, &refresh_token, &scope).await).await;
        assert_eq!(status, 400, "{scope}");
        assert_eq!(body["error"], "invalid_scope", "{scope}");
    }
    let narrow_grant = sign_in(&emu, CodeRequest::new("u2").scopes([SCOPE_OPENID, SCOPE_CALENDAR])).await;
    let other = narrow_grant["refresh_token"].as_str().unwrap();
    let (status, _) = json_of(refresh_scoped(&emu, other, SCOPE_CALENDAR_EVENTS).await).await;
    assert_eq!(status, 400, "calendar does not stand in for calendar.events either");

    assert_eq!(refresh(&emu, &refresh_token).await.status(), 200, "the grant lives on");
    assert_eq!(emu.user_refresh_tokens_live("u1"), 1);
}

#[tokio::test]
async fn email_and_profile_stand_for_their_userinfo_scopes_both_ways() {
    let emu = start().await;
    let refresh_token = calendar_grant(&emu, "u1").await;
    let (status, body) = json_of(refresh_scoped(&emu, &refresh_token, "email profile").await).await;
    assert_eq!(status, 200);
    assert_eq!(scopes_of(&body), vec![SCOPE_EMAIL.to_owned(), SCOPE_PROFILE.to_owned()]);

    // A grant recorded under the short names answers a request for the long ones.
    let short = sign_in(&emu, CodeRequest::new("u2").scopes(["openid", "email", "profile"])).await;
    let short_token = short["refresh_token"].as_str().unwrap();
    let (status, body) = json_of(refresh_scoped(&emu, short_token, SCOPE_EMAIL).await).await;
    assert_eq!(status, 200);
    assert_eq!(body["scope"], "email", "named as the grant names it");
}

#[tokio::test]
async fn an_empty_scope_is_the_whole_grant() {
    let emu = start().await;
    let refresh_token = calendar_grant(&emu, "u1").await;
    let (status, body) = json_of(refresh_scoped(&emu, &refresh_token, " ").await).await;
    assert_eq!(status, 200);
    assert_eq!(scopes_of(&body).len(), 4);
}
