//! The token vault: one DynamoDB item per Google account per client, the refresh
//! token KMS-encrypted under an encryption context that binds it to its owner
//! (`sub`, client ID, purpose), so a ciphertext copied to another item cannot be
//! decrypted. Every write is conditional on the item's version: concurrent sign-ins
//! and upgrades are merged, never lost.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;
use crate::google::VerifiedIdentity;
use crate::secret::Secret;
use crate::types::ScopeSet;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Encryption-context purpose of a stored refresh token; IAM policies match on it.
pub const REFRESH_TOKEN_PURPOSE: &str = "refresh_token";
/// RISC `jti`s are remembered this long (Google retries delivery for days).
const JTI_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
const MAX_WRITE_ATTEMPTS: u32 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantStatus {
    Active,
    /// Google refused the refresh token (or told us it was revoked); the user must
    /// sign in again with offline access.
    ReauthorizationRequired,
}

impl GrantStatus {
    fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Active => "active",
            GrantStatus::ReauthorizationRequired => "reauthorization_required",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub picture: Option<String>,
    pub hd: Option<String>,
}

impl From<&VerifiedIdentity> for Profile {
    fn from(id: &VerifiedIdentity) -> Self {
        Self {
            sub: id.sub.clone(),
            email: id.email.clone(),
            email_verified: id.email_verified,
            name: id.name.clone(),
            picture: id.picture.clone(),
            hd: id.hd.clone(),
        }
    }
}

/// A KMS ciphertext. Never decrypted except to call Google.
#[derive(Clone, PartialEq, Eq)]
pub struct Ciphertext(pub Vec<u8>);

impl std::fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ciphertext({} bytes)", self.0.len())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub profile: Profile,
    pub scopes: ScopeSet,
    pub refresh_token: Option<Ciphertext>,
    pub status: GrantStatus,
    pub version: u64,
    pub created_at: String,
    pub updated_at: String,
}

impl Grant {
    pub fn offline_access(&self) -> bool {
        self.status == GrantStatus::Active && self.refresh_token.is_some()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("{service} unavailable: {reason}")]
    Unavailable { service: &'static str, reason: String },
    #[error("too many concurrent writes")]
    Contended,
    #[error("stored item unreadable: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Other(String),
}

impl From<VaultError> for ApiError {
    fn from(err: VaultError) -> Self {
        match err {
            VaultError::Unavailable { service, reason } => ApiError::Unavailable {
                service,
                reason,
                retry_after: 2,
            },
            other => ApiError::internal(other),
        }
    }
}

/// What a caller wants done with the current item inside a versioned update.
pub enum Change {
    Put(Box<Grant>),
    Keep,
}

#[derive(Clone)]
pub struct Vault {
    dynamodb: aws_sdk_dynamodb::Client,
    kms: aws_sdk_kms::Client,
    table: String,
    key_id: Option<String>,
    client_id: String,
}

impl Vault {
    pub fn new(
        dynamodb: aws_sdk_dynamodb::Client,
        kms: aws_sdk_kms::Client,
        table: String,
        key_id: Option<String>,
        client_id: String,
    ) -> Self {
        Self {
            dynamodb,
            kms,
            table,
            key_id,
            client_id,
        }
    }

    fn grant_key(&self, sub: &str) -> AttributeValue {
        AttributeValue::S(format!("grant#{}#{sub}", self.client_id))
    }

    fn context(&self, sub: &str) -> HashMap<String, String> {
        HashMap::from([
            ("sub".to_owned(), sub.to_owned()),
            ("client_id".to_owned(), self.client_id.clone()),
            ("purpose".to_owned(), REFRESH_TOKEN_PURPOSE.to_owned()),
        ])
    }

    pub async fn seal(&self, sub: &str, token: &Secret) -> Result<Ciphertext, VaultError> {
        let key_id = self
            .key_id
            .as_deref()
            .ok_or_else(|| VaultError::Other("no KMS key configured".into()))?;
        let out = self
            .kms
            .encrypt()
            .key_id(key_id)
            .plaintext(Blob::new(token.expose().as_bytes()))
            .set_encryption_context(Some(self.context(sub)))
            .send()
            .await
            .map_err(|e| sdk_error("KMS", e))?;
        let blob = out
            .ciphertext_blob
            .ok_or_else(|| VaultError::Other("KMS returned no ciphertext".into()))?;
        Ok(Ciphertext(blob.into_inner()))
    }

