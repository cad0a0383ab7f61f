//! Grant lifetime (docs/grant-lifetime.md): when Google will end a grant is in every
//! answer that describes it, and the sweeper announces grants about to end, keeps idle
//! ones alive, reads only the grants that are due, and places grants stored before its
//! index existed into it. Against moto and the Google emulator.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures::StreamExt as _;
use integration_tests::google_emulator::CodeRequest;
use integration_tests::offline::{Invoke as _, retried};
use integration_tests::{CALENDAR_EVENTS, Options, Reply, Stack};
use serde_json::{Value, json};
use shared::Secret;
use shared::aws::item::{Item, encode};
use shared::aws::sweep::DynamoSweepIndex;
use shared::cases::{Sweeper, Swept};
use shared::google::id_token::unix_now;
use shared::grant::{Ciphertext, DAY, Grant, GrantStatus, Profile, SealedToken, SweepPolicy, TokenIds, rfc3339};
use shared::ports::{GrantStore as _, SweepIndex as _};
use shared::types::{ScopeSet, Sub};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn days(n: u64) -> Duration {
    Duration::from_secs(n * 24 * 3600)
}

/// An RFC 3339 timestamp of an answer, as Unix seconds.
fn unix(value: &Value) -> i64 {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not an RFC 3339 string: {value}"));
    OffsetDateTime::parse(text, &Rfc3339)
        .unwrap_or_else(|e| panic!("{text} is not RFC 3339: {e}"))
        .unix_timestamp()
}

/// A sign-in with offline access that Google will end after `lifetime`.
async fn sign_in_for(stack: &Stack, sub: &str, lifetime: Duration) -> Reply {
    let code = stack
        .google
        .mint_code(CodeRequest::new(sub).consent(true).refresh_token_lifetime(lifetime));
    let reply = stack.exchange(&code).await;
    assert_eq!(reply.status, 200, "time-limited sign-in: {}", reply.body);
    reply
}

/// `grant_expires_at` is in the answer, and null.
fn assert_no_expiry(body: &Value, what: &str) {
    assert!(
        body.as_object().is_some_and(|o| o.contains_key("grant_expires_at")),
        "{what}: grant_expires_at missing: {body}"
    );
    assert!(body["grant_expires_at"].is_null(), "{what}: {body}");
}

#[tokio::test]
async fn a_time_limited_grant_shows_its_expiry_in_all_four_answers_until_an_ordinary_sign_in() {
    let stack = Stack::start().await;
    let tokens = stack.tokens();
    let signed_in = sign_in_for(&stack, "life1", days(3)).await;
    let expiry = &signed_in.body["grant_expires_at"];
    let expected = unix_now() + 3 * DAY;
    assert!((unix(expiry) - expected).abs() <= 10, "three days from now: {expiry}");
    let bearer = signed_in.body["id_token"].as_str().unwrap().to_owned();

    // Connecting Calendar brings no new refresh token: the time-limited one stays.
    let code = stack
        .google
        .mint_code(CodeRequest::new("life1").scopes(["openid", CALENDAR_EVENTS]));
    let upgraded = stack.upgrade(&bearer, &code, &[CALENDAR_EVENTS]).await;
    assert_eq!(upgraded.status, 200, "{}", upgraded.body);
    assert_eq!(&upgraded.body["grant_expires_at"], expiry, "upgrade");
    let me = stack.me(&bearer).await;
    assert_eq!(&me.body["grant_expires_at"], expiry, "GET /me");
    let vended = tokens.invoke(json!({"sub": "life1"})).await;
    assert!(vended["access_token"].is_string(), "{vended}");
    assert_eq!(&vended["grant_expires_at"], expiry, "tokens");

    // An ordinary sign-in (consent, no time limit) stores a token Google does not end.
    let code = stack.google.mint_code(CodeRequest::new("life1").consent(true));
    let again = stack.exchange(&code).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["offline_access"], true);
    assert_no_expiry(&again.body, "exchange");
    let code = stack
        .google
        .mint_code(CodeRequest::new("life1").scopes(["openid", CALENDAR_EVENTS]));
    let upgraded = stack.upgrade(&bearer, &code, &[CALENDAR_EVENTS]).await;
    assert_eq!(upgraded.status, 200, "{}", upgraded.body);
    assert_no_expiry(&upgraded.body, "upgrade");
    assert_no_expiry(&stack.me(&bearer).await.body, "GET /me");
    let vended = tokens.invoke(json!({"sub": "life1"})).await;
    assert!(vended["access_token"].is_string(), "{vended}");
    assert_no_expiry(&vended, "tokens");
    let item = stack.grant_item("life1").await.unwrap();
    assert!(
        !item.contains_key("refresh_token_expires_at"),
        "expiry cleared in the table"
    );
}

