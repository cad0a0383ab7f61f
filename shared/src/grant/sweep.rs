//! Where a grant sits in the sweep index (docs/grant-lifetime.md): when the
//! sweeper next has something to do for it (a notice before its refresh token
//! expires, a keep-alive refresh before disuse ends it) and the day bucket and
//! shard that time falls in.

use aws_lc_rs::digest;
use time::OffsetDateTime;

use super::Grant;
use crate::types::Sub;

/// When the sweeper looks at a grant (docs/grant-lifetime.md): a notice this long
/// before its refresh token expires, a keep-alive refresh once it has been unused
/// this long. Every function that writes a grant applies it, so the grant sits in the
/// sweep index at its next due time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepPolicy {
    pub notice_secs: i64,
    pub keep_alive_secs: i64,
}

impl Default for SweepPolicy {
    fn default() -> Self {
        SweepPolicy {
            notice_secs: 7 * DAY,
            keep_alive_secs: 150 * DAY,
        }
    }
}

pub const DAY: i64 = 24 * 3600;
/// Shards of each day's sweep bucket, so one day's writes spread over several index
/// partitions.
pub const SWEEP_SHARDS: u8 = 8;

/// Where a grant sits in the sweep index: a day bucket (with its shard) and the due
/// time within it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepSlot {
    pub bucket: String,
    pub due_at: i64,
}

impl Grant {
    /// When the sweeper next has something to do for this grant: a notice before
    /// the refresh token expires (once per expiry), or a keep-alive refresh before
    /// disuse kills it. `None` for grants that cannot act offline.
    pub fn sweep_due(&self, policy: &SweepPolicy) -> Option<i64> {
        if !self.offline_access() {
            return None;
        }
        let notice = self
            .expires_at()
            .filter(|expiry| self.expiry_noticed != Some(*expiry))
            .map(|expiry| expiry - policy.notice_secs);
        let keep_alive = self.last_used().map(|last| last + policy.keep_alive_secs);
        [notice, keep_alive].into_iter().flatten().min()
    }

    /// The grant's place in the sweep index when written at `written_at`: the day of
    /// its due time, but never a day before the write (the sweeper only looks back to
    /// where its last complete run ended), in one of [`SWEEP_SHARDS`] shards.
    pub fn sweep_slot(&self, policy: &SweepPolicy, written_at: i64) -> Option<SweepSlot> {
        let due_at = self.sweep_due(policy)?;
        let day = OffsetDateTime::from_unix_timestamp(due_at.max(written_at)).ok()?.date();
        Some(SweepSlot {
            bucket: sweep_bucket(day, shard_of(self.sub())),
            due_at,
        })
    }
}

/// The name of one shard of one day's sweep bucket (`2031-01-02#5`).
pub fn sweep_bucket(day: time::Date, shard: u8) -> String {
    format!(
        "{:04}-{:02}-{:02}#{shard}",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

fn shard_of(sub: &Sub) -> u8 {
    digest::digest(&digest::SHA256, sub.as_str().as_bytes()).as_ref()[0] % SWEEP_SHARDS
}
