//! A JWKS fetched once per warm container and kept for the `Cache-Control: max-age`
//! Google served it with. An unknown `kid` triggers a refetch (Google rotates keys),
//! at most once per `min_refetch_interval`, so forged kids cannot make us hammer
//! Google. A refetch replaces the whole set: a key Google no longer publishes is no
//! longer accepted.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use serde::Deserialize;

/// Used when Google sends no usable `max-age`.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

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
    min_refetch_interval: Duration,
    state: RwLock<State>,
    /// Serialises fetches so a burst of requests on a cold cache makes one call.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, Arc<DecodingKey>>,
    fresh_until: Option<Instant>,
    fetched_at: Option<Instant>,
}

impl State {
    fn is_fresh(&self, now: Instant) -> bool {
        self.fresh_until.is_some_and(|until| now < until)
    }
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

impl JwksCache {
    pub fn new(url: impl Into<String>, http: reqwest::Client) -> Self {
        Self::with_refetch_interval(url, http, Duration::from_secs(10))
    }

    pub fn with_refetch_interval(url: impl Into<String>, http: reqwest::Client, interval: Duration) -> Self {
        Self {
            url: url.into(),
            http,
            min_refetch_interval: interval,
            state: RwLock::new(State::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    pub async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, JwksError> {
        if let Some(key) = self.fresh_key(kid) {
            return Ok(key);
        }
        let _fetching = self.fetching.lock().await;
        let now = Instant::now();
        {
            let state = self.state.read().expect("JWKS lock");
            if state.is_fresh(now) {
                if let Some(key) = state.keys.get(kid) {
                    return Ok(key.clone());
                }
                let recently = state.fetched_at.is_some_and(|at| now - at < self.min_refetch_interval);
                if recently {
                    return Err(JwksError::UnknownKid);
                }
            }
        }
        match self.fetch().await {
            Ok((keys, max_age)) => {
                let mut state = self.state.write().expect("JWKS lock");
                *state = State {
                    keys,
                    fresh_until: Some(now + max_age),
                    fetched_at: Some(now),
                };
                state.keys.get(kid).cloned().ok_or(JwksError::UnknownKid)
            }
            Err(reason) => {
                let mut state = self.state.write().expect("JWKS lock");
                // Count the failed attempt too, so an outage is not hammered either.
                state.fetched_at = Some(now);
                // Google's keys outlive their max-age by days; a stale known key is
                // safer to use than failing every sign-in while the endpoint is down.
                match state.keys.get(kid) {
                    Some(key) => {
                        tracing::warn!(reason = %reason, "JWKS refetch failed; using the cached key");
                        Ok(key.clone())
                    }
                    None => Err(JwksError::Unavailable(reason)),
                }
            }
        }
    }

    fn fresh_key(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        let state = self.state.read().expect("JWKS lock");
        state
            .is_fresh(Instant::now())
            .then(|| state.keys.get(kid).cloned())
            .flatten()
    }

    async fn fetch(&self) -> Result<(HashMap<String, Arc<DecodingKey>>, Duration), String> {
        let mut last_error = String::new();
        for attempt in 0..super::outbound::MAX_ATTEMPTS {
            if attempt > 0 {
                super::outbound::backoff(attempt).await;
            }
            match self.fetch_once().await {
                Ok(result) => return Ok(result),
                Err(err) => last_error = err,
            }
        }
        Err(last_error)
    }

    async fn fetch_once(&self) -> Result<(HashMap<String, Arc<DecodingKey>>, Duration), String> {
        let response = self
            .http
            .get(&self.url)
            .send()
            .await
            .map_err(|e| format!("JWKS request failed: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("JWKS endpoint answered {}", response.status()));
        }
        // Never fresher than the refetch interval, so `max-age=0` cannot turn every
        // request into a fetch.
        let max_age = max_age(response.headers())
            .unwrap_or(DEFAULT_MAX_AGE)
            .clamp(self.min_refetch_interval, MAX_MAX_AGE);
        let set: JwkSet = response.json().await.map_err(|e| format!("JWKS body unusable: {e}"))?;
        let keys: HashMap<_, _> = set
            .keys
            .into_iter()
            .filter(|k| k.kty == "RSA" && k.alg.as_deref().is_none_or(|a| a == "RS256"))
            .filter_map(|k| {
                let key = DecodingKey::from_rsa_components(k.n.as_deref()?, k.e.as_deref()?).ok()?;
                Some((k.kid?, Arc::new(key)))
            })
            .collect();
        if keys.is_empty() {
            return Err("JWKS holds no usable RS256 key".into());
        }
        Ok((keys, max_age))
    }
}

fn max_age(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::CACHE_CONTROL)?.to_str().ok()?;
    value.split(',').find_map(|directive| {
        let (name, seconds) = directive.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| seconds.trim().parse().ok())
            .flatten()
            .map(Duration::from_secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CACHE_CONTROL,
            "public, max-age=19800, must-revalidate, no-transform".parse().unwrap(),
        );
        assert_eq!(max_age(&headers), Some(Duration::from_secs(19800)));
        headers.insert(http::header::CACHE_CONTROL, "no-cache".parse().unwrap());
        assert_eq!(max_age(&headers), None);
    }
}
