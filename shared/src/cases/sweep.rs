//! The daily sweep (docs/grant-lifetime.md): no grant dies unannounced or of
//! disuse. It reads only the grants that are due, from the sweep index (one day
//! bucket and shard at a time, from where its last complete run ended to today),
//! and for each:
//! - records a notice when the refresh token expires within the notice period,
//!   once per grant and expiry (`publisher` turns it into `GrantExpiring`);
//! - refreshes it when it has not been used at Google for the keep-alive period,
//!   so disuse never ends it (`invalid_grant` there marks it as everywhere else).
//!
//! It stops before its deadline and the next run goes on from where it stopped; a
//! repeated or retried run sends nothing twice (a notice is recorded once per
//! expiry). `backfill` places grants stored before the index existed into it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::access::AccessTokens;
use super::grants;
use crate::error::ApiError;
use crate::grant::{Grant, SWEEP_SHARDS, SweepPolicy, sweep_bucket};
use crate::outbound;
use crate::ports::{GrantStore, StoreError, SweepIndex};
use crate::system::Ambient;
use crate::telemetry::metric;
use crate::types::Sub;

/// A first run (no progress recorded) looks back this far.
const FIRST_LOOKBACK_DAYS: i64 = 31;
/// Users read from the index per query.
const PAGE: usize = 25;
/// No grant is started with less than this left before the deadline.
const RESERVE: Duration = Duration::from_secs(3);

/// What a sweep did (the sweeper's answer).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Swept {
    pub expiring: u32,
    pub kept_alive: u32,
    pub reauthorization_required: u32,
    /// Due grants are left for the next run (out of time, or a failure).
    pub more: bool,
}

/// What a backfill did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Backfilled {
    pub backfilled: u32,
    pub more: bool,
    /// Where the next backfill call goes on (pass it back as `from`).
    pub from: Option<String>,
}

pub struct Sweeper {
    grants: Arc<dyn GrantStore>,
    index: Arc<dyn SweepIndex>,
    access: Arc<AccessTokens>,
    policy: SweepPolicy,
    ambient: Ambient,
}

impl Sweeper {
    pub fn new(index: Arc<dyn SweepIndex>, access: Arc<AccessTokens>, policy: SweepPolicy) -> Self {
        Self {
            grants: access.grants().clone(),
            ambient: access.ambient().clone(),
            index,
            access,
            policy,
        }
    }

    fn out_of_time(&self) -> bool {
        outbound::remaining().is_some_and(|left| left < RESERVE)
    }

    pub async fn run(&self) -> Swept {
        let now = self.ambient.clock.now();
        let today = now.date();
        let mut swept = Swept::default();
        let mut day = match self.index.swept_until().await {
            Ok(Some(day)) => day.min(today),
            Ok(None) => today - time::Duration::days(FIRST_LOOKBACK_DAYS),
            Err(err) => {
                tracing::warn!(error = %err, "sweep progress unreadable; next run");
                swept.more = true;
                return swept;
            }
        };
        loop {
            if !self.sweep_day(day, now, &mut swept).await {
                swept.more = true;
                break;
            }
            // Today's buckets stay open: grants still become due today.
            let next = if day < today {
                day.next_day().unwrap_or(day)
            } else {
                day
            };
            if let Err(err) = self.index.set_swept_until(next).await {
                tracing::warn!(error = %err, "sweep progress not recorded; the next run looks again");
            }
            if day >= today {
                break;
            }
            day = next;
        }
        metric("GrantExpiryNoticed", f64::from(swept.expiring));
        metric("GrantKeptAlive", f64::from(swept.kept_alive));
        metric(
            "SweepReauthorizationRequired",
            f64::from(swept.reauthorization_required),
        );
        swept
    }

