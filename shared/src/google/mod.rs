//! The Google adapters: ID-token and RISC token verification over a cached JWKS,
//! the OAuth token and revoke endpoints, and Calendar. Each implements its port
//! (`crate::ports`) and follows the one outbound policy (`crate::outbound`).

pub mod calendar;
pub mod id_token;
pub mod jwks;
pub mod jws;
pub mod oauth;
mod revoke;
pub mod risc;

pub use calendar::{CalendarClient, CalendarError};
pub use id_token::{IdTokenVerifier, Rejection, VerifiedIdentity};
pub use jwks::JwksCache;
pub use oauth::{OAuthClient, TokenError, TokenGrant};
pub use risc::{RiscKind, RiscRejection, SecurityEvent, SecurityEventVerifier, Subject};
