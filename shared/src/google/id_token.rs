//! Google ID-token verification (README): RS256 only, `kid` from the cached JWKS,
//! `iss` in both of Google's forms, `aud` equal to our client ID, `exp`/`iat` within
//! 300 s of skew, `nbf` when present, `azp` equal to our client ID when `aud`
//! names several audiences, a lifetime of at most 24 h, and the optional
//! hosted-domain list.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use data_encoding::BASE64URL_NOPAD;
use serde::{Deserialize, Deserializer};

use super::jwks::{JwksCache, JwksError};
use super::jws::{Audience, required, verified_claims};
use crate::grant::Profile;
use crate::ports::IdTokens;
use crate::types::IdToken;

pub const GOOGLE_ISSUERS: [&str; 2] = ["accounts.google.com", "https://accounts.google.com"];
pub const CLOCK_SKEW_SECS: u64 = 300;
pub const MAX_LIFETIME_SECS: i64 = 24 * 3600;

/// Why a token was refused. Each attack class has its own reason, so tests (and
/// logs) can tell them apart; clients only ever see `unauthenticated`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("malformed token")]
    Malformed,
    #[error("algorithm {0} is not accepted")]
    UnsupportedAlgorithm(String),
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
    #[error("several audiences and azp is not this client")]
    WrongAuthorizedParty,
    #[error("hosted domain not allowed")]
    DomainNotAllowed,
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(String),
}

/// Who the token proves the caller is. Only built by a successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedIdentity {
    pub profile: Profile,
    pub expires_at: i64,
}

impl VerifiedIdentity {
    pub fn sub(&self) -> &str {
        &self.profile.sub
    }
}

#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<Audience>,
    azp: Option<String>,
    exp: Option<i64>,
    iat: Option<i64>,
    nbf: Option<i64>,
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
    client_id: String,
    hosted_domains: Option<Vec<String>>,
}

impl IdTokenVerifier {
    pub fn new(client_id: &str, jwks: JwksCache, hosted_domains: Option<Vec<String>>) -> Self {
        Self {
            jwks,
            client_id: client_id.to_owned(),
            hosted_domains,
        }
    }

    pub async fn verify(&self, token: &IdToken) -> Result<VerifiedIdentity, Rejection> {
        let kid = signing_kid(token.as_str())?;
        let key = self.jwks.key(&kid).await.map_err(|e| match e {
            JwksError::UnknownKid => Rejection::UnknownKid,
            JwksError::Unavailable(reason) => Rejection::KeysUnavailable(reason),
        })?;
        let claims: Claims = verified_claims(token.as_str(), &key)?;
        self.check_claims(claims)
    }

    fn check_claims(&self, claims: Claims) -> Result<VerifiedIdentity, Rejection> {
        let now = unix_now();
        let skew = CLOCK_SKEW_SECS as i64;
        // The registered claims of RFC 7519, then Google's own rules.
        let exp = required(claims.exp, "exp")?;
        required(claims.sub.as_ref(), "sub")?;
        let iss = required(claims.iss.as_deref(), "iss")?;
        let aud = required(claims.aud.as_ref(), "aud")?;
        if exp < now.saturating_sub(skew) {
            return Err(Rejection::Expired);
        }
        if claims.nbf.is_some_and(|nbf| nbf > now.saturating_add(skew)) {
            return Err(Rejection::NotYetValid);
        }
        if !GOOGLE_ISSUERS.contains(&iss) {
            return Err(Rejection::WrongIssuer);
        }
        if !aud.names(&self.client_id) {
            return Err(Rejection::WrongAudience);
        }
        let iat = required(claims.iat, "iat")?;
        if iat > now.saturating_add(skew) {
            return Err(Rejection::IssuedInFuture);
        }
        if exp.checked_sub(iat).is_none_or(|lifetime| lifetime > MAX_LIFETIME_SECS) {
            return Err(Rejection::LifetimeTooLong);
        }
        if aud.is_several() && claims.azp.as_deref() != Some(self.client_id.as_str()) {
            return Err(Rejection::WrongAuthorizedParty);
        }
        let sub = claims
            .sub
            .filter(|s| !s.is_empty())
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

/// Reads the header ourselves so that `alg: none`, HS* and friends are refused by name
/// before any key is looked up.
pub(crate) fn signing_kid(token: &str) -> Result<String, Rejection> {
    let segment = token.split('.').next().ok_or(Rejection::Malformed)?;
    let bytes = BASE64URL_NOPAD
        .decode(segment.as_bytes())
        .map_err(|_| Rejection::Malformed)?;
    let header: Header = serde_json::from_slice(&bytes).map_err(|_| Rejection::Malformed)?;
    match header.alg.as_deref() {
        Some("RS256") => {}
        Some(other) => return Err(Rejection::UnsupportedAlgorithm(other.to_owned())),
        None => return Err(Rejection::Malformed),
    }
    header.kid.filter(|k| !k.is_empty()).ok_or(Rejection::MissingKid)
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(json: &str) -> String {
        BASE64URL_NOPAD.encode(json.as_bytes())
    }

    #[test]
    fn header_algorithms_other_than_rs256_are_refused_by_name() {
        for alg in ["none", "HS256", "RS512", "ES256"] {
            let token = format!("{}.e30.sig", encode(&format!(r#"{{"alg":"{alg}","kid":"k"}}"#)));
            assert_eq!(signing_kid(&token), Err(Rejection::UnsupportedAlgorithm(alg.into())));
        }
        let no_kid = format!("{}.e30.sig", encode(r#"{"alg":"RS256"}"#));
        assert_eq!(signing_kid(&no_kid), Err(Rejection::MissingKid));
        assert_eq!(signing_kid("!!!.e30.sig"), Err(Rejection::Malformed));
        assert_eq!(
            signing_kid(&format!("{}.e30.sig", encode("not json"))),
            Err(Rejection::Malformed)
        );
    }
}
