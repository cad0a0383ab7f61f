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
        let max_age = kept_for(response.headers(), self.min_refetch_interval);
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

/// How long a fetched set is kept: its freshness, at most a day, and never less than
/// the refetch interval, so `max-age=0` cannot turn every request into a fetch.
fn kept_for(headers: &http::HeaderMap, min_refetch_interval: Duration) -> Duration {
    freshness(headers)
        .unwrap_or(DEFAULT_MAX_AGE)
        .clamp(min_refetch_interval, MAX_MAX_AGE)
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
    fn a_set_is_kept_between_the_refetch_interval_and_a_day() {
        let interval = Duration::from_secs(10);
        let mut headers = http::HeaderMap::new();
        assert_eq!(kept_for(&headers, interval), Duration::from_secs(300), "no max-age");
        headers.insert(http::header::CACHE_CONTROL, "max-age=999999".parse().unwrap());
        assert_eq!(kept_for(&headers, interval), Duration::from_secs(24 * 3600));
        headers.insert(http::header::CACHE_CONTROL, "max-age=0".parse().unwrap());
        assert_eq!(kept_for(&headers, interval), interval);
        headers.insert(http::header::CACHE_CONTROL, "max-age=19800".parse().unwrap());
        assert_eq!(kept_for(&headers, interval), Duration::from_secs(19800));
    }

    #[test]
    fn a_stale_set_is_served_for_a_day_by_default() {
        let cache = JwksCache::holding(Vec::new());
        assert_eq!(cache.stale_limit, Duration::from_secs(24 * 3600));
        let shorter = cache.with_stale_limit(Duration::from_secs(60));
        assert_eq!(shorter.stale_limit, Duration::from_secs(60));
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
        assert!(state.usable("k", now + limit, limit).is_none(), "the limit is the end");
        assert!(state.usable("k", now + Duration::from_secs(61), limit).is_none());
        assert!(state.usable("other", now, limit).is_none());
    }

    #[test]
    fn only_rsa_signing_keys_with_a_kid_are_kept() {
        let key = |patch: serde_json::Value| {
            let mut raw =
                serde_json::json!({"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig", "n": "AQAB", "e": "AQAB"});
            for (name, value) in patch.as_object().unwrap() {
                if value.is_null() {
                    raw.as_object_mut().unwrap().remove(name);
                } else {
                    raw[name] = value.clone();
                }
            }
            serde_json::from_value::<RawKey>(raw)
                .unwrap()
                .rs256()
                .map(|(kid, _)| kid)
        };
        assert_eq!(key(serde_json::json!({})).as_deref(), Some("k1"));
        assert_eq!(
            key(serde_json::json!({"alg": null, "use": null})).as_deref(),
            Some("k1")
        );
        for odd in [
            serde_json::json!({"kty": "EC"}),
            serde_json::json!({"alg": "RS384"}),
            serde_json::json!({"use": "enc"}),
            serde_json::json!({"kid": ""}),
            serde_json::json!({"kid": null}),
            serde_json::json!({"n": null}),
        ] {
            assert_eq!(key(odd.clone()), None, "{odd}");
        }
    }

    /// A JWKS endpoint on loopback: answers every request with one key under `k1`,
    /// the status and `max-age` it is set to, and counts the requests.
    #[derive(Default)]
    struct Endpoint {
        hits: std::sync::atomic::AtomicU32,
        failing: std::sync::atomic::AtomicBool,
        max_age: std::sync::atomic::AtomicU64,
    }

    impl Endpoint {
        fn hits(&self) -> u32 {
            self.hits.load(std::sync::atomic::Ordering::SeqCst)
        }

        fn fail(&self) {
            self.failing.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    async fn serve(max_age: u64) -> (Arc<Endpoint>, String) {
        use std::sync::atomic::Ordering::SeqCst;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let endpoint = Arc::new(Endpoint::default());
        endpoint.max_age.store(max_age, SeqCst);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/certs", listener.local_addr().unwrap());
        let served = endpoint.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let endpoint = served.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut chunk = [0; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&chunk[..n]),
                        }
                    }
                    endpoint.hits.fetch_add(1, SeqCst);
                    // A failing endpoint still sends a usable body: only the status says no.
                    let status = if endpoint.failing.load(SeqCst) {
                        "500 Internal Server Error"
                    } else {
                        "200 OK"
                    };
                    let body = r#"{"keys":[{"kty":"RSA","kid":"k1","alg":"RS256","use":"sig","n":"AQAB","e":"AQAB"}]}"#;
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncache-control: public, max-age={}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        endpoint.max_age.load(SeqCst),
                        body.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        (endpoint, url)
    }

    fn cache(url: &str, interval_ms: u64) -> JwksCache {
        let http = crate::outbound::http_client(Duration::from_secs(5));
        JwksCache::with_refetch_interval(url, http, Duration::from_secs(5), Duration::from_millis(interval_ms))
    }

    async fn pause(ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    #[tokio::test]
    async fn a_set_is_kept_for_its_max_age_and_fetched_again_after() {
        let (kept, url) = serve(3600).await;
        let long = cache(&url, 100);
        long.key("k1").await.unwrap();
        pause(150).await;
        long.key("k1").await.unwrap();
        assert_eq!(kept.hits(), 1, "fresh for an hour");

        let (brief, url) = serve(0).await;
        let short = cache(&url, 100);
        short.key("k1").await.unwrap();
        pause(150).await;
        short.key("k1").await.unwrap();
        assert_eq!(brief.hits(), 2, "max-age=0 is kept for the refetch interval only");
    }

    #[tokio::test]
    async fn an_unknown_kid_fetches_again_but_never_within_the_interval() {
        let (endpoint, url) = serve(3600).await;
        let keys = cache(&url, 300);
        keys.key("k1").await.unwrap();
        assert_eq!(keys.key("k9").await.err(), Some(JwksError::UnknownKid));
        assert_eq!(endpoint.hits(), 1);
        pause(400).await;
        assert_eq!(keys.key("k9").await.err(), Some(JwksError::UnknownKid));
        assert_eq!(endpoint.hits(), 2, "Google may have rotated its keys");
    }

    #[tokio::test]
    async fn a_stale_set_is_served_at_once_while_the_endpoint_fails() {
        let (endpoint, url) = serve(0).await;
        let keys = cache(&url, 1000);
        keys.key("k1").await.unwrap();
        pause(1100).await;
        endpoint.fail();
        assert!(keys.key("k1").await.is_ok(), "the cached key");
        assert_eq!(endpoint.hits(), 2, "one attempt, no retries, for a stale set");
        assert_eq!(
            keys.key("k9").await.err(),
            Some(JwksError::UnknownKid),
            "within the interval and the stale limit: the set still speaks"
        );
        assert_eq!(endpoint.hits(), 2);
    }

    #[tokio::test]
    async fn past_its_stale_limit_a_set_is_not_served_and_a_failing_endpoint_is_unavailable() {
        let (endpoint, url) = serve(0).await;
        let keys = cache(&url, 1000).with_stale_limit(Duration::from_millis(1));
        keys.key("k1").await.unwrap();
        pause(1100).await;
        endpoint.fail();
        assert!(matches!(keys.key("k1").await, Err(JwksError::Unavailable(_))));
        assert_eq!(
            endpoint.hits(),
            1 + crate::outbound::MAX_ATTEMPTS,
            "retried: nothing to fall back on"
        );
        assert!(
            matches!(keys.key("k1").await, Err(JwksError::Unavailable(_))),
            "backing off, and no set to vouch for"
        );
        assert_eq!(endpoint.hits(), 1 + crate::outbound::MAX_ATTEMPTS);
    }
}
