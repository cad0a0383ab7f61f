//! Faults and interleavings at every port call, drawn from a seed. Before each call
//! the caller may be made to yield (so concurrent operations switch at port calls
//! in a seeded order) and to pause (simulated time); then the call may fail before
//! its effect, take effect and lose its answer (a timeout after the fact), or hang
//! until the invocation's deadline and fail there. Google's endpoints are ports like
//! the others. While the model checks the invariants the faults are off.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde_json::Value;
use shared::grant::{Ciphertext, Grant, RemovalReason, TokenPurpose};
use shared::identity::{Rejection, VerifiedIdentity};
use shared::ports::{
    Calendar, GrantStore, IdTokens, Lease, Page, ReplayGuard, SharedSlot, SharedToken, SharedTokens, StoreError,
    SweepIndex, TokenEndpoint, TokenSealer,
};
use shared::secret::Secret;
use shared::security::TokenLookup;
use shared::types::{CalendarId, EventId, IdToken, ScopeSet, SendUpdates, Sub};
use shared::upstream::{CalendarError, TokenError, TokenGrant};

/// What happens to one port call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Fails before anything happened.
    Before,
    /// Happens, but the answer is lost.
    LoseAnswer,
    /// Hangs until the invocation's deadline, then fails.
    Hang,
}

pub struct Chaos {
    rng: Mutex<ChaCha8Rng>,
    enabled: AtomicBool,
    /// Chance of a fault per call, in thousandths.
    per_mille: u32,
    /// Every fault injected, for the trace of a failing run.
    pub log: Mutex<Vec<(&'static str, Fault)>>,
}

impl Chaos {
    pub fn new(seed: u64, per_mille: u32) -> Arc<Self> {
        Arc::new(Chaos {
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
            enabled: AtomicBool::new(true),
            per_mille,
            log: Mutex::default(),
        })
    }

    /// A new stream of decisions for the next step (so removing a step while
    /// shrinking leaves the others' faults as they were).
    pub fn reseed(&self, seed: u64) {
        *self.rng.lock().unwrap() = ChaCha8Rng::seed_from_u64(seed);
    }

    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::SeqCst);
    }

    /// The interleaving and the fault of one call of `port`.
    pub async fn enter(&self, port: &'static str) -> Fault {
        if !self.enabled.load(Ordering::SeqCst) {
            return Fault::None;
        }
        let (yields, pause_ms, roll) = {
            let mut rng = self.rng.lock().unwrap();
            (
                rng.next_u64() % 4,
                rng.next_u64() % 3 * 7,
                (rng.next_u64() % 1000) as u32,
            )
        };
        for _ in 0..yields {
            tokio::task::yield_now().await;
        }
        if pause_ms > 0 {
            tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        }
        let third = self.per_mille / 3;
        let fault = match roll {
            r if r < third => Fault::Before,
            r if r < 2 * third => Fault::LoseAnswer,
            r if r < self.per_mille => Fault::Hang,
            _ => Fault::None,
        };
        if fault == Fault::Hang {
            let left = shared::outbound::remaining().unwrap_or(Duration::from_secs(30));
            tokio::time::sleep(left + Duration::from_millis(1)).await;
        }
        if fault != Fault::None {
            self.log.lock().unwrap().push((port, fault));
        }
        fault
    }
}

/// A port with chaos in front of it.
pub struct Faulty<T: ?Sized> {
    pub inner: Arc<T>,
    pub chaos: Arc<Chaos>,
}

impl<T: ?Sized> Faulty<T> {
    pub fn new(inner: Arc<T>, chaos: &Arc<Chaos>) -> Arc<Self> {
        Arc::new(Faulty {
            inner,
            chaos: chaos.clone(),
        })
    }
}

/// Runs `$call` under the fault of `$port`: `$error` when it fails before or hangs,
/// and after taking effect when the answer is lost.
macro_rules! chaos {
    ($self:ident, $port:literal, $call:expr, $error:expr) => {
        match $self.chaos.enter($port).await {
            Fault::None => $call,
            Fault::Before | Fault::Hang => Err($error),
            Fault::LoseAnswer => {
                let _ = $call;
                Err($error)
            }
        }
    };
}

fn down() -> StoreError {
    StoreError::Unavailable {
        service: "simulated",
        reason: "fault".into(),
    }
}

#[async_trait]
impl<T: GrantStore + ?Sized> GrantStore for Faulty<T> {
    async fn load(&self, sub: &Sub) -> Result<Option<Grant>, StoreError> {
        chaos!(self, "grants.load", self.inner.load(sub).await, down())
    }
    async fn save(&self, grant: &Grant, expected: Option<u64>) -> Result<(), StoreError> {
        chaos!(self, "grants.save", self.inner.save(grant, expected).await, down())
    }
    async fn touch(&self, grant: &Grant, now: i64) -> Result<(), StoreError> {
        chaos!(self, "grants.touch", self.inner.touch(grant, now).await, down())
    }
    async fn remove(&self, grant: &Grant, reason: RemovalReason) -> Result<(), StoreError> {
        chaos!(self, "grants.remove", self.inner.remove(grant, reason).await, down())
    }
    async fn find_by_token(&self, lookup: &TokenLookup) -> Result<Option<Sub>, StoreError> {
        chaos!(
            self,
            "grants.find_by_token",
            self.inner.find_by_token(lookup).await,
            down()
        )
    }
    async fn load_many(&self, subs: &[Sub]) -> Result<Vec<Grant>, StoreError> {
        chaos!(self, "grants.load_many", self.inner.load_many(subs).await, down())
    }
}

