//! The grant: what we hold for one Google account (profile, granted scopes, the
//! sealed refresh token, status) and the transitions between its states, as pure
//! functions. Storing it is the grant store's business (`ports::GrantStore`).

use aws_lc_rs::digest;
use data_encoding::{BASE64, HEXLOWER};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::secret::Secret;
use crate::types::ScopeSet;

/// Encryption-context purpose of a stored refresh token; IAM policies match on it.
pub const REFRESH_TOKEN_PURPOSE: &str = "refresh_token";

/// The user as the ID token describes them: the `user` object of every response.
/// `hd` is always serialised (`null` for consumer accounts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub picture: Option<String>,
    pub hd: Option<String>,
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

/// A refresh token as stored: ciphertext plus its identifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedToken {
    pub ciphertext: Ciphertext,
    pub ids: TokenIds,
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
}

impl Grant {
    pub fn sub(&self) -> &str {
        &self.profile.sub
    }

    pub fn offline_access(&self) -> bool {
        self.status == GrantStatus::Active && self.refresh_token.is_some()
    }

    /// A sign-in or upgrade: profile refreshed, scopes merged (a concurrent upgrade's
    /// scope is never lost), the new refresh token stored if one came (a missing one
    /// never erases the stored one).
    pub fn authorized(
        current: Option<&Grant>,
        profile: &Profile,
        granted: &ScopeSet,
        new_token: Option<&SealedToken>,
        now: &str,
    ) -> Grant {
        let refresh_token = new_token.or(current.and_then(|c| c.refresh_token.as_ref())).cloned();
        let (status, status_reason) = match (current, &refresh_token) {
            (Some(c), None) => (c.status, c.status_reason.clone()),
            _ => (GrantStatus::Active, None),
        };
        // A reauthorization after the stored token died starts over with what Google
        // granted now: the revocation took the old scopes with it.
        let fresh = new_token.is_some() && current.is_some_and(|c| c.status == GrantStatus::ReauthorizationRequired);
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
            created_at: current.map_or_else(|| now.to_owned(), |c| c.created_at.clone()),
            updated_at: now.to_owned(),
        }
    }

    /// The refresh token died (`reason`: `invalid_grant`, `risc:<type>`): dropped,
    /// status `reauthorization_required`. `None` when nothing would change.
    pub fn dead(&self, reason: &str, now: &str) -> Option<Grant> {
        if self.status == GrantStatus::ReauthorizationRequired && self.refresh_token.is_none() {
            return None;
        }
        Some(Grant {
            refresh_token: None,
            status: GrantStatus::ReauthorizationRequired,
            status_reason: Some(reason.to_owned()),
            version: self.version + 1,
            updated_at: now.to_owned(),
            ..self.clone()
        })
    }

    /// Google rotated the refresh token during a refresh.
    pub fn rotated(&self, token: SealedToken, now: &str) -> Grant {
        Grant {
            refresh_token: Some(token),
            version: self.version + 1,
            updated_at: now.to_owned(),
            ..self.clone()
        }
    }

    /// Holds this very ciphertext (not one a concurrent sign-in stored since).
    pub fn holds(&self, ciphertext: &Ciphertext) -> bool {
        self.refresh_token.as_ref().is_some_and(|t| &t.ciphertext == ciphertext)
    }
}

pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc())
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// A profile with nothing but its `sub`, for tests.
#[cfg(test)]
pub(crate) fn bare_profile(sub: &str) -> Profile {
    Profile {
        sub: sub.into(),
        email: None,
        email_verified: false,
        name: None,
        picture: None,
        hd: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(sub: &str) -> Profile {
        bare_profile(sub)
    }

    fn sealed(byte: u8) -> SealedToken {
        SealedToken {
            ciphertext: Ciphertext(vec![byte]),
            ids: TokenIds::of(&Secret::new(format!("token-{byte}"))),
        }
    }

    #[test]
    fn google_token_identifiers() {
        let ids = TokenIds::of(&Secret::new("1//0abcdefghijklmnopqrstuvwxyz"));
        // base64(SHA-512(SHA-512(token))): 64 bytes → 88 characters.
        assert_eq!(ids.hash.len(), 88);
        assert_eq!(ids.prefix_hash, TokenIds::hash_prefix("1//0abcdefghijkl"));
        assert!(!ids.prefix_hash.contains("abcdefghijkl"));
    }

    #[test]
    fn a_sign_in_without_refresh_token_keeps_the_stored_one_and_scopes_only_grow() {
        let a: ScopeSet = ["openid"].into_iter().collect();
        let b: ScopeSet = ["calendar"].into_iter().collect();
        let first = Grant::authorized(None, &profile("u"), &a, Some(&sealed(1)), "t1");
        let second = Grant::authorized(Some(&first), &profile("u"), &b, None, "t2");
        assert_eq!(second.refresh_token, first.refresh_token);
        assert_eq!(second.scopes, a.union(&b));
        assert_eq!((second.version, second.created_at.as_str()), (2, "t1"));
    }

    #[test]
    fn dead_tokens_are_dropped_once_and_a_new_sign_in_reactivates() {
        let grant = Grant::authorized(None, &profile("u"), &ScopeSet::default(), Some(&sealed(1)), "t");
        let dead = grant.dead("invalid_grant", "t2").unwrap();
        assert_eq!(
            (dead.status, dead.refresh_token.is_none()),
            (GrantStatus::ReauthorizationRequired, true)
        );
        assert_eq!(dead.status_reason.as_deref(), Some("invalid_grant"));
        assert!(dead.dead("invalid_grant", "t3").is_none());
        let online_only = Grant::authorized(Some(&dead), &profile("u"), &ScopeSet::default(), None, "t4");
        assert_eq!(online_only.status, GrantStatus::ReauthorizationRequired);
        let openid: ScopeSet = ["openid"].into_iter().collect();
        let back = Grant::authorized(Some(&dead), &profile("u"), &openid, Some(&sealed(2)), "t5");
        assert_eq!((back.status, back.status_reason), (GrantStatus::Active, None));
        assert_eq!(
            back.scopes, openid,
            "a reauthorization starts over with what Google granted"
        );
    }
}
