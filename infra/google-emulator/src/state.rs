//! Everything one emulator instance remembers, behind one mutex.
//!
//! No lock is held across an `.await`, so a plain `std::sync::Mutex` is fine.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::config::{CodeRequest, EmulatorConfig};
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
    /// Live refresh tokens only (revoking removes them) → owner `sub`.
    pub(crate) refresh_tokens: HashMap<String, String>,
    pub(crate) access_tokens: HashMap<String, AccessEntry>,
    pub(crate) events: HashMap<(String, String), Vec<StoredEvent>>,
    pub(crate) faults: FaultQueues,
    pub(crate) hits: Hits,
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
            access_tokens: HashMap::new(),
            events: HashMap::new(),
            faults: FaultQueues::default(),
            hits: Hits::default(),
        }
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

    pub(crate) fn live_refresh_tokens(&self, sub: &str) -> usize {
        self.users.get(sub).map_or(0, |grant| grant.refresh_tokens.len())
    }

    /// Revokes the user's whole grant for our client, as Google does when any
    /// of its tokens is revoked. Returns whether there was anything to revoke.
    pub(crate) fn revoke_user(&mut self, sub: &str) -> bool {
        let Some(grant) = self.users.get_mut(sub) else {
            return false;
        };
        let had_tokens = !grant.refresh_tokens.is_empty();
        for token in std::mem::take(&mut grant.refresh_tokens) {
            self.refresh_tokens.remove(&token);
        }
        grant.scopes.clear();
        let before = self.access_tokens.len();
        self.access_tokens.retain(|_, entry| entry.sub != sub);
        had_tokens || before != self.access_tokens.len()
    }

    /// Revokes the grant behind a refresh or access token.
    pub(crate) fn revoke_token(&mut self, token: &str) -> bool {
        let owner = self
            .refresh_tokens
            .get(token)
            .cloned()
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

pub(crate) fn scope_string(scopes: &BTreeSet<String>) -> String {
    scopes.iter().map(String::as_str).collect::<Vec<_>>().join(" ")
}
