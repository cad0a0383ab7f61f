//! What the users, Google and the team's backends were told, and the promises the
//! service made them, checked against the store and Google after every step:
//!
//! - I1 a refresh token Google still honours and the service acknowledged storing is
//!   never lost: the user's grant can act offline with a token Google honours;
//! - I2 one Calendar event per (user, calendar, key): every answer for a key names
//!   the same event, which Google holds in that calendar, and no two keys (or one key
//!   in two calendars) share an event;
//! - I3 an acknowledged security event has been applied: no token it revoked is
//!   still stored, and an acknowledged purge left no grant;
//! - I4 after a 204 disconnect, Google honours no token acknowledged before it and
//!   nothing is stored;
//! - I5 a step that ends no grant never drops a scope Google reported;
//! - I6 no plaintext token anywhere in the store;
//! - I7 nothing is stored for a code whose ID token failed verification;
//! - and no operation ever answers `internal` or `not_found` (the calendars exist).
//!
//! Operations that ran in the same step are concurrent: a promise is only checked
//! against what happened in earlier steps where the order matters.

use std::collections::{BTreeMap, BTreeSet};

use shared::grant::TokenPurpose;
use shared::ports::TokenSealer;
use shared::types::ScopeSet;

use crate::world::{CALENDARS, Kill, Op, Outcome, USERS, World, sub};

#[derive(Default)]
pub struct Model {
    /// Refresh tokens whose storing was acknowledged: (user, token).
    acked: Vec<(usize, String)>,
    /// Acknowledged security events: (user, the tokens Google revoked, purged, step).
    secured: Vec<(usize, Vec<String>, bool, usize)>,
    /// The event each (user, calendar, key) answered with.
    events: BTreeMap<(usize, usize, usize), String>,
    /// The last step in which something could store a token for the user.
    last_store: BTreeMap<usize, usize>,
}

/// What the store held for a user when a step began, for I5.
pub struct Before {
    scopes: BTreeMap<usize, ScopeSet>,
}

impl Model {
    /// The scopes of the users whose grant could act offline with a live token.
    pub async fn before(&self, world: &World) -> Before {
        let mut scopes = BTreeMap::new();
        for user in 0..USERS.len() {
            if let Some(grant) = world.grants.get(&sub(user))
                && grant.offline_access()
                && stored_token(world, user)
                    .await
                    .is_some_and(|t| world.google.is_live(&t))
            {
                scopes.insert(user, grant.scopes.clone());
            }
        }
        Before { scopes }
    }

    /// Takes in what one step did, then checks every promise.
    pub async fn step(
        &mut self,
        world: &World,
        step: usize,
        before: Before,
        outcomes: &[Outcome],
    ) -> Result<(), String> {
        for outcome in outcomes {
            if let Err(code @ ("internal" | "not_found")) = outcome.result {
                return Err(format!("{:?} answered {code}", outcome.op));
            }
        }
        for outcome in outcomes {
            if let (Some(user), true) = (outcome.op.user(), outcome.op.stores()) {
                self.last_store.insert(user, step);
            }
        }
        self.calendar(world, outcomes)?;
        self.tokens_kept(world, outcomes).await?;
        self.security(world, step, outcomes).await?;
        self.disconnects(world, outcomes)?;
        self.scopes_kept(world, before, outcomes)?;
        self.no_plaintext(world)?;
        if let Some(forged) = world
            .grants
            .all()
            .iter()
            .find(|g| g.sub().as_str().starts_with("forged"))
        {
            return Err(format!("I7: a grant was stored for an unverified ID token: {forged:?}"));
        }
        Ok(())
    }

    /// I2.
    fn calendar(&mut self, world: &World, outcomes: &[Outcome]) -> Result<(), String> {
        for outcome in outcomes {
            let (Op::Event {
                user, calendar, key, ..
            }
            | Op::Job {
                user, calendar, key, ..
            }) = outcome.op
            else {
                continue;
            };
            let Some(id) = &outcome.event_id else { continue };
            let triple = (user, calendar, key);
            if let Some(before) = self.events.get(&triple)
                && before != id
            {
                return Err(format!("I2: {triple:?} answered {before} and then {id}"));
            }
            if let Some((other, _)) = self.events.iter().find(|(t, i)| *i == id && **t != triple) {
                return Err(format!("I2: {triple:?} and {other:?} share the event {id}"));
            }
            self.events.insert(triple, id.clone());
            let held =
                world.google.stored_events().into_iter().any(|(s, c, e)| {
                    s == USERS[user] && c == CALENDARS[calendar] && e["id"].as_str() == Some(id.as_str())
                });
            if !held {
                return Err(format!(
                    "I2: {triple:?} answered {id}, which Google does not hold there"
                ));
            }
        }
        // Google holds exactly one event for each key that answered.
        let stored = world.google.stored_events();
        for (&(user, calendar, key), id) in &self.events {
            let copies = stored
                .iter()
                .filter(|(s, c, e)| s == USERS[user] && c == CALENDARS[calendar] && e["id"].as_str() == Some(id))
                .count();
            if copies != 1 {
                return Err(format!("I2: {copies} events for {:?}", (user, calendar, key)));
            }
        }
        Ok(())
    }

