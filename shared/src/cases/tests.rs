//! Unit tests of the use cases over the in-memory ports: the event
//! refresh/insert/replay loop, access-token reuse and narrowing, the fleet's shared
//! tokens, sign-in and upgrade, disconnect and the Cross-Account Protection failure
//! paths, in milliseconds.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::grants::Holding;
use super::*;
use crate::error::ApiError;
use crate::event::validate;
use crate::grant::{DAY, GrantStatus, RemovalReason, TokenIds};
use crate::memory::{FakeGoogle, MemoryGrants, MemoryReplay, MemorySealer, MemoryShared, SeededRandom, TestClock};
use crate::ports::{Clock, SharedTokens as _, TokenEndpoint as _};
use crate::secret::Secret;
use crate::security::{RiscKind, SecurityEvent, Subject, TokenLookup};
use crate::system::Ambient;
use crate::types::{CALENDAR_EVENTS_SCOPE, CalendarId, IdempotencyKey, ScopeSet, SendUpdates, Sub};
use crate::upstream::{CalendarError, TokenError};

const T0: i64 = 1_900_000_000;

fn s(raw: &str) -> Sub {
    Sub::parse(raw).unwrap()
}

struct World {
    grants: Arc<MemoryGrants>,
    sealer: Arc<MemorySealer>,
    google: Arc<FakeGoogle>,
    replay: Arc<MemoryReplay>,
    clock: Arc<TestClock>,
    ambient: Ambient,
    sign_in: SignIn,
    access: Arc<AccessTokens>,
    events: CalendarEvents,
}

fn world() -> World {
    let clock = Arc::new(TestClock::at_unix(T0));
    let ambient = Ambient {
        clock: clock.clone(),
        random: Arc::new(SeededRandom::new(7)),
    };
    let grants = Arc::new(MemoryGrants::default());
    let sealer = Arc::new(MemorySealer::default());
    let google = Arc::new(FakeGoogle::with_clock(clock.clone()));
    let access = Arc::new(AccessTokens::new(
        grants.clone(),
        sealer.clone(),
        google.clone(),
        ambient.clone(),
    ));
    World {
        sign_in: SignIn::new(
            google.clone(),
            google.clone(),
            sealer.clone(),
            grants.clone(),
            ambient.clone(),
        ),
        events: CalendarEvents::new(access.clone(), google.clone()),
        access,
        replay: Arc::new(MemoryReplay::default()),
        clock,
        ambient,
        grants,
        sealer,
        google,
    }
}

impl World {
    /// Signs `sub` in with offline access and the Calendar scope; `rt` is the
    /// refresh token Google issued.
    async fn connect(&self, sub: &str, rt: &str) {
        self.google
            .code("c1", sub, &["openid", CALENDAR_EVENTS_SCOPE], Some(rt));
        self.sign_in.exchange(&Secret::new("c1"), "postmessage").await.unwrap();
    }

    async fn create(&self, sub: &str, key: Option<&str>) -> Result<Created, ApiError> {
        let event = json!({"start": {"date": "2031-01-01"}, "end": {"date": "2031-01-02"}});
        let new = NewEvent {
            calendar: CalendarId::primary(),
            send_updates: SendUpdates::None,
            key: key.and_then(IdempotencyKey::parse),
            event: validate(event).unwrap(),
        };
        self.events.create(&s(sub), new, None).await
    }

    fn grant(&self, sub: &str) -> Option<crate::grant::Grant> {
        self.grants.get(&s(sub))
    }

    fn security(&self) -> SecurityEvents {
        SecurityEvents::new(self.grants.clone(), self.replay.clone(), self.ambient.clone())
    }

    fn disconnect(&self) -> Disconnect {
        Disconnect::new(
            self.grants.clone(),
            self.sealer.clone(),
            self.google.clone(),
            self.ambient.clone(),
        )
    }

    /// Another execution environment over the same table and Google.
    fn environment(&self, shared: &Arc<MemoryShared>) -> AccessTokens {
        AccessTokens::new(
            self.grants.clone(),
            self.sealer.clone(),
            self.google.clone(),
            self.ambient.clone(),
        )
        .with_shared(shared.clone())
    }
}

fn risc(jti: &str, kind: RiscKind, subject: Subject) -> SecurityEvent {
    SecurityEvent {
        jti: jti.into(),
        events: vec![(kind, subject)],
    }
}

fn scopes(list: &[&str]) -> ScopeSet {
    list.iter().collect()
}

#[tokio::test]
async fn a_warm_second_event_costs_one_insert_and_no_refresh() {
    let w = world();
    w.connect("u", "rt-u").await;
    w.create("u", None).await.unwrap();
    w.create("u", None).await.unwrap();
    let calls = w.google.calls();
    assert_eq!((calls.refreshes, calls.inserts), (1, 2));
    assert_eq!(
        *w.sealer.opened.lock().unwrap(),
        1,
        "one KMS Decrypt per container and user"
    );
}

#[tokio::test]
async fn tokens_with_five_minutes_or_less_left_are_not_reused() {
    let w = world();
    w.connect("u", "rt-u").await;
    w.google.access_lifetime(Duration::from_secs(299));
    w.create("u", None).await.unwrap();
    w.create("u", None).await.unwrap();
    assert_eq!(w.google.calls().refreshes, 2);
}

#[tokio::test]
async fn a_revoked_access_token_is_refreshed_once_then_the_insert_is_retried() {
    let w = world();
    w.connect("u", "rt-u").await;
    w.create("u", None).await.unwrap();
    w.google.revoke_access_tokens();
    w.create("u", None).await.unwrap();
    assert_eq!((w.google.calls().refreshes, w.google.calls().inserts), (2, 3));
}

#[tokio::test]
async fn a_token_refused_twice_is_an_error_not_a_loop() {
    let w = world();
    w.connect("u", "rt-u").await;
    w.google.fail_insert(CalendarError::Unauthorized);
    w.google.fail_insert(CalendarError::Unauthorized);
    assert_eq!(w.create("u", None).await.unwrap_err().code(), "upstream_error");
    let calls = w.google.calls();
    assert_eq!(
        (calls.refreshes, calls.inserts),
        (2, 2),
        "one refresh after the first refusal only"
    );
}

#[tokio::test]
async fn the_same_key_replays_the_existing_event() {
    let w = world();
    w.connect("u", "rt-u").await;
    let first = w.create("u", Some("order-1")).await.unwrap();
    let again = w.create("u", Some("order-1")).await.unwrap();
    assert_eq!((first.replayed, again.replayed), (false, true));
    assert_eq!(first.event["id"], again.event["id"]);
    assert_eq!(w.google.events().len(), 1);
}

