//! Access tokens kept in memory for the life of the execution environment, per user
//! and scope set, with the fingerprint of the refresh-token ciphertext and grant
//! version they came from, so any change of the grant (a new sign-in, a revocation,
//! an upgrade whose new scope a cached token lacks) invalidates them; and the
//! per-user refresh locks that let concurrent callers share one refresh. Never
//! persisted anywhere. Both are bounded: a long-lived environment serving many users
//! drops expired tokens first, then those closest to expiry, and only ever drops
//! locks nobody holds or waits for.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest;

use crate::grant::{Ciphertext, Grant};
use crate::secret::Secret;
use crate::types::{ScopeSet, Sub};

/// A token is reused (or vended) only while more than this much of its life remains.
pub const MIN_REMAINING_SECS: i64 = 5 * 60;
/// Entries (and locks) kept per environment before the oldest give way.
pub const DEFAULT_CAPACITY: usize = 4096;

type Key = (Sub, String);

/// An access token with when it expires (Unix seconds) and what it carries.
#[derive(Debug, Clone)]
pub struct Vended {
    pub token: Secret,
    pub expires_at: i64,
    pub scopes: ScopeSet,
}

impl Vended {
    /// More than five minutes of life left at `now`.
    pub fn fresh(&self, now: i64) -> bool {
        self.expires_at - now > MIN_REMAINING_SECS
    }
}

/// Which refresh token and grant version a token came from.
pub fn source_of(grant: &Grant) -> Option<String> {
    let token = grant.refresh_token.as_ref()?;
    Some(fingerprint(&token.ciphertext, grant.version))
}

fn fingerprint(ciphertext: &Ciphertext, version: u64) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&version.to_be_bytes());
    ctx.update(&ciphertext.0);
    data_encoding::HEXLOWER.encode(&ctx.finish().as_ref()[..16])
}

struct Cached {
    vended: Vended,
    source: String,
}

