//! A scripted Google that keeps Google's rules: codes are single-use, refresh tokens
//! stay valid until revoked or (time-limited access) expired, a refresh can ask for
//! a subset of the grant, revoking any token of a user ends their whole grant, and an
//! access token carries the scopes it was minted for. Failures can be queued per
//! endpoint.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

mod calendar;
mod identity;
use serde_json::Value;

use crate::ports::{Clock, TokenEndpoint};
use crate::secret::Secret;
use crate::system::SystemClock;
use crate::types::{IdToken, ScopeSet};
use crate::upstream::{CalendarError, TokenError, TokenGrant};

pub struct FakeGoogle {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
}

impl Default for FakeGoogle {
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }
}

/// What a code redeems for.
#[derive(Clone)]
struct CodeGrant {
    sub: String,
    scopes: ScopeSet,
    refresh_token: Option<String>,
    /// Time-limited access: the refresh token's lifetime.
    lifetime: Option<i64>,
}

/// A live refresh token: whose. What it grants, and until when, is the user's
/// grant's.
#[derive(Clone)]
struct Refresh {
    sub: String,
}

#[derive(Default)]
struct State {
    codes: BTreeMap<String, CodeGrant>,
    /// What each user granted this client, over all their consents (Google keeps
    /// one grant per user and client: incremental authorization adds to it).
    granted: BTreeMap<String, ScopeSet>,
    /// When each user's grant ends (time-limited access): the last consent decides.
    grant_ends: BTreeMap<String, i64>,
    live_refresh: BTreeMap<String, Refresh>,
    live_access: BTreeMap<String, (String, ScopeSet)>,
    /// (sub, calendar id, event id) → event.
    events: BTreeMap<(String, String, String), Value>,
    refresh_failures: VecDeque<TokenError>,
    insert_failures: VecDeque<CalendarError>,
    revoke_failures: VecDeque<TokenError>,
    access_lifetime: Option<Duration>,
    /// Refresh tokens the next refreshes hand out in place of the one presented.
    rotations: VecDeque<String>,
    issued: u32,
    calls: Calls,
    /// Every refresh token ever issued, for the tests that look for it elsewhere.
    ever_issued: Vec<String>,
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
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        FakeGoogle {
            state: Mutex::new(State::default()),
            clock,
        }
    }

    /// An ID token for `sub` that [`IdTokens::verify`] accepts (one whose `sub`
    /// starts with `forged` is refused).
    pub fn id_token(sub: &str) -> IdToken {
        IdToken::parse(&format!("h.{sub}.s")).expect("JWT-shaped")
    }

    /// A one-time code for `sub`; `refresh_token` is what the exchange returns.
    pub fn code(&self, code: &str, sub: &str, scopes: &[&str], refresh_token: Option<&str>) {
        self.code_with_lifetime(code, sub, scopes, refresh_token, None);
    }

    /// A code for time-limited access: its refresh token lives `lifetime` seconds.
    pub fn code_with_lifetime(
        &self,
        code: &str,
        sub: &str,
        scopes: &[&str],
        refresh_token: Option<&str>,
        lifetime: Option<i64>,
    ) {
        let grant = CodeGrant {
            sub: sub.to_owned(),
            scopes: scopes.iter().collect(),
            refresh_token: refresh_token.map(str::to_owned),
            lifetime,
        };
        self.state.lock().unwrap().codes.insert(code.to_owned(), grant);
    }

    pub fn kill_refresh_token(&self, token: &str) {
        self.state.lock().unwrap().live_refresh.remove(token);
    }

    /// Google revoked everything `sub` granted (the user removed access, or a
    /// security event); as Google does, without telling the service directly.
    pub fn revoke_user(&self, sub: &str) {
        revoke_grant(&mut self.state.lock().unwrap(), sub);
    }

    pub fn is_live(&self, refresh_token: &str) -> bool {
        let now = self.clock.now_unix();
        let state = self.state.lock().unwrap();
        state
            .live_refresh
            .get(refresh_token)
            .is_some_and(|r| state.open(&r.sub, now))
    }

    /// The refresh tokens Google still honours for `sub`.
    pub fn live_tokens_of(&self, sub: &str) -> Vec<String> {
        let now = self.clock.now_unix();
        let state = self.state.lock().unwrap();
        state
            .live_refresh
            .iter()
            .filter(|(_, r)| r.sub == sub && state.open(sub, now))
            .map(|(token, _)| token.clone())
            .collect()
    }

    pub fn ever_issued(&self) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state
            .ever_issued
            .iter()
            .chain(state.live_access.keys())
            .cloned()
            .collect()
    }

    pub fn revoke_access_tokens(&self) {
        self.state.lock().unwrap().live_access.clear();
    }

    pub fn access_lifetime(&self, lifetime: Duration) {
        self.state.lock().unwrap().access_lifetime = Some(lifetime);
    }

    /// The next refresh rotates the refresh token: it answers with `new` as well
    /// (the presented one stays live, as Google leaves it).
    pub fn rotate_on_refresh(&self, new: &str) {
        self.state.lock().unwrap().rotations.push_back(new.to_owned());
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

    /// Every event stored, with the user and calendar it is in.
    pub fn stored_events(&self) -> Vec<(String, String, Value)> {
        let state = self.state.lock().unwrap();
        state
            .events
            .iter()
            .map(|((sub, calendar, _), event)| (sub.clone(), calendar.clone(), event.clone()))
            .collect()
    }

    pub fn events(&self) -> Vec<Value> {
        self.stored_events().into_iter().map(|(_, _, e)| e).collect()
    }

    fn access_token(state: &mut State, sub: &str, scopes: ScopeSet) -> TokenGrant {
        state.issued += 1;
        let token = format!("ya29.at-{}", state.issued);
        state
            .live_access
            .insert(token.clone(), (sub.to_owned(), scopes.clone()));
        TokenGrant {
            access_token: Secret::new(token),
            expires_in: Some(state.access_lifetime.unwrap_or(Duration::from_secs(3600))),
            refresh_token: None,
            refresh_token_expires_in: None,
            scopes: Some(scopes),
            id_token: None,
        }
    }
}

