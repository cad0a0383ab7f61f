//! Unit tests of the use cases over the in-memory ports: the event
//! refresh/insert/replay loop, access-token reuse, sign-in and upgrade, disconnect
//! and the Cross-Account Protection failure paths, in milliseconds.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::error::ApiError;
use crate::event::validate;
use crate::google::{CalendarError, RiscKind, SecurityEvent, Subject, TokenError};
use crate::grant::{GrantStatus, TokenIds};
use crate::memory::{FakeGoogle, MemoryGrants, MemoryReplay, MemorySealer};
use crate::ports::{TokenLookup, TokenSealer as _};
use crate::secret::Secret;
use crate::types::{CALENDAR_EVENTS_SCOPE, CalendarId, IdempotencyKey, ScopeSet, SendUpdates};

struct World {
    grants: Arc<MemoryGrants>,
    sealer: Arc<MemorySealer>,
    google: Arc<FakeGoogle>,
    replay: Arc<MemoryReplay>,
    sign_in: SignIn,
    access: Arc<AccessTokens>,
    events: CalendarEvents,
}

fn world() -> World {
    let grants = Arc::new(MemoryGrants::default());
    let sealer = Arc::new(MemorySealer::default());
    let google = Arc::new(FakeGoogle::default());
    let access = Arc::new(AccessTokens::new(grants.clone(), sealer.clone(), google.clone()));
    World {
        sign_in: SignIn::new(google.clone(), google.clone(), sealer.clone(), grants.clone()),
        events: CalendarEvents::new(access.clone(), google.clone()),
        access,
        replay: Arc::new(MemoryReplay::default()),
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
        self.events.create(sub, new).await
    }

    fn security(&self) -> SecurityEvents {
        SecurityEvents::new(self.grants.clone(), self.replay.clone())
    }

    fn disconnect(&self) -> Disconnect {
        Disconnect::new(self.grants.clone(), self.sealer.clone(), self.google.clone())
    }
}

fn risc(jti: &str, kind: RiscKind, subject: Subject) -> SecurityEvent {
    SecurityEvent {
        jti: jti.into(),
        events: vec![(kind, subject)],
    }
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
    let grant = w.grants.get("u").unwrap();
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
    assert_eq!(
        w.grants.get("u").unwrap().status,
        GrantStatus::Active,
        "grant not edited"
    );
}

#[tokio::test]
async fn vending_checks_every_requested_scope_and_reuses_the_cached_token() {
    let w = world();
    assert_eq!(
        w.access.vend("nobody", &ScopeSet::default()).await.unwrap_err().code(),
        "not_connected"
    );
    w.connect("u", "rt-u").await;
    let drive: ScopeSet = ["https://www.googleapis.com/auth/drive.readonly"].into_iter().collect();
    match w.access.vend("u", &drive).await.unwrap_err() {
        ApiError::ScopeRequired { scopes } => assert_eq!(scopes, drive.iter().cloned().collect::<Vec<_>>()),
        other => panic!("{other:?}"),
    }
    let calendar: ScopeSet = [CALENDAR_EVENTS_SCOPE].into_iter().collect();
    let (first, scopes) = w.access.vend("u", &calendar).await.unwrap();
    assert!(scopes.contains(CALENDAR_EVENTS_SCOPE));
    let (second, _) = w.access.vend("u", &calendar).await.unwrap();
    assert_eq!(first.token, second.token);
    assert_eq!((w.google.calls().refreshes, *w.sealer.opened.lock().unwrap()), (1, 1));
}

#[tokio::test]
async fn sign_in_keeps_the_stored_refresh_token_and_survives_write_conflicts() {
    let w = world();
    w.connect("u", "rt-u").await;
    let sealed = w.grants.get("u").unwrap().refresh_token;
    *w.grants.conflicts.lock().unwrap() = 3;
    w.google.code("c2", "u", &["openid"], None);
    let signed_in = w.sign_in.exchange(&Secret::new("c2"), "postmessage").await.unwrap();
    assert!(signed_in.grant.offline_access());
    assert_eq!(w.grants.get("u").unwrap().refresh_token, sealed);
    assert!(
        w.grants.get("u").unwrap().scopes.contains(CALENDAR_EVENTS_SCOPE),
        "scopes only grow"
    );
}

