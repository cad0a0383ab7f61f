//! The barrier fault (requests answered only once N of them are in flight)
//! and the refresh counters per user and per refresh token.

mod common;

use std::time::{Duration, Instant};

use common::*;
use google_emulator::{BarrierStats, CodeRequest, Emulator, Endpoint, Fault, SCOPE_CALENDAR_EVENTS, SCOPE_OPENID};
use serde_json::{Value, json};
use tokio::task::JoinSet;

async fn refresh_token_of(emu: &Emulator, sub: &str) -> String {
    let body = sign_in(emu, CodeRequest::new(sub).scopes([SCOPE_OPENID, SCOPE_CALENDAR_EVENTS])).await;
    body["refresh_token"].as_str().unwrap().to_owned()
}

/// `n` refreshes sent at once; their statuses and error bodies, in completion order.
async fn refreshes_at_once(emu: &Emulator, refresh_token: &str, n: usize) -> Vec<(u16, Value)> {
    let form = vec![
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", refresh_token.to_owned()),
        ("client_id", emu.client_id()),
        ("client_secret", emu.client_secret()),
    ];
    let mut set = JoinSet::new();
    for _ in 0..n {
        let request = client().post(emu.token_url()).form(&form);
        set.spawn(async move { json_of(request.send().await.unwrap()).await });
    }
    set.join_all().await
}

