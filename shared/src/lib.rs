//! Everything the Lambda functions share, in layers (docs/architecture.md, "Layers"):
//!
//! - **edge**: `entry` (the invocation wrapper every entry point shares, the
//!   runtime loop, queue batches) and `http` (routing, CORS, request parsing,
//!   problem responses); each function crate adds its own handler.
//! - **use cases**: `cases` (sign-in, access tokens, Calendar events, disconnect,
//!   security events, lifecycle events), over the ports only.
//! - **domain**: `grant` (the stored grant and its transitions), `identity`,
//!   `upstream` (what Google answers), `security` (security events), `types`
//!   (validated newtypes), and `ports`, the small traits the use cases need,
//!   written in those words.
//! - **adapters**: `aws` (DynamoDB, KMS, EventBridge, Secrets Manager, all through
//!   the AWS SDK) and `google` (OAuth, Calendar, ID tokens, RISC), under one
//!   outbound policy (`outbound`); `system` (the clock, randomness); `memory`
//!   (feature `testing`) has in-memory twins for unit tests and the simulation.
//!
//! Around them: `boot` (the cold start), `config`, `error` (the one error type),
//! `event` (the event validator), `telemetry` (logs and metrics).

pub mod aws;
pub mod boot;
pub mod cases;
pub mod config;
pub mod entry;
pub mod error;
pub mod event;
pub mod google;
pub mod grant;
pub mod http;
pub mod identity;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
pub mod outbound;
pub mod ports;
#[cfg(test)]
mod properties;
pub mod secret;
pub mod security;
pub mod system;
pub mod telemetry;
pub mod types;
pub mod upstream;

pub use boot::Boot;
pub use config::{Config, Needs};
pub use error::ApiError;
pub use secret::Secret;