#[async_trait]
impl<T: SweepIndex + ?Sized> SweepIndex for Faulty<T> {
    async fn due(&self, bucket: &str, now: i64, after: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        chaos!(
            self,
            "index.due",
            self.inner.due(bucket, now, after, limit).await,
            down()
        )
    }
    async fn swept_until(&self) -> Result<Option<time::Date>, StoreError> {
        chaos!(self, "index.swept_until", self.inner.swept_until().await, down())
    }
    async fn set_swept_until(&self, day: time::Date) -> Result<(), StoreError> {
        chaos!(
            self,
            "index.set_swept_until",
            self.inner.set_swept_until(day).await,
            down()
        )
    }
    async fn unindexed(&self, after: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        chaos!(
            self,
            "index.unindexed",
            self.inner.unindexed(after, limit).await,
            down()
        )
    }
}

#[async_trait]
impl<T: TokenSealer + ?Sized> TokenSealer for Faulty<T> {
    async fn seal(&self, sub: &Sub, purpose: TokenPurpose, token: &Secret) -> Result<Ciphertext, StoreError> {
        chaos!(self, "kms.encrypt", self.inner.seal(sub, purpose, token).await, down())
    }
    async fn open(&self, sub: &Sub, purpose: TokenPurpose, ciphertext: &Ciphertext) -> Result<Secret, StoreError> {
        chaos!(
            self,
            "kms.decrypt",
            self.inner.open(sub, purpose, ciphertext).await,
            down()
        )
    }
}

#[async_trait]
impl<T: ReplayGuard + ?Sized> ReplayGuard for Faulty<T> {
    async fn seen(&self, jti: &str) -> Result<bool, StoreError> {
        chaos!(self, "replay.seen", self.inner.seen(jti).await, down())
    }
    async fn record(&self, jti: &str) -> Result<(), StoreError> {
        chaos!(self, "replay.record", self.inner.record(jti).await, down())
    }
}

#[async_trait]
impl<T: SharedTokens + ?Sized> SharedTokens for Faulty<T> {
    async fn read(&self, sub: &Sub, key: &str) -> Result<SharedSlot, StoreError> {
        chaos!(self, "shared.read", self.inner.read(sub, key).await, down())
    }
    async fn lease(&self, sub: &Sub, key: &str, lease: &Lease, now_ms: i64) -> Result<bool, StoreError> {
        chaos!(
            self,
            "shared.lease",
            self.inner.lease(sub, key, lease, now_ms).await,
            down()
        )
    }
    async fn store(&self, sub: &Sub, key: &str, token: &SharedToken, owner: &str) -> Result<(), StoreError> {
        chaos!(
            self,
            "shared.store",
            self.inner.store(sub, key, token, owner).await,
            down()
        )
    }
    async fn release(&self, sub: &Sub, key: &str, owner: &str) -> Result<(), StoreError> {
        chaos!(
            self,
            "shared.release",
            self.inner.release(sub, key, owner).await,
            down()
        )
    }
    async fn discard(&self, sub: &Sub, key: &str, ciphertext: &Ciphertext) -> Result<(), StoreError> {
        chaos!(
            self,
            "shared.discard",
            self.inner.discard(sub, key, ciphertext).await,
            down()
        )
    }
}

#[async_trait]
impl<T: TokenEndpoint + ?Sized> TokenEndpoint for Faulty<T> {
    async fn exchange_code(&self, code: &Secret, redirect_uri: &str) -> Result<TokenGrant, TokenError> {
        // A lost answer to a code exchange: the code may be spent, nothing to retry.
        match self.chaos.enter("google.exchange").await {
            Fault::None => self.inner.exchange_code(code, redirect_uri).await,
            Fault::Before | Fault::Hang => Err(TokenError::Unavailable("fault".into())),
            Fault::LoseAnswer => {
                let _ = self.inner.exchange_code(code, redirect_uri).await;
                Err(TokenError::Unusable("connection lost before Google answered".into()))
            }
        }
    }
    async fn refresh(&self, refresh_token: &Secret, scopes: Option<&ScopeSet>) -> Result<TokenGrant, TokenError> {
        chaos!(
            self,
            "google.refresh",
            self.inner.refresh(refresh_token, scopes).await,
            TokenError::Unavailable("fault".into())
        )
    }
    async fn revoke(&self, token: &Secret) -> Result<bool, TokenError> {
        chaos!(
            self,
            "google.revoke",
            self.inner.revoke(token).await,
            TokenError::Unavailable("fault".into())
        )
    }
}

#[async_trait]
impl<T: Calendar + ?Sized> Calendar for Faulty<T> {
    async fn insert(
        &self,
        access_token: &Secret,
        calendar: &CalendarId,
        send_updates: SendUpdates,
        event: &Value,
    ) -> Result<Value, CalendarError> {
        chaos!(
            self,
            "google.calendar.insert",
            self.inner.insert(access_token, calendar, send_updates, event).await,
            CalendarError::Unavailable("fault".into())
        )
    }
    async fn get(&self, access_token: &Secret, calendar: &CalendarId, id: &EventId) -> Result<Value, CalendarError> {
        chaos!(
            self,
            "google.calendar.get",
            self.inner.get(access_token, calendar, id).await,
            CalendarError::Unavailable("fault".into())
        )
    }
}

#[async_trait]
impl<T: IdTokens + ?Sized> IdTokens for Faulty<T> {
    async fn verify(&self, token: &IdToken) -> Result<VerifiedIdentity, Rejection> {
        match self.chaos.enter("google.jwks").await {
            Fault::None | Fault::LoseAnswer => self.inner.verify(token).await,
            Fault::Before | Fault::Hang => Err(Rejection::KeysUnavailable("fault".into())),
        }
    }
}