#[tokio::test]
async fn our_own_lost_insert_is_not_a_replay() {
    let w = world();
    w.connect("u", "rt-u").await;
    w.google.fail_insert(CalendarError::Duplicate { ours: true });
    // The fake answers "duplicate" without storing: `get` then finds nothing.
    assert_eq!(w.create("u", Some("k")).await.unwrap_err().code(), "not_found");
}

#[tokio::test]
async fn invalid_grant_marks_the_grant_and_later_calls_skip_google() {
    let w = world();
    w.connect("u", "rt-u").await;
    w.google.kill_refresh_token("rt-u");
    assert_eq!(
        w.create("u", None).await.unwrap_err().code(),
        "reauthorization_required"
    );
    let grant = w.grant("u").unwrap();
    assert_eq!(grant.status, GrantStatus::ReauthorizationRequired);
    assert!(grant.refresh_token.is_none());
    assert_eq!(grant.status_reason.as_deref(), Some("invalid_grant"));
    let before = w.google.calls();
    assert_eq!(
        w.create("u", None).await.unwrap_err().code(),
        "reauthorization_required"
    );
    assert_eq!(w.google.calls(), before);
}

#[tokio::test]
async fn a_token_stored_meanwhile_is_never_marked_dead_for_the_old_ones_death() {
    let w = world();
    w.connect("u", "rt-old").await;
    let old = w.grant("u").unwrap().refresh_token.unwrap().ciphertext;
    w.connect("u", "rt-new").await;
    let random = w.ambient.random.as_ref();
    let now = w.clock.now();
    let dropped = grants::mark_dead(
        w.grants.as_ref(),
        random,
        &s("u"),
        Holding::Ciphertext(&old),
        "invalid_grant",
        now,
    )
    .await
    .unwrap();
    assert!(!dropped);
    assert!(w.grant("u").unwrap().offline_access(), "the newer token survives");
    let dropped = grants::mark_dead(
        w.grants.as_ref(),
        random,
        &s("u"),
        Holding::Any,
        "risc:tokens-revoked",
        now,
    )
    .await
    .unwrap();
    assert!(dropped);
    assert!(!w.grant("u").unwrap().offline_access());
}

#[tokio::test]
async fn refusals_before_google_and_google_failures_map_to_their_codes() {
    let w = world();
    assert_eq!(w.create("nobody", None).await.unwrap_err().code(), "not_connected");
    w.google.code("c", "online", &["openid"], None);
    w.sign_in.exchange(&Secret::new("c"), "postmessage").await.unwrap();
    assert_eq!(w.create("online", None).await.unwrap_err().code(), "scope_required");
    assert_eq!(w.google.calls().refreshes, 0);

    w.connect("u", "rt-u").await;
    w.google.fail_refresh(TokenError::Unavailable("503".into()));
    assert_eq!(w.create("u", None).await.unwrap_err().code(), "upstream_unavailable");
    w.google
        .fail_insert(CalendarError::RateLimited { retry_after: Some(7) });
    let limited = w.create("u", None).await.unwrap_err();
    assert_eq!((limited.code(), limited.retry_after()), ("rate_limited", Some(7)));
    w.google.fail_insert(CalendarError::InsufficientScope);
    assert_eq!(w.create("u", None).await.unwrap_err().code(), "scope_required");
    assert_eq!(w.grant("u").unwrap().status, GrantStatus::Active, "grant not edited");
}

#[tokio::test]
async fn vending_checks_every_requested_scope_and_reuses_the_cached_token() {
    let w = world();
    assert_eq!(
        w.access
            .vend(&s("nobody"), &ScopeSet::default())
            .await
            .unwrap_err()
            .code(),
        "not_connected"
    );
    w.connect("u", "rt-u").await;
    let drive = scopes(&["https://www.googleapis.com/auth/drive.readonly"]);
    match w.access.vend(&s("u"), &drive).await.unwrap_err() {
        ApiError::ScopeRequired { scopes } => assert_eq!(scopes, drive.iter().cloned().collect::<Vec<_>>()),
        other => panic!("{other:?}"),
    }
    let calendar = scopes(&[CALENDAR_EVENTS_SCOPE]);
    let (first, _) = w.access.vend(&s("u"), &calendar).await.unwrap();
    let (second, _) = w.access.vend(&s("u"), &calendar).await.unwrap();
    assert_eq!(first.token, second.token);
    assert_eq!((w.google.calls().refreshes, *w.sealer.opened.lock().unwrap()), (1, 1));
}

#[tokio::test]
async fn a_vended_token_carries_exactly_the_requested_scopes() {
    let w = world();
    w.connect("u", "rt-u").await;
    let (narrow, _) = w.access.vend(&s("u"), &scopes(&[CALENDAR_EVENTS_SCOPE])).await.unwrap();
    assert_eq!(narrow.scopes, scopes(&[CALENDAR_EVENTS_SCOPE]));
    let (all, _) = w.access.vend(&s("u"), &ScopeSet::default()).await.unwrap();
    assert_eq!(all.scopes, scopes(&["openid", CALENDAR_EVENTS_SCOPE]));
    assert_ne!(narrow.token, all.token, "each scope set has its own token");
    // `email` and `userinfo.email` name one scope: one cached token between them.
    w.google.code("c2", "u", &["email"], None);
    w.sign_in.exchange(&Secret::new("c2"), "postmessage").await.unwrap();
    let refreshes = w.google.calls().refreshes;
    let (a, _) = w.access.vend(&s("u"), &scopes(&["email"])).await.unwrap();
    let (b, _) = w
        .access
        .vend(&s("u"), &scopes(&["https://www.googleapis.com/auth/userinfo.email"]))
        .await
        .unwrap();
    assert_eq!((a.token, w.google.calls().refreshes), (b.token, refreshes + 1));
}

#[tokio::test]
async fn a_narrowed_refresh_google_refuses_is_scope_required_and_the_grant_lives() {
    let w = world();
    w.connect("u", "rt-u").await;
    w.google.fail_refresh(TokenError::InvalidScope);
    let err = w
        .access
        .vend(&s("u"), &scopes(&[CALENDAR_EVENTS_SCOPE]))
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.code()), (403, "scope_required"));
    assert!(w.grant("u").unwrap().offline_access());
}

#[tokio::test]
async fn a_use_at_google_is_recorded_at_most_daily_without_a_new_version() {
    let w = world();
    w.connect("u", "rt-u").await;
    let signed_in = w.grant("u").unwrap();
    assert_eq!(signed_in.last_used_at, Some(T0));
    w.clock.advance(Duration::from_secs(2 * DAY as u64));
    w.access.vend(&s("u"), &ScopeSet::default()).await.unwrap();
    let used = w.grant("u").unwrap();
    assert_eq!(
        used.version, signed_in.version,
        "the caches keyed by version stay valid"
    );
    assert!(used.last_used_at.unwrap() >= T0 + 2 * DAY);
    w.google.access_lifetime(Duration::from_secs(100));
    w.access.vend(&s("u"), &scopes(&["openid"])).await.unwrap();
    assert_eq!(w.grant("u").unwrap().last_used_at, used.last_used_at, "not twice a day");
}

