//! A JWKS fetched once per warm container and kept for the `Cache-Control: max-age`
//! Google served it with (less its `Age`). An unknown `kid` triggers a refetch
//! (Google rotates keys), and no fetch starts within `min_refetch_interval` of the
//! last one, so neither forged kids nor an outage make us hammer Google. A refetch
//! replaces the whole set: a key Google no longer publishes is no longer accepted.
//! When the set is past its max-age, the refetch gets a short budget and a failure
//! serves the cached keys at once (Google's keys outlive their max-age by days), so a
//! hanging endpoint never holds up authenticated requests; but only for
//! `stale_limit` past the max-age: after that, an endpoint that keeps failing means
//! "unavailable" rather than keys we can no longer vouch for.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use serde::Deserialize;

use crate::outbound::{self, Attempt, retry};

/// Used when Google sends no usable `max-age`.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// What a refetch of a stale set may take before the cached keys are served.
const STALE_REFETCH_BUDGET: Duration = Duration::from_millis(500);
/// How long past its max-age a set is still served while refetches fail.
pub const DEFAULT_STALE_LIMIT: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("no key with this kid is published")]
    UnknownKid,
    #[error("key set unavailable: {0}")]
    Unavailable(String),
}

pub struct JwksCache {
    url: String,
    http: reqwest::Client,
    timeout: Duration,
    min_refetch_interval: Duration,
    stale_limit: Duration,
    state: RwLock<State>,
    /// Serialises fetches so a burst of requests on a cold cache makes one call.
    fetching: tokio::sync::Mutex<()>,
}

type Keys = HashMap<String, Arc<DecodingKey>>;

#[derive(Default)]
struct State {
    keys: Keys,
    fresh_until: Option<Instant>,
    /// The last fetch attempt, successful or not.
    attempted_at: Option<Instant>,
}

impl State {
    /// The key under `kid` while the set may still be served.
    fn usable(&self, kid: &str, now: Instant, stale_limit: Duration) -> Option<Arc<DecodingKey>> {
        let until = self.fresh_until? + stale_limit;
        (now < until).then(|| self.keys.get(kid).cloned()).flatten()
    }
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

/// What a JWK must say to be an RS256 signing key; other members are ignored.
#[derive(Deserialize)]
struct RawKey {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

impl RawKey {
    /// The key under its kid, decoded once here rather than at every verification.
    fn rs256(self) -> Option<(String, Arc<DecodingKey>)> {
        let signing = self.kty == "RSA"
            && self.alg.as_deref().is_none_or(|alg| alg == "RS256")
            && self.usage.as_deref().is_none_or(|usage| usage == "sig");
        let kid = self.kid.filter(|kid| signing && !kid.is_empty())?;
        let key = DecodingKey::from_rsa_components(self.n.as_deref()?, self.e.as_deref()?).ok()?;
        Some((kid, Arc::new(key)))
    }
}

impl JwksCache {
    pub fn new(url: impl Into<String>, http: reqwest::Client, timeout: Duration) -> Self {
        Self::with_refetch_interval(url, http, timeout, Duration::from_secs(10))
    }

