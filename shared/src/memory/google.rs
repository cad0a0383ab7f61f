//! A scripted Google for unit tests: codes, refresh tokens and access tokens it
//! issued, events it stored, and queues of failures to answer with next.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::google::{CalendarError, Rejection, TokenError, TokenGrant, VerifiedIdentity};
use crate::grant::Profile;
use crate::ports::{Calendar, IdTokens, TokenEndpoint};
use crate::secret::Secret;
use crate::types::{CalendarId, EventId, IdToken, ScopeSet, SendUpdates};

#[derive(Default)]
pub struct FakeGoogle {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    codes: HashMap<String, (String, ScopeSet, Option<String>)>,
    live_refresh: HashSet<String>,
    live_access: HashSet<String>,
    events: HashMap<(String, String), Value>,
    refresh_failures: VecDeque<TokenError>,
    insert_failures: VecDeque<CalendarError>,
    revoke_failures: VecDeque<TokenError>,
    access_lifetime: Option<Duration>,
    issued: u32,
    calls: Calls,
}

/// How often each endpoint was called.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Calls {
    pub exchanges: u32,
    pub refreshes: u32,
    pub revokes: u32,
    pub inserts: u32,
    pub gets: u32,
}

impl FakeGoogle {
    /// An ID token for `sub` that [`IdTokens::verify`] accepts.
    pub fn id_token(sub: &str) -> IdToken {
        IdToken::parse(&format!("h.{sub}.s")).expect("JWT-shaped")
    }

    /// A one-time code for `sub`; `refresh_token` is what the exchange returns.
    pub fn code(&self, code: &str, sub: &str, scopes: &[&str], refresh_token: Option<&str>) {
        let mut state = self.state.lock().unwrap();
        if let Some(token) = refresh_token {
            state.live_refresh.insert(token.to_owned());
        }
        let grant = (
            sub.to_owned(),
            scopes.iter().collect(),
            refresh_token.map(str::to_owned),
        );
        state.codes.insert(code.to_owned(), grant);
    }

    pub fn live_refresh_token(&self, token: &str) {
        self.state.lock().unwrap().live_refresh.insert(token.to_owned());
    }

    pub fn kill_refresh_token(&self, token: &str) {
        self.state.lock().unwrap().live_refresh.remove(token);
    }

    pub fn revoke_access_tokens(&self) {
        self.state.lock().unwrap().live_access.clear();
    }

    pub fn access_lifetime(&self, lifetime: Duration) {
        self.state.lock().unwrap().access_lifetime = Some(lifetime);
    }

    pub fn fail_refresh(&self, err: TokenError) {
        self.state.lock().unwrap().refresh_failures.push_back(err);
    }

    pub fn fail_insert(&self, err: CalendarError) {
        self.state.lock().unwrap().insert_failures.push_back(err);
    }

    pub fn fail_revoke(&self, err: TokenError) {
        self.state.lock().unwrap().revoke_failures.push_back(err);
    }

    pub fn calls(&self) -> Calls {
        self.state.lock().unwrap().calls
    }

    pub fn events(&self) -> Vec<Value> {
        self.state.lock().unwrap().events.values().cloned().collect()
    }

    fn access_token(state: &mut State) -> TokenGrant {
        state.issued += 1;
        let token = format!("at-{}", state.issued);
        state.live_access.insert(token.clone());
        TokenGrant {
            access_token: Secret::new(token),
            expires_in: Some(state.access_lifetime.unwrap_or(Duration::from_secs(3600))),
            refresh_token: None,
            scopes: None,
            id_token: None,
        }
    }
}

#[async_trait]
impl IdTokens for FakeGoogle {
    async fn verify(&self, token: &IdToken) -> Result<VerifiedIdentity, Rejection> {
        let sub = token.as_str().split('.').nth(1).unwrap_or_default();
        if sub.starts_with("forged") {
            return Err(Rejection::BadSignature);
        }
        Ok(VerifiedIdentity {
            profile: Profile {
                sub: sub.to_owned(),
                email: Some(format!("{sub}@example.com")),
                email_verified: true,
                name: None,
                picture: None,
                hd: None,
            },
            expires_at: 4_000_000_000,
        })
    }
}

#[async_trait]
impl TokenEndpoint for FakeGoogle {
    async fn exchange_code(&self, code: &Secret, _redirect_uri: &str) -> Result<TokenGrant, TokenError> {
        let mut state = self.state.lock().unwrap();
        state.calls.exchanges += 1;
        let (sub, scopes, refresh) = state.codes.remove(code.expose()).ok_or(TokenError::InvalidGrant)?;
        let mut grant = Self::access_token(&mut state);
        grant.refresh_token = refresh.map(Secret::new);
        grant.scopes = Some(scopes);
        grant.id_token = Some(Self::id_token(&sub));
        Ok(grant)
    }

    async fn refresh(&self, refresh_token: &Secret) -> Result<TokenGrant, TokenError> {
        let mut state = self.state.lock().unwrap();
        state.calls.refreshes += 1;
        if let Some(err) = state.refresh_failures.pop_front() {
            return Err(err);
        }
        if !state.live_refresh.contains(refresh_token.expose()) {
            return Err(TokenError::InvalidGrant);
        }
        Ok(Self::access_token(&mut state))
    }

    async fn revoke(&self, token: &Secret) -> Result<bool, TokenError> {
        let mut state = self.state.lock().unwrap();
        state.calls.revokes += 1;
        if let Some(err) = state.revoke_failures.pop_front() {
            return Err(err);
        }
        Ok(state.live_refresh.remove(token.expose()))
    }
}

#[async_trait]
impl Calendar for FakeGoogle {
    async fn insert(
        &self,
        access_token: &Secret,
        calendar: &CalendarId,
        _send_updates: SendUpdates,
        event: &Value,
    ) -> Result<Value, CalendarError> {
        let mut state = self.state.lock().unwrap();
        state.calls.inserts += 1;
        if let Some(err) = state.insert_failures.pop_front() {
            return Err(err);
        }
        if !state.live_access.contains(access_token.expose()) {
            return Err(CalendarError::Unauthorized);
        }
        let id = event["id"].as_str().unwrap_or_default().to_owned();
        let key = (calendar.as_str().to_owned(), id.clone());
        if state.events.contains_key(&key) {
            return Err(CalendarError::Duplicate { ours: false });
        }
        let mut created = event.clone();
        created["htmlLink"] = Value::String(format!("https://calendar.test/event?eid={id}"));
        created["status"] = Value::String("confirmed".into());
        state.events.insert(key, created.clone());
        Ok(created)
    }

    async fn get(&self, _access_token: &Secret, calendar: &CalendarId, id: &EventId) -> Result<Value, CalendarError> {
        let mut state = self.state.lock().unwrap();
        state.calls.gets += 1;
        let key = (calendar.as_str().to_owned(), id.as_str().to_owned());
        state.events.get(&key).cloned().ok_or(CalendarError::NotFound)
    }
}