#[tokio::test]
async fn a_sign_in_whose_refresh_token_ends_within_seven_days_is_counted_for_its_alarm() {
    use crate::telemetry::{invocation, recorded};
    let w = world();
    let sign_in = |sub: &'static str, days: i64| {
        let w = &w;
        async move {
            let code = format!("c-{sub}");
            w.google
                .code_with_lifetime(&code, sub, &["openid"], Some(&format!("rt-{sub}")), Some(days * DAY));
            invocation(async {
                w.sign_in.exchange(&Secret::new(&code), "postmessage").await.unwrap();
                recorded("GrantExpiresSoon")
            })
            .await
        }
    };
    assert_eq!(sign_in("testing", 7).await, 1.0, "a Testing app's 7-day token");
    assert_eq!(sign_in("chosen", 30).await, 0.0);
}

#[tokio::test]
async fn time_limited_access_is_recorded_and_a_plain_sign_in_clears_it() {
    let w = world();
    w.google
        .code_with_lifetime("c1", "u", &["openid"], Some("rt-1"), Some(3 * DAY));
    let signed_in = w.sign_in.exchange(&Secret::new("c1"), "postmessage").await.unwrap();
    assert_eq!(signed_in.grant.expires_at(), Some(T0 + 3 * DAY));
    w.google.code("c2", "u", &["openid"], Some("rt-2"));
    let again = w.sign_in.exchange(&Secret::new("c2"), "postmessage").await.unwrap();
    assert_eq!(again.grant.expires_at(), None);
}

#[tokio::test]
async fn sign_in_keeps_the_stored_refresh_token_and_survives_write_conflicts() {
    let w = world();
    w.connect("u", "rt-u").await;
    let sealed = w.grant("u").unwrap().refresh_token;
    *w.grants.conflicts.lock().unwrap() = 3;
    w.google.code("c2", "u", &["openid"], None);
    let signed_in = w.sign_in.exchange(&Secret::new("c2"), "postmessage").await.unwrap();
    assert!(signed_in.grant.offline_access());
    assert_eq!(w.grant("u").unwrap().refresh_token, sealed);
    assert!(
        w.grant("u").unwrap().scopes.contains(CALENDAR_EVENTS_SCOPE),
        "scopes only grow"
    );
}

#[tokio::test]
async fn a_code_whose_id_token_fails_verification_stores_nothing() {
    let w = world();
    w.google.code("c", "forged-u", &["openid"], Some("rt-f"));
    let err = w
        .sign_in
        .exchange(&Secret::new("c"), "postmessage")
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), "invalid_id_token");
    assert!(w.grants.all().is_empty());
}

#[tokio::test]
async fn upgrades_of_another_account_or_without_offline_access_change_nothing() {
    let w = world();
    w.google.code("online", "u", &["openid"], None);
    w.sign_in.exchange(&Secret::new("online"), "postmessage").await.unwrap();
    let before = w.grant("u");
    w.google.code("cal", "u", &[CALENDAR_EVENTS_SCOPE], None);
    let requested = scopes(&[CALENDAR_EVENTS_SCOPE]);
    let err = w
        .sign_in
        .upgrade(&s("u"), &Secret::new("cal"), "postmessage", &requested)
        .await;
    assert_eq!(err.unwrap_err().code(), "offline_access_required");
    w.google
        .code("other", "mallory", &[CALENDAR_EVENTS_SCOPE], Some("rt-m"));
    let err = w
        .sign_in
        .upgrade(&s("u"), &Secret::new("other"), "postmessage", &requested)
        .await;
    assert_eq!(err.unwrap_err().code(), "account_mismatch");
    assert_eq!(w.grant("u"), before);
    assert!(w.grant("mallory").is_none());

    w.google.code("partial", "u", &["openid"], Some("rt-u"));
    match w
        .sign_in
        .upgrade(&s("u"), &Secret::new("partial"), "postmessage", &requested)
        .await
    {
        Err(ApiError::ScopeNotGranted { missing }) => assert_eq!(missing, [CALENDAR_EVENTS_SCOPE]),
        other => panic!("{:?}", other.map(|g| g.version)),
    }
    assert!(w.grant("u").unwrap().offline_access(), "what was granted is stored");
}

#[tokio::test]
async fn disconnect_keeps_the_grant_when_google_cannot_revoke() {
    let w = world();
    w.connect("u", "rt-u").await;
    w.google.fail_revoke(TokenError::Unavailable("503".into()));
    let err = w.disconnect().run(&s("u")).await.unwrap_err();
    assert_eq!((err.code(), err.retry_after()), ("upstream_unavailable", Some(5)));
    assert!(w.grant("u").is_some());
    w.google.fail_revoke(TokenError::RateLimited { retry_after: Some(9) });
    assert_eq!(w.disconnect().run(&s("u")).await.unwrap_err().retry_after(), Some(9));
    w.google.fail_revoke(TokenError::Unusable("revoke answered 403".into()));
    assert_eq!(w.disconnect().run(&s("u")).await.unwrap_err().code(), "upstream_error");
    assert!(w.grant("u").is_some(), "a refused revoke keeps the grant");
    w.disconnect().run(&s("u")).await.unwrap();
    assert!(w.grant("u").is_none());
    assert!(!w.google.is_live("rt-u"));
    assert_eq!(
        w.grants.removed.lock().unwrap().as_slice(),
        [(s("u"), RemovalReason::User)]
    );
    w.disconnect().run(&s("u")).await.unwrap();
}

#[tokio::test]
async fn disconnect_of_an_already_dead_token_deletes() {
    let w = world();
    w.connect("u", "rt-u").await;
    w.google.kill_refresh_token("rt-u");
    w.disconnect().run(&s("u")).await.unwrap();
    assert!(w.grant("u").is_none());
}

#[tokio::test]
async fn a_token_no_key_can_decrypt_is_deleted_but_a_store_outage_keeps_it() {
    let w = world();
    w.connect("u", "rt-u").await;
    *w.sealer.unavailable.lock().unwrap() = true;
    assert_eq!(
        w.disconnect().run(&s("u")).await.unwrap_err().code(),
        "upstream_unavailable"
    );
    assert!(w.grant("u").is_some(), "KMS unavailable is not undecryptable");
    *w.sealer.unavailable.lock().unwrap() = false;
    let mut grant = w.grant("u").unwrap();
    if let Some(token) = grant.refresh_token.as_mut() {
        token.ciphertext = crate::grant::Ciphertext(b"garbage".to_vec());
    }
    w.grants.insert(grant);
    w.disconnect().run(&s("u")).await.unwrap();
    assert!(w.grant("u").is_none());
    assert_eq!(w.google.calls().revokes, 0, "nothing could be revoked");
}

