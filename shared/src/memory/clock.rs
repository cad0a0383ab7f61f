//! The clock and randomness twins: a wall clock that follows tokio's time (so a
//! test with paused time, like the simulation, moves it by sleeping) and can be
//! pushed forward, and a seeded generator, so a seed replays a run exactly.

use std::sync::Mutex;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use time::OffsetDateTime;

use crate::ports::{Clock, Randomness};

pub struct TestClock {
    base: OffsetDateTime,
    started: tokio::time::Instant,
    pushed: Mutex<Duration>,
}

impl TestClock {
    /// A clock that reads `base` now and runs with tokio's time from here.
    pub fn at(base: OffsetDateTime) -> Self {
        TestClock {
            base,
            started: tokio::time::Instant::now(),
            pushed: Mutex::new(Duration::ZERO),
        }
    }

    pub fn at_unix(seconds: i64) -> Self {
        Self::at(OffsetDateTime::from_unix_timestamp(seconds).expect("a valid time"))
    }

    /// Moves wall-clock time forward without waiting (days, for grant lifetimes).
    pub fn advance(&self, by: Duration) {
        *self.pushed.lock().unwrap() += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        self.base + self.started.elapsed() + *self.pushed.lock().unwrap()
    }
}

pub struct SeededRandom(Mutex<ChaCha8Rng>);

impl SeededRandom {
    pub fn new(seed: u64) -> Self {
        SeededRandom(Mutex::new(ChaCha8Rng::seed_from_u64(seed)))
    }
}

impl Randomness for SeededRandom {
    fn next_u64(&self) -> u64 {
        self.0.lock().unwrap().next_u64()
    }
}
