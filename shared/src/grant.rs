//! The grant: what we hold for one Google account (profile, granted scopes, the
//! sealed refresh token and when Google will end it, status, when it was last used)
//! and the transitions between its states, as pure functions. Storing it is the
//! grant store's business (`ports::GrantStore`).

use aws_lc_rs::digest;
use data_encoding::{BASE64, HEXLOWER};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use crate::identity::Profile;
use crate::secret::Secret;
use crate::types::{ScopeSet, Sub};

mod sweep;
pub use sweep::{DAY, SWEEP_SHARDS, SweepPolicy, SweepSlot, sweep_bucket};

/// What a sealed token is for; the KMS encryption context names it, and IAM
/// policies match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    RefreshToken,
    AccessToken,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::RefreshToken => "refresh_token",
            TokenPurpose::AccessToken => "access_token",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantStatus {
    Active,
    /// Google refused the refresh token (or told us it was revoked); the user must
    /// sign in again with offline access.
    ReauthorizationRequired,
}

impl GrantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Active => "active",
            GrantStatus::ReauthorizationRequired => "reauthorization_required",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [GrantStatus::Active, GrantStatus::ReauthorizationRequired]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// Why a grant was deleted: lifecycle events report it (`GrantDisconnected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalReason {
    /// The user disconnected (`DELETE /me/google`).
    User,
    /// Google told us the account is gone (Cross-Account Protection).
    AccountPurged,
}

impl RemovalReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RemovalReason::User => "user",
            RemovalReason::AccountPurged => "risc:account-purged",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [RemovalReason::User, RemovalReason::AccountPurged]
            .into_iter()
            .find(|r| r.as_str() == raw)
    }
}

/// A KMS ciphertext. Never decrypted except to call Google.
#[derive(Clone, PartialEq, Eq)]
pub struct Ciphertext(pub Vec<u8>);

impl std::fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ciphertext({} bytes)", self.0.len())
    }
}

/// Non-reversible identifiers of a refresh token, so a Cross-Account Protection
/// `token-revoked` event (which names the token, not the user) finds its grant.
/// `hash` is Google's `hash_base64_sha512_sha512` form; for the `prefix` form only a
/// SHA-256 of the 16-character prefix is kept, never the prefix itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIds {
    pub hash: String,
    pub prefix_hash: String,
}

impl TokenIds {
    pub const PREFIX_LEN: usize = 16;

    pub fn of(token: &Secret) -> Self {
        let inner = digest::digest(&digest::SHA512, token.expose().as_bytes());
        let outer = digest::digest(&digest::SHA512, inner.as_ref());
        let prefix: String = token.expose().chars().take(Self::PREFIX_LEN).collect();
        Self {
            hash: BASE64.encode(outer.as_ref()),
            prefix_hash: Self::hash_prefix(&prefix),
        }
    }

    /// The stored form of a `prefix` identifier as Google sends it.
    pub fn hash_prefix(prefix: &str) -> String {
        HEXLOWER.encode(digest::digest(&digest::SHA256, prefix.as_bytes()).as_ref())
    }
}

/// A refresh token as stored: ciphertext, its identifiers, when Google issued it to
/// us and when Google will end it (time-limited access; `None`: until revoked or
/// unused for six months).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedToken {
    pub ciphertext: Ciphertext,
    pub ids: TokenIds,
    /// When we received it (Unix milliseconds); `None` for tokens stored before
    /// this was recorded.
    pub issued_ms: Option<i64>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
}

