//! KMS sealing of tokens: direct `Encrypt`/`Decrypt` (tokens are far below 4 KiB)
//! under an encryption context `{sub, client_id, purpose}` that binds each
//! ciphertext to its owner and use (`refresh_token`, `access_token`), so one copied
//! to another item, or to another purpose, cannot be decrypted. The key policy lets
//! only the stack's function roles use those contexts (docs/security.md, "The key policy").

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;

use super::call;
use crate::grant::{Ciphertext, TokenPurpose};
use crate::ports::{StoreError, TokenSealer};
use crate::secret::Secret;
use crate::types::Sub;

pub struct KmsSealer {
    kms: aws_sdk_kms::Client,
    key_id: String,
    client_id: String,
}

impl KmsSealer {
    pub fn new(kms: aws_sdk_kms::Client, key_id: String, client_id: String) -> Self {
        Self { kms, key_id, client_id }
    }

    fn context(&self, sub: &Sub, purpose: TokenPurpose) -> HashMap<String, String> {
        HashMap::from([
            ("sub".to_owned(), sub.as_str().to_owned()),
            ("client_id".to_owned(), self.client_id.clone()),
            ("purpose".to_owned(), purpose.as_str().to_owned()),
        ])
    }
}

#[async_trait]
impl TokenSealer for KmsSealer {
    async fn seal(&self, sub: &Sub, purpose: TokenPurpose, token: &Secret) -> Result<Ciphertext, StoreError> {
        let request = self
            .kms
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(token.expose().as_bytes()))
            .set_encryption_context(Some(self.context(sub, purpose)));
        let out = call("KMS", request.send()).await?;
        let blob = out
            .ciphertext_blob
            .ok_or_else(|| StoreError::Other("KMS returned no ciphertext".into()))?;
        Ok(Ciphertext(blob.into_inner()))
    }

    async fn open(&self, sub: &Sub, purpose: TokenPurpose, ciphertext: &Ciphertext) -> Result<Secret, StoreError> {
        let request = self
            .kms
            .decrypt()
            .ciphertext_blob(Blob::new(ciphertext.0.clone()))
            .set_encryption_context(Some(self.context(sub, purpose)))
            .key_id(&self.key_id);
        let out = call("KMS", request.send()).await?;
        let plain = out
            .plaintext
            .ok_or_else(|| StoreError::Other("KMS returned no plaintext".into()))?;
        String::from_utf8(plain.into_inner())
            .map(Secret::new)
            .map_err(|_| StoreError::Corrupt("decrypted token is not UTF-8".into()))
    }
}
