//! The process's own clock and randomness: the production adapters of the
//! `Clock` and `Randomness` ports. The simulation replaces both, so a seed replays
//! a run exactly.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::ports::{Clock, Randomness};

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// The operating system's CSPRNG through aws-lc (the one crypto library of the
/// project), more than strong enough for jitter and lease owners.
pub struct SystemRandom;

impl Randomness for SystemRandom {
    fn next_u64(&self) -> u64 {
        random_u64()
    }
}

pub fn random_u64() -> u64 {
    let mut random = [0u8; 8];
    aws_lc_rs::rand::fill(&mut random).expect("system randomness is available");
    u64::from_le_bytes(random)
}

/// Draws from the process's CSPRNG once, during the cold start: aws-lc sets up its
/// per-process and per-thread generators at their first use, which would
/// otherwise fall on the first request (its first TLS handshake or random id).
pub fn seed_randomness() {
    let _ = random_u64();
}

/// The clock and randomness every use case of a process shares.
#[derive(Clone)]
pub struct Ambient {
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Randomness>,
}

impl Ambient {
    pub fn system() -> Self {
        Ambient {
            clock: Arc::new(SystemClock),
            random: Arc::new(SystemRandom),
        }
    }
}