impl SealedToken {
    /// Issued after `other`: of two tokens of one user, the one to keep (Google
    /// may have ended the older one's grant in between).
    fn newer_than(&self, other: &SealedToken) -> bool {
        match (self.issued_ms, other.issued_ms) {
            (Some(mine), Some(theirs)) => mine >= theirs,
            _ => true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub profile: Profile,
    pub scopes: ScopeSet,
    pub refresh_token: Option<SealedToken>,
    pub status: GrantStatus,
    /// Why the status last changed (`invalid_grant`, `risc:<event-type>`): lifecycle
    /// events report it.
    pub status_reason: Option<String>,
    pub version: u64,
    pub created_at: String,
    pub updated_at: String,
    /// When the refresh token was last used at Google (issued or refreshed), Unix s.
    pub last_used_at: Option<i64>,
    /// The refresh-token expiry a `GrantExpiring` notice was recorded for.
    pub expiry_noticed: Option<i64>,
}

impl Grant {
    pub fn sub(&self) -> &Sub {
        &self.profile.sub
    }

    pub fn offline_access(&self) -> bool {
        self.status == GrantStatus::Active && self.refresh_token.is_some()
    }

    /// When Google will end the stored refresh token, if it said.
    pub fn expires_at(&self) -> Option<i64> {
        self.refresh_token.as_ref().and_then(|t| t.expires_at)
    }

    /// A sign-in or upgrade: profile refreshed, scopes merged (a concurrent upgrade's
    /// scope is never lost), the new refresh token stored if one came (a missing one
    /// never erases the stored one; a new one without expiry clears the old expiry),
    /// unless a concurrent sign-in stored one Google issued later than ours.
    pub fn authorized(
        current: Option<&Grant>,
        profile: &Profile,
        granted: &ScopeSet,
        new_token: Option<&SealedToken>,
        now: OffsetDateTime,
    ) -> Grant {
        let stored = current.and_then(|c| c.refresh_token.as_ref());
        let new_token = new_token.filter(|new| stored.is_none_or(|old| new.newer_than(old)));
        let refresh_token = new_token.or(stored).cloned();
        let (status, status_reason) = match (current, &refresh_token) {
            (Some(c), None) => (c.status, c.status_reason.clone()),
            _ => (GrantStatus::Active, None),
        };
        // A reauthorization after the stored token died starts over with what Google
        // granted now: the revocation took the old scopes with it.
        let fresh = new_token.is_some() && current.is_some_and(|c| c.status == GrantStatus::ReauthorizationRequired);
        let stamp = rfc3339(now);
        Grant {
            profile: profile.clone(),
            scopes: match current {
                Some(c) if !fresh => c.scopes.union(granted),
                _ => granted.clone(),
            },
            refresh_token,
            status,
            status_reason,
            version: current.map_or(1, |c| c.version + 1),
            created_at: current.map_or_else(|| stamp.clone(), |c| c.created_at.clone()),
            updated_at: stamp,
            last_used_at: match new_token {
                Some(_) => Some(now.unix_timestamp()),
                None => current.and_then(|c| c.last_used_at),
            },
            expiry_noticed: match new_token {
                Some(_) => None,
                None => current.and_then(|c| c.expiry_noticed),
            },
        }
    }

    /// The refresh token died (`reason`: `invalid_grant`, `risc:<type>`): dropped,
    /// status `reauthorization_required`. `None` when nothing would change.
    pub fn dead(&self, reason: &str, now: OffsetDateTime) -> Option<Grant> {
        if self.status == GrantStatus::ReauthorizationRequired && self.refresh_token.is_none() {
            return None;
        }
        Some(Grant {
            refresh_token: None,
            status: GrantStatus::ReauthorizationRequired,
            status_reason: Some(reason.to_owned()),
            version: self.version + 1,
            updated_at: rfc3339(now),
            ..self.clone()
        })
    }

    /// Google rotated the refresh token during a refresh.
    pub fn rotated(&self, token: SealedToken, now: OffsetDateTime) -> Grant {
        Grant {
            refresh_token: Some(token),
            version: self.version + 1,
            updated_at: rfc3339(now),
            last_used_at: Some(now.unix_timestamp()),
            expiry_noticed: None,
            ..self.clone()
        }
    }

    /// The notice that the refresh token expires at `expires_at` was recorded (the
    /// stream turns it into `GrantExpiring`). `None` if already recorded.
    pub fn noticed(&self, expires_at: i64, now: OffsetDateTime) -> Option<Grant> {
        (self.expiry_noticed != Some(expires_at)).then(|| Grant {
            expiry_noticed: Some(expires_at),
            version: self.version + 1,
            updated_at: rfc3339(now),
            ..self.clone()
        })
    }

    /// The refresh token was just used at Google. Recorded at most once a day, and
    /// without a new version: a use changes nothing the access-token caches (keyed by
    /// version) or the lifecycle events care about. `None` when not worth a write.
    pub fn used(&self, now: OffsetDateTime) -> Option<Grant> {
        let now = now.unix_timestamp();
        let stale = self.last_used_at.is_none_or(|last| now - last >= DAY);
        stale.then(|| Grant {
            last_used_at: Some(now),
            ..self.clone()
        })
    }

    /// When the refresh token was last used at Google; for grants stored before
    /// uses were recorded, their last write is the best guess.
    pub fn last_used(&self) -> Option<i64> {
        self.last_used_at.or_else(|| parse_rfc3339(&self.updated_at))
    }

    /// Holds this very ciphertext (not one a concurrent sign-in stored since).
    pub fn holds(&self, ciphertext: &Ciphertext) -> bool {
        self.refresh_token.as_ref().is_some_and(|t| &t.ciphertext == ciphertext)
    }
}

/// RFC 3339 in UTC to the second, the form of every stored and answered timestamp.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Unix seconds as RFC 3339 (`grant_expires_at`, `GrantExpiring`).
pub fn unix_rfc3339(seconds: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(seconds).ok().map(rfc3339)
}

fn parse_rfc3339(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text, &Rfc3339).ok().map(|t| t.unix_timestamp())
}

#[cfg(test)]
mod tests;