#[tokio::test]
async fn upgrades_of_another_account_or_without_offline_access_change_nothing() {
    let w = world();
    w.google.code("online", "u", &["openid"], None);
    w.sign_in.exchange(&Secret::new("online"), "postmessage").await.unwrap();
    let before = w.grants.get("u");
    w.google.code("cal", "u", &[CALENDAR_EVENTS_SCOPE], None);
    let requested: ScopeSet = [CALENDAR_EVENTS_SCOPE].into_iter().collect();
    let err = w
        .sign_in
        .upgrade("u", &Secret::new("cal"), "postmessage", &requested)
        .await;
    assert_eq!(err.unwrap_err().code(), "offline_access_required");
    w.google
        .code("other", "mallory", &[CALENDAR_EVENTS_SCOPE], Some("rt-m"));
    let err = w
        .sign_in
        .upgrade("u", &Secret::new("other"), "postmessage", &requested)
        .await;
    assert_eq!(err.unwrap_err().code(), "account_mismatch");
    assert_eq!(w.grants.get("u"), before);
    assert!(w.grants.get("mallory").is_none());

    w.google.code("partial", "u", &["openid"], Some("rt-u"));
    match w
        .sign_in
        .upgrade("u", &Secret::new("partial"), "postmessage", &requested)
        .await
    {
        Err(ApiError::ScopeNotGranted { missing }) => assert_eq!(missing, [CALENDAR_EVENTS_SCOPE]),
        other => panic!("{:?}", other.map(|g| g.version)),
    }
    assert!(
        w.grants.get("u").unwrap().offline_access(),
        "what was granted is stored"
    );
}

#[tokio::test]
async fn disconnect_keeps_the_grant_when_google_cannot_revoke() {
    let w = world();
    w.connect("u", "rt-u").await;
    w.google.fail_revoke(TokenError::Unavailable("503".into()));
    let err = w.disconnect().run("u").await.unwrap_err();
    assert_eq!((err.code(), err.retry_after()), ("upstream_unavailable", Some(5)));
    assert!(w.grants.get("u").is_some());
    w.google.fail_revoke(TokenError::RateLimited { retry_after: Some(9) });
    assert_eq!(w.disconnect().run("u").await.unwrap_err().retry_after(), Some(9));
    w.disconnect().run("u").await.unwrap();
    assert!(w.grants.get("u").is_none());
    assert_eq!(
        w.grants.removed.lock().unwrap().as_slice(),
        [("u".to_owned(), "user".to_owned())]
    );
    w.disconnect().run("u").await.unwrap();
}

#[tokio::test]
async fn disconnect_of_an_already_dead_token_deletes() {
    let w = world();
    w.connect("u", "rt-u").await;
    w.google.kill_refresh_token("rt-u");
    w.disconnect().run("u").await.unwrap();
    assert!(w.grants.get("u").is_none());
}

#[tokio::test]
async fn a_failed_security_event_is_not_recorded_so_the_retry_applies_it() {
    let w = world();
    w.connect("u", "rt-u").await;
    let event = risc("j1", RiscKind::TokensRevoked, Subject::Sub("u".into()));
    *w.grants.unavailable.lock().unwrap() = true;
    assert_eq!(
        w.security().apply(&event).await.unwrap_err().code(),
        "upstream_unavailable"
    );
    assert!(w.replay.recorded.lock().unwrap().is_empty());
    *w.grants.unavailable.lock().unwrap() = false;
    assert_eq!(w.security().apply(&event).await.unwrap(), security::Outcome::Applied);
    assert_eq!(
        w.grants.get("u").unwrap().status_reason.as_deref(),
        Some("risc:tokens-revoked")
    );

    // Reconnected, a replay of the same jti changes nothing.
    w.connect("u", "rt-u2").await;
    assert_eq!(w.security().apply(&event).await.unwrap(), security::Outcome::Replayed);
    assert!(w.grants.get("u").unwrap().offline_access());
}

