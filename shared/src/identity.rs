//! Who a verified Google ID token says the caller is, and every reason a token is
//! refused. The words of the domain: the verifier in `google` produces them, the
//! use cases and the HTTP edge read them.

use serde::Serialize;

use crate::types::Sub;

/// The user as the ID token describes them: the `user` object of every response.
/// `hd` is always serialised (`null` for consumer accounts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    pub sub: Sub,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub picture: Option<String>,
    pub hd: Option<String>,
}

impl Profile {
    /// A profile with nothing but its `sub` (a grant found by a security event or
    /// read back from a stream image knows no more).
    pub fn bare(sub: Sub) -> Self {
        Profile {
            sub,
            email: None,
            email_verified: false,
            name: None,
            picture: None,
            hd: None,
        }
    }
}

/// Who the token proves the caller is. Only built by a successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedIdentity {
    pub profile: Profile,
    /// The token's `exp` (Unix seconds).
    pub expires_at: i64,
}

impl VerifiedIdentity {
    pub fn sub(&self) -> &Sub {
        &self.profile.sub
    }
}

/// Why a token was refused. Each attack class has its own reason, so tests (and
/// logs) can tell them apart; clients only ever see `unauthenticated`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("malformed token")]
    Malformed,
    #[error("algorithm {0} is not accepted")]
    UnsupportedAlgorithm(String),
    /// A `crit` header, or a `typ` that is not this kind of token's.
    #[error("header not accepted: {0}")]
    UnsupportedHeader(String),
    #[error("no kid in header")]
    MissingKid,
    #[error("kid not in the published key set")]
    UnknownKid,
    #[error("signature does not verify")]
    BadSignature,
    #[error("issuer is not Google")]
    WrongIssuer,
    #[error("audience is not this client")]
    WrongAudience,
    #[error("token expired")]
    Expired,
    #[error("token issued in the future")]
    IssuedInFuture,
    #[error("token not valid yet (nbf)")]
    NotYetValid,
    #[error("required claim missing: {0}")]
    MissingClaim(String),
    #[error("lifetime longer than 24 h")]
    LifetimeTooLong,
    #[error("azp is not this client or one of its apps")]
    WrongAuthorizedParty,
    #[error("hosted domain not allowed")]
    DomainNotAllowed,
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(String),
}
