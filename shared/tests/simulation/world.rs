//! The world one sequence runs in: the real use cases over the in-memory ports,
//! each port behind the chaos, two execution environments (each with its own
//! access-token cache, sharing the table's tokens), the sweeper, and the operations
//! users, Google and the team's backends perform, each as a client would (a job is
//! redelivered, a security event delivered again until acknowledged, a request
//! with an idempotency key retried).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use shared::ApiError;
use shared::Secret;
use shared::cases::{AccessTokens, CalendarEvents, Disconnect, NewEvent, SecurityEvents, SignIn, Sweeper};
use shared::event::validate;
use shared::grant::{DAY, SweepPolicy, TokenIds};
use shared::memory::{FakeGoogle, MemoryGrants, MemoryReplay, MemorySealer, MemoryShared, SeededRandom, TestClock};
use shared::ports::GrantStore;
use shared::security::{RiscKind, SecurityEvent, Subject, TokenLookup};
use shared::system::Ambient;
use shared::types::{CALENDAR_EVENTS_SCOPE, CalendarId, IdempotencyKey, ScopeSet, SendUpdates, Sub};

use crate::chaos::{Chaos, Faulty};

pub const USERS: [&str; 2] = ["u1", "u2"];
pub const CALENDARS: [&str; 2] = ["primary", "work"];
pub const KEYS: [&str; 2] = ["k1", "k2"];
/// Each attempt of an operation runs as one invocation with this much time.
const INVOCATION: Duration = Duration::from_secs(10);
pub const T0: i64 = 1_900_000_000;

/// A security event Google sends after revoking the user's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kill {
    TokensRevoked,
    /// `token-revoked`, naming one of the user's refresh tokens.
    TokenRevoked,
    AccountDisabled,
    AccountPurged,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    SignIn {
        user: usize,
        offline: bool,
        calendar: bool,
        forged: bool,
        lifetime_days: Option<i64>,
    },
    Upgrade {
        user: usize,
        offline: bool,
    },
    Event {
        user: usize,
        env: usize,
        calendar: usize,
        key: usize,
    },
    Job {
        user: usize,
        env: usize,
        calendar: usize,
        key: usize,
    },
    Vend {
        user: usize,
        env: usize,
        narrowed: bool,
    },
    Disconnect {
        user: usize,
    },
    Security {
        user: usize,
        kill: Kill,
    },
    Sweep,
    GoogleRevokes {
        user: usize,
    },
    Advance {
        minutes: u64,
    },
}

impl Op {
    pub fn user(&self) -> Option<usize> {
        match self {
            Op::SignIn { user, .. }
            | Op::Upgrade { user, .. }
            | Op::Event { user, .. }
            | Op::Job { user, .. }
            | Op::Vend { user, .. }
            | Op::Disconnect { user }
            | Op::Security { user, .. }
            | Op::GoogleRevokes { user } => Some(*user),
            Op::Sweep | Op::Advance { .. } => None,
        }
    }

    /// Stores a refresh token the user's grant would hold.
    pub fn stores(&self) -> bool {
        matches!(self, Op::SignIn { .. } | Op::Upgrade { .. })
    }
}

/// Operations run together, with the seed of their faults and interleavings.
#[derive(Debug, Clone)]
pub struct Step {
    pub seed: u64,
    pub ops: Vec<Op>,
}

/// What an operation did, as its client saw it, and what the model must know.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub op: Op,
    /// `Ok` or the error code of the last attempt.
    pub result: Result<(), &'static str>,
    /// The refresh token the operation's code carried (acknowledged when `Ok`).
    pub issued: Option<String>,
    /// The scopes Google reported for the code.
    pub reported: ScopeSet,
    /// The event id a successful Calendar operation answered with.
    pub event_id: Option<String>,
    /// The tokens Google revoked before sending a security event.
    pub revoked: Vec<String>,
}

impl Outcome {
    fn of(op: &Op) -> Self {
        Outcome {
            op: op.clone(),
            result: Ok(()),
            issued: None,
            reported: ScopeSet::default(),
            event_id: None,
            revoked: Vec::new(),
        }
    }
}