    pub async fn open(&self, sub: &str, ciphertext: &Ciphertext) -> Result<Secret, VaultError> {
        let out = self
            .kms
            .decrypt()
            .ciphertext_blob(Blob::new(ciphertext.0.clone()))
            .set_encryption_context(Some(self.context(sub)))
            .set_key_id(self.key_id.clone())
            .send()
            .await
            .map_err(|e| sdk_error("KMS", e))?;
        let plain = out
            .plaintext
            .ok_or_else(|| VaultError::Other("KMS returned no plaintext".into()))?;
        String::from_utf8(plain.into_inner())
            .map(Secret::new)
            .map_err(|_| VaultError::Corrupt("decrypted token is not UTF-8".into()))
    }

    pub async fn get(&self, sub: &str) -> Result<Option<Grant>, VaultError> {
        let out = self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key("pk", self.grant_key(sub))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("DynamoDB", e))?;
        out.item.map(|item| decode(&item)).transpose()
    }

    /// Read-modify-write under optimistic concurrency: `change` sees the current item
    /// and decides; a concurrent write makes us re-read and decide again.
    ///
    /// Returns a boxed `Send` future: a closure over borrowed grants held across
    /// awaits otherwise defeats rustc's `Send` inference in callers (rust#102211).
    pub fn update<'a, E, F>(&'a self, sub: &'a str, mut change: F) -> BoxFuture<'a, Result<Option<Grant>, E>>
    where
        E: From<VaultError> + Send + 'a,
        F: FnMut(Option<&Grant>) -> Result<Change, E> + Send + 'a,
    {
        Box::pin(async move {
            for attempt in 0..MAX_WRITE_ATTEMPTS {
                let current = self.get(sub).await?;
                let next = match change(current.as_ref())? {
                    Change::Keep => return Ok(current),
                    Change::Put(next) => *next,
                };
                let mut put = self
                    .dynamodb
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(self.encode(&next)));
                put = match &current {
                    None => put.condition_expression("attribute_not_exists(pk)"),
                    Some(c) => put
                        .condition_expression("version = :v")
                        .expression_attribute_values(":v", AttributeValue::N(c.version.to_string())),
                };
                match put.send().await {
                    Ok(_) => return Ok(Some(next)),
                    Err(err) if is_conditional_failure(&err) => {
                        tracing::debug!(attempt, "grant changed concurrently; retrying");
                        conflict_backoff(attempt).await;
                    }
                    Err(err) => return Err(sdk_error("DynamoDB", err).into()),
                }
            }
            Err(VaultError::Contended.into())
        })
    }

    /// Records a successful sign-in or upgrade: profile refreshed, scopes merged, the
    /// new refresh token stored if one came (a missing one never erases the stored
    /// one). With `require_offline`, refuses (and writes nothing) when no refresh
    /// token would be stored afterwards.
    pub async fn record_authorization(
        &self,
        identity: &VerifiedIdentity,
        granted: &ScopeSet,
        new_refresh_token: Option<Ciphertext>,
        require_offline: bool,
    ) -> Result<Grant, ApiError> {
        let now = now_rfc3339();
        let grant = self
            .update(&identity.sub, |current| {
                let refresh_token = match (&new_refresh_token, current) {
                    (Some(new), _) => Some(new.clone()),
                    (None, Some(c)) => c.refresh_token.clone(),
                    (None, None) => None,
                };
                if require_offline && refresh_token.is_none() {
                    return Err(ApiError::OfflineAccessRequired);
                }
                let status = match (current, &refresh_token) {
                    (Some(c), None) => c.status,
                    _ => GrantStatus::Active,
                };
                Ok(Change::Put(Box::new(Grant {
                    profile: Profile::from(identity),
                    // Union: a concurrent upgrade's scope is never lost.
                    scopes: current
                        .map(|c| c.scopes.union(granted))
                        .unwrap_or_else(|| granted.clone()),
                    refresh_token,
                    status,
                    version: current.map_or(1, |c| c.version + 1),
                    created_at: current.map_or_else(|| now.clone(), |c| c.created_at.clone()),
                    updated_at: now.clone(),
                })))
            })
            .await?;
        grant.ok_or_else(|| ApiError::internal("grant missing after write"))
    }

    /// Drops a refresh token Google declared dead, but only if it is still the stored
    /// one: a concurrent sign-in may already have stored a fresh token.
    pub async fn mark_reauthorization_required(&self, sub: &str, dead: Option<&Ciphertext>) -> Result<(), VaultError> {
        let now = now_rfc3339();
        self.update(sub, |current| {
            let Some(c) = current else {
                return Ok::<_, VaultError>(Change::Keep);
            };
            if dead.is_some() && c.refresh_token.as_ref() != dead {
                return Ok(Change::Keep);
            }
            if c.status == GrantStatus::ReauthorizationRequired && c.refresh_token.is_none() {
                return Ok(Change::Keep);
            }
            Ok(Change::Put(Box::new(Grant {
                refresh_token: None,
                status: GrantStatus::ReauthorizationRequired,
                version: c.version + 1,
                updated_at: now.clone(),
                ..c.clone()
            })))
        })
        .await
        .map(|_| ())
    }

    /// Stores a refresh token Google rotated during a refresh, if the old one is
    /// still the stored one.
    pub async fn replace_refresh_token(&self, sub: &str, old: &Ciphertext, new: Ciphertext) -> Result<(), VaultError> {
        let now = now_rfc3339();
        let old = old.clone();
        self.update(sub, move |current| match current {
            Some(c) if c.refresh_token.as_ref() == Some(&old) => Ok::<_, VaultError>(Change::Put(Box::new(Grant {
                refresh_token: Some(new.clone()),
                version: c.version + 1,
                updated_at: now.clone(),
                ..c.clone()
            }))),
            _ => Ok(Change::Keep),
        })
        .await
        .map(|_| ())
    }

    /// Deletes the grant: with it the only copy of the ciphertext (crypto-shredding).
    pub async fn delete(&self, sub: &str) -> Result<(), VaultError> {
        self.dynamodb
            .delete_item()
            .table_name(&self.table)
            .key("pk", self.grant_key(sub))
            .send()
            .await
            .map_err(|e| sdk_error("DynamoDB", e))?;
        Ok(())
    }

    /// Remembers a RISC `jti`; false when it was seen before.
    pub async fn remember_jti(&self, jti: &str) -> Result<bool, VaultError> {
        let expires = OffsetDateTime::now_utc().unix_timestamp() + JTI_TTL.as_secs() as i64;
        let result = self
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .item("pk", self.jti_key(jti))
            .item("expires_at", AttributeValue::N(expires.to_string()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if is_conditional_failure(&err) => Ok(false),
            Err(err) => Err(sdk_error("DynamoDB", err)),
        }
    }

    /// Forgets a `jti` whose event could not be applied, so Google's retry is not
    /// mistaken for a replay.
    pub async fn forget_jti(&self, jti: &str) -> Result<(), VaultError> {
        self.dynamodb
            .delete_item()
            .table_name(&self.table)
            .key("pk", self.jti_key(jti))
            .send()
            .await
            .map_err(|e| sdk_error("DynamoDB", e))?;
        Ok(())
    }

    fn jti_key(&self, jti: &str) -> AttributeValue {
        AttributeValue::S(format!("risc-jti#{}#{jti}", self.client_id))
    }

    fn encode(&self, g: &Grant) -> HashMap<String, AttributeValue> {
        let mut item = HashMap::from([
            ("pk".to_owned(), self.grant_key(&g.profile.sub)),
            ("sub".to_owned(), AttributeValue::S(g.profile.sub.clone())),
            ("client_id".to_owned(), AttributeValue::S(self.client_id.clone())),
            (
                "email_verified".to_owned(),
                AttributeValue::Bool(g.profile.email_verified),
            ),
            ("status".to_owned(), AttributeValue::S(g.status.as_str().to_owned())),
            ("version".to_owned(), AttributeValue::N(g.version.to_string())),
            ("created_at".to_owned(), AttributeValue::S(g.created_at.clone())),
            ("updated_at".to_owned(), AttributeValue::S(g.updated_at.clone())),
        ]);
        let optional = [
            ("email", &g.profile.email),
            ("name", &g.profile.name),
            ("picture", &g.profile.picture),
            ("hd", &g.profile.hd),
        ];
        for (name, value) in optional {
            if let Some(v) = value {
                item.insert(name.to_owned(), AttributeValue::S(v.clone()));
            }
        }
        // A DynamoDB string set cannot be empty: no scopes means no attribute.
        if !g.scopes.is_empty() {
            item.insert(
                "granted_scopes".into(),
                AttributeValue::Ss(g.scopes.iter().cloned().collect()),
            );
        }
        if let Some(ct) = &g.refresh_token {
            item.insert("refresh_token_ct".into(), AttributeValue::B(Blob::new(ct.0.clone())));
        }
        item
    }
}