#[tokio::test]
async fn an_unrecorded_jti_after_a_crash_is_applied_again_harmlessly() {
    let w = world();
    w.connect("u", "rt-u").await;
    let event = risc("j2", RiscKind::AccountDisabled, Subject::Sub("u".into()));
    *w.replay.unavailable.lock().unwrap() = true;
    assert!(w.security().apply(&event).await.is_err(), "applied, but not recorded");
    *w.replay.unavailable.lock().unwrap() = false;
    w.security().apply(&event).await.unwrap();
    assert_eq!(w.grants.get("u").unwrap().status, GrantStatus::ReauthorizationRequired);
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
    assert_eq!(w.grants.get("u").unwrap().status, GrantStatus::ReauthorizationRequired);
    assert!(w.grants.get("v").unwrap().offline_access());
    let prefix = TokenLookup::PrefixHash(TokenIds::hash_prefix("1//0zzzzzzzzzzzz"));
    w.security()
        .apply(&risc("j4", RiscKind::TokenRevoked, Subject::Token(prefix)))
        .await
        .unwrap();
    assert!(!w.grants.get("v").unwrap().offline_access());
    let unknown = Subject::Token(TokenLookup::Hash("nope".into()));
    assert_eq!(
        w.security()
            .apply(&risc("j5", RiscKind::TokenRevoked, unknown))
            .await
            .unwrap(),
        security::Outcome::Applied
    );
}

#[tokio::test]
async fn account_purged_deletes_with_its_reason() {
    let w = world();
    w.connect("u", "rt-u").await;
    w.security()
        .apply(&risc("j6", RiscKind::AccountPurged, Subject::Sub("u".into())))
        .await
        .unwrap();
    assert!(w.grants.get("u").is_none());
    let removed = w.grants.removed.lock().unwrap().clone();
    assert_eq!(removed, [("u".to_owned(), "risc:account-purged".to_owned())]);
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
async fn an_upgrade_invalidates_the_cached_access_token_and_a_reauthorization_starts_over() {
    let w = world();
    w.google.code("c1", "u", &["openid"], Some("rt-u"));
    w.sign_in.exchange(&Secret::new("c1"), "postmessage").await.unwrap();
    w.access.vend("u", &ScopeSet::default()).await.unwrap();
    w.google.code("c2", "u", &[CALENDAR_EVENTS_SCOPE], None);
    let calendar: ScopeSet = [CALENDAR_EVENTS_SCOPE].into_iter().collect();
    w.sign_in
        .upgrade("u", &Secret::new("c2"), "postmessage", &calendar)
        .await
        .unwrap();
    w.access.vend("u", &calendar).await.unwrap();
    assert_eq!(w.google.calls().refreshes, 2, "the cached token lacks the new scope");

    // Revoked at Google, then signed in again: only what Google grants now.
    w.google.kill_refresh_token("rt-u");
    w.google.revoke_access_tokens();
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
    raced: std::sync::Mutex<bool>,
}

#[async_trait::async_trait]
impl crate::ports::GrantStore for SignInDuringDisconnect {
    async fn load(&self, sub: &str) -> Result<Option<crate::grant::Grant>, crate::ports::StoreError> {
        self.inner.load(sub).await
    }
    async fn save(&self, grant: &crate::grant::Grant, expected: Option<u64>) -> Result<(), crate::ports::StoreError> {
        self.inner.save(grant, expected).await
    }
    async fn remove(&self, grant: &crate::grant::Grant, reason: &str) -> Result<(), crate::ports::StoreError> {
        let race = std::mem::replace(&mut *self.raced.lock().unwrap(), true);
        if !race {
            let sealer = MemorySealer::default();
            let token = Secret::new("rt-new");
            self.google.live_refresh_token("rt-new");
            let sealed = crate::grant::SealedToken {
                ciphertext: sealer.seal(grant.sub(), &token).await?,
                ids: TokenIds::of(&token),
            };
            let next =
                crate::grant::Grant::authorized(Some(grant), &grant.profile, &grant.scopes, Some(&sealed), "now");
            self.inner.insert(next);
        }
        self.inner.remove(grant, reason).await
    }
    async fn find_by_token(&self, lookup: &TokenLookup) -> Result<Option<String>, crate::ports::StoreError> {
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
        raced: std::sync::Mutex::new(false),
    });
    Disconnect::new(racing, w.sealer.clone(), w.google.clone())
        .run("u")
        .await
        .unwrap();
    assert!(w.grants.get("u").is_none());
    assert_eq!(
        w.google.calls().revokes,
        2,
        "the old token and the one stored meanwhile"
    );
    // Both are dead at Google: refreshing either fails.
    for token in ["rt-u", "rt-new"] {
        assert!(
            crate::ports::TokenEndpoint::refresh(w.google.as_ref(), &Secret::new(token))
                .await
                .is_err()
        );
    }
}
