//! RSA signing keys, JWKS documents and JWT encoding.
//!
//! RSA-2048 generation costs tens of milliseconds, and a test binary may start
//! dozens of emulators, so keys come from one lazily filled process-wide pool.
//! Each role owns fixed slots, which keeps the guarantees tests depend on even
//! though instances share keys: the foreign key is never published by anyone,
//! and the RISC key never signs ID tokens.

use std::sync::{Arc, OnceLock};

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use data_encoding::{BASE64, BASE64URL_NOPAD, HEXLOWER};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Slots that ID-token signing rotates through (current, previous, ...).
pub(crate) const SIGNING_SLOTS: usize = 4;
const FOREIGN_SLOT: usize = SIGNING_SLOTS;
const RISC_SLOT: usize = SIGNING_SLOTS + 1;
const POOL_SIZE: usize = SIGNING_SLOTS + 2;

static POOL: [OnceLock<Arc<SigningKey>>; POOL_SIZE] = [const { OnceLock::new() }; POOL_SIZE];

/// Which key signs a JWT made with [`crate::Emulator::sign_jwt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signer {
    /// The current ID-token signing key (published in the JWKS).
    Current,
    /// An RSA key that no emulator ever publishes.
    Foreign,
    /// No signature at all (`header.payload.`), for `alg: none` attacks.
    NoneAlg,
    /// HMAC-SHA256 keyed with the current public key's PEM text: the classic
    /// RS256/HS256 algorithm-confusion forgery.
    Hs256WithPublicKey,
    /// The RISC (Cross-Account Protection) key published at `/risc/certs`.
    Risc,
}

/// One RSA key pair with its published identity.
pub(crate) struct SigningKey {
    pair: KeyPair,
    kid: String,
    n: String,
    e: String,
    pem: String,
}

impl SigningKey {
    fn generate() -> Self {
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA-2048 key generation");
        let components = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        // Google's kids are 40 hex digits; derive ours from the modulus so a
        // kid always names exactly one key.
        let hash = digest::digest(&digest::SHA256, &components.n);
        let kid = HEXLOWER.encode(&hash.as_ref()[..20]);
        let spki = pair.public_key().as_der().expect("public key DER encoding");
        Self {
            kid,
            n: BASE64URL_NOPAD.encode(&components.n),
            e: BASE64URL_NOPAD.encode(&components.e),
            pem: pem_encode(spki.as_ref()),
            pair,
        }
    }

    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// The PEM text (`-----BEGIN PUBLIC KEY-----`, SubjectPublicKeyInfo) of
    /// the public key.
    pub(crate) fn public_pem(&self) -> &str {
        &self.pem
    }

    pub(crate) fn jwk(&self) -> Value {
        json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid, "n": self.n, "e": self.e})
    }

    fn sign_rs256(&self, message: &[u8]) -> Vec<u8> {
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut signature)
            .expect("RSA signing");
        signature
    }
}

fn pem_encode(der: &[u8]) -> String {
    let b64 = BASE64.encode(der);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    pem
}

fn pooled(slot: usize) -> Arc<SigningKey> {
    POOL[slot].get_or_init(|| Arc::new(SigningKey::generate())).clone()
}

/// The ID-token signing key for rotation step `step` (cycles through the pool).
pub(crate) fn signing_key(step: usize) -> Arc<SigningKey> {
    pooled(step % SIGNING_SLOTS)
}

pub(crate) fn foreign_key() -> Arc<SigningKey> {
    pooled(FOREIGN_SLOT)
}

pub(crate) fn risc_key() -> Arc<SigningKey> {
    pooled(RISC_SLOT)
}

/// Encodes and signs `header.claims`. The header is used exactly as given so
/// tests can forge any header (missing kid, wrong alg, ...).
pub(crate) fn encode_jwt(header: &Value, claims: &Value, key: &SigningKey, signer: Signer) -> String {
    let signing_input = format!(
        "{}.{}",
        BASE64URL_NOPAD.encode(&serde_json::to_vec(header).expect("JSON header")),
        BASE64URL_NOPAD.encode(&serde_json::to_vec(claims).expect("JSON claims"))
    );
    let signature = match signer {
        Signer::NoneAlg => Vec::new(),
        Signer::Hs256WithPublicKey => {
            let mac_key = hmac::Key::new(hmac::HMAC_SHA256, key.public_pem().as_bytes());
            hmac::sign(&mac_key, signing_input.as_bytes()).as_ref().to_vec()
        }
        Signer::Current | Signer::Foreign | Signer::Risc => key.sign_rs256(signing_input.as_bytes()),
    };
    format!("{signing_input}.{}", BASE64URL_NOPAD.encode(&signature))
}

/// The standard header Google puts on its JWTs.
pub(crate) fn rs256_header(kid: &str) -> Value {
    json!({"alg": "RS256", "kid": kid, "typ": "JWT"})
}

/// OIDC `at_hash`: left half of SHA-256 of the access token, base64url.
pub(crate) fn at_hash(access_token: &str) -> String {
    let hash = digest::digest(&digest::SHA256, access_token.as_bytes());
    BASE64URL_NOPAD.encode(&hash.as_ref()[..16])
}

/// `len` random bytes, base64url without padding.
pub(crate) fn random_token(len: usize) -> String {
    BASE64URL_NOPAD.encode(&random_bytes(len))
}

pub(crate) fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    aws_lc_rs::rand::fill(&mut bytes).expect("system randomness");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_wraps_at_64_columns() {
        let pem = pem_encode(&[7u8; 100]);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN PUBLIC KEY-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last(), Some(&"-----END PUBLIC KEY-----"));
    }

    #[test]
    fn roles_use_distinct_keys() {
        let kids = [
            signing_key(0).kid().to_owned(),
            foreign_key().kid().to_owned(),
            risc_key().kid().to_owned(),
        ];
        assert_ne!(kids[0], kids[1]);
        assert_ne!(kids[0], kids[2]);
        assert_ne!(kids[1], kids[2]);
        assert_eq!(signing_key(0).kid(), signing_key(SIGNING_SLOTS).kid());
    }
}
