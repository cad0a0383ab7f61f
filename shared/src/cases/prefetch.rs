//! Grants read together for a batch of jobs: one `BatchGetItem` for the users of an
//! SQS batch instead of one `GetItem` per job. Each prefetched grant serves the first
//! `load` of its user and only that one (a retry after a conflict reads the store
//! again), and whatever a batch did not use is dropped when it ends, so no grant
//! outlives the batch it was read for: it is never older than a read made at the
//! start of the job would be.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::grant::Grant;
use crate::ports::{GrantStore, StoreError, TokenLookup};

pub struct PrefetchedGrants {
    store: Arc<dyn GrantStore>,
    fetched: Mutex<HashMap<String, Grant>>,
}

impl PrefetchedGrants {
    pub fn new(store: Arc<dyn GrantStore>) -> Self {
        Self {
            store,
            fetched: Mutex::new(HashMap::new()),
        }
    }

    /// Reads the grants of `subs` at once. If that fails, each job reads its own
    /// (and meets the failure itself, as a transient error of its own).
    pub async fn prefetch(&self, subs: &[String]) {
        let fetched: HashMap<String, Grant> = match self.store.load_many(subs).await {
            Ok(grants) => grants.into_iter().map(|g| (g.sub().to_owned(), g)).collect(),
            Err(err) => {
                tracing::debug!(error = %err, "grants not read together; each job reads its own");
                HashMap::new()
            }
        };
        *self.fetched.lock().expect("prefetch lock") = fetched;
    }

    /// Drops what the batch did not use.
    pub fn clear(&self) {
        self.fetched.lock().expect("prefetch lock").clear();
    }
}

#[async_trait]
impl GrantStore for PrefetchedGrants {
    async fn load(&self, sub: &str) -> Result<Option<Grant>, StoreError> {
        let prefetched = self.fetched.lock().expect("prefetch lock").remove(sub);
        match prefetched {
            Some(grant) => Ok(Some(grant)),
            None => self.store.load(sub).await,
        }
    }

    async fn save(&self, grant: &Grant, expected: Option<u64>) -> Result<(), StoreError> {
        self.store.save(grant, expected).await
    }

    async fn remove(&self, grant: &Grant, reason: &str) -> Result<(), StoreError> {
        self.store.remove(grant, reason).await
    }

    async fn find_by_token(&self, lookup: &TokenLookup) -> Result<Option<String>, StoreError> {
        self.store.find_by_token(lookup).await
    }

    async fn load_many(&self, subs: &[String]) -> Result<Vec<Grant>, StoreError> {
        self.store.load_many(subs).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::{GrantStatus, bare_profile};
    use crate::memory::MemoryGrants;

    fn grant(sub: &str, version: u64) -> Grant {
        Grant {
            profile: bare_profile(sub),
            scopes: Default::default(),
            refresh_token: None,
            status: GrantStatus::Active,
            status_reason: None,
            version,
            created_at: "2030-01-01T00:00:00Z".into(),
            updated_at: "2030-01-01T00:00:00Z".into(),
        }
    }

    #[tokio::test]
    async fn a_prefetched_grant_serves_one_load_and_no_more() {
        let store = Arc::new(MemoryGrants::default());
        store.insert(grant("u1", 1));
        let grants = PrefetchedGrants::new(store.clone());
        grants.prefetch(&["u1".into(), "nobody".into()]).await;
        // Written after the prefetch: the first load still gets what was read
        // together, the next one reads the store.
        store.insert(grant("u1", 2));
        assert_eq!(grants.load("u1").await.unwrap().unwrap().version, 1);
        assert_eq!(grants.load("u1").await.unwrap().unwrap().version, 2);
        assert_eq!(grants.load("nobody").await.unwrap(), None);
    }

    #[tokio::test]
    async fn nothing_prefetched_outlives_its_batch() {
        let store = Arc::new(MemoryGrants::default());
        store.insert(grant("u1", 1));
        let grants = PrefetchedGrants::new(store.clone());
        grants.prefetch(&["u1".into()]).await;
        grants.clear();
        store.insert(grant("u1", 2));
        assert_eq!(grants.load("u1").await.unwrap().unwrap().version, 2);
    }

    #[tokio::test]
    async fn a_failed_prefetch_leaves_each_load_to_the_store() {
        let store = Arc::new(MemoryGrants::default());
        store.insert(grant("u1", 1));
        let grants = PrefetchedGrants::new(store.clone());
        *store.unavailable.lock().unwrap() = true;
        grants.prefetch(&["u1".into()]).await;
        assert!(grants.load("u1").await.is_err(), "the job meets the failure itself");
        *store.unavailable.lock().unwrap() = false;
        assert_eq!(grants.load("u1").await.unwrap().unwrap().version, 1);
    }
}
