//! Everything one emulator instance remembers, behind one mutex.
//!
//! No lock is held across an `.await`, so a plain `std::sync::Mutex` is fine.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::config::{CodeRequest, EmulatorConfig, SCOPE_EMAIL, SCOPE_PROFILE};
use crate::faults::FaultQueues;
use crate::keys::{self, SigningKey};

/// Requests that reached each endpoint, faulted ones included.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Hits {
    pub token_authorization_code: u64,
    pub token_refresh: u64,
    /// Token requests with a missing or unsupported `grant_type`.
    pub token_other: u64,
    pub jwks: u64,
    pub revoke: u64,
    pub calendar_insert: u64,
    pub calendar_get: u64,
    pub risc_jwks: u64,
}

/// Refresh requests (`grant_type=refresh_token`) per user, counted like
/// [`Hits`] (on arrival, faulted ones included) for every refresh token the
/// emulator ever issued, live or not; reset with the hits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RefreshHits {
    /// `sub` → refresh requests.
    pub by_user: BTreeMap<String, u64>,
    /// `sub` → requested `scope` → refresh requests. The scope key is the
    /// request's `scope` parameter normalised (`email`/`profile` expanded,
    /// sorted, space-separated), `""` for a refresh without `scope`.
    pub by_user_and_scope: BTreeMap<String, BTreeMap<String, u64>>,
}

/// What the concurrency barriers ([`crate::FaultKind::Barrier`]) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BarrierStats {
    /// Groups of requests that were all in flight at once and then released.
    pub released: u64,
    /// Barriers whose group never filled before the timeout.
    pub broken: u64,
}

/// An event as stored by `events.insert`, with the `sendUpdates` it came with.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredEvent {
    pub event: Value,
    pub send_updates: Option<String>,
}

pub(crate) struct CodeEntry {
    pub(crate) request: CodeRequest,
    pub(crate) used: bool,
}

/// A user's grant to our client: what Google remembers between sign-ins.
pub(crate) struct UserGrant {
    pub(crate) scopes: BTreeSet<String>,
    pub(crate) refresh_tokens: BTreeSet<String>,
    /// The latest sign-in, used for ID tokens minted later (refresh, `id_token`).
    pub(crate) profile: CodeRequest,
}

/// A live refresh token.
pub(crate) struct RefreshEntry {
    pub(crate) sub: String,
    /// Epoch milliseconds after which the token is dead (time-based access,
    /// or a consent screen in Testing).
    pub(crate) expires_at_ms: Option<i64>,
    /// Token responses carry `refresh_token_expires_in` for this token.
    pub(crate) announce_expiry: bool,
}

pub(crate) struct AccessEntry {
    pub(crate) sub: String,
    pub(crate) scopes: BTreeSet<String>,
    pub(crate) expires_at: i64,
}

pub(crate) struct State {
    pub(crate) config: EmulatorConfig,
    /// Rotation step of the current ID-token key; the previous step's key is
    /// still published after a rotation.
    pub(crate) key_step: usize,
    pub(crate) rotated: bool,
    pub(crate) codes: HashMap<String, CodeEntry>,
    pub(crate) users: HashMap<String, UserGrant>,
    /// Live refresh tokens only (revoking or expiry removes them).
    pub(crate) refresh_tokens: HashMap<String, RefreshEntry>,
    /// Time-limited refresh tokens by expiry, to end them when due.
    pub(crate) refresh_expiries: BTreeSet<(i64, String)>,
    /// Every refresh token ever issued → its owner, for the refresh counters.
    pub(crate) refresh_owners: HashMap<String, String>,
    pub(crate) refresh_hits: RefreshHits,
    /// Refresh requests per refresh token (live or not).
    pub(crate) refresh_hits_by_token: HashMap<String, u64>,
    pub(crate) access_tokens: HashMap<String, AccessEntry>,
    pub(crate) events: HashMap<(String, String), Vec<StoredEvent>>,
    pub(crate) faults: FaultQueues,
    pub(crate) hits: Hits,
    pub(crate) barriers: BarrierStats,
    pub(crate) issued: Vec<String>,
}

