//! The fake Google's ID tokens: `h.<sub>.s` ([`FakeGoogle::id_token`]) names its
//! user with a verified address; one whose `sub` starts with `forged` fails its
//! signature.

use async_trait::async_trait;

use super::FakeGoogle;
use crate::identity::{Profile, Rejection, VerifiedIdentity};
use crate::ports::IdTokens;
use crate::types::{IdToken, Sub};

#[async_trait]
impl IdTokens for FakeGoogle {
    async fn verify(&self, token: &IdToken) -> Result<VerifiedIdentity, Rejection> {
        let raw = token.as_str().split('.').nth(1).unwrap_or_default();
        if raw.starts_with("forged") {
            return Err(Rejection::BadSignature);
        }
        let sub = Sub::parse(raw).ok_or_else(|| Rejection::MissingClaim("sub".into()))?;
        Ok(VerifiedIdentity {
            profile: Profile {
                email: Some(format!("{sub}@example.com")),
                email_verified: true,
                ..Profile::bare(sub)
            },
            expires_at: 4_000_000_000,
        })
    }
}
