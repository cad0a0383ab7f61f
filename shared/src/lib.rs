//! Everything the Lambda functions share, in layers (README, "How it works"):
//!
//! - **edge**: `http` (routing, CORS, request parsing, problem responses) and
//!   `batch` (queue and stream batches); each function crate adds its own handler.
//! - **use cases**: `cases` (sign-in, access tokens, Calendar events, disconnect,
//!   security events, lifecycle events), over the ports only.
//! - **ports**: `ports`, small traits for the grant store, token sealing, the
//!   replay guard, Google's endpoints and the event bus.
//! - **adapters**: `aws` (DynamoDB, KMS, EventBridge, Secrets Manager) and `google`
//!   (OAuth, Calendar, ID tokens, RISC), all under one outbound policy (`outbound`);
//!   `memory` has in-memory ones for unit tests.
//!
//! Around them: `boot` (the cold start), `config`, `error` (the one error type),
//! `grant` (the stored grant and its transitions), `event` (the event validator),
//! `types` (validated newtypes), `telemetry` (logs and metrics).

pub mod aws;
pub mod batch;
pub mod boot;
pub mod cases;
pub mod config;
pub mod error;
pub mod event;
pub mod google;
pub mod grant;
pub mod http;
pub mod memory;
pub mod outbound;
pub mod ports;
#[cfg(test)]
mod properties;
pub mod secret;
pub mod telemetry;
pub mod types;

pub use boot::Boot;
pub use config::{Config, Needs};
pub use error::ApiError;
pub use secret::Secret;
