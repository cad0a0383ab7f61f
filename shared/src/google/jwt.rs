//! What Google's ID tokens and security event tokens share: a compact JWS signed
//! with RS256 and a key of a published JWKS. The header is read here first, so that
//! `alg: none`, HS*, `crit` and a foreign `typ` are refused by name before any key
//! is looked up; the signature and the registered claims are then checked by
//! `jsonwebtoken` (aws-lc backend), and the verifier that asked applies Google's own
//! rules on top.

use data_encoding::BASE64URL_NOPAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::identity::Rejection;

/// Skew allowed on `exp`, `nbf` and `iat` (the crate's default is 60 s).
pub const CLOCK_SKEW_SECS: u64 = 300;

#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<serde_json::Value>,
}

/// The `kid` of a token whose header asks for RS256, names no critical extension,
/// and whose `typ`, when present, is one of `types` (compared as RFC 7515 says:
/// case-insensitively, `application/` optional).
pub(crate) fn signing_kid(token: &str, types: &[&str]) -> Result<String, Rejection> {
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
    if header.crit.is_some() {
        return Err(Rejection::UnsupportedHeader("crit".into()));
    }
    if let Some(typ) = &header.typ {
        let bare = typ
            .get(..12)
            .filter(|prefix| prefix.eq_ignore_ascii_case("application/"))
            .map_or(typ.as_str(), |_| &typ[12..]);
        if !types.iter().any(|t| t.eq_ignore_ascii_case(bare)) {
            return Err(Rejection::UnsupportedHeader(format!("typ {typ}")));
        }
    }
    header.kid.filter(|k| !k.is_empty()).ok_or(Rejection::MissingKid)
}

/// RS256 only, the crate's registered-claim checks with our skew.
pub(crate) fn validation(required: &[&str]) -> Validation {
    let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.leeway = CLOCK_SKEW_SECS;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(required);
    validation
}

/// The claims of `token` once its signature verifies with `key` and `validation`
/// holds; each failure as the rejection it is.
pub(crate) fn verified_claims<T: DeserializeOwned>(
    token: &str,
    key: &DecodingKey,
    validation: &Validation,
) -> Result<T, Rejection> {
    jsonwebtoken::decode::<T>(token, key, validation)
        .map(|data| data.claims)
        .map_err(|err| match err.into_kind() {
            ErrorKind::InvalidSignature | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => {
                Rejection::BadSignature
            }
            ErrorKind::MissingRequiredClaim(claim) => Rejection::MissingClaim(claim),
            ErrorKind::ExpiredSignature => Rejection::Expired,
            ErrorKind::ImmatureSignature => Rejection::NotYetValid,
            ErrorKind::InvalidIssuer => Rejection::WrongIssuer,
            ErrorKind::InvalidAudience => Rejection::WrongAudience,
            ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm | ErrorKind::MissingAlgorithm => {
                Rejection::UnsupportedAlgorithm("RS256 with this key".into())
            }
            _ => Rejection::Malformed,
        })
}

/// `aud`, as far as Google's rules need it beyond `jsonwebtoken`'s check: how many
/// audiences it names.
#[derive(Debug, Deserialize)]
#[serde(from = "OneOrMany")]
pub(crate) struct Audience {
    count: usize,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl From<OneOrMany> for Audience {
    fn from(aud: OneOrMany) -> Self {
        let count = match aud {
            OneOrMany::One(one) => usize::from(!one.is_empty()),
            OneOrMany::Many(many) => many.len(),
        };
        Audience { count }
    }
}

impl Audience {
    pub(crate) fn is_several(&self) -> bool {
        self.count > 1
    }
}

/// A required claim, or `MissingClaim` naming it.
pub(crate) fn required<T>(claim: Option<T>, name: &str) -> Result<T, Rejection> {
    claim.ok_or_else(|| Rejection::MissingClaim(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str) -> String {
        format!("{}.e30.c2ln", BASE64URL_NOPAD.encode(header.as_bytes()))
    }

    #[test]
    fn header_algorithms_other_than_rs256_are_refused_by_name() {
        for alg in ["none", "HS256", "RS512", "ES256"] {
            let t = token(&format!(r#"{{"alg":"{alg}","kid":"k"}}"#));
            assert_eq!(
                signing_kid(&t, &["JWT"]),
                Err(Rejection::UnsupportedAlgorithm(alg.into()))
            );
        }
        assert_eq!(
            signing_kid(&token(r#"{"alg":"RS256"}"#), &["JWT"]),
            Err(Rejection::MissingKid)
        );
        assert_eq!(signing_kid("!!!.e30.sig", &["JWT"]), Err(Rejection::Malformed));
        assert_eq!(signing_kid(&token("not json"), &["JWT"]), Err(Rejection::Malformed));
    }

    #[test]
    fn a_crit_header_is_refused_and_typ_must_be_the_kinds_own() {
        let crit = token(r#"{"alg":"RS256","kid":"k","crit":["b64"],"b64":true}"#);
        assert_eq!(
            signing_kid(&crit, &["JWT"]),
            Err(Rejection::UnsupportedHeader("crit".into()))
        );
        let set = token(r#"{"alg":"RS256","kid":"k","typ":"secevent+jwt"}"#);
        assert!(matches!(
            signing_kid(&set, &["JWT"]),
            Err(Rejection::UnsupportedHeader(_))
        ));
        assert_eq!(signing_kid(&set, &["secevent+jwt", "JWT"]), Ok("k".into()));
        let long = token(r#"{"alg":"RS256","kid":"k","typ":"application/SECEVENT+JWT"}"#);
        assert_eq!(signing_kid(&long, &["secevent+jwt", "JWT"]), Ok("k".into()));
        let untyped = token(r#"{"alg":"RS256","kid":"k"}"#);
        assert_eq!(signing_kid(&untyped, &["JWT"]), Ok("k".into()));
        let at = token(r#"{"alg":"RS256","kid":"k","typ":"at+jwt"}"#);
        assert!(matches!(
            signing_kid(&at, &["JWT"]),
            Err(Rejection::UnsupportedHeader(_))
        ));
    }

    #[test]
    fn audiences_tell_one_from_several() {
        let one: Audience = serde_json::from_str(r#""me""#).unwrap();
        let many: Audience = serde_json::from_str(r#"["other","me"]"#).unwrap();
        assert!(!one.is_several() && many.is_several());
        assert!(serde_json::from_str::<Audience>("42").is_err());
    }
}