    pub fn with_refetch_interval(
        url: impl Into<String>,
        http: reqwest::Client,
        timeout: Duration,
        interval: Duration,
    ) -> Self {
        Self {
            url: url.into(),
            http,
            timeout,
            min_refetch_interval: interval,
            stale_limit: DEFAULT_STALE_LIMIT,
            state: RwLock::new(State::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// How long past its max-age the set may be served while refetches fail.
    pub fn with_stale_limit(mut self, limit: Duration) -> Self {
        self.stale_limit = limit;
        self
    }

    /// A cache that already holds `keys`, fresh for an hour (unit tests of the
    /// verifiers, without a JWKS endpoint).
    #[cfg(test)]
    pub(crate) fn holding(keys: Vec<(&str, DecodingKey)>) -> Self {
        let cache = Self::new(
            "http://127.0.0.1:9/unused",
            crate::outbound::http_client(Duration::from_secs(1)),
            Duration::from_secs(1),
        );
        {
            let mut state = cache.state.write().expect("JWKS lock");
            state.keys = keys
                .into_iter()
                .map(|(kid, key)| (kid.to_owned(), Arc::new(key)))
                .collect();
            state.fresh_until = Some(Instant::now() + Duration::from_secs(3600));
            state.attempted_at = Some(Instant::now());
        }
        cache
    }

    pub async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, JwksError> {
        if let Some(key) = self.fresh(kid) {
            return Ok(key);
        }
        let _fetching = self.fetching.lock().await;
        let now = Instant::now();
        let (fresh, stale_key, may_fetch, servable) = {
            let state = self.state.read().expect("JWKS lock");
            let fresh = state.fresh_until.is_some_and(|until| now < until);
            let may_fetch = state
                .attempted_at
                .is_none_or(|at| now.duration_since(at) >= self.min_refetch_interval);
            let usable = state.usable(kid, now, self.stale_limit);
            let servable = state.fresh_until.is_some_and(|until| now < until + self.stale_limit);
            (fresh, usable, may_fetch, servable)
        };
        if let (true, Some(key)) = (fresh, &stale_key) {
            return Ok(key.clone());
        }
        if !may_fetch {
            return match (stale_key, fresh) {
                (Some(key), _) => Ok(key),
                (None, true) => Err(JwksError::UnknownKid),
                (None, false) if servable => Err(JwksError::UnknownKid),
                (None, false) => Err(JwksError::Unavailable("key set refetch is backing off".into())),
            };
        }
        let budget = if stale_key.is_some() {
            STALE_REFETCH_BUDGET.min(self.timeout)
        } else {
            self.timeout
        };
        let fetched = self.fetch(budget, stale_key.is_none()).await;
        let mut state = self.state.write().expect("JWKS lock");
        state.attempted_at = Some(now);
        match fetched {
            Ok((keys, max_age)) => {
                state.keys = keys;
                state.fresh_until = Some(now + max_age);
                state.keys.get(kid).cloned().ok_or(JwksError::UnknownKid)
            }
            Err(reason) => match stale_key {
                Some(key) => {
                    tracing::warn!(reason = %reason, "JWKS refetch failed; using the cached key");
                    Ok(key)
                }
                None => Err(JwksError::Unavailable(reason)),
            },
        }
    }

    fn fresh(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        let state = self.state.read().expect("JWKS lock");
        let fresh = state.fresh_until.is_some_and(|until| Instant::now() < until);
        fresh.then(|| state.keys.get(kid).cloned()).flatten()
    }

    async fn fetch(&self, budget: Duration, with_retries: bool) -> Result<(Keys, Duration), String> {
        retry("JWKS", |_| async move {
            match self.fetch_once(budget).await {
                Ok(set) => Attempt::Done(Ok(set)),
                Err(err) if with_retries => Attempt::Retry(err, None),
                Err(err) => Attempt::Done(Err(err)),
            }
        })
        .await
    }

    async fn fetch_once(&self, budget: Duration) -> Result<(Keys, Duration), String> {
        let response = outbound::send(&self.http, budget, self.http.get(&self.url))
            .await
            .map_err(|e| format!("JWKS request failed: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("JWKS endpoint answered {}", response.status()));
        }
        // Never fresher than the refetch interval, so `max-age=0` cannot turn every
        // request into a fetch.
        let max_age = freshness(response.headers())
            .unwrap_or(DEFAULT_MAX_AGE)
            .clamp(self.min_refetch_interval, MAX_MAX_AGE);
        let set: RawSet = response.json().await.map_err(|e| format!("JWKS body unusable: {e}"))?;
        let keys: Keys = set
            .keys
            .into_iter()
            .filter_map(|raw| serde_json::from_value::<RawKey>(raw).ok()?.rs256())
            .collect();
        if keys.is_empty() {
            return Err("JWKS holds no usable RS256 key".into());
        }
        Ok((keys, max_age))
    }
}

/// How long the response stays fresh: its `max-age` less the `Age` a cache in
/// between has already spent (RFC 9111 §4.2).
fn freshness(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::CACHE_CONTROL)?.to_str().ok()?;
    let max_age = value.split(',').find_map(|directive| {
        let (name, seconds) = directive.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| seconds.trim().parse::<u64>().ok())
            .flatten()
    })?;
    let age = headers
        .get(http::header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    Some(Duration::from_secs(max_age.saturating_sub(age)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_is_max_age_less_age() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CACHE_CONTROL,
            "public, max-age=19800, must-revalidate, no-transform".parse().unwrap(),
        );
        assert_eq!(freshness(&headers), Some(Duration::from_secs(19800)));
        headers.insert(http::header::AGE, "800".parse().unwrap());
        assert_eq!(freshness(&headers), Some(Duration::from_secs(19000)));
        headers.insert(http::header::AGE, "99999".parse().unwrap());
        assert_eq!(freshness(&headers), Some(Duration::ZERO));
        headers.insert(http::header::CACHE_CONTROL, "no-cache".parse().unwrap());
        assert_eq!(freshness(&headers), None);
    }

    #[test]
    fn a_set_is_served_only_within_its_stale_limit() {
        let now = Instant::now();
        let key = Arc::new(DecodingKey::from_rsa_components("AQAB", "AQAB").unwrap());
        let state = State {
            keys: HashMap::from([("k".to_owned(), key)]),
            fresh_until: Some(now),
            attempted_at: None,
        };
        let limit = Duration::from_secs(60);
        assert!(state.usable("k", now + Duration::from_secs(59), limit).is_some());
        assert!(state.usable("k", now + Duration::from_secs(61), limit).is_none());
        assert!(state.usable("other", now, limit).is_none());
    }
}