#[tokio::test]
async fn the_sweeper_announces_a_grant_ending_within_the_notice_period_once() {
    let stack = Stack::start().await;
    let bus = stack.bus().await;
    let publisher = stack.publisher(Some(&bus));
    let soon = sign_in_for(&stack, "ends-soon", days(3)).await;
    sign_in_for(&stack, "ends-later", days(30)).await;
    // The sign-ins' own events first, so that only the sweep's are looked at below.
    let mut seen = 0;
    let answer = publisher.invoke(stack.stream_event_since(&mut seen).await).await;
    assert!(retried(&answer).is_empty(), "{answer}");
    let connected: Vec<String> = bus.events().await.into_iter().map(|(kind, _)| kind).collect();
    assert_eq!(connected, ["GrantConnected", "GrantConnected"]);

    let swept = stack.sweeper(&Options::default()).invoke(json!({})).await;
    assert_eq!(
        swept,
        json!({"expiring": 1, "kept_alive": 0, "reauthorization_required": 0, "more": false})
    );
    let noticed = stack.grant_item("ends-soon").await.unwrap();
    let expiry = unix(&soon.body["grant_expires_at"]);
    assert_eq!(
        noticed["expiry_notice_for"],
        AttributeValue::N(expiry.to_string()),
        "the notice is recorded on the grant"
    );
    let later = stack.grant_item("ends-later").await.unwrap();
    assert!(!later.contains_key("expiry_notice_for"), "30 days away: no notice");

    let answer = publisher.invoke(stack.stream_event_since(&mut seen).await).await;
    assert!(retried(&answer).is_empty(), "{answer}");
    let events = bus.events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    let (kind, detail) = &events[0];
    assert_eq!(kind, "GrantExpiring");
    assert_eq!(detail["sub"], "ends-soon");
    assert_eq!(detail["expires_at"], soon.body["grant_expires_at"]);
    assert_eq!(detail["scopes"], soon.body["granted_scopes"]);
    assert!(detail["event_id"].as_str().is_some_and(|id| !id.is_empty()), "{detail}");

    // A second run the same day, or a retried delivery of the schedule, in another
    // container: nothing is recorded and nothing sent again.
    let again = stack.sweeper(&Options::default()).invoke(json!({})).await;
    assert_eq!(again["expiring"], 0, "{again}");
    let answer = publisher.invoke(stack.stream_event_since(&mut seen).await).await;
    assert!(retried(&answer).is_empty(), "{answer}");
    let events = bus.events().await;
    assert!(events.is_empty(), "nothing more on the bus: {events:?}");
}

#[tokio::test]
async fn with_keep_alive_after_zero_days_idle_grants_are_refreshed_and_revoked_ones_marked() {
    // Every function writes grants into the sweep index with the same periods.
    let keep_alive_now = Options::default().env("KEEP_ALIVE_AFTER_DAYS", "0");
    let stack = Stack::start_with(keep_alive_now.clone()).await;
    let idle = stack.sign_in("idle").await;
    let revoked = stack.sign_in("revoked").await;
    assert!(stack.google.revoke_user("revoked"));
    let bus = stack.bus().await;
    let publisher = stack.publisher(Some(&bus));
    let mut seen = 0;
    publisher.invoke(stack.stream_event_since(&mut seen).await).await;
    assert_eq!(bus.events().await.len(), 2, "the two sign-ins");
    stack.google.reset_hits();

    let swept = stack.sweeper(&keep_alive_now).invoke(json!({})).await;
    assert_eq!(
        swept,
        json!({"expiring": 0, "kept_alive": 1, "reauthorization_required": 1, "more": false})
    );
    assert_eq!(stack.google.refreshes_of("idle"), 1, "a keep-alive refresh at Google");
    assert_eq!(stack.google.refreshes_of("revoked"), 1);
    let me = stack.me(&idle).await;
    assert_eq!(
        (me.body["status"].as_str(), &me.body["offline_access"]),
        (Some("active"), &json!(true))
    );
    let me = stack.me(&revoked).await;
    assert_eq!(
        (me.body["status"].as_str(), &me.body["offline_access"]),
        (Some("reauthorization_required"), &json!(false))
    );

    let answer = publisher.invoke(stack.stream_event_since(&mut seen).await).await;
    assert!(retried(&answer).is_empty(), "{answer}");
    let events = bus.events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "GrantReauthorizationRequired");
    assert_eq!(events[0].1["sub"], "revoked");
    assert_eq!(events[0].1["reason"], "invalid_grant");
}

