//! Compact JWS signed with RS256: Google's ID tokens and RISC security event tokens.
//! Each JWKS key is parsed once, when the key set is fetched (`JwksCache`), so a
//! verification is one RSA signature check with a ready key, one decode of the
//! claims and the checks of the verifier that asked (`IdTokenVerifier`,
//! `SecurityEventVerifier`).

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use data_encoding::BASE64URL_NOPAD;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::id_token::Rejection;

/// An RSA public key of a JWKS, parsed for RS256: PKCS#1 v1.5 with SHA-256, and a
/// modulus of 2048 to 8192 bits (checked at each verification).
pub type VerifyingKey = ParsedPublicKey;

/// The RS256 key of a JWK's modulus and exponent (base64url, big-endian, no
/// leading zero), or `None` when they do not form an RSA public key.
pub(crate) fn rs256_key(n: &str, e: &str) -> Option<VerifyingKey> {
    let n = BASE64URL_NOPAD.decode(n.as_bytes()).ok()?;
    let e = BASE64URL_NOPAD.decode(e.as_bytes()).ok()?;
    RsaPublicKeyComponents { n, e }
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .ok()
}

/// The claims of `token` once its RS256 signature over `header.payload` verifies
/// with `key`. The header has been read (its `alg` is RS256, its `kid` chose `key`)
/// before this is called.
pub(crate) fn verified_claims<T: DeserializeOwned>(token: &str, key: &VerifyingKey) -> Result<T, Rejection> {
    let mut segments = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (segments.next(), segments.next(), segments.next(), segments.next())
    else {
        return Err(Rejection::Malformed);
    };
    let signed = &token[..header.len() + 1 + payload.len()];
    let signature = BASE64URL_NOPAD
        .decode(signature.as_bytes())
        .map_err(|_| Rejection::Malformed)?;
    key.verify_sig(signed.as_bytes(), &signature)
        .map_err(|_| Rejection::BadSignature)?;
    let payload = BASE64URL_NOPAD
        .decode(payload.as_bytes())
        .map_err(|_| Rejection::Malformed)?;
    serde_json::from_slice(&payload).map_err(|_| Rejection::Malformed)
}

/// `aud`: one audience or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    /// Whether `client_id` is (one of) the audience(s).
    pub(crate) fn names(&self, client_id: &str) -> bool {
        match self {
            Audience::One(aud) => aud == client_id,
            Audience::Many(auds) => auds.iter().any(|aud| aud == client_id),
        }
    }

    pub(crate) fn is_several(&self) -> bool {
        matches!(self, Audience::Many(auds) if auds.len() > 1)
    }
}

/// A required claim, or `MissingClaim` naming it.
pub(crate) fn required<T>(claim: Option<T>, name: &str) -> Result<T, Rejection> {
    claim.ok_or_else(|| Rejection::MissingClaim(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};

    /// A 2048-bit key pair (PKCS#8), its JWK components and a token signed with it.
    fn signed(claims: &str) -> (VerifyingKey, String) {
        let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let public = pair.public_key();
        let components: RsaPublicKeyComponents<Vec<u8>> = public.into();
        let key = rs256_key(
            &BASE64URL_NOPAD.encode(&components.n),
            &BASE64URL_NOPAD.encode(&components.e),
        )
        .unwrap();
        let header = BASE64URL_NOPAD.encode(br#"{"alg":"RS256","kid":"k"}"#);
        let payload = BASE64URL_NOPAD.encode(claims.as_bytes());
        let message = format!("{header}.{payload}");
        let mut signature = vec![0; pair.public_modulus_len()];
        pair.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            message.as_bytes(),
            &mut signature,
        )
        .unwrap();
        (key, format!("{message}.{}", BASE64URL_NOPAD.encode(&signature)))
    }

    #[test]
    fn the_signature_covers_header_and_payload() {
        let (key, token) = signed(r#"{"sub":"alice"}"#);
        let claims: serde_json::Value = verified_claims(&token, &key).unwrap();
        assert_eq!(claims["sub"], "alice");

        let segments: Vec<&str> = token.split('.').collect();
        let other_payload = BASE64URL_NOPAD.encode(br#"{"sub":"mallory"}"#);
        let other_header = BASE64URL_NOPAD.encode(br#"{"alg":"RS256","kid":"j"}"#);
        for forged in [
            format!("{}.{other_payload}.{}", segments[0], segments[2]),
            format!("{other_header}.{}.{}", segments[1], segments[2]),
            format!("{}.{}.", segments[0], segments[1]),
        ] {
            assert_eq!(
                verified_claims::<serde_json::Value>(&forged, &key).unwrap_err(),
                Rejection::BadSignature
            );
        }
        let (other_key, _) = signed("{}");
        assert_eq!(
            verified_claims::<serde_json::Value>(&token, &other_key).unwrap_err(),
            Rejection::BadSignature
        );
        for malformed in [
            format!("{token}.extra"),
            segments[..2].join("."),
            format!("{}.{}.!!!", segments[0], segments[1]),
        ] {
            assert_eq!(
                verified_claims::<serde_json::Value>(&malformed, &key).unwrap_err(),
                Rejection::Malformed
            );
        }
    }

    #[test]
    fn jwk_components_must_form_an_rsa_key() {
        assert!(rs256_key("!!!", "AQAB").is_none());
        assert!(rs256_key("", "AQAB").is_none());
        // A leading zero byte is not the canonical encoding of the modulus.
        assert!(rs256_key(&BASE64URL_NOPAD.encode(&[0, 1, 2, 3]), "AQAB").is_none());
    }

    #[test]
    fn audiences_name_the_client() {
        let one: Audience = serde_json::from_str(r#""me""#).unwrap();
        let many: Audience = serde_json::from_str(r#"["other","me"]"#).unwrap();
        let none: Audience = serde_json::from_str(r#"[]"#).unwrap();
        assert!(one.names("me") && !one.names("other.me") && !one.is_several());
        assert!(many.names("me") && many.is_several());
        assert!(!none.names("me"));
        assert!(serde_json::from_str::<Audience>("42").is_err());
    }
}