impl State {
    /// Whether `sub`'s grant has not ended by `now`.
    fn open(&self, sub: &str, now: i64) -> bool {
        self.grant_ends.get(sub).is_none_or(|end| now < *end)
    }
}

/// Revoking any token of a user ends the user's whole grant for the client.
fn revoke_grant(state: &mut State, sub: &str) -> bool {
    state.granted.remove(sub);
    state.grant_ends.remove(sub);
    let before = state.live_refresh.len() + state.live_access.len();
    state.live_refresh.retain(|_, r| r.sub != sub);
    state.live_access.retain(|_, (owner, _)| owner != sub);
    before != state.live_refresh.len() + state.live_access.len()
}

#[async_trait]
impl TokenEndpoint for FakeGoogle {
    async fn exchange_code(&self, code: &Secret, _redirect_uri: &str) -> Result<TokenGrant, TokenError> {
        let now = self.clock.now_unix();
        let mut state = self.state.lock().unwrap();
        state.calls.exchanges += 1;
        let grant = state.codes.remove(code.expose()).ok_or(TokenError::InvalidGrant)?;
        if !state.open(&grant.sub, now) {
            // The old grant ended with its time: this consent starts a new one.
            revoke_grant(&mut state, &grant.sub);
        }
        let all = state.granted.entry(grant.sub.clone()).or_default();
        *all = all.union(&grant.scopes);
        let mut answer = Self::access_token(&mut state, &grant.sub, grant.scopes.clone());
        if let Some(token) = &grant.refresh_token {
            let refresh = Refresh { sub: grant.sub.clone() };
            match grant.lifetime {
                Some(lifetime) => state.grant_ends.insert(grant.sub.clone(), now + lifetime),
                None => state.grant_ends.remove(&grant.sub),
            };
            state.live_refresh.insert(token.clone(), refresh);
            state.ever_issued.push(token.clone());
            answer.refresh_token = Some(Secret::new(token.clone()));
            answer.refresh_token_expires_in = grant.lifetime.map(|l| Duration::from_secs(l.max(0) as u64));
        }
        answer.id_token = Some(Self::id_token(&grant.sub));
        Ok(answer)
    }

