//! In-memory twins of the ports (feature `testing`), for unit tests of the use
//! cases and the simulation. They keep the contracts that matter (versioned
//! conditional writes, ciphertexts bound to their owner and purpose and never the
//! plaintext, Google's token rules) and can be told to fail, so failure paths are
//! testable without moto or the Google emulator. No deployed function enables the
//! feature: they are not in any function's binary.

mod clock;
mod fleet;
mod google;
mod risc;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;
use data_encoding::HEXLOWER;

pub use clock::{SeededRandom, TestClock};
pub use fleet::MemoryShared;
pub use google::{Calls, FakeGoogle};
pub use risc::FakeRisc;

use crate::grant::{Ciphertext, Grant, RemovalReason, SweepPolicy, SweepSlot, TokenPurpose};
use crate::ports::{
    EventSink, GrantStore, Outgoing, Page, PublishError, ReplayGuard, StoreError, SweepIndex, TokenSealer,
};
use crate::secret::Secret;
use crate::security::TokenLookup;
use crate::types::Sub;

fn down() -> StoreError {
    StoreError::Unavailable {
        service: "memory",
        reason: "told to fail".into(),
    }
}

#[derive(Default)]
pub struct MemoryGrants {
    grants: Mutex<BTreeMap<Sub, Grant>>,
    /// Where each grant sits in the sweep index, as its last write placed it.
    slots: Mutex<BTreeMap<Sub, SweepSlot>>,
    policy: Mutex<SweepPolicy>,
    swept_until: Mutex<Option<time::Date>>,
    /// Grants the sweep index handed out (reads, for the "only what is due" checks).
    pub index_reads: Mutex<u64>,
    /// `(sub, reason)` of every removal.
    pub removed: Mutex<Vec<(Sub, RemovalReason)>>,
    /// Saves that find a concurrent write first (each one counts down).
    pub conflicts: Mutex<u32>,
    pub unavailable: Mutex<bool>,
}

impl MemoryGrants {
    pub fn with_policy(policy: SweepPolicy) -> Self {
        MemoryGrants {
            policy: Mutex::new(policy),
            ..MemoryGrants::default()
        }
    }

    /// The periods change (a new deployment): later writes place grants by `policy`,
    /// those already placed stay where they are.
    pub fn change_policy(&self, policy: SweepPolicy) {
        *self.policy.lock().unwrap() = policy;
    }

    pub fn get(&self, sub: &Sub) -> Option<Grant> {
        self.grants.lock().unwrap().get(sub).cloned()
    }

    /// Stores `grant` as it is, placed in the sweep index as if written at its
    /// `updated_at`.
    pub fn insert(&self, grant: Grant) {
        self.place(&grant, written_at(&grant));
        self.grants.lock().unwrap().insert(grant.sub().clone(), grant);
    }

    /// Stores `grant` outside the sweep index, as a grant stored before the index
    /// existed.
    pub fn insert_unindexed(&self, grant: Grant) {
        self.slots.lock().unwrap().remove(grant.sub());
        self.grants.lock().unwrap().insert(grant.sub().clone(), grant);
    }

    fn place(&self, grant: &Grant, written_at: i64) {
        let mut slots = self.slots.lock().unwrap();
        let policy = *self.policy.lock().unwrap();
        match grant.sweep_slot(&policy, written_at) {
            Some(slot) => slots.insert(grant.sub().clone(), slot),
            None => slots.remove(grant.sub()),
        };
    }

    pub fn all(&self) -> Vec<Grant> {
        self.grants.lock().unwrap().values().cloned().collect()
    }

