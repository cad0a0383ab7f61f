//! Everything that talks to Google: the outbound HTTP client, ID-token and RISC token
//! verification over a cached JWKS, the OAuth token endpoint, revoke and Calendar.

pub mod calendar;
pub mod id_token;
pub mod jwks;
pub mod oauth;
pub mod outbound;
pub mod risc;

pub use calendar::{CalendarClient, CalendarError};
pub use id_token::{IdTokenVerifier, Rejection, VerifiedIdentity};
pub use jwks::JwksCache;
pub use oauth::{OAuthClient, TokenError, TokenGrant};
pub use risc::{RiscRejection, SecurityEvent, SecurityEventVerifier};
