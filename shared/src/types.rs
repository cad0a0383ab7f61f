//! Validated values at the edge, so the inside never re-checks strings.

use std::collections::BTreeSet;
use std::fmt;

use aws_lc_rs::digest;
use data_encoding::BASE32HEX_NOPAD;
use serde::Serialize;

pub const CALENDAR_SCOPE: &str = "https://www.googleapis.com/auth/calendar";
pub const CALENDAR_EVENTS_SCOPE: &str = "https://www.googleapis.com/auth/calendar.events";

/// A compact JWS as it arrived: three base64url segments (header and payload
/// non-empty), nothing else.
/// Not verified; `google::IdTokenVerifier` turns it into a `VerifiedIdentity`.
#[derive(Clone, PartialEq, Eq)]
pub struct IdToken(String);

impl IdToken {
    /// Larger than any real Google ID token, small enough to bound parsing work.
    const MAX_LEN: usize = 8 * 1024;

    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        let segments: Vec<&str> = raw.split('.').collect();
        let base64url = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        // An empty signature is let through so that `alg: none` is refused by name.
        let well_formed = raw.len() <= Self::MAX_LEN
            && segments.len() == 3
            && !segments[0].is_empty()
            && !segments[1].is_empty()
            && segments.iter().all(|s| base64url(s));
        well_formed.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdToken(..)")
    }
}

/// A Google account's subject identifier (`sub`): 1-255 visible ASCII characters,
/// as Google documents it. Every use case names its user with one, so the inside
/// never meets an empty or oversized identifier.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Sub(String);

impl Sub {
    pub const MAX_LEN: usize = 255;

    pub fn parse(raw: &str) -> Option<Self> {
        let ok = (1..=Self::MAX_LEN).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Sub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sub({})", self.0)
    }
}

/// A set of OAuth scopes, normalised to the full URLs Google reports in token
/// responses (`email` and `profile` are aliases).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ScopeSet(BTreeSet<String>);

impl ScopeSet {
    /// Parses Google's space-separated `scope` field.
    pub fn from_space_separated(scope: &str) -> Self {
        scope.split_whitespace().map(str::to_owned).collect()
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(&normalise(scope))
    }

    pub fn union(&self, other: &ScopeSet) -> ScopeSet {
        Self(self.0.union(&other.0).cloned().collect())
    }

    /// Scopes of `self` that `granted` lacks, in order.
    pub fn missing_from(&self, granted: &ScopeSet) -> Vec<String> {
        self.0.difference(&granted.0).cloned().collect()
    }

    pub fn allows_calendar_writes(&self) -> bool {
        self.contains(CALENDAR_SCOPE) || self.contains(CALENDAR_EVENTS_SCOPE)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &String> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Every scope of `self` is in `other`.
    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The `scope` parameter of a token request: space-separated.
    pub fn to_space_separated(&self) -> String {
        self.0.iter().map(String::as_str).collect::<Vec<_>>().join(" ")
    }

    /// A short stable name of the set (hex of a SHA-256 prefix), for keys.
    pub fn key(&self) -> String {
        let mut ctx = digest::Context::new(&digest::SHA256);
        for scope in &self.0 {
            ctx.update(&(scope.len() as u64).to_be_bytes());
            ctx.update(scope.as_bytes());
        }
        data_encoding::HEXLOWER.encode(&ctx.finish().as_ref()[..12])
    }
}

impl<S: AsRef<str>> FromIterator<S> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|s| normalise(s.as_ref()))
                .filter(|s| !s.is_empty())
                .collect(),
        )
    }
}

fn normalise(scope: &str) -> String {
    match scope.trim() {
        "email" => "https://www.googleapis.com/auth/userinfo.email".to_owned(),
        "profile" => "https://www.googleapis.com/auth/userinfo.profile".to_owned(),
        other => other.to_owned(),
    }
}

/// A Google Calendar id as the caller named it (`primary` by default): 1-1024
/// characters, no control characters, and never `.` or `..`, which URL
/// normalisation would turn into a move up the Calendar API's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarId(String);

impl CalendarId {
    pub fn primary() -> Self {
        Self("primary".to_owned())
    }

    pub fn parse(raw: &str) -> Option<Self> {
        let ok = (1..=1024).contains(&raw.chars().count())
            && raw != "."
            && raw != ".."
            && !raw.chars().any(char::is_control);
        ok.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Calendar's `sendUpdates`: who Google notifies about the new event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SendUpdates {
    All,
    ExternalOnly,
    #[default]
    None,
}

impl SendUpdates {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "all" => Some(Self::All),
            "externalOnly" => Some(Self::ExternalOnly),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::ExternalOnly => "externalOnly",
            Self::None => "none",
        }
    }
}

/// The client's `Idempotency-Key`: 1-255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = (1..=255).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A Google Calendar event id: base32hex (`a-v`, `0-9`), which Google accepts for
/// client-chosen ids. Choosing the id ourselves makes every insert retry-safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventId(String);