    async fn refresh(&self, refresh_token: &Secret, scopes: Option<&ScopeSet>) -> Result<TokenGrant, TokenError> {
        let now = self.clock.now_unix();
        let mut state = self.state.lock().unwrap();
        state.calls.refreshes += 1;
        if let Some(err) = state.refresh_failures.pop_front() {
            return Err(err);
        }
        let refresh = state
            .live_refresh
            .get(refresh_token.expose())
            .filter(|r| state.open(&r.sub, now))
            .cloned()
            .ok_or(TokenError::InvalidGrant)?;
        let all = state.granted.get(&refresh.sub).cloned().unwrap_or_default();
        let granted = match scopes {
            Some(asked) if !asked.is_subset(&all) => return Err(TokenError::InvalidScope),
            Some(asked) => asked.clone(),
            None => all,
        };
        let mut answer = Self::access_token(&mut state, &refresh.sub, granted);
        if let Some(rotated) = state.rotations.pop_front() {
            state.live_refresh.insert(rotated.clone(), refresh.clone());
            state.ever_issued.push(rotated.clone());
            answer.refresh_token = Some(Secret::new(rotated));
        }
        answer.refresh_token_expires_in = state
            .grant_ends
            .get(&refresh.sub)
            .map(|at| Duration::from_secs((at - now).max(0) as u64));
        Ok(answer)
    }

    async fn revoke(&self, token: &Secret) -> Result<bool, TokenError> {
        let mut state = self.state.lock().unwrap();
        state.calls.revokes += 1;
        if let Some(err) = state.revoke_failures.pop_front() {
            return Err(err);
        }
        let owner = state
            .live_refresh
            .get(token.expose())
            .map(|r| r.sub.clone())
            .or_else(|| state.live_access.get(token.expose()).map(|(sub, _)| sub.clone()));
        Ok(owner.is_some_and(|sub| revoke_grant(&mut state, &sub)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::CALENDAR_EVENTS_SCOPE;

    #[tokio::test]
    async fn revoking_one_token_ends_the_users_whole_grant_and_refreshes_narrow() {
        let google = FakeGoogle::default();
        google.code("c1", "u", &["openid", CALENDAR_EVENTS_SCOPE], Some("rt-1"));
        google.code("c2", "u", &["openid", CALENDAR_EVENTS_SCOPE], Some("rt-2"));
        google.exchange_code(&Secret::new("c1"), "postmessage").await.unwrap();
        google.exchange_code(&Secret::new("c2"), "postmessage").await.unwrap();
        let openid: ScopeSet = ["openid"].into_iter().collect();
        let narrow = google.refresh(&Secret::new("rt-1"), Some(&openid)).await.unwrap();
        assert_eq!(narrow.scopes, Some(openid));
        let drive: ScopeSet = ["https://www.googleapis.com/auth/drive"].into_iter().collect();
        assert_eq!(
            google.refresh(&Secret::new("rt-1"), Some(&drive)).await.unwrap_err(),
            TokenError::InvalidScope
        );
        assert!(google.revoke(&Secret::new("rt-2")).await.unwrap());
        assert!(!google.is_live("rt-1") && !google.is_live("rt-2"));
        assert!(!google.revoke(&Secret::new("rt-1")).await.unwrap(), "already invalid");
    }
}