/// A grant as the functions write it: a refresh token (a stand-in ciphertext: the
/// sweeper's notices never decrypt it), last used at `last_used_at`.
fn bulk_grant(sub: &str, expires_at: Option<i64>, last_used_at: i64, now: OffsetDateTime) -> Grant {
    let sub = Sub::parse(sub).expect("a sub");
    Grant {
        profile: Profile {
            email: Some(format!("{sub}@example.com")),
            email_verified: true,
            ..Profile::bare(sub)
        },
        scopes: ["openid", "email", "profile"].into_iter().collect::<ScopeSet>(),
        refresh_token: Some(SealedToken {
            ciphertext: Ciphertext(b"not a KMS ciphertext".to_vec()),
            ids: TokenIds::of(&Secret::new(format!("1//bulk-{last_used_at}"))),
            issued_ms: Some(last_used_at * 1000),
            expires_at,
        }),
        status: GrantStatus::Active,
        status_reason: None,
        version: 1,
        created_at: rfc3339(now),
        updated_at: rfc3339(now),
        last_used_at: Some(last_used_at),
        expiry_noticed: None,
    }
}

/// Writes `items` straight into the table, 25 per BatchWriteItem, a few at once.
async fn batch_write(stack: &Stack, items: Vec<Item>) {
    let batches: Vec<Vec<Item>> = items.chunks(25).map(<[Item]>::to_vec).collect();
    futures::stream::iter(batches)
        .for_each_concurrent(4, |batch| async move {
            let mut requests: Vec<WriteRequest> = batch
                .into_iter()
                .map(|item| {
                    let put = PutRequest::builder().set_item(Some(item)).build().unwrap();
                    WriteRequest::builder().put_request(put).build()
                })
                .collect();
            while !requests.is_empty() {
                let out = stack
                    .dynamodb
                    .batch_write_item()
                    .request_items(&stack.table, requests)
                    .send()
                    .await
                    .expect("BatchWriteItem");
                requests = out
                    .unprocessed_items
                    .and_then(|mut left| left.remove(&stack.table))
                    .unwrap_or_default();
            }
        })
        .await;
}