impl EventId {
    /// The same user, calendar and key always give the same id, so a replayed request
    /// can never create a second event.
    pub fn derive(sub: &str, calendar_id: &str, key: &IdempotencyKey) -> Self {
        let mut ctx = digest::Context::new(&digest::SHA256);
        for part in [sub, calendar_id, key.0.as_str()] {
            // Length-prefixing keeps ("ab","c") and ("a","bc") apart.
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        Self::encode(ctx.finish().as_ref())
    }

    /// An id for an event without a key, from `random` bytes (the caller's
    /// randomness port decides where they come from).
    pub fn from_random(random: &[u8]) -> Self {
        Self::encode(random)
    }

    /// A client-supplied id, if Google would accept it.
    pub fn parse(raw: &str) -> Option<Self> {
        let ok =
            (5..=1024).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b));
        ok.then(|| Self(raw.to_owned()))
    }

    fn encode(bytes: &[u8]) -> Self {
        Self(BASE32HEX_NOPAD.encode(bytes).to_ascii_lowercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_token_shape() {
        assert!(IdToken::parse("aaa.bbb.ccc").is_some());
        assert!(IdToken::parse("aaa.bbb.").is_some());
        assert!(IdToken::parse("aaa.bbb.").is_some());
        for bad in [
            "", "a.b", "a.b.c.d", "a..c", ".b.c", ".b.c", "a.b.c d", "a.b+.c", "a.b.c=",
        ] {
            assert!(IdToken::parse(bad).is_none(), "{bad:?}");
        }
        assert!(IdToken::parse(&format!("a.{}.c", "b".repeat(9000))).is_none());
    }

    #[test]
    fn subs_are_one_to_255_visible_ascii_characters() {
        assert_eq!(
            Sub::parse("110169484474386276334").unwrap().as_str(),
            "110169484474386276334"
        );
        assert!(Sub::parse(&"1".repeat(255)).is_some());
        for bad in ["", " ", "a b", "tab\t", "é", "line\n"] {
            assert!(Sub::parse(bad).is_none(), "{bad:?}");
        }
        assert!(Sub::parse(&"1".repeat(256)).is_none());
    }

    #[test]
    fn scope_set_keys_ignore_order_and_aliases() {
        let a = ScopeSet::from_space_separated("email openid");
        let b = ScopeSet::from_space_separated("openid https://www.googleapis.com/auth/userinfo.email");
        assert_eq!(a.key(), b.key());
        assert_ne!(a.key(), ScopeSet::from_space_separated("openid").key());
        assert_eq!(
            a.to_space_separated(),
            "https://www.googleapis.com/auth/userinfo.email openid"
        );
        assert!(ScopeSet::from_space_separated("openid").is_subset(&a));
        assert!(!a.is_subset(&ScopeSet::from_space_separated("openid")));
    }

    #[test]
    fn scope_aliases_and_union() {
        let a = ScopeSet::from_space_separated("openid email");
        let b: ScopeSet = [CALENDAR_EVENTS_SCOPE].into_iter().collect();
        let union = a.union(&b);
        assert!(union.contains("https://www.googleapis.com/auth/userinfo.email"));
        assert!(union.allows_calendar_writes());
        assert!(!a.allows_calendar_writes());
        assert_eq!(b.missing_from(&a), vec![CALENDAR_EVENTS_SCOPE.to_owned()]);
        assert!(b.missing_from(&union).is_empty());
    }

    #[test]
    fn calendar_ids_cannot_change_the_url_path() {
        assert!(CalendarId::parse("team@example.com").is_some());
        assert!(CalendarId::parse(&"c".repeat(1024)).is_some());
        for bad in ["", ".", "..", "a\nb", "tab\there", "nul\u{0}"] {
            assert!(CalendarId::parse(bad).is_none(), "{bad:?}");
        }
        assert!(CalendarId::parse(&"c".repeat(1025)).is_none());
        assert_eq!(
            SendUpdates::parse("externalOnly").map(SendUpdates::as_str),
            Some("externalOnly")
        );
        assert!(SendUpdates::parse("ALL").is_none());
    }

    #[test]
    fn idempotency_key_bounds() {
        assert!(IdempotencyKey::parse("k").is_some());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_some());
        for bad in ["", "has space", "tab\t", "é"] {
            assert!(IdempotencyKey::parse(bad).is_none(), "{bad:?}");
        }
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_none());
    }

    #[test]
    fn event_ids_are_valid_base32hex_and_deterministic_per_key() {
        let key = IdempotencyKey::parse("order-42").unwrap();
        let a = EventId::derive("sub-1", "primary", &key);
        assert_eq!(a, EventId::derive("sub-1", "primary", &key));
        assert_ne!(a, EventId::derive("sub-2", "primary", &key));
        assert_ne!(a, EventId::derive("sub-1", "work", &key));
        assert_ne!(EventId::derive("ab", "c", &key), EventId::derive("a", "bc", &key));
        for id in [a, EventId::from_random(&[7; 20])] {
            assert!(EventId::parse(id.as_str()).is_some(), "{id:?}");
        }
        assert_ne!(EventId::from_random(&[1; 20]), EventId::from_random(&[2; 20]));
        assert!(EventId::parse("UPPER").is_none());
        assert!(EventId::parse("wxyz0").is_none());
    }
}
