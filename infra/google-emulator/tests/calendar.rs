//! Calendar `events.insert` / `events.get`: auth, scopes, ids and storage.

mod common;

use common::*;
use google_emulator::{CodeRequest, Emulator, EmulatorConfig, SCOPE_CALENDAR_EVENTS};
use serde_json::{Value, json};

fn event() -> Value {
    json!({
        "summary": "Standup",
        "start": {"dateTime": "2031-01-02T09:00:00Z"},
        "end": {"dateTime": "2031-01-02T09:15:00Z"},
    })
}

async fn calendar_token(emu: &Emulator, sub: &str) -> String {
    let body = sign_in(emu, CodeRequest::new(sub).scopes([SCOPE_CALENDAR_EVENTS])).await;
    body["access_token"].as_str().unwrap().to_owned()
}

async fn insert(emu: &Emulator, token: &str, calendar: &str, body: &Value) -> (u16, Value) {
    let url = format!("{}/calendars/{calendar}/events?sendUpdates=all", emu.calendar_api_url());
    json_of(client().post(url).bearer_auth(token).json(body).send().await.unwrap()).await
}

#[tokio::test]
async fn insert_returns_googles_event_resource() {
    let emu = start().await;
    let token = calendar_token(&emu, "u1").await;
    let (status, created) = insert(&emu, &token, "primary", &event()).await;
    assert_eq!(status, 200);
    assert_eq!(created["kind"], "calendar#event");
    assert_eq!(created["summary"], "Standup");
    assert_eq!(created["start"], event()["start"]);
    assert_eq!(created["status"], "confirmed");
    assert_eq!(created["reminders"], json!({"useDefault": true}));
    assert_eq!(created["sequence"], 0);
    assert_eq!(created["organizer"], json!({"email": "u1@example.com", "self": true}));
    let id = created["id"].as_str().unwrap();
    assert!(id.len() >= 5 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b)));
    assert_eq!(created["iCalUID"], format!("{id}@google.com"));
    assert!(
        created["htmlLink"]
            .as_str()
            .unwrap()
            .starts_with("https://www.google.com/calendar/event?eid=")
    );
    assert!(created["created"].as_str().unwrap().ends_with('Z'));
    assert!(created["etag"].as_str().unwrap().starts_with('"'));

    let stored = emu.stored_events("u1", "primary");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].event, created);
    assert_eq!(stored[0].send_updates.as_deref(), Some("all"));

    let url = format!("{}/calendars/primary/events/{id}", emu.calendar_api_url());
    let (status, fetched) = json_of(client().get(&url).bearer_auth(&token).send().await.unwrap()).await;
    assert_eq!((status, fetched), (200, created));
}

#[tokio::test]
async fn calendar_id_is_percent_decoded_and_scoped_per_user() {
    let emu = start().await;
    let token = calendar_token(&emu, "u1").await;
    let (status, _) = insert(&emu, &token, "team%40group.calendar.google.com", &event()).await;
    assert_eq!(status, 200);
    assert_eq!(emu.events("u1", "team@group.calendar.google.com").len(), 1);
    assert!(emu.events("u1", "primary").is_empty());
    assert!(emu.events("u2", "team@group.calendar.google.com").is_empty());
}

#[tokio::test]
async fn bad_credentials_are_401() {
    let emu = Emulator::start(EmulatorConfig {
        access_token_ttl_secs: 0,
        ..EmulatorConfig::default()
    })
    .await;
    let expired = calendar_token(&emu, "u1").await;
    for token in [expired.as_str(), "ya29.unknown"] {
        let (status, body) = insert(&emu, token, "primary", &event()).await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
        assert_eq!(body["error"]["errors"][0]["reason"], "authError");
    }
    let url = format!("{}/calendars/primary/events", emu.calendar_api_url());
    let response = client().post(url).json(&event()).send().await.unwrap();
    assert_eq!(response.status(), 401, "no Authorization header");
    assert!(emu.events("u1", "primary").is_empty());
}

#[tokio::test]
async fn revoked_and_expired_access_tokens_stop_working() {
    let emu = start().await;
    let token = calendar_token(&emu, "u1").await;
    emu.expire_access_tokens("u1");
    assert_eq!(insert(&emu, &token, "primary", &event()).await.0, 401);
    let token = calendar_token(&emu, "u1").await;
    assert_eq!(insert(&emu, &token, "primary", &event()).await.0, 200);
    assert!(emu.revoke_user("u1"));
    assert_eq!(insert(&emu, &token, "primary", &event()).await.0, 401);
}

#[tokio::test]
async fn token_without_calendar_scope_is_403() {
    let emu = start().await;
    let body = sign_in(&emu, CodeRequest::new("u1")).await;
    let (status, body) = insert(&emu, body["access_token"].as_str().unwrap(), "primary", &event()).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["errors"][0]["reason"], "insufficientPermissions");
    assert_eq!(body["error"]["status"], "PERMISSION_DENIED");
    assert!(emu.events("u1", "primary").is_empty());
}

#[tokio::test]
async fn client_ids_are_validated_and_unique_per_calendar() {
    let emu = start().await;
    let token = calendar_token(&emu, "u1").await;
    let mut body = event();
    body["id"] = json!("abc0123456789v");
    let (status, created) = insert(&emu, &token, "primary", &body).await;
    assert_eq!((status, created["id"].as_str()), (200, Some("abc0123456789v")));
    let (status, conflict) = insert(&emu, &token, "primary", &body).await;
    assert_eq!(status, 409);
    assert_eq!(conflict["error"]["errors"][0]["reason"], "duplicate");
    assert_eq!(conflict["error"]["message"], "The requested identifier already exists.");
    assert_eq!(
        insert(&emu, &token, "other", &body).await.0,
        200,
        "ids are per calendar"
    );
    for bad in [json!("abcd"), json!("abcdz"), json!("ABCDE"), json!(12345)] {
        body["id"] = bad;
        let (status, error) = insert(&emu, &token, "primary", &body).await;
        assert_eq!(
            (status, &error["error"]["errors"][0]["reason"]),
            (400, &json!("invalid"))
        );
    }
    assert_eq!(emu.events("u1", "primary").len(), 1);
}

#[tokio::test]
async fn non_object_body_is_400_and_unknown_event_is_404() {
    let emu = start().await;
    let token = calendar_token(&emu, "u1").await;
    assert_eq!(insert(&emu, &token, "primary", &json!([1, 2])).await.0, 400);
    let url = format!("{}/calendars/primary/events/abcdef", emu.calendar_api_url());
    let (status, body) = json_of(client().get(url).bearer_auth(&token).send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["errors"][0]["reason"], "notFound");
}