#[tokio::test]
async fn a_table_of_ten_thousand_grants_with_ten_due_is_swept_reading_about_ten() {
    let stack = Stack::start().await;
    let client_id = stack.google.client_id();
    let policy = SweepPolicy::default();
    let now = OffsetDateTime::now_utc();
    let at = now.unix_timestamp();
    let mut due = Vec::new();
    let items: Vec<Item> = (0..10_000)
        .map(|i| {
            let sub = format!("bulk-{i:05}");
            if i % 1000 == 7 {
                // Google ends it in 3 days: due for its notice since 4 days ago, written
                // at some point since (its bucket is the day of that write).
                let grant = bulk_grant(&sub, Some(at + 3 * DAY), at, now);
                due.push((sub, at + 3 * DAY));
                return encode(&client_id, &grant, &policy, at - (i / 1000 % 4) * DAY);
            }
            // Not due: a keep-alive later, a tenth of them within minutes (in today's
            // buckets, where only the due time keeps them out of the reads), the others
            // up to 150 days from now; some also ending in 30 days (notice due in 23).
            let due_in = if i % 10 == 1 {
                120 + i % 480
            } else {
                3600 + (i * 1297) % (150 * DAY - 3600)
            };
            let last_used = at - 150 * DAY + due_in;
            let expires_at = (i % 3 == 0).then_some(at + 30 * DAY);
            encode(&client_id, &bulk_grant(&sub, expires_at, last_used, now), &policy, at)
        })
        .collect();
    assert_eq!(due.len(), 10);
    let started = Instant::now();
    batch_write(&stack, items).await;
    eprintln!("10,000 grants written in {:?}", started.elapsed());

    let boot = stack.another_boot(&Options::default());
    let index = Arc::new(DynamoSweepIndex::new(boot.table()));
    // The daily sweeper last completed a run 5 days ago (a first run looks back a
    // month: moto is slow to query a big table that many times).
    let five_days_ago = now.date() - time::Duration::days(5);
    index.set_swept_until(five_days_ago).await.unwrap();
    let sweeper = Sweeper::new(index.clone(), Arc::new(boot.access_tokens()), boot.config.sweep);
    let started = Instant::now();
    let swept = sweeper.run().await;
    eprintln!("swept in {:?}, {} items read", started.elapsed(), index.items_read());
    assert_eq!(
        swept,
        Swept {
            expiring: 10,
            kept_alive: 0,
            reauthorization_required: 0,
            more: false
        }
    );
    let read = index.items_read();
    assert!(
        (10..=20).contains(&read),
        "reads proportional to the 10 due grants, not to the table: {read} items read"
    );
    for (sub, expiry) in &due {
        let grant = stack.grants.load(&Sub::parse(sub).unwrap()).await.unwrap().unwrap();
        assert_eq!(grant.expiry_noticed, Some(*expiry), "{sub}");
    }

    // The next run finds nothing due and reads next to nothing.
    let swept = sweeper.run().await;
    assert_eq!(swept, Swept::default());
    assert!(index.items_read() <= read + 2, "{} items read", index.items_read());
}

/// The grant as stored before the sweep index (and uses) existed.
async fn strip_sweep_attributes(stack: &Stack, sub: &str) {
    let key = stack.grant_item(sub).await.expect("a grant")["pk"].clone();
    stack
        .dynamodb
        .update_item()
        .table_name(&stack.table)
        .key("pk", key)
        .update_expression("REMOVE sweep_bucket, sweep_at, last_used_at")
        .send()
        .await
        .expect("UpdateItem");
}

#[tokio::test]
async fn grants_stored_before_the_sweep_index_are_placed_in_it_by_the_backfill_then_swept() {
    let stack = Stack::start().await;
    for sub in ["before1", "before2"] {
        stack.sign_in(sub).await;
        strip_sweep_attributes(&stack, sub).await;
    }
    // Neither the progress item nor anything else that is not a grant is backfilled.
    let keep_alive_now = Options::default().env("KEEP_ALIVE_AFTER_DAYS", "0");
    let sweeper = stack.sweeper(&keep_alive_now);
    stack.google.reset_hits();
    let swept = sweeper.invoke(json!({})).await;
    assert_eq!(swept["kept_alive"], 0, "not in the index yet: {swept}");
    assert_eq!(stack.google.hits().token_refresh, 0);

    let backfilled = sweeper.invoke(json!({"backfill": true})).await;
    assert_eq!(backfilled, json!({"backfilled": 2, "more": false, "from": null}));
    for sub in ["before1", "before2"] {
        let item = stack.grant_item(sub).await.unwrap();
        assert!(
            item.contains_key("sweep_bucket") && item.contains_key("sweep_at"),
            "{sub} is in the index: {item:?}"
        );
    }

    let swept = sweeper.invoke(json!({})).await;
    assert_eq!(
        swept,
        json!({"expiring": 0, "kept_alive": 2, "reauthorization_required": 0, "more": false})
    );
    assert_eq!(
        (
            stack.google.refreshes_of("before1"),
            stack.google.refreshes_of("before2")
        ),
        (1, 1)
    );
    let again = sweeper.invoke(json!({"backfill": true})).await;
    assert_eq!(again["backfilled"], 0, "nothing left to place: {again}");
}
