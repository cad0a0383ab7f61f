//! The Google adapters: ID-token and security event token verification over a
//! cached JWKS (`jwt` holds what both share), the OAuth token and revoke endpoints,
//! and Calendar. Each implements its port (`crate::ports`) and follows the one
//! outbound policy (`crate::outbound`). The domain's words they answer in
//! (`identity`, `upstream`, `security`) are re-exported here for callers that think
//! of them as Google's.

pub mod calendar;
pub mod id_token;
pub mod jwks;
mod jwt;
pub mod oauth;
mod revoke;
pub mod risc;
#[cfg(test)]
mod tests;

pub use calendar::CalendarClient;
pub use id_token::IdTokenVerifier;
pub use jwks::JwksCache;
pub use oauth::OAuthClient;
pub use risc::SecurityEventVerifier;

pub use crate::identity::{Rejection, VerifiedIdentity};
pub use crate::security::{RiscKind, RiscRejection, SecurityEvent, Subject};
pub use crate::upstream::{CalendarError, TokenError, TokenGrant};