#[tokio::test]
async fn token_barrier_answers_once_all_parties_are_in_flight() {
    let emu = start().await;
    let refresh_token = refresh_token_of(&emu, "u1").await;
    emu.inject(Fault::barrier(Endpoint::Token, 8, Duration::from_secs(10)));
    let answers = refreshes_at_once(&emu, &refresh_token, 8).await;
    assert!(answers.iter().all(|(status, _)| *status == 200), "{answers:?}");
    assert_eq!(emu.barrier_stats(), BarrierStats { released: 1, broken: 0 });
    // The fault is used up: a lone refresh is answered at once.
    let started = Instant::now();
    assert_eq!(refresh(&emu, &refresh_token).await.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn an_incomplete_group_fails_after_the_timeout_and_the_barrier_stays_broken() {
    let emu = start().await;
    let refresh_token = refresh_token_of(&emu, "u1").await;
    emu.inject(Fault::barrier(Endpoint::Token, 8, Duration::from_millis(300)));
    let started = Instant::now();
    let answers = refreshes_at_once(&emu, &refresh_token, 7).await;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "held until the timeout"
    );
    for (status, body) in &answers {
        assert_eq!(*status, 400, "{body}");
        assert_eq!(body["error"], "invalid_request", "no client retries it");
        let description = body["error_description"].as_str().unwrap();
        assert!(
            description.contains("barrier") && description.contains("7 of 8"),
            "{description}"
        );
    }
    // The eighth unit fails at once: a late request does not rescue a broken group.
    let started = Instant::now();
    let (status, _) = json_of(refresh(&emu, &refresh_token).await).await;
    assert_eq!(status, 400);
    assert!(started.elapsed() < Duration::from_millis(300));
    assert_eq!(emu.barrier_stats(), BarrierStats { released: 0, broken: 1 });
    assert_eq!(refresh(&emu, &refresh_token).await.status(), 200, "fault used up");
}

#[tokio::test]
async fn calendar_barrier_holds_inserts_in_groups() {
    let emu = start().await;
    let body = sign_in(&emu, CodeRequest::new("u1").scopes([SCOPE_CALENDAR_EVENTS])).await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    // Two groups of three.
    emu.inject(Fault::barrier(Endpoint::CalendarInsert, 3, Duration::from_secs(10)).times(6));
    let url = format!("{}/calendars/primary/events", emu.calendar_api_url());
    let mut set = JoinSet::new();
    for i in 0..6 {
        let request = client()
            .post(&url)
            .bearer_auth(&token)
            .json(&json!({"summary": format!("e{i}")}));
        set.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    assert_eq!(set.join_all().await, vec![200; 6]);
    assert_eq!(emu.events("u1", "primary").len(), 6);
    assert_eq!(emu.barrier_stats(), BarrierStats { released: 2, broken: 0 });
    assert_eq!(emu.hits().calendar_insert, 6);
}

#[tokio::test]
async fn calendar_barrier_failure_is_a_google_api_error() {
    let emu = start().await;
    emu.inject(Fault::barrier(Endpoint::CalendarInsert, 2, Duration::from_millis(100)));
    let url = format!("{}/calendars/primary/events", emu.calendar_api_url());
    let response = client().post(url).bearer_auth("ya29.x").json(&json!({})).send().await;
    let (status, body) = json_of(response.unwrap()).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["errors"][0]["reason"], "badRequest");
    assert!(body["error"]["message"].as_str().unwrap().contains("1 of 2"));
}

#[tokio::test]
async fn barrier_over_the_control_api() {
    let emu = start().await;
    let refresh_token = refresh_token_of(&emu, "u1").await;
    let fault = json!({"endpoint": "token", "kind": "barrier", "parties": 4, "timeout_ms": 10000});
    assert_eq!(control(&emu, "faults", fault).await.0, 200);
    let answers = refreshes_at_once(&emu, &refresh_token, 4).await;
    assert!(answers.iter().all(|(status, _)| *status == 200), "{answers:?}");
    let (status, stats) = get_json(&format!("{}/emulator/barriers", emu.base_url())).await;
    assert_eq!((status, stats), (200, json!({"released": 1, "broken": 0})));
    let bad = json!({"endpoint": "token", "kind": "barrier", "parties": 0});
    assert_eq!(control(&emu, "faults", bad).await.0, 400);
}

#[tokio::test]
async fn refreshes_are_counted_per_user_and_per_refresh_token() {
    let emu = start().await;
    let ada = refresh_token_of(&emu, "ada").await;
    let grace_first = refresh_token_of(&emu, "grace").await;
    let grace_second = sign_in(&emu, CodeRequest::new("grace").consent(true)).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..3 {
        refresh(&emu, &ada).await;
    }
    refresh(&emu, &grace_first).await;
    refresh_scoped(&emu, &grace_second, &format!("{SCOPE_CALENDAR_EVENTS} openid")).await;
    refresh_scoped(&emu, &grace_second, &format!("openid {SCOPE_CALENDAR_EVENTS}")).await;
    // Faulted refreshes count too, like every hit; unknown tokens belong to nobody.
    emu.inject(Fault::status(Endpoint::Token, 503));
    refresh(&emu, &ada).await;
    refresh(&emu, "1//0gnobody").await;

    assert_eq!(emu.refreshes_of("ada"), 4);
    assert_eq!(emu.refreshes_of("grace"), 3);
    assert_eq!(emu.refreshes_of("nobody"), 0);
    assert_eq!(emu.refreshes_with(&grace_first), 1);
    assert_eq!(emu.refreshes_with(&grace_second), 2);
    assert_eq!(emu.hits().token_refresh, 8);
    let hits = emu.refresh_hits();
    let scope_key = format!("{SCOPE_CALENDAR_EVENTS} openid");
    assert_eq!(hits.by_user_and_scope["grace"][""], 1);
    assert_eq!(hits.by_user_and_scope["grace"][&scope_key], 2, "normalised and sorted");

    let (status, body) = get_json(&format!("{}/emulator/hits/refreshes", emu.base_url())).await;
    assert_eq!(status, 200);
    assert_eq!(body["by_user"], json!({"ada": 4, "grace": 3}));
    assert_eq!(body["by_user_and_scope"]["ada"], json!({"": 4}));
    // `/emulator/hits` stays a flat map of numbers (scripts subtract snapshots).
    let (_, flat) = get_json(&format!("{}/emulator/hits", emu.base_url())).await;
    assert!(flat.as_object().unwrap().values().all(Value::is_u64), "{flat}");

    // A revoked token is still attributed to its user.
    emu.revoke_user("ada");
    assert_eq!(refresh(&emu, &ada).await.status(), 400);
    assert_eq!(emu.refreshes_of("ada"), 5);

    control(&emu, "hits/reset", json!({})).await;
    assert_eq!(emu.refreshes_of("ada"), 0);
    assert_eq!(emu.refreshes_with(&grace_second), 0);
    assert_eq!(emu.refresh_hits(), Default::default());
}