#[tokio::test]
async fn a_failed_security_event_is_not_recorded_so_the_retry_applies_it() {
    let w = world();
    w.connect("u", "rt-u").await;
    let event = risc("j1", RiscKind::TokensRevoked, Subject::Sub(s("u")));
    *w.grants.unavailable.lock().unwrap() = true;
    assert_eq!(
        w.security().apply(&event).await.unwrap_err().code(),
        "upstream_unavailable"
    );
    assert!(w.replay.recorded.lock().unwrap().is_empty());
    *w.grants.unavailable.lock().unwrap() = false;
    assert_eq!(w.security().apply(&event).await.unwrap(), security::Outcome::Applied);
    assert_eq!(
        w.grant("u").unwrap().status_reason.as_deref(),
        Some("risc:tokens-revoked")
    );

    // Reconnected, a replay of the same jti changes nothing.
    w.connect("u", "rt-u2").await;
    assert_eq!(w.security().apply(&event).await.unwrap(), security::Outcome::Replayed);
    assert!(w.grant("u").unwrap().offline_access());
}

#[tokio::test]
async fn an_unrecorded_jti_after_a_crash_is_applied_again_harmlessly() {
    let w = world();
    w.connect("u", "rt-u").await;
    let event = risc("j2", RiscKind::AccountDisabled, Subject::Sub(s("u")));
    *w.replay.unavailable.lock().unwrap() = true;
    assert!(w.security().apply(&event).await.is_err(), "applied, but not recorded");
    *w.replay.unavailable.lock().unwrap() = false;
    w.security().apply(&event).await.unwrap();
    assert_eq!(w.grant("u").unwrap().status, GrantStatus::ReauthorizationRequired);
}

#[tokio::test]
async fn token_revoked_finds_the_grant_by_the_tokens_identifier() {
    let w = world();
    w.connect("u", "1//0abcdefghijklmnopqrst").await;
    w.connect("v", "1//0zzzzzzzzzzzzzzzzzzz").await;
    let ids = TokenIds::of(&Secret::new("1//0abcdefghijklmnopqrst"));
    let by_hash = risc(
        "j3",
        RiscKind::TokenRevoked,
        Subject::Token(TokenLookup::Hash(ids.hash)),
    );
    w.security().apply(&by_hash).await.unwrap();
    assert_eq!(w.grant("u").unwrap().status, GrantStatus::ReauthorizationRequired);
    assert!(w.grant("v").unwrap().offline_access());
    let prefix = TokenLookup::PrefixHash(TokenIds::hash_prefix("1//0zzzzzzzzzzzz"));
    w.security()
        .apply(&risc("j4", RiscKind::TokenRevoked, Subject::Token(prefix)))
        .await
        .unwrap();
    assert!(!w.grant("v").unwrap().offline_access());
    let unknown = Subject::Token(TokenLookup::Hash("nope".into()));
    assert_eq!(
        w.security()
            .apply(&risc("j5", RiscKind::TokenRevoked, unknown))
            .await
            .unwrap(),
        security::Outcome::Applied
    );
}

/// A store whose token index still answers with the user after a new token was
/// stored (the index is eventually consistent).
struct StaleIndex {
    inner: Arc<MemoryGrants>,
    sub: Sub,
}

#[async_trait::async_trait]
impl crate::ports::GrantStore for StaleIndex {
    async fn load(&self, sub: &Sub) -> Result<Option<crate::grant::Grant>, crate::ports::StoreError> {
        self.inner.load(sub).await
    }
    async fn save(&self, grant: &crate::grant::Grant, expected: Option<u64>) -> Result<(), crate::ports::StoreError> {
        self.inner.save(grant, expected).await
    }
    async fn touch(&self, grant: &crate::grant::Grant, now: i64) -> Result<(), crate::ports::StoreError> {
        self.inner.touch(grant, now).await
    }
    async fn remove(&self, grant: &crate::grant::Grant, reason: RemovalReason) -> Result<(), crate::ports::StoreError> {
        self.inner.remove(grant, reason).await
    }
    async fn find_by_token(&self, _: &TokenLookup) -> Result<Option<Sub>, crate::ports::StoreError> {
        Ok(Some(self.sub.clone()))
    }
}

#[tokio::test]
async fn token_revoked_spares_a_token_stored_since_the_index_answered() {
    let w = world();
    w.connect("u", "rt-old").await;
    w.connect("u", "rt-new").await;
    let stale = Arc::new(StaleIndex {
        inner: w.grants.clone(),
        sub: s("u"),
    });
    let old = TokenLookup::Hash(TokenIds::of(&Secret::new("rt-old")).hash);
    let events = SecurityEvents::new(stale, w.replay.clone(), w.ambient.clone());
    events
        .apply(&risc("j7", RiscKind::TokenRevoked, Subject::Token(old)))
        .await
        .unwrap();
    assert!(
        w.grant("u").unwrap().offline_access(),
        "rt-new is not the revoked token"
    );
}

#[tokio::test]
async fn account_purged_deletes_with_its_reason() {
    let w = world();
    w.connect("u", "rt-u").await;
    w.security()
        .apply(&risc("j6", RiscKind::AccountPurged, Subject::Sub(s("u"))))
        .await
        .unwrap();
    assert!(w.grant("u").is_none());
    let removed = w.grants.removed.lock().unwrap().clone();
    assert_eq!(removed, [(s("u"), RemovalReason::AccountPurged)]);
}

#[tokio::test]
async fn concurrent_calls_for_one_user_share_one_refresh() {
    let w = world();
    w.connect("u", "rt-u").await;
    let calls: Vec<_> = (0..10).map(|_| w.create("u", None)).collect();
    for result in futures_util::future::join_all(calls).await {
        result.unwrap();
    }
    assert_eq!((w.google.calls().refreshes, w.google.calls().inserts), (1, 10));
}

#[tokio::test]
async fn a_fleet_of_environments_refreshes_once_and_shares_the_token_sealed() {
    let w = world();
    w.connect("u", "rt-u").await;
    let shared = Arc::new(MemoryShared::default());
    let fleet: Vec<AccessTokens> = (0..8).map(|_| w.environment(&shared)).collect();
    let (user, all) = (s("u"), ScopeSet::default());
    let vends = fleet.iter().map(|env| env.vend(&user, &all));
    let tokens: Vec<String> = futures_util::future::join_all(vends)
        .await
        .into_iter()
        .map(|v| v.unwrap().0.token.expose().to_owned())
        .collect();
    assert_eq!(w.google.calls().refreshes, 1, "one refresh for eight environments");
    assert!(tokens.iter().all(|t| t == &tokens[0]));
    let slot = &shared.slots()[0];
    let sealed = &slot.token.as_ref().unwrap().ciphertext.0;
    assert!(!String::from_utf8_lossy(sealed).contains(&tokens[0]), "never plaintext");
    assert!(slot.lease.is_none(), "the lease was released with the token");
}