fn decode(item: &HashMap<String, AttributeValue>) -> Result<Grant, VaultError> {
    let s = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let required = |name: &str| s(name).ok_or_else(|| VaultError::Corrupt(format!("{name} missing")));
    let status = match required("status")?.as_str() {
        "active" => GrantStatus::Active,
        "reauthorization_required" => GrantStatus::ReauthorizationRequired,
        other => return Err(VaultError::Corrupt(format!("unknown status {other}"))),
    };
    let version = item
        .get("version")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| VaultError::Corrupt("version missing".into()))?;
    Ok(Grant {
        profile: Profile {
            sub: required("sub")?,
            email: s("email"),
            email_verified: item
                .get("email_verified")
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
            name: s("name"),
            picture: s("picture"),
            hd: s("hd"),
        },
        scopes: item
            .get("granted_scopes")
            .and_then(|v| v.as_ss().ok())
            .map(|ss| ss.iter().collect())
            .unwrap_or_default(),
        refresh_token: item
            .get("refresh_token_ct")
            .and_then(|v| v.as_b().ok())
            .map(|b| Ciphertext(b.as_ref().to_vec())),
        status,
        version,
        created_at: required("created_at")?,
        updated_at: required("updated_at")?,
    })
}

fn is_conditional_failure<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

/// Transport failures, timeouts and throttling mean "unavailable, retry later" (the
/// SDK already retried); everything else is an internal error.
fn sdk_error<E: ProvideErrorMetadata, R>(service: &'static str, err: SdkError<E, R>) -> VaultError {
    let reason = match &err {
        SdkError::ServiceError(e) => e.err().code().unwrap_or("unknown service error").to_owned(),
        SdkError::TimeoutError(_) => "timed out".to_owned(),
        SdkError::DispatchFailure(_) => "could not connect".to_owned(),
        // Other variants may carry the request; never format them (it can hold a token).
        _ => "request could not be sent".to_owned(),
    };
    let unavailable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(e) => matches!(
            e.err().code(),
            Some(
                "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
                    | "ServiceUnavailable"
                    | "KMSInternalException"
                    | "DependencyTimeoutException"
                    | "KeyUnavailableException"
            )
        ),
        _ => false,
    };
    if unavailable {
        VaultError::Unavailable { service, reason }
    } else {
        VaultError::Other(format!("{service}: {reason}"))
    }
}

async fn conflict_backoff(attempt: u32) {
    let mut random = [0u8; 2];
    aws_lc_rs::rand::fill(&mut random).expect("system randomness is available");
    let cap = 10 + 10 * u64::from(attempt.min(5));
    tokio::time::sleep(Duration::from_millis(u64::from(u16::from_le_bytes(random)) % cap)).await;
}

pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc())
        .format(&Rfc3339)
        .unwrap_or_default()
}
