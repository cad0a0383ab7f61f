//! Everything the five Lambda functions share: configuration, the one error type and
//! its RFC 9457 mapping, HTTP conventions (routing, CORS, request parsing), Google
//! (ID-token verification, OAuth, Calendar, RISC) and the KMS-encrypted token vault.
//!
//! Each function's `main.rs` builds an [`App`] once per cold start and hands its
//! handler to `lambda_http::run`; handlers are plain async functions over
//! `http::Request`, so tests call them directly.

pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod event;
pub mod google;
pub mod http;
#[cfg(test)]
mod properties;
pub mod secret;
pub mod telemetry;
pub mod types;
pub mod vault;

pub use app::{App, Needs};
pub use config::Config;
pub use error::ApiError;
pub use secret::Secret;