    /// I1.
    async fn tokens_kept(&mut self, world: &World, outcomes: &[Outcome]) -> Result<(), String> {
        for outcome in outcomes {
            if let (Ok(()), Some(user), Some(token)) = (outcome.result, outcome.op.user(), &outcome.issued) {
                self.acked.push((user, token.clone()));
            }
        }
        for (user, name) in USERS.iter().enumerate() {
            let live: Vec<&String> = self
                .acked
                .iter()
                .filter(|(u, t)| *u == user && world.google.is_live(t))
                .map(|(_, t)| t)
                .collect();
            if live.is_empty() {
                continue;
            }
            let grant = world.grants.get(&sub(user));
            let stored = stored_token(world, user).await;
            let ok = grant.as_ref().is_some_and(|g| g.offline_access())
                && stored.as_ref().is_some_and(|t| world.google.is_live(t));
            if !ok {
                return Err(format!(
                    "I1: {name} has acknowledged live tokens {live:?} but the store holds {:?} ({:?})",
                    stored,
                    grant.map(|g| (g.status, g.status_reason))
                ));
            }
        }
        Ok(())
    }

    /// I3.
    async fn security(&mut self, world: &World, step: usize, outcomes: &[Outcome]) -> Result<(), String> {
        for outcome in outcomes {
            if let (Op::Security { user, kill }, Ok(())) = (&outcome.op, outcome.result) {
                let purged = *kill == Kill::AccountPurged;
                self.secured.push((*user, outcome.revoked.clone(), purged, step));
            }
        }
        for (user, revoked, purged, at) in &self.secured {
            if let Some(token) = stored_token(world, *user).await
                && revoked.contains(&token)
            {
                return Err(format!(
                    "I3: an acknowledged security event revoked {token}, still stored for {}",
                    USERS[*user]
                ));
            }
            let stored_since = self.last_store.get(user).is_some_and(|s| s >= at);
            if *purged && !stored_since && world.grants.get(&sub(*user)).is_some() {
                return Err(format!("I3: {} was purged but a grant is stored", USERS[*user]));
            }
        }
        Ok(())
    }

    /// I4.
    fn disconnects(&self, world: &World, outcomes: &[Outcome]) -> Result<(), String> {
        for outcome in outcomes {
            let (Op::Disconnect { user }, Ok(())) = (&outcome.op, outcome.result) else {
                continue;
            };
            // Tokens acknowledged in this very step may have come after the disconnect.
            let earlier: Vec<&String> = self
                .acked
                .iter()
                .filter(|(u, t)| u == user && !outcomes.iter().any(|o| o.issued.as_ref() == Some(t)))
                .map(|(_, t)| t)
                .collect();
            if let Some(live) = earlier.iter().find(|t| world.google.is_live(t)) {
                return Err(format!("I4: after a 204 disconnect Google still honours {live}"));
            }
            let concurrent = outcomes.iter().any(|o| o.op.user() == Some(*user) && o.op.stores());
            if !concurrent && world.grants.get(&sub(*user)).is_some() {
                return Err(format!(
                    "I4: after a 204 disconnect a grant of {} is stored",
                    USERS[*user]
                ));
            }
        }
        Ok(())
    }

    /// I5.
    fn scopes_kept(&self, world: &World, before: Before, outcomes: &[Outcome]) -> Result<(), String> {
        for (user, scopes) in before.scopes {
            let ends = outcomes.iter().any(|o| {
                o.op.user() == Some(user)
                    && matches!(
                        o.op,
                        Op::Disconnect { .. } | Op::Security { .. } | Op::GoogleRevokes { .. }
                    )
            });
            let Some(grant) = world.grants.get(&sub(user)).filter(|g| g.offline_access()) else {
                continue;
            };
            if ends {
                continue;
            }
            let mut expected = scopes;
            for outcome in outcomes
                .iter()
                .filter(|o| o.op.user() == Some(user) && o.result.is_ok())
            {
                expected = expected.union(&outcome.reported);
            }
            let lost = expected.missing_from(&grant.scopes);
            if !lost.is_empty() {
                return Err(format!("I5: {} lost the scopes {lost:?}", USERS[user]));
            }
        }
        Ok(())
    }

    /// I6.
    fn no_plaintext(&self, world: &World) -> Result<(), String> {
        let issued = world.google.ever_issued();
        let mut stored: Vec<Vec<u8>> = Vec::new();
        for grant in world.grants.all() {
            stored.push(format!("{grant:?}").into_bytes());
            if let Some(token) = &grant.refresh_token {
                stored.push(token.ciphertext.0.clone());
            }
        }
        for slot in world.shared.slots() {
            stored.push(format!("{slot:?}").into_bytes());
            if let Some(token) = &slot.token {
                stored.push(token.ciphertext.0.clone());
            }
        }
        let found: BTreeSet<&String> = issued
            .iter()
            .filter(|token| {
                stored
                    .iter()
                    .any(|bytes| bytes.windows(token.len()).any(|w| w == token.as_bytes()))
            })
            .collect();
        match found.is_empty() {
            true => Ok(()),
            false => Err(format!("I6: plaintext tokens in the store: {found:?}")),
        }
    }
}

/// The refresh token the user's grant holds, decrypted (the checks run without faults).
async fn stored_token(world: &World, user: usize) -> Option<String> {
    let grant = world.grants.get(&sub(user))?;
    let sealed = grant.refresh_token?;
    world
        .sealer
        .open(&sub(user), TokenPurpose::RefreshToken, &sealed.ciphertext)
        .await
        .ok()
        .map(|t| t.expose().to_owned())
}
