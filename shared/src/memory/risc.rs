//! Security event tokens registered by a test, each verified as registered.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::ports::SecurityEventTokens;
use crate::security::{RiscRejection, SecurityEvent};

/// Security event tokens registered by the test, each verified as registered.
#[derive(Default)]
pub struct FakeRisc {
    tokens: Mutex<BTreeMap<String, Result<SecurityEvent, RiscRejection>>>,
}

impl FakeRisc {
    pub fn register(&self, token: &str, verified: Result<SecurityEvent, RiscRejection>) {
        self.tokens.lock().unwrap().insert(token.to_owned(), verified);
    }
}

#[async_trait]
impl SecurityEventTokens for FakeRisc {
    async fn verify(&self, token: &str) -> Result<SecurityEvent, RiscRejection> {
        self.tokens
            .lock()
            .unwrap()
            .get(token)
            .cloned()
            .unwrap_or_else(|| Err(RiscRejection::InvalidRequest("not a registered token".into())))
    }
}
