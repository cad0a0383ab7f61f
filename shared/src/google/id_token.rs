//! Google ID-token verification (docs/security.md): RS256 only, `kid` from the cached JWKS,
//! `iss` in both of Google's forms, `aud` our client ID or one of our apps' (phones),
//! `exp`/`nbf`/`iat` within 300 s of skew, `azp` (when present) our client or one of
//! our apps, and required when `aud` names several audiences, a lifetime of at most
//! 24 h, and the optional hosted-domain list. `jsonwebtoken` checks the signature
//! and the registered claims; the rest is Google's and ours.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Deserializer};

use super::jwks::{JwksCache, JwksError};
pub use super::jwt::CLOCK_SKEW_SECS;
use super::jwt::{self, Audience, required, verified_claims};
use crate::identity::{Profile, Rejection, VerifiedIdentity};
use crate::ports::IdTokens;
use crate::types::{IdToken, Sub};

pub const GOOGLE_ISSUERS: [&str; 2] = ["accounts.google.com", "https://accounts.google.com"];
pub const MAX_LIFETIME_SECS: i64 = 24 * 3600;
/// The `typ` an ID token may declare (Google's say `JWT`).
const TYPES: &[&str] = &["JWT"];

/// The claims beyond the registered ones `jsonwebtoken` has checked. They are read
/// before its checks run, so the required ones are optional here and `jsonwebtoken`
/// names a missing one.
#[derive(Deserialize)]
struct Claims {
    aud: Option<Audience>,
    azp: Option<String>,
    iat: Option<i64>,
    exp: Option<i64>,
    sub: Option<String>,
    email: Option<String>,
    #[serde(default, deserialize_with = "bool_or_string")]
    email_verified: bool,
    name: Option<String>,
    picture: Option<String>,
    hd: Option<String>,
}

/// Google has sent `email_verified` both as a boolean and as "true".
fn bool_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    Ok(match Option::<Flag>::deserialize(d)? {
        Some(Flag::Bool(b)) => b,
        Some(Flag::Text(s)) => s.eq_ignore_ascii_case("true"),
        None => false,
    })
}

pub struct IdTokenVerifier {
    jwks: JwksCache,
    /// The web client first, then the apps' client IDs.
    clients: Vec<String>,
    hosted_domains: Option<Vec<String>>,
    validation: jsonwebtoken::Validation,
}

impl IdTokenVerifier {
    pub fn new(client_id: &str, jwks: JwksCache, hosted_domains: Option<Vec<String>>) -> Self {
        let mut verifier = Self {
            jwks,
            clients: vec![client_id.to_owned()],
            hosted_domains,
            validation: jwt::validation(&["exp", "iss", "aud", "sub"]),
        };
        verifier.validation.set_issuer(&GOOGLE_ISSUERS);
        verifier.validation.set_audience(&verifier.clients);
        verifier
    }

    /// Also accepts ID tokens minted for these apps of the same Google Cloud
    /// project (their own `aud`, or the web client's with the app as `azp`).
    pub fn with_app_clients(mut self, apps: &[String]) -> Self {
        self.clients.extend(apps.iter().cloned());
        self.validation.set_audience(&self.clients);
        self
    }

    pub async fn verify(&self, token: &IdToken) -> Result<VerifiedIdentity, Rejection> {
        let kid = signing_kid(token.as_str())?;
        let key = self.jwks.key(&kid).await.map_err(|e| match e {
            JwksError::UnknownKid => Rejection::UnknownKid,
            JwksError::Unavailable(reason) => Rejection::KeysUnavailable(reason),
        })?;
        let claims: Claims = verified_claims(token.as_str(), &key, &self.validation)?;
        self.check_claims(claims)
    }

    /// Google's rules on top of the registered claims.
    fn check_claims(&self, claims: Claims) -> Result<VerifiedIdentity, Rejection> {
        let skew = CLOCK_SKEW_SECS as i64;
        let exp = required(claims.exp, "exp")?;
        let aud = required(claims.aud, "aud")?;
        let iat = required(claims.iat, "iat")?;
        if iat > unix_now().saturating_add(skew) {
            return Err(Rejection::IssuedInFuture);
        }
        if exp.checked_sub(iat).is_none_or(|lifetime| lifetime > MAX_LIFETIME_SECS) {
            return Err(Rejection::LifetimeTooLong);
        }
        let ours = |party: &str| self.clients.iter().any(|client| client == party);
        match claims.azp.as_deref() {
            Some(azp) if !ours(azp) => return Err(Rejection::WrongAuthorizedParty),
            None if aud.is_several() => return Err(Rejection::WrongAuthorizedParty),
            _ => {}
        }
        let sub = claims
            .sub
            .as_deref()
            .and_then(Sub::parse)
            .ok_or_else(|| Rejection::MissingClaim("sub".into()))?;
        if let Some(allowed) = &self.hosted_domains {
            // The `hd` claim, not the email's domain: only Google sets `hd`.
            let ok = claims
                .hd
                .as_deref()
                .is_some_and(|hd| allowed.iter().any(|d| d.eq_ignore_ascii_case(hd)));
            if !ok {
                return Err(Rejection::DomainNotAllowed);
            }
        }
        Ok(VerifiedIdentity {
            profile: Profile {
                sub,
                email: claims.email,
                email_verified: claims.email_verified,
                name: claims.name,
                picture: claims.picture,
                hd: claims.hd,
            },
            expires_at: exp,
        })
    }
}

#[async_trait]
impl IdTokens for IdTokenVerifier {
    async fn verify(&self, token: &IdToken) -> Result<VerifiedIdentity, Rejection> {
        IdTokenVerifier::verify(self, token).await
    }
}

/// The `kid` of an ID token's header, once `alg`, `crit` and `typ` are acceptable.
pub(crate) fn signing_kid(token: &str) -> Result<String, Rejection> {
    jwt::signing_kid(token, TYPES)
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
