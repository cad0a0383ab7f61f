//! In-memory implementations of the ports, for fast unit tests of the use cases.
//! They keep the contracts that matter (versioned conditional writes, ciphertexts
//! bound to their owner) and can be told to fail, so failure paths are testable
//! without moto or the Google emulator. Never used by a deployed function.

mod google;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;

pub use google::FakeGoogle;

use crate::grant::{Ciphertext, Grant};
use crate::ports::{EventSink, GrantStore, Outgoing, ReplayGuard, StoreError, TokenLookup, TokenSealer};
use crate::secret::Secret;

fn down() -> StoreError {
    StoreError::Unavailable {
        service: "memory",
        reason: "told to fail".into(),
    }
}

#[derive(Default)]
pub struct MemoryGrants {
    grants: Mutex<HashMap<String, Grant>>,
    /// `(sub, reason)` of every removal.
    pub removed: Mutex<Vec<(String, String)>>,
    /// Saves that find a concurrent write first (each one counts down).
    pub conflicts: Mutex<u32>,
    pub unavailable: Mutex<bool>,
}

impl MemoryGrants {
    pub fn get(&self, sub: &str) -> Option<Grant> {
        self.grants.lock().unwrap().get(sub).cloned()
    }

    pub fn insert(&self, grant: Grant) {
        self.grants.lock().unwrap().insert(grant.sub().to_owned(), grant);
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
    async fn load(&self, sub: &str) -> Result<Option<Grant>, StoreError> {
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
        grants.insert(grant.sub().to_owned(), grant.clone());
        Ok(())
    }

    async fn remove(&self, grant: &Grant, reason: &str) -> Result<(), StoreError> {
        self.check()?;
        let mut grants = self.grants.lock().unwrap();
        if grants.get(grant.sub()).map(|g| g.version) != Some(grant.version) {
            return Err(StoreError::Conflict);
        }
        grants.remove(grant.sub());
        self.removed
            .lock()
            .unwrap()
            .push((grant.sub().to_owned(), reason.to_owned()));
        Ok(())
    }

    async fn find_by_token(&self, lookup: &TokenLookup) -> Result<Option<String>, StoreError> {
        self.check()?;
        let grants = self.grants.lock().unwrap();
        Ok(grants.values().find_map(|g| {
            let ids = &g.refresh_token.as_ref()?.ids;
            let hit = match lookup {
                TokenLookup::Hash(h) => &ids.hash == h,
                TokenLookup::PrefixHash(h) => &ids.prefix_hash == h,
            };
            hit.then(|| g.sub().to_owned())
        }))
    }
}

/// "Encrypts" by binding the token to its owner, as a KMS encryption context does:
/// a ciphertext opened for another `sub` fails.
#[derive(Default)]
pub struct MemorySealer {
    pub opened: Mutex<u32>,
    pub unavailable: Mutex<bool>,
}

#[async_trait]
impl TokenSealer for MemorySealer {
    async fn seal(&self, sub: &str, token: &Secret) -> Result<Ciphertext, StoreError> {
        if *self.unavailable.lock().unwrap() {
            return Err(down());
        }
        Ok(Ciphertext(format!("{sub}\u{0}{}", token.expose()).into_bytes()))
    }

    async fn open(&self, sub: &str, ciphertext: &Ciphertext) -> Result<Secret, StoreError> {
        if *self.unavailable.lock().unwrap() {
            return Err(down());
        }
        *self.opened.lock().unwrap() += 1;
        let text = String::from_utf8(ciphertext.0.clone()).map_err(|_| StoreError::Corrupt("not ours".into()))?;
        match text.split_once('\u{0}') {
            Some((owner, token)) if owner == sub => Ok(Secret::new(token)),
            _ => Err(StoreError::Other("InvalidCiphertextException".into())),
        }
    }
}

#[derive(Default)]
pub struct MemoryReplay {
    pub recorded: Mutex<HashSet<String>>,
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
    /// Entries refused one by one (as PutEvents can): outcomes of these `job_id`s.
    pub refused_jobs: Mutex<Vec<String>>,
    /// How many calls reached the sink.
    pub calls: Mutex<usize>,
}

#[async_trait]
impl EventSink for MemorySink {
    async fn publish(&self, events: &[Outgoing]) -> Result<(), StoreError> {
        self.publish_each(events).await.into_iter().collect()
    }

    async fn publish_each(&self, events: &[Outgoing]) -> Vec<Result<(), StoreError>> {
        *self.calls.lock().unwrap() += 1;
        let down_now = *self.unavailable.lock().unwrap();
        let refused = self.refused_jobs.lock().unwrap().clone();
        events
            .iter()
            .map(|event| {
                let job = event.detail["job_id"].as_str().unwrap_or_default();
                if down_now || refused.iter().any(|r| r == job) {
                    return Err(down());
                }
                self.sent.lock().unwrap().push(event.clone());
                Ok(())
            })
            .collect()
    }
}