    /// Sweeps one day's buckets; whether every due grant in them was dealt with.
    async fn sweep_day(&self, day: time::Date, now: OffsetDateTime, swept: &mut Swept) -> bool {
        let mut complete = true;
        for shard in 0..SWEEP_SHARDS {
            let bucket = sweep_bucket(day, shard);
            let mut after: Option<String> = None;
            loop {
                if self.out_of_time() {
                    return false;
                }
                let page = match self
                    .index
                    .due(&bucket, now.unix_timestamp(), after.as_deref(), PAGE)
                    .await
                {
                    Ok(page) => page,
                    Err(err) => {
                        tracing::warn!(bucket, error = %err, "sweep bucket unreadable; next run");
                        return false;
                    }
                };
                for sub in &page.subs {
                    if self.out_of_time() {
                        return false;
                    }
                    match self.one(sub, now).await {
                        Ok(done) => done.count(swept),
                        Err(err) => {
                            tracing::warn!(sub = %sub, error = %err, "grant not swept; next run");
                            complete = false;
                        }
                    }
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        complete
    }

    /// What is due for one grant, done.
    async fn one(&self, sub: &Sub, now: OffsetDateTime) -> Result<Done, ApiError> {
        let mut done = Done::default();
        let Some(grant) = self.grants.load(sub).await? else {
            return Ok(done);
        };
        if !grant.offline_access() {
            return Ok(done);
        }
        let at = now.unix_timestamp();
        if let Some(expiry) = grant.expires_at() {
            let due = expiry - at <= self.policy.notice_secs && expiry > at;
            if due && grant.expiry_noticed != Some(expiry) {
                done.noticed = self.notice(sub, expiry, now).await?;
            }
        }
        let last_used = grant.last_used().unwrap_or(at);
        if last_used + self.policy.keep_alive_secs <= at {
            match self.access.refresh(&grant, None).await {
                Ok(_) => done.kept_alive = true,
                Err(ApiError::ReauthorizationRequired) => done.dead = true,
                Err(err) => return Err(err),
            }
        }
        if !done.anything() {
            // The index had it at a time that no longer holds (the periods changed):
            // place it where it belongs now.
            self.replace(&grant, at).await?;
        }
        Ok(done)
    }

    /// Records the notice for `expiry`, if the grant still expires then.
    pub(super) async fn notice(&self, sub: &Sub, expiry: i64, now: OffsetDateTime) -> Result<bool, ApiError> {
        let noticed = AtomicBool::new(false);
        grants::update(self.grants.as_ref(), self.ambient.random.as_ref(), sub, |current| {
            let next = current
                .filter(|g| g.offline_access() && g.expires_at() == Some(expiry))
                .and_then(|g| g.noticed(expiry, now));
            noticed.store(next.is_some(), Ordering::Relaxed);
            Ok::<_, ApiError>(next)
        })
        .await?;
        Ok(noticed.into_inner())
    }

    async fn replace(&self, grant: &Grant, now: i64) -> Result<(), ApiError> {
        match self.grants.touch(grant, now).await {
            Ok(()) | Err(StoreError::Conflict) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Places the grants stored before the sweep index existed into it, one page
    /// after another until the deadline; `from` goes on where the last call ended.
    pub async fn backfill(&self, from: Option<String>) -> Backfilled {
        let mut result = Backfilled {
            from,
            ..Backfilled::default()
        };
        loop {
            if self.out_of_time() {
                result.more = true;
                return result;
            }
            let page = match self.index.unindexed(result.from.as_deref(), 100).await {
                Ok(page) => page,
                Err(err) => {
                    tracing::warn!(error = %err, "backfill page unreadable; call again");
                    result.more = true;
                    return result;
                }
            };
            let now = self.ambient.clock.now_unix();
            let mut failed = false;
            for sub in &page.subs {
                let placed = match self.grants.load(sub).await {
                    // Only grants that can act offline belong in the index.
                    Ok(Some(grant)) if grant.offline_access() => self.replace(&grant, now).await.map(|()| true),
                    Ok(_) => Ok(false),
                    Err(err) => Err(err.into()),
                };
                match placed {
                    Ok(placed) => result.backfilled += u32::from(placed),
                    Err(err) => {
                        tracing::warn!(sub = %sub, error = %err, "grant not backfilled; call again from the same place");
                        failed = true;
                    }
                }
            }
            if failed {
                // Go on from where this page began, so the failed grants are read again.
                result.more = true;
                return result;
            }
            result.from = page.next;
            if result.from.is_none() {
                return result;
            }
        }
    }
}

#[derive(Debug, Default)]
struct Done {
    noticed: bool,
    kept_alive: bool,
    dead: bool,
}

impl Done {
    fn anything(&self) -> bool {
        self.noticed || self.kept_alive || self.dead
    }

    fn count(&self, swept: &mut Swept) {
        swept.expiring += u32::from(self.noticed);
        swept.kept_alive += u32::from(self.kept_alive);
        swept.reauthorization_required += u32::from(self.dead);
    }
}