pub struct World {
    pub clock: Arc<TestClock>,
    pub grants: Arc<MemoryGrants>,
    pub sealer: Arc<MemorySealer>,
    pub google: Arc<FakeGoogle>,
    pub shared: Arc<MemoryShared>,
    store: Arc<Faulty<MemoryGrants>>,
    sign_in: SignIn,
    environments: Vec<CalendarEvents>,
    disconnect: Disconnect,
    security: SecurityEvents,
    sweeper: Sweeper,
    names: AtomicU64,
}

pub fn sub(user: usize) -> Sub {
    Sub::parse(USERS[user]).unwrap()
}

impl World {
    pub fn new(seed: u64, chaos: Arc<Chaos>) -> Self {
        let clock = Arc::new(TestClock::at_unix(T0));
        let ambient = Ambient {
            clock: clock.clone(),
            random: Arc::new(SeededRandom::new(seed)),
        };
        let policy = SweepPolicy {
            notice_secs: 7 * DAY,
            keep_alive_secs: DAY,
        };
        let grants = Arc::new(MemoryGrants::with_policy(policy));
        let sealer = Arc::new(MemorySealer::default());
        let google = Arc::new(FakeGoogle::with_clock(clock.clone()));
        let shared = Arc::new(MemoryShared::default());
        let replay = Arc::new(MemoryReplay::default());
        let store = Faulty::new(grants.clone(), &chaos);
        let kms = Faulty::new(sealer.clone(), &chaos);
        let endpoint = Faulty::new(google.clone(), &chaos);
        let calendar = Faulty::new(google.clone(), &chaos);
        let fleet = Faulty::new(shared.clone(), &chaos);
        let environment = || {
            Arc::new(
                AccessTokens::new(store.clone(), kms.clone(), endpoint.clone(), ambient.clone())
                    .with_shared(fleet.clone()),
            )
        };
        let environments = (0..2)
            .map(|_| CalendarEvents::new(environment(), calendar.clone()))
            .collect();
        let index = Faulty::new(grants.clone(), &chaos);
        World {
            sign_in: SignIn::new(
                endpoint.clone(),
                Faulty::new(google.clone(), &chaos),
                kms.clone(),
                store.clone(),
                ambient.clone(),
            ),
            disconnect: Disconnect::new(store.clone(), kms.clone(), endpoint.clone(), ambient.clone()),
            security: SecurityEvents::new(store.clone(), Faulty::new(replay, &chaos), ambient.clone()),
            sweeper: Sweeper::new(index, environment(), policy),
            environments,
            store,
            clock,
            grants,
            sealer,
            google,
            shared,
            names: AtomicU64::new(0),
        }
    }