pub struct TokenCache {
    capacity: usize,
    entries: Mutex<BTreeMap<Key, Cached>>,
    refreshing: Mutex<BTreeMap<Key, Arc<tokio::sync::Mutex<()>>>>,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl TokenCache {
    pub fn with_capacity(capacity: usize) -> Self {
        TokenCache {
            capacity: capacity.max(1),
            entries: Mutex::default(),
            refreshing: Mutex::default(),
        }
    }

    /// The cached token of `sub` for `scopes` if it came from `source` and is fresh.
    pub fn get(&self, sub: &Sub, scopes: &str, source: &str, now: i64) -> Option<Vended> {
        let entries = self.entries.lock().expect("access-token cache lock");
        let entry = entries.get(&(sub.clone(), scopes.to_owned()))?;
        (entry.source == source && entry.vended.fresh(now)).then(|| entry.vended.clone())
    }

    pub fn put(&self, sub: &Sub, scopes: &str, source: String, vended: Vended, now: i64) {
        let mut entries = self.entries.lock().expect("access-token cache lock");
        let key = (sub.clone(), scopes.to_owned());
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, entry| entry.vended.fresh(now));
            while entries.len() >= self.capacity {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, entry)| entry.vended.expires_at)
                    .map(|(key, _)| key.clone());
                match oldest {
                    Some(oldest) => entries.remove(&oldest),
                    None => break,
                };
            }
        }
        entries.insert(key, Cached { vended, source });
    }

    pub fn forget(&self, sub: &Sub) {
        self.entries
            .lock()
            .expect("access-token cache lock")
            .retain(|(owner, _), _| owner != sub);
    }

    /// The lock that makes concurrent callers for one user and scope set share a
    /// refresh. Locks that nobody holds or waits for are dropped when there are too
    /// many.
    pub fn lock(&self, sub: &Sub, scopes: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.refreshing.lock().expect("refresh locks");
        let key = (sub.clone(), scopes.to_owned());
        if locks.len() >= self.capacity && !locks.contains_key(&key) {
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        locks.entry(key).or_default().clone()
    }

    pub fn len(&self) -> (usize, usize) {
        (
            self.entries.lock().expect("access-token cache lock").len(),
            self.refreshing.lock().expect("refresh locks").len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(n: usize) -> Sub {
        Sub::parse(&format!("user-{n}")).unwrap()
    }

    fn vended(expires_at: i64) -> Vended {
        Vended {
            token: Secret::new("ya29.t"),
            expires_at,
            scopes: ScopeSet::default(),
        }
    }

    #[test]
    fn the_cache_never_grows_past_its_capacity_and_drops_expired_first() {
        let cache = TokenCache::with_capacity(3);
        let now = 1_000_000;
        cache.put(&sub(0), "k", "s".into(), vended(now + 10), now);
        cache.put(&sub(1), "k", "s".into(), vended(now + 3600), now);
        cache.put(&sub(2), "k", "s".into(), vended(now + 1800), now);
        for n in 3..50 {
            cache.put(&sub(n), "k", "s".into(), vended(now + 3600 + n as i64), now);
        }
        assert_eq!(cache.len().0, 3);
        assert!(cache.get(&sub(49), "k", "s", now).is_some());
        assert!(cache.get(&sub(0), "k", "s", now).is_none());
        assert!(cache.get(&sub(49), "k", "other source", now).is_none());
        assert!(
            cache.get(&sub(49), "k", "s", now + 3600 + 49 - 300).is_none(),
            "five minutes or less left"
        );
    }

    #[tokio::test]
    async fn locks_are_bounded_but_a_held_lock_is_never_dropped() {
        let cache = TokenCache::with_capacity(4);
        let held = cache.lock(&sub(0), "k");
        let guard = held.lock().await;
        for n in 1..100 {
            drop(cache.lock(&sub(n), "k"));
        }
        assert!(cache.len().1 <= 4);
        let again = cache.lock(&sub(0), "k");
        assert!(Arc::ptr_eq(&held, &again), "the held lock is still the one handed out");
        assert!(again.try_lock().is_err());
        drop(guard);
    }

    #[test]
    fn a_token_s_source_changes_with_the_refresh_token_and_the_grant_version() {
        use crate::grant::{SealedToken, TokenIds};
        use crate::identity::Profile;
        use time::OffsetDateTime;
        let sealed = |byte: u8| SealedToken {
            ciphertext: Ciphertext(vec![byte]),
            ids: TokenIds::of(&Secret::new(format!("rt-{byte}"))),
            issued_ms: Some(i64::from(byte)),
            expires_at: None,
        };
        let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
        let profile = Profile::bare(sub(0));
        let grant = Grant::authorized(None, &profile, &ScopeSet::default(), Some(&sealed(1)), now);
        let source = source_of(&grant).unwrap();
        assert_eq!(source.len(), 32);
        assert_eq!(Some(&source), source_of(&grant.clone()).as_ref());
        let upgraded = Grant {
            version: grant.version + 1,
            ..grant.clone()
        };
        assert_ne!(source_of(&upgraded), Some(source.clone()), "a new version");
        let rotated = Grant {
            refresh_token: Some(sealed(2)),
            ..grant.clone()
        };
        assert_ne!(source_of(&rotated), Some(source), "another refresh token");
        let online = Grant::authorized(None, &profile, &ScopeSet::default(), None, now);
        assert_eq!(source_of(&online), None);
    }

    #[test]
    fn replacing_an_entry_of_a_full_cache_evicts_nothing() {
        let cache = TokenCache::with_capacity(2);
        let now = 1_000_000;
        cache.put(&sub(0), "k", "s".into(), vended(now + 3600), now);
        cache.put(&sub(1), "k", "s".into(), vended(now + 1800), now);
        cache.put(&sub(0), "k", "s2".into(), vended(now + 3600), now);
        assert!(cache.get(&sub(1), "k", "s", now).is_some());
        assert!(cache.get(&sub(0), "k", "s2", now).is_some());
        cache.put(&sub(2), "k", "s".into(), vended(now + 3000), now);
        assert!(
            cache.get(&sub(1), "k", "s", now).is_none(),
            "closest to expiry goes first"
        );
        assert!(cache.get(&sub(0), "k", "s2", now).is_some());
    }

    #[test]
    fn forgetting_a_user_drops_all_their_tokens_and_nobody_else_s() {
        let cache = TokenCache::default();
        let now = 1_000_000;
        cache.put(&sub(0), "a", "s".into(), vended(now + 3600), now);
        cache.put(&sub(0), "b", "s".into(), vended(now + 3600), now);
        cache.put(&sub(1), "a", "s".into(), vended(now + 3600), now);
        cache.forget(&sub(0));
        assert!(cache.get(&sub(0), "a", "s", now).is_none());
        assert!(cache.get(&sub(0), "b", "s", now).is_none());
        assert!(cache.get(&sub(1), "a", "s", now).is_some());
        assert_eq!(cache.len().0, 1);
    }
}