    fn check(&self) -> Result<(), StoreError> {
        if *self.unavailable.lock().unwrap() {
            Err(down())
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl GrantStore for MemoryGrants {
    async fn load(&self, sub: &Sub) -> Result<Option<Grant>, StoreError> {
        self.check()?;
        Ok(self.get(sub))
    }

    async fn save(&self, grant: &Grant, expected: Option<u64>) -> Result<(), StoreError> {
        self.check()?;
        {
            let mut conflicts = self.conflicts.lock().unwrap();
            if *conflicts > 0 {
                *conflicts -= 1;
                return Err(StoreError::Conflict);
            }
        }
        let mut grants = self.grants.lock().unwrap();
        if grants.get(grant.sub()).map(|g| g.version) != expected {
            return Err(StoreError::Conflict);
        }
        grants.insert(grant.sub().clone(), grant.clone());
        self.place(grant, written_at(grant));
        Ok(())
    }

    async fn touch(&self, grant: &Grant, now: i64) -> Result<(), StoreError> {
        self.check()?;
        let mut grants = self.grants.lock().unwrap();
        match grants.get_mut(grant.sub()) {
            Some(stored) if stored.version == grant.version => {
                stored.last_used_at = grant.last_used_at;
                let placed = stored.clone();
                drop(grants);
                self.place(&placed, now);
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }

    async fn remove(&self, grant: &Grant, reason: RemovalReason) -> Result<(), StoreError> {
        self.check()?;
        let mut grants = self.grants.lock().unwrap();
        if grants.get(grant.sub()).map(|g| g.version) != Some(grant.version) {
            return Err(StoreError::Conflict);
        }
        grants.remove(grant.sub());
        self.slots.lock().unwrap().remove(grant.sub());
        self.removed.lock().unwrap().push((grant.sub().clone(), reason));
        Ok(())
    }

    async fn find_by_token(&self, lookup: &TokenLookup) -> Result<Option<Sub>, StoreError> {
        self.check()?;
        let grants = self.grants.lock().unwrap();
        Ok(grants.values().find_map(|g| {
            let ids = &g.refresh_token.as_ref()?.ids;
            let hit = match lookup {
                TokenLookup::Hash(h) => &ids.hash == h,
                TokenLookup::PrefixHash(h) => &ids.prefix_hash == h,
            };
            hit.then(|| g.sub().clone())
        }))
    }
}

fn written_at(grant: &Grant) -> i64 {
    time::OffsetDateTime::parse(&grant.updated_at, &time::format_description::well_known::Rfc3339)
        .map_or(0, |t| t.unix_timestamp())
}

#[async_trait]
impl SweepIndex for MemoryGrants {
    async fn due(&self, bucket: &str, now: i64, after: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        self.check()?;
        let slots = self.slots.lock().unwrap();
        let due: Vec<Sub> = slots
            .iter()
            .filter(|(sub, slot)| slot.bucket == bucket && slot.due_at <= now && after.is_none_or(|a| sub.as_str() > a))
            .map(|(sub, _)| sub.clone())
            .take(limit + 1)
            .collect();
        *self.index_reads.lock().unwrap() += due.len().min(limit) as u64;
        let next = (due.len() > limit).then(|| due[limit - 1].as_str().to_owned());
        Ok(Page {
            subs: due.into_iter().take(limit).collect(),
            next,
        })
    }

    async fn swept_until(&self) -> Result<Option<time::Date>, StoreError> {
        self.check()?;
        Ok(*self.swept_until.lock().unwrap())
    }

    async fn set_swept_until(&self, day: time::Date) -> Result<(), StoreError> {
        self.check()?;
        *self.swept_until.lock().unwrap() = Some(day);
        Ok(())
    }

    async fn unindexed(&self, after: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        self.check()?;
        let grants = self.grants.lock().unwrap();
        let slots = self.slots.lock().unwrap();
        let missing: Vec<Sub> = grants
            .keys()
            .filter(|sub| !slots.contains_key(*sub) && after.is_none_or(|a| sub.as_str() > a))
            .take(limit)
            .cloned()
            .collect();
        let next = (missing.len() == limit).then(|| missing[limit - 1].as_str().to_owned());
        Ok(Page { subs: missing, next })
    }
}

/// Seals as a KMS encryption context binds: a ciphertext names its owner and
/// purpose and opens for no other. The token itself is transformed (never stored
/// as it came), so a scan of the store for issued tokens finds none.
#[derive(Default)]
pub struct MemorySealer {
    pub opened: Mutex<u32>,
    pub unavailable: Mutex<bool>,
}

const MASK: u8 = 0x5a;

#[async_trait]
impl TokenSealer for MemorySealer {
    async fn seal(&self, sub: &Sub, purpose: TokenPurpose, token: &Secret) -> Result<Ciphertext, StoreError> {
        if *self.unavailable.lock().unwrap() {
            return Err(down());
        }
        let masked: Vec<u8> = token.expose().bytes().map(|b| b ^ MASK).collect();
        let sealed = format!("{}\u{0}{sub}\u{0}{}", purpose.as_str(), HEXLOWER.encode(&masked));
        Ok(Ciphertext(sealed.into_bytes()))
    }

    async fn open(&self, sub: &Sub, purpose: TokenPurpose, ciphertext: &Ciphertext) -> Result<Secret, StoreError> {
        if *self.unavailable.lock().unwrap() {
            return Err(down());
        }
        *self.opened.lock().unwrap() += 1;
        let invalid = || StoreError::Undecryptable("InvalidCiphertextException".into());
        let text = String::from_utf8(ciphertext.0.clone()).map_err(|_| invalid())?;
        let mut parts = text.split('\u{0}');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(p), Some(owner), Some(hex)) if p == purpose.as_str() && owner == sub.as_str() => {
                let masked = HEXLOWER.decode(hex.as_bytes()).map_err(|_| invalid())?;
                let plain: Vec<u8> = masked.into_iter().map(|b| b ^ MASK).collect();
                String::from_utf8(plain).map(Secret::new).map_err(|_| invalid())
            }
            _ => Err(invalid()),
        }
    }
}

#[derive(Default)]
pub struct MemoryReplay {
    pub recorded: Mutex<BTreeSet<String>>,
    pub unavailable: Mutex<bool>,
}

#[async_trait]
impl ReplayGuard for MemoryReplay {
    async fn seen(&self, jti: &str) -> Result<bool, StoreError> {
        if *self.unavailable.lock().unwrap() {
            return Err(down());
        }
        Ok(self.recorded.lock().unwrap().contains(jti))
    }

    async fn record(&self, jti: &str) -> Result<(), StoreError> {
        if *self.unavailable.lock().unwrap() {
            return Err(down());
        }
        self.recorded.lock().unwrap().insert(jti.to_owned());
        Ok(())
    }
}

#[derive(Default)]
pub struct MemorySink {
    pub sent: Mutex<Vec<Outgoing>>,
    pub unavailable: Mutex<bool>,
    /// Outcomes of these `job_id`s are refused as transient (throttled) entries.
    pub throttled_jobs: Mutex<Vec<String>>,
    /// Entries whose detail is larger than this are refused for good.
    pub max_detail_bytes: Mutex<Option<usize>>,
    /// How many calls reached the sink.
    pub calls: Mutex<usize>,
}

#[async_trait]
impl EventSink for MemorySink {
    async fn publish_each(&self, events: &[Outgoing]) -> Vec<Result<(), PublishError>> {
        *self.calls.lock().unwrap() += 1;
        let down_now = *self.unavailable.lock().unwrap();
        let throttled = self.throttled_jobs.lock().unwrap().clone();
        let max = *self.max_detail_bytes.lock().unwrap();
        events
            .iter()
            .map(|event| {
                let job = event.detail["job_id"].as_str().unwrap_or_default();
                if down_now || throttled.iter().any(|r| r == job) {
                    return Err(PublishError::Unavailable("told to fail".into()));
                }
                if max.is_some_and(|max| event.detail.to_string().len() > max) {
                    return Err(PublishError::Refused("too large".into()));
                }
                self.sent.lock().unwrap().push(event.clone());
                Ok(())
            })
            .collect()
    }
}