impl State {
    pub(crate) fn new(config: EmulatorConfig) -> Self {
        Self {
            issued: vec![config.client_secret.clone()],
            config,
            key_step: 0,
            rotated: false,
            codes: HashMap::new(),
            users: HashMap::new(),
            refresh_tokens: HashMap::new(),
            refresh_expiries: BTreeSet::new(),
            refresh_owners: HashMap::new(),
            refresh_hits: RefreshHits::default(),
            refresh_hits_by_token: HashMap::new(),
            access_tokens: HashMap::new(),
            events: HashMap::new(),
            faults: FaultQueues::default(),
            hits: Hits::default(),
            barriers: BarrierStats::default(),
        }
    }

    /// Zeroes every counter: endpoint hits, per-user refreshes, barriers.
    pub(crate) fn reset_hits(&mut self) {
        self.hits = Hits::default();
        self.refresh_hits = RefreshHits::default();
        self.refresh_hits_by_token.clear();
        self.barriers = BarrierStats::default();
    }

    /// Counts a refresh request for the owner of `refresh_token`, if the
    /// emulator ever issued it.
    pub(crate) fn count_refresh(&mut self, refresh_token: Option<&str>, scope: Option<&str>) {
        let Some(token) = refresh_token else {
            return;
        };
        let Some(sub) = self.refresh_owners.get(token).cloned() else {
            return;
        };
        *self.refresh_hits_by_token.entry(token.to_owned()).or_default() += 1;
        *self.refresh_hits.by_user.entry(sub.clone()).or_default() += 1;
        let scope_key = scope
            .map(|scope| normalised_scopes(scope).join(" "))
            .unwrap_or_default();
        let by_scope = self.refresh_hits.by_user_and_scope.entry(sub).or_default();
        *by_scope.entry(scope_key).or_default() += 1;
    }

    /// Stores a new live refresh token of `sub`.
    pub(crate) fn add_refresh_token(&mut self, token: &str, sub: &str, expires_at_ms: Option<i64>, announce: bool) {
        let entry = RefreshEntry {
            sub: sub.to_owned(),
            expires_at_ms,
            announce_expiry: announce,
        };
        self.refresh_tokens.insert(token.to_owned(), entry);
        self.refresh_owners.insert(token.to_owned(), sub.to_owned());
        if let Some(at) = expires_at_ms {
            self.refresh_expiries.insert((at, token.to_owned()));
        }
        if let Some(grant) = self.users.get_mut(sub) {
            grant.refresh_tokens.insert(token.to_owned());
        }
    }

    /// Ends every time-limited refresh token whose time has come. When a
    /// user's last live refresh token ends this way, the grant ends with it
    /// (its scopes are no longer granted), as when time-based access runs out.
    pub(crate) fn end_expired_refresh_tokens(&mut self) {
        let now = now_ms();
        while let Some((at, _)) = self.refresh_expiries.first() {
            if *at > now {
                break;
            }
            let Some((_, token)) = self.refresh_expiries.pop_first() else {
                break;
            };
            let Some(entry) = self.refresh_tokens.remove(&token) else {
                continue;
            };
            if let Some(grant) = self.users.get_mut(&entry.sub) {
                grant.refresh_tokens.remove(&token);
                if grant.refresh_tokens.is_empty() {
                    grant.scopes.clear();
                }
            }
        }
    }

    /// Makes every live refresh token of the user expire now (the end of
    /// time-based access, without waiting for it). Returns how many there were.
    pub(crate) fn expire_refresh_tokens(&mut self, sub: &str) -> usize {
        let tokens: Vec<String> = self
            .users
            .get(sub)
            .map(|grant| grant.refresh_tokens.iter().cloned().collect())
            .unwrap_or_default();
        let now = now_ms();
        for token in &tokens {
            if let Some(entry) = self.refresh_tokens.get_mut(token) {
                if let Some(at) = entry.expires_at_ms {
                    self.refresh_expiries.remove(&(at, token.clone()));
                }
                entry.expires_at_ms = Some(now);
                self.refresh_expiries.insert((now, token.clone()));
            }
        }
        self.end_expired_refresh_tokens();
        tokens.len()
    }

    /// Forgets users, tokens, events, faults, hits and rotations; the client
    /// (id and secret) stays.
    pub(crate) fn reset(&mut self) {
        *self = Self::new(self.config.clone());
    }