#[tokio::test(start_paused = true)]
async fn a_lease_whose_holder_died_is_taken_over_after_it_runs_out() {
    let w = world();
    w.connect("u", "rt-u").await;
    let shared = Arc::new(MemoryShared::default());
    let key = w.grant("u").unwrap().scopes.key();
    let gone = crate::ports::Lease {
        owner: "an environment that died".into(),
        until_ms: w.clock.now_unix_ms() + 2_000,
    };
    assert!(shared.lease(&s("u"), &key, &gone, w.clock.now_unix_ms()).await.unwrap());
    let started = tokio::time::Instant::now();
    let (vended, _) = w
        .environment(&shared)
        .vend(&s("u"), &ScopeSet::default())
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(2), "waited for the lease");
    assert!(w.google.is_live("rt-u") && vended.token.expose().starts_with("ya29."));
    assert_eq!(w.google.calls().refreshes, 1);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_never_waits_past_its_own_deadline() {
    let w = world();
    w.connect("u", "rt-u").await;
    let shared = Arc::new(MemoryShared::default());
    let key = w.grant("u").unwrap().scopes.key();
    let long = crate::ports::Lease {
        owner: "slow".into(),
        until_ms: w.clock.now_unix_ms() + 60_000,
    };
    shared.lease(&s("u"), &key, &long, w.clock.now_unix_ms()).await.unwrap();
    let env = w.environment(&shared);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let err = crate::outbound::with_deadline(deadline, env.vend(&s("u"), &ScopeSet::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "upstream_unavailable");
    assert!(tokio::time::Instant::now() <= deadline);
    assert_eq!(w.google.calls().refreshes, 0);
}

#[tokio::test]
async fn a_shared_token_google_rejects_is_discarded_and_replaced() {
    let w = world();
    w.connect("u", "rt-u").await;
    let shared = Arc::new(MemoryShared::default());
    let first = CalendarEvents::new(Arc::new(w.environment(&shared)), w.google.clone());
    let second = CalendarEvents::new(Arc::new(w.environment(&shared)), w.google.clone());
    let new = || NewEvent {
        calendar: CalendarId::primary(),
        send_updates: SendUpdates::None,
        key: None,
        event: validate(json!({"start": {"date": "2031-01-01"}, "end": {"date": "2031-01-02"}})).unwrap(),
    };
    first.create(&s("u"), new(), None).await.unwrap();
    w.google.revoke_access_tokens();
    second.create(&s("u"), new(), None).await.unwrap();
    assert_eq!(
        w.google.calls().refreshes,
        2,
        "the rejected shared token was replaced once"
    );
    let stored = shared.slots()[0].token.clone().unwrap();
    let plain = crate::ports::TokenSealer::open(
        w.sealer.as_ref(),
        &s("u"),
        crate::grant::TokenPurpose::AccessToken,
        &stored.ciphertext,
    )
    .await
    .unwrap();
    assert_eq!(plain.expose(), "ya29.at-3");
}

#[tokio::test]
async fn an_upgrade_invalidates_the_cached_access_token_and_a_reauthorization_starts_over() {
    let w = world();
    w.google.code("c1", "u", &["openid"], Some("rt-u"));
    w.sign_in.exchange(&Secret::new("c1"), "postmessage").await.unwrap();
    w.access.vend(&s("u"), &ScopeSet::default()).await.unwrap();
    w.google.code("c2", "u", &[CALENDAR_EVENTS_SCOPE], None);
    let calendar = scopes(&[CALENDAR_EVENTS_SCOPE]);
    w.sign_in
        .upgrade(&s("u"), &Secret::new("c2"), "postmessage", &calendar)
        .await
        .unwrap();
    w.access.vend(&s("u"), &ScopeSet::default()).await.unwrap();
    assert_eq!(w.google.calls().refreshes, 2, "the cached token lacks the new scope");

    // Revoked at Google, then signed in again: only what Google grants now.
    w.google.revoke_user("u");
    assert_eq!(
        w.create("u", None).await.unwrap_err().code(),
        "reauthorization_required"
    );
    w.google.code("c3", "u", &["openid"], Some("rt-u2"));
    let signed_in = w.sign_in.exchange(&Secret::new("c3"), "postmessage").await.unwrap();
    assert!(!signed_in.grant.scopes.allows_calendar_writes());
    assert_eq!(w.create("u", None).await.unwrap_err().code(), "scope_required");
}

/// A store where a concurrent sign-in stores a new refresh token while the first
/// disconnect round is revoking the old one.
struct SignInDuringDisconnect {
    inner: Arc<MemoryGrants>,
    google: Arc<FakeGoogle>,
    sign_in: SignIn,
    raced: std::sync::Mutex<bool>,
}

#[async_trait::async_trait]
impl crate::ports::GrantStore for SignInDuringDisconnect {
    async fn load(&self, sub: &Sub) -> Result<Option<crate::grant::Grant>, crate::ports::StoreError> {
        self.inner.load(sub).await
    }
    async fn save(&self, grant: &crate::grant::Grant, expected: Option<u64>) -> Result<(), crate::ports::StoreError> {
        self.inner.save(grant, expected).await
    }
    async fn touch(&self, grant: &crate::grant::Grant, now: i64) -> Result<(), crate::ports::StoreError> {
        self.inner.touch(grant, now).await
    }
    async fn remove(&self, grant: &crate::grant::Grant, reason: RemovalReason) -> Result<(), crate::ports::StoreError> {
        let race = std::mem::replace(&mut *self.raced.lock().unwrap(), true);
        if !race {
            self.google
                .code("c-new", grant.sub().as_str(), &["openid"], Some("rt-new"));
            self.sign_in
                .exchange(&Secret::new("c-new"), "postmessage")
                .await
                .expect("the concurrent sign-in");
        }
        self.inner.remove(grant, reason).await
    }
    async fn find_by_token(&self, lookup: &TokenLookup) -> Result<Option<Sub>, crate::ports::StoreError> {
        self.inner.find_by_token(lookup).await
    }
}

#[tokio::test]
async fn a_token_stored_during_a_disconnect_is_revoked_before_anything_is_deleted() {
    let w = world();
    w.connect("u", "rt-u").await;
    let racing = Arc::new(SignInDuringDisconnect {
        inner: w.grants.clone(),
        google: w.google.clone(),
        sign_in: SignIn::new(
            w.google.clone(),
            w.google.clone(),
            w.sealer.clone(),
            w.grants.clone(),
            w.ambient.clone(),
        ),
        raced: std::sync::Mutex::new(false),
    });
    Disconnect::new(racing, w.sealer.clone(), w.google.clone(), w.ambient.clone())
        .run(&s("u"))
        .await
        .unwrap();
    assert!(w.grant("u").is_none());
    assert_eq!(
        w.google.calls().revokes,
        2,
        "the old token and the one stored meanwhile"
    );
    // Both are dead at Google: refreshing either fails.
    for token in ["rt-u", "rt-new"] {
        assert!(w.google.refresh(&Secret::new(token), None).await.is_err());
    }
}

mod sweeping {
    use super::*;
    use crate::grant::SweepPolicy;

    fn policy(keep_alive_days: i64) -> SweepPolicy {
        SweepPolicy {
            notice_secs: 7 * DAY,
            keep_alive_secs: keep_alive_days * DAY,
        }
    }

    /// A world whose store applies `policy`, with its sweeper.
    fn sweeping(policy: SweepPolicy) -> (World, Sweeper) {
        let mut w = world();
        w.grants = Arc::new(MemoryGrants::with_policy(policy));
        w.sign_in = SignIn::new(
            w.google.clone(),
            w.google.clone(),
            w.sealer.clone(),
            w.grants.clone(),
            w.ambient.clone(),
        );
        w.access = Arc::new(AccessTokens::new(
            w.grants.clone(),
            w.sealer.clone(),
            w.google.clone(),
            w.ambient.clone(),
        ));
        let sweeper = Sweeper::new(w.grants.clone(), w.access.clone(), policy);
        (w, sweeper)
    }

    async fn limited(w: &World, sub: &str, days: i64) {
        let code = format!("c-{sub}");
        w.google
            .code_with_lifetime(&code, sub, &["openid"], Some(&format!("rt-{sub}")), Some(days * DAY));
        w.sign_in.exchange(&Secret::new(&code), "postmessage").await.unwrap();
    }

    #[tokio::test]
    async fn one_notice_per_grant_and_expiry_and_only_for_those_due() {
        let (w, sweeper) = sweeping(policy(150));
        limited(&w, "soon", 3).await;
        limited(&w, "later", 30).await;
        w.connect("forever", "rt-forever").await;
        let first = sweeper.run().await;
        assert_eq!(
            first,
            Swept {
                expiring: 1,
                ..Swept::default()
            }
        );
        assert_eq!(
            w.grant("soon").unwrap().expiry_noticed,
            w.grant("soon").unwrap().expires_at()
        );
        assert_eq!(w.grant("later").unwrap().expiry_noticed, None);
        assert_eq!(
            sweeper.run().await,
            Swept::default(),
            "a second run the same day does nothing"
        );
        assert_eq!(*w.grants.index_reads.lock().unwrap(), 1, "only the due grant was read");
        // 25 days on, the other one's notice is due.
        w.clock.advance(Duration::from_secs(25 * DAY as u64));
        assert_eq!(sweeper.run().await.expiring, 1);
        assert!(w.grant("later").unwrap().expiry_noticed.is_some());
    }

    #[tokio::test]
    async fn an_idle_grant_is_kept_alive_and_a_revoked_one_is_marked() {
        let (w, sweeper) = sweeping(policy(0));
        w.connect("idle", "rt-idle").await;
        w.connect("revoked", "rt-revoked").await;
        w.google.revoke_user("revoked");
        let swept = sweeper.run().await;
        assert_eq!((swept.kept_alive, swept.reauthorization_required), (1, 1));
        assert_eq!(w.google.calls().refreshes, 2);
        assert!(w.grant("idle").unwrap().offline_access());
        assert_eq!(w.grant("revoked").unwrap().status, GrantStatus::ReauthorizationRequired);
    }

    #[tokio::test]
    async fn the_sweep_reads_only_due_grants_and_a_failure_is_picked_up_next_run() {
        let (w, sweeper) = sweeping(policy(150));
        for n in 0..200 {
            w.connect(&format!("user-{n}"), &format!("rt-{n}")).await;
        }
        for n in 0..3 {
            limited(&w, &format!("due-{n}"), 2).await;
        }
        *w.grants.conflicts.lock().unwrap() = 40;
        let failed = sweeper.run().await;
        assert!(failed.more && failed.expiring < 3, "{failed:?}");
        *w.grants.conflicts.lock().unwrap() = 0;
        let rest = sweeper.run().await;
        assert_eq!(failed.expiring + rest.expiring, 3);
        assert!(!rest.more);
        assert!(
            *w.grants.index_reads.lock().unwrap() <= 6,
            "reads follow the due grants, not the 203"
        );
    }

    #[tokio::test]
    async fn the_backfill_places_older_grants_in_the_index() {
        let (w, sweeper) = sweeping(policy(150));
        limited(&w, "old", 2).await;
        let grant = w.grant("old").unwrap();
        w.grants.insert_unindexed(grant);
        assert_eq!(sweeper.run().await.expiring, 0, "not in the index: not seen");
        let backfilled = sweeper.backfill(None).await;
        assert_eq!((backfilled.backfilled, backfilled.more), (1, false));
        assert_eq!(sweeper.run().await.expiring, 1);
    }

    #[tokio::test]
    async fn a_sweep_or_backfill_without_time_left_starts_nothing_and_says_more() {
        use crate::outbound::with_deadline;
        use tokio::time::Instant;
        let (w, sweeper) = sweeping(policy(150));
        limited(&w, "soon", 3).await;
        let tight = Instant::now() + Duration::from_secs(1);
        let swept = with_deadline(tight, sweeper.run()).await;
        assert_eq!(
            swept,
            Swept {
                more: true,
                ..Swept::default()
            }
        );
        assert_eq!(w.grant("soon").unwrap().expiry_noticed, None);
        let ample = Instant::now() + Duration::from_secs(60);
        let swept = with_deadline(ample, sweeper.run()).await;
        assert_eq!(
            swept,
            Swept {
                expiring: 1,
                ..Swept::default()
            }
        );

        w.grants.insert_unindexed(w.grant("soon").unwrap());
        let tight = Instant::now() + Duration::from_secs(1);
        let stopped = with_deadline(tight, sweeper.backfill(Some("a".into()))).await;
        assert_eq!(
            stopped,
            Backfilled {
                backfilled: 0,
                more: true,
                from: Some("a".into())
            },
            "the next call starts where this one was asked to"
        );
        let ample = Instant::now() + Duration::from_secs(60);
        assert_eq!(with_deadline(ample, sweeper.backfill(None)).await.backfilled, 1);
    }

    #[tokio::test]
    async fn a_notice_is_due_exactly_at_the_notice_period_and_never_once_the_token_ended() {
        let (w, sweeper) = sweeping(policy(150));
        limited(&w, "edge", 7).await;
        limited(&w, "ended", 0).await;
        assert_eq!(
            sweeper.run().await,
            Swept {
                expiring: 1,
                ..Swept::default()
            }
        );
        assert!(w.grant("edge").unwrap().expiry_noticed.is_some());
        assert_eq!(w.grant("ended").unwrap().expiry_noticed, None);
    }

    #[tokio::test]
    async fn a_grant_is_kept_alive_when_its_disuse_period_is_up_and_the_use_is_recorded() {
        let (w, sweeper) = sweeping(policy(10));
        w.connect("idle", "rt-idle").await;
        w.clock.advance(Duration::from_secs(10 * DAY as u64 - 1));
        assert_eq!(sweeper.run().await, Swept::default(), "one second early");
        w.clock.advance(Duration::from_secs(1));
        assert_eq!(
            sweeper.run().await,
            Swept {
                kept_alive: 1,
                ..Swept::default()
            }
        );
        assert_eq!(w.grant("idle").unwrap().last_used_at, Some(w.clock.now_unix()));
        assert_eq!(w.google.calls().refreshes, 1);
    }

    #[tokio::test]
    async fn a_grant_the_index_holds_too_early_is_placed_where_it_now_belongs() {
        let (w, _) = sweeping(policy(10));
        w.connect("u", "rt-u").await;
        // A new deployment lengthens the keep-alive period.
        w.grants.change_policy(policy(150));
        let sweeper = Sweeper::new(w.grants.clone(), w.access.clone(), policy(150));
        w.clock.advance(Duration::from_secs(10 * DAY as u64));
        assert_eq!(sweeper.run().await, Swept::default());
        assert_eq!(*w.grants.index_reads.lock().unwrap(), 1);
        w.clock.advance(Duration::from_secs(DAY as u64));
        assert_eq!(sweeper.run().await, Swept::default());
        assert_eq!(
            *w.grants.index_reads.lock().unwrap(),
            1,
            "moved to its new due day, not read again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_sweep_with_exactly_its_reserve_left_still_runs() {
        let (w, sweeper) = sweeping(policy(150));
        limited(&w, "soon", 3).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        let swept = crate::outbound::with_deadline(deadline, sweeper.run()).await;
        assert_eq!(
            swept,
            Swept {
                expiring: 1,
                ..Swept::default()
            }
        );
    }

    #[tokio::test]
    async fn a_grant_that_became_due_after_yesterday_s_run_is_swept_today() {
        let (w, sweeper) = sweeping(policy(150));
        // The notice falls due an hour after this run, on the same day.
        w.google
            .code_with_lifetime("c-later", "later", &["openid"], Some("rt-later"), Some(7 * DAY + 3600));
        w.sign_in
            .exchange(&Secret::new("c-later"), "postmessage")
            .await
            .unwrap();
        assert_eq!(sweeper.run().await, Swept::default());
        w.clock.advance(Duration::from_secs(DAY as u64));
        assert_eq!(
            sweeper.run().await,
            Swept {
                expiring: 1,
                ..Swept::default()
            }
        );
    }

    #[tokio::test]
    async fn a_grant_read_for_its_keep_alive_gets_no_notice_of_a_distant_expiry() {
        let (w, sweeper) = sweeping(policy(10));
        limited(&w, "u", 30).await;
        w.clock.advance(Duration::from_secs(10 * DAY as u64));
        assert_eq!(
            sweeper.run().await,
            Swept {
                kept_alive: 1,
                ..Swept::default()
            }
        );
        assert_eq!(w.grant("u").unwrap().expiry_noticed, None);
    }

    #[tokio::test]
    async fn a_notice_is_recorded_only_for_the_expiry_the_grant_still_has() {
        let (w, sweeper) = sweeping(policy(150));
        limited(&w, "u", 3).await;
        let expiry = w.grant("u").unwrap().expires_at().unwrap();
        // Renewed between the sweep's read and its write: no time limit any more.
        w.google.code("c2", "u", &["openid"], Some("rt-u2"));
        w.sign_in.exchange(&Secret::new("c2"), "postmessage").await.unwrap();
        assert!(!sweeper.notice(&s("u"), expiry, w.clock.now()).await.unwrap());
        assert_eq!(w.grant("u").unwrap().expiry_noticed, None);
    }

    #[tokio::test]
    async fn the_backfill_pages_through_older_grants_and_leaves_out_those_without_offline_access() {
        let (w, sweeper) = sweeping(policy(150));
        for n in 0..150 {
            let sub = format!("user-{n:03}");
            w.connect(&sub, &format!("rt-{n}")).await;
            w.grants.insert_unindexed(w.grant(&sub).unwrap());
        }
        w.google.code("c-online", "online", &["openid"], None);
        w.sign_in
            .exchange(&Secret::new("c-online"), "postmessage")
            .await
            .unwrap();
        w.grants.insert_unindexed(w.grant("online").unwrap());
        assert_eq!(
            sweeper.backfill(None).await,
            Backfilled {
                backfilled: 150,
                more: false,
                from: None
            }
        );
        assert_eq!(
            sweeper.backfill(None).await.backfilled,
            0,
            "every grant that can act offline is placed"
        );
        *w.grants.unavailable.lock().unwrap() = true;
        assert_eq!(
            sweeper.backfill(Some("user-050".into())).await,
            Backfilled {
                backfilled: 0,
                more: true,
                from: Some("user-050".into())
            }
        );
    }
}

mod tokens_and_the_fleet {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use tokio::time::Instant;

    use super::*;
    use crate::grant::{Ciphertext, TokenPurpose};
    use crate::outbound::with_deadline;
    use crate::ports::{Lease, SharedSlot, SharedToken, SharedTokens, StoreError, TokenSealer as _};

    /// The fleet's store, counting reads and writing down every lease asked for.
    #[derive(Default)]
    struct Recording {
        inner: MemoryShared,
        reads: Mutex<u32>,
        leases: Mutex<Vec<Lease>>,
        /// Leases refused as if another environment had just taken them.
        refuse_leases: Mutex<u32>,
    }

    #[async_trait]
    impl SharedTokens for Recording {
        async fn read(&self, sub: &Sub, key: &str) -> Result<SharedSlot, StoreError> {
            *self.reads.lock().unwrap() += 1;
            self.inner.read(sub, key).await
        }
        async fn lease(&self, sub: &Sub, key: &str, lease: &Lease, now_ms: i64) -> Result<bool, StoreError> {
            self.leases.lock().unwrap().push(lease.clone());
            {
                let mut refuse = self.refuse_leases.lock().unwrap();
                if *refuse > 0 {
                    *refuse -= 1;
                    return Ok(false);
                }
            }
            self.inner.lease(sub, key, lease, now_ms).await
        }
        async fn store(&self, sub: &Sub, key: &str, token: &SharedToken, owner: &str) -> Result<(), StoreError> {
            self.inner.store(sub, key, token, owner).await
        }
        async fn release(&self, sub: &Sub, key: &str, owner: &str) -> Result<(), StoreError> {
            self.inner.release(sub, key, owner).await
        }
        async fn discard(&self, sub: &Sub, key: &str, ciphertext: &Ciphertext) -> Result<(), StoreError> {
            self.inner.discard(sub, key, ciphertext).await
        }
    }

    fn environment(w: &World, shared: &Arc<Recording>) -> AccessTokens {
        AccessTokens::new(w.grants.clone(), w.sealer.clone(), w.google.clone(), w.ambient.clone())
            .with_shared(shared.clone())
    }

    fn everything() -> ScopeSet {
        ScopeSet::default()
    }

    #[tokio::test]
    async fn a_vended_token_lives_as_long_as_google_said() {
        let w = world();
        w.connect("u", "rt-u").await;
        w.google.access_lifetime(Duration::from_secs(1800));
        let (vended, _) = w.access.vend(&s("u"), &everything()).await.unwrap();
        assert_eq!(vended.expires_at, T0 + 1800);
    }

    #[tokio::test]
    async fn a_rotated_refresh_token_is_stored_with_its_expiry_and_its_access_token_stays_cached() {
        let w = world();
        w.google
            .code_with_lifetime("c1", "u", &["openid"], Some("rt-u"), Some(10 * DAY));
        w.sign_in.exchange(&Secret::new("c1"), "postmessage").await.unwrap();
        w.clock.advance(Duration::from_secs(DAY as u64));
        w.google.rotate_on_refresh("rt-u2");
        w.access.vend(&s("u"), &everything()).await.unwrap();
        let grant = w.grant("u").unwrap();
        let sealed = grant.refresh_token.clone().unwrap();
        let opened = w
            .sealer
            .open(&s("u"), TokenPurpose::RefreshToken, &sealed.ciphertext)
            .await
            .unwrap();
        assert_eq!(opened.expose(), "rt-u2");
        assert_eq!(sealed.expires_at, Some(T0 + 10 * DAY), "Google's end of the grant");
        assert_eq!(grant.last_used_at, Some(T0 + DAY));
        w.access.vend(&s("u"), &everything()).await.unwrap();
        assert_eq!(w.google.calls().refreshes, 1, "cached under the rotated grant");
    }

    #[tokio::test]
    async fn a_shared_token_is_taken_only_with_more_than_five_minutes_left() {
        let w = world();
        w.connect("u", "rt-u").await;
        let shared = Arc::new(Recording::default());
        environment(&w, &shared).vend(&s("u"), &everything()).await.unwrap();
        w.clock.advance(Duration::from_secs(3600 - 301));
        environment(&w, &shared).vend(&s("u"), &everything()).await.unwrap();
        assert_eq!(w.google.calls().refreshes, 1, "301 s left: shared");
        w.clock.advance(Duration::from_secs(1));
        environment(&w, &shared).vend(&s("u"), &everything()).await.unwrap();
        assert_eq!(w.google.calls().refreshes, 2, "300 s left: refreshed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_lasts_until_the_invocation_s_deadline_or_thirty_seconds_without_one() {
        let w = world();
        w.connect("u", "rt-u").await;
        let shared = Arc::new(Recording::default());
        let deadline = Instant::now() + Duration::from_secs(10);
        let now_ms = w.clock.now_unix_ms();
        with_deadline(deadline, environment(&w, &shared).vend(&s("u"), &everything()))
            .await
            .unwrap();
        w.clock.advance(Duration::from_secs(3600));
        let later_ms = w.clock.now_unix_ms();
        environment(&w, &shared).vend(&s("u"), &everything()).await.unwrap();
        let leases = shared.leases.lock().unwrap().clone();
        let until: Vec<i64> = leases.iter().map(|l| l.until_ms).collect();
        assert_eq!(until, [now_ms + 10_000, later_ms + 30_000]);
        assert_ne!(leases[0].owner, leases[1].owner);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_runs_to_the_end_of_its_last_millisecond_and_waiters_look_ever_less_often() {
        let w = world();
        w.connect("u", "rt-u").await;
        let key = w.grant("u").unwrap().scopes.key();
        let shared = Arc::new(Recording::default());
        let ends_now = Lease {
            owner: "another environment".into(),
            until_ms: w.clock.now_unix_ms(),
        };
        let now_ms = w.clock.now_unix_ms();
        assert!(shared.inner.lease(&s("u"), &key, &ends_now, now_ms).await.unwrap());
        let started = Instant::now();
        environment(&w, &shared).vend(&s("u"), &everything()).await.unwrap();
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(1),
            "waited out its last millisecond"
        );

        let user = s("v");
        w.connect("v", "rt-v").await;
        let key = w.grant("v").unwrap().scopes.key();
        let two_seconds = Lease {
            owner: "another environment".into(),
            until_ms: w.clock.now_unix_ms() + 2_000,
        };
        let now_ms = w.clock.now_unix_ms();
        assert!(shared.inner.lease(&user, &key, &two_seconds, now_ms).await.unwrap());
        *shared.reads.lock().unwrap() = 0;
        let started = Instant::now();
        // A waiter with ample time left waits; it never gives up early.
        let deadline = Instant::now() + Duration::from_secs(10);
        with_deadline(deadline, environment(&w, &shared).vend(&user, &everything()))
            .await
            .unwrap();
        // Looks after 50, 100, 200, 400, 400, 400 and 400 ms, then at the lease's
        // end: nine reads, and the lease taken 1 ms after its last millisecond.
        assert_eq!(*shared.reads.lock().unwrap(), 9);
        assert_eq!(started.elapsed(), Duration::from_millis(2001));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_lost_to_another_environment_is_looked_for_again_shortly() {
        let w = world();
        w.connect("u", "rt-u").await;
        let shared = Arc::new(Recording::default());
        *shared.refuse_leases.lock().unwrap() = 2;
        let started = Instant::now();
        environment(&w, &shared).vend(&s("u"), &everything()).await.unwrap();
        // 50 ms after the first lost race, then 51 ms (the other's presumed lease).
        assert_eq!(started.elapsed(), Duration::from_millis(101));
        assert_eq!(w.google.calls().refreshes, 1);
    }

    #[tokio::test]
    async fn a_rejected_shared_token_is_dropped_even_when_the_refresh_after_it_fails() {
        let w = world();
        w.connect("u", "rt-u").await;
        let shared = Arc::new(Recording::default());
        let (first, grant) = environment(&w, &shared).vend(&s("u"), &everything()).await.unwrap();
        w.google.fail_refresh(TokenError::Unavailable("down".into()));
        let err = environment(&w, &shared)
            .token(&grant, None, Some(&first.token))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "upstream_unavailable");
        let slots = shared.inner.slots();
        assert!(slots[0].token.is_none(), "nobody is handed the rejected token again");
        assert!(slots[0].lease.is_none(), "the lease was given back");
    }
}
