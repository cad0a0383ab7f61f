//! The fleet's shared access tokens, with the table's conditional writes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::grant::Ciphertext;
use crate::ports::{Lease, SharedSlot, SharedToken, SharedTokens, StoreError};
use crate::types::Sub;

/// The fleet's shared tokens, with the table's conditional writes.
#[derive(Default)]
pub struct MemoryShared {
    slots: Mutex<BTreeMap<(Sub, String), SharedSlot>>,
}

impl MemoryShared {
    pub fn slots(&self) -> Vec<SharedSlot> {
        self.slots.lock().unwrap().values().cloned().collect()
    }
}

#[async_trait]
impl SharedTokens for MemoryShared {
    async fn read(&self, sub: &Sub, key: &str) -> Result<SharedSlot, StoreError> {
        let slots = self.slots.lock().unwrap();
        Ok(slots.get(&(sub.clone(), key.to_owned())).cloned().unwrap_or_default())
    }

    async fn lease(&self, sub: &Sub, key: &str, lease: &Lease, now_ms: i64) -> Result<bool, StoreError> {
        let mut slots = self.slots.lock().unwrap();
        let slot = slots.entry((sub.clone(), key.to_owned())).or_default();
        if slot.lease.as_ref().is_some_and(|held| held.until_ms >= now_ms) {
            return Ok(false);
        }
        slot.lease = Some(lease.clone());
        Ok(true)
    }

    async fn store(&self, sub: &Sub, key: &str, token: &SharedToken, owner: &str) -> Result<(), StoreError> {
        let mut slots = self.slots.lock().unwrap();
        let slot = slots.entry((sub.clone(), key.to_owned())).or_default();
        if slot.lease.as_ref().is_none_or(|held| held.owner != owner) {
            return Err(StoreError::Conflict);
        }
        *slot = SharedSlot {
            token: Some(token.clone()),
            lease: None,
        };
        Ok(())
    }

    async fn release(&self, sub: &Sub, key: &str, owner: &str) -> Result<(), StoreError> {
        let mut slots = self.slots.lock().unwrap();
        if let Some(slot) = slots.get_mut(&(sub.clone(), key.to_owned()))
            && slot.lease.as_ref().is_some_and(|held| held.owner == owner)
        {
            slot.lease = None;
        }
        Ok(())
    }

    async fn discard(&self, sub: &Sub, key: &str, ciphertext: &Ciphertext) -> Result<(), StoreError> {
        let mut slots = self.slots.lock().unwrap();
        match slots.get_mut(&(sub.clone(), key.to_owned())) {
            Some(slot) if slot.token.as_ref().is_some_and(|t| &t.ciphertext == ciphertext) => {
                slot.token = None;
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }
}