    pub(crate) fn current_key(&self) -> Arc<SigningKey> {
        keys::signing_key(self.key_step)
    }

    /// Keys published in the JWKS: the current one, then the previous one.
    pub(crate) fn published_keys(&self) -> Vec<Arc<SigningKey>> {
        let mut published = vec![self.current_key()];
        if self.rotated {
            published.push(keys::signing_key(self.key_step + keys::SIGNING_SLOTS - 1));
        }
        published
    }

    pub(crate) fn rotate_keys(&mut self) {
        self.key_step += 1;
        self.rotated = true;
    }

    pub(crate) fn issue(&mut self, prefix: &str, random_len: usize) -> String {
        let secret = format!("{prefix}{}", keys::random_token(random_len));
        self.issued.push(secret.clone());
        secret
    }

    pub(crate) fn mint_access_token(&mut self, sub: &str, scopes: BTreeSet<String>) -> String {
        let token = self.issue("ya29.", 48);
        let expires_at = now() + i64::try_from(self.config.access_token_ttl_secs).unwrap_or(i64::MAX / 2);
        let entry = AccessEntry {
            sub: sub.to_owned(),
            scopes,
            expires_at,
        };
        self.access_tokens.insert(token.clone(), entry);
        token
    }

    pub(crate) fn live_refresh_tokens(&mut self, sub: &str) -> usize {
        self.end_expired_refresh_tokens();
        self.users.get(sub).map_or(0, |grant| grant.refresh_tokens.len())
    }

    /// Revokes the user's whole grant for our client, as Google does when any
    /// of its tokens is revoked. Returns whether there was anything to revoke.
    pub(crate) fn revoke_user(&mut self, sub: &str) -> bool {
        self.end_expired_refresh_tokens();
        let Some(grant) = self.users.get_mut(sub) else {
            return false;
        };
        let had_tokens = !grant.refresh_tokens.is_empty();
        for token in std::mem::take(&mut grant.refresh_tokens) {
            if let Some(RefreshEntry {
                expires_at_ms: Some(at),
                ..
            }) = self.refresh_tokens.remove(&token)
            {
                self.refresh_expiries.remove(&(at, token));
            }
        }
        grant.scopes.clear();
        let before = self.access_tokens.len();
        self.access_tokens.retain(|_, entry| entry.sub != sub);
        had_tokens || before != self.access_tokens.len()
    }

    /// Revokes the grant behind a refresh or access token.
    pub(crate) fn revoke_token(&mut self, token: &str) -> bool {
        self.end_expired_refresh_tokens();
        let owner = self
            .refresh_tokens
            .get(token)
            .map(|entry| entry.sub.clone())
            .or_else(|| self.access_tokens.get(token).map(|entry| entry.sub.clone()));
        match owner {
            Some(sub) => self.revoke_user(&sub),
            None => false,
        }
    }

    pub(crate) fn expire_access_tokens(&mut self, sub: &str) {
        for entry in self.access_tokens.values_mut().filter(|entry| entry.sub == sub) {
            entry.expires_at = 0;
        }
    }

    /// The user's profile from their latest sign-in, or the defaults.
    pub(crate) fn profile(&self, sub: &str) -> CodeRequest {
        self.users
            .get(sub)
            .map_or_else(|| CodeRequest::new(sub), |grant| grant.profile.clone())
    }
}

pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub(crate) fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The long name of a scope Google also accepts by a short one: `email` and
/// `profile` (and nothing else stands in for another scope).
pub(crate) fn normalise_scope(scope: &str) -> &str {
    match scope {
        "email" => SCOPE_EMAIL,
        "profile" => SCOPE_PROFILE,
        other => other,
    }
}

/// A space-separated `scope` parameter: normalised, deduplicated, sorted.
pub(crate) fn normalised_scopes(scope: &str) -> Vec<String> {
    let set: BTreeSet<String> = scope
        .split_whitespace()
        .map(|scope| normalise_scope(scope).to_owned())
        .collect();
    set.into_iter().collect()
}

pub(crate) fn scope_string(scopes: &BTreeSet<String>) -> String {
    scopes.iter().map(String::as_str).collect::<Vec<_>>().join(" ")
}