    fn name(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.names.fetch_add(1, Ordering::Relaxed))
    }

    /// Runs one attempt as one invocation, within its deadline.
    async fn attempt<T>(&self, work: impl std::future::Future<Output = Result<T, ApiError>>) -> Result<T, ApiError> {
        let deadline = tokio::time::Instant::now() + INVOCATION;
        shared::outbound::with_deadline(deadline, work).await
    }

    /// `work` tried up to `attempts` times while it fails transiently, as a client,
    /// a queue or a transmitter would.
    async fn retried<T, F, Fut>(&self, attempts: u32, work: F) -> Result<T, ApiError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, ApiError>>,
    {
        let mut last = None;
        for _ in 0..attempts {
            match self.attempt(work()).await {
                Err(err) if err.is_transient() => last = Some(err),
                other => return other,
            }
        }
        Err(last.expect("at least one attempt"))
    }

    pub async fn run(&self, op: &Op) -> Outcome {
        let mut out = Outcome::of(op);
        let result = match *op {
            Op::SignIn {
                user,
                offline,
                calendar,
                forged,
                lifetime_days,
            } => {
                let code = self.name("code");
                let token = offline.then(|| self.name("rt"));
                let mut scopes = vec!["openid", "email"];
                if calendar {
                    scopes.push(CALENDAR_EVENTS_SCOPE);
                }
                let who = if forged {
                    format!("forged-{}", USERS[user])
                } else {
                    USERS[user].to_owned()
                };
                let lifetime = lifetime_days.map(|d| d * DAY);
                self.google
                    .code_with_lifetime(&code, &who, &scopes, token.as_deref(), lifetime);
                out.issued = token;
                out.reported = scopes.iter().collect();
                self.attempt(self.sign_in.exchange(&Secret::new(&code), "postmessage"))
                    .await
                    .map(|_| ())
            }
            Op::Upgrade { user, offline } => {
                let code = self.name("code");
                let token = offline.then(|| self.name("rt"));
                let scopes = ["openid", CALENDAR_EVENTS_SCOPE];
                self.google.code(&code, USERS[user], &scopes, token.as_deref());
                out.issued = token;
                out.reported = scopes.iter().collect();
                let requested: ScopeSet = [CALENDAR_EVENTS_SCOPE].into_iter().collect();
                let secret = Secret::new(&code);
                self.attempt(self.sign_in.upgrade(&sub(user), &secret, "postmessage", &requested))
                    .await
                    .map(|_| ())
            }
            Op::Event {
                user,
                env,
                calendar,
                key,
            }
            | Op::Job {
                user,
                env,
                calendar,
                key,
            } => {
                let job = matches!(op, Op::Job { .. });
                let created = self
                    .retried(3, || async move {
                        // A job's grant was read with its batch's, before the job ran.
                        let known = if job {
                            self.store.load_many(&[sub(user)]).await?.pop()
                        } else {
                            None
                        };
                        let new = NewEvent {
                            calendar: CalendarId::parse(CALENDARS[calendar]).unwrap(),
                            send_updates: SendUpdates::None,
                            key: IdempotencyKey::parse(KEYS[key]),
                            event: validate(json!({"start": {"date": "2031-01-01"}, "end": {"date": "2031-01-02"}}))
                                .unwrap(),
                        };
                        self.environments[env].create(&sub(user), new, known).await
                    })
                    .await;
                created.map(|c| {
                    out.event_id = c.event["id"].as_str().map(str::to_owned);
                })
            }
            Op::Vend { user, env, narrowed } => {
                let scopes: ScopeSet = if narrowed {
                    [CALENDAR_EVENTS_SCOPE].into_iter().collect()
                } else {
                    ScopeSet::default()
                };
                let access = self.environments[env].access();
                self.attempt(access.vend(&sub(user), &scopes)).await.map(|_| ())
            }
            Op::Disconnect { user } => {
                let user = sub(user);
                self.retried(3, || self.disconnect.run(&user)).await
            }
            Op::Security { user, kill } => {
                // Google revokes first (a revocation ends the user's whole grant),
                // then tells us: `token-revoked` names one of the tokens only, so
                // only that one is promised to be dropped.
                let mut live = self.google.live_tokens_of(USERS[user]);
                self.google.revoke_user(USERS[user]);
                if kill == Kill::TokenRevoked {
                    live.truncate(1);
                }
                out.revoked = live.clone();
                let (kind, subject) = match kill {
                    Kill::TokensRevoked => (RiscKind::TokensRevoked, Subject::Sub(sub(user))),
                    Kill::AccountDisabled => (RiscKind::AccountDisabled, Subject::Sub(sub(user))),
                    Kill::AccountPurged => (RiscKind::AccountPurged, Subject::Sub(sub(user))),
                    Kill::TokenRevoked => {
                        let hash = live
                            .first()
                            .map(|t| TokenIds::of(&Secret::new(t)).hash)
                            .unwrap_or_else(|| "unknown".into());
                        (RiscKind::TokenRevoked, Subject::Token(TokenLookup::Hash(hash)))
                    }
                };
                let event = SecurityEvent {
                    jti: self.name("jti"),
                    events: vec![(kind, subject)],
                };
                // At-least-once delivery: again until acknowledged.
                self.retried(5, || self.security.apply(&event)).await.map(|_| ())
            }
            Op::Sweep => {
                let swept = self.attempt(async { Ok(self.sweeper.run().await) }).await;
                swept.map(|_| ())
            }
            Op::GoogleRevokes { user } => {
                self.google.revoke_user(USERS[user]);
                Ok(())
            }
            Op::Advance { minutes } => {
                self.clock.advance(Duration::from_secs(minutes * 60));
                Ok(())
            }
        };
        out.result = result.map_err(|e| e.code());
        out
    }
}
