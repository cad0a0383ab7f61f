//! `sweeper`: run daily by an EventBridge Scheduler schedule (docs/grant-lifetime.md,
//! "The daily sweeper"), it announces grants Google will end soon and keeps idle ones alive,
//! reading only the grants that are due. It accepts any JSON object (the schedule
//! sends `{}`); `{"backfill": true}` (with `"from"` to go on) instead places grants
//! stored before the sweep index existed into it, once, after an upgrade.

use std::sync::Arc;

use lambda_http::lambda_runtime::LambdaEvent;
use serde::{Deserialize, Serialize};
use shared::cases::{Backfilled, Sweeper, Swept};
use shared::entry::{self, Entry, Outcome};
use shared::{Boot, Needs};

/// Refreshes (keep-alive): the KMS key and the client secret.
pub const NEEDS: Needs = Needs {
    kms: true,
    client_secret: true,
};

/// What the schedule (or an operator) sends. Any other member is ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SweepRequest {
    pub backfill: bool,
    pub from: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum SweepResponse {
    Swept(Swept),
    Backfilled(Backfilled),
}

pub struct SweeperFunction {
    sweeper: Sweeper,
}

impl SweeperFunction {
    /// The table (with its sweep index), KMS and Google's token endpoint.
    pub fn new(boot: &Boot) -> Self {
        let index = Arc::new(shared::aws::sweep::DynamoSweepIndex::new(boot.table()));
        Self::with(Sweeper::new(index, Arc::new(boot.access_tokens()), boot.config.sweep))
    }

    pub fn with(sweeper: Sweeper) -> Self {
        Self { sweeper }
    }

    pub async fn handle(&self, event: LambdaEvent<SweepRequest>) -> SweepResponse {
        let entry = Entry::of("schedule", &event.context);
        entry::invocation(entry, self.run(event.payload), |response| Outcome {
            code: match response {
                SweepResponse::Swept(s) if s.more => "more".into(),
                SweepResponse::Backfilled(b) if b.more => "more".into(),
                _ => "ok".into(),
            },
            status: None,
        })
        .await
    }

    pub async fn run(&self, request: SweepRequest) -> SweepResponse {
        if request.backfill {
            let done = self.sweeper.backfill(request.from).await;
            tracing::info!(backfilled = done.backfilled, more = done.more, "backfill");
            return SweepResponse::Backfilled(done);
        }
        let swept = self.sweeper.run().await;
        tracing::info!(
            expiring = swept.expiring,
            kept_alive = swept.kept_alive,
            reauthorization_required = swept.reauthorization_required,
            more = swept.more,
            "sweep"
        );
        SweepResponse::Swept(swept)
    }
}
