//! The response bodies of the API, as types: what a frontend reads is written down
//! once here (see `infra/openapi.yaml`).

use serde::Serialize;

use crate::grant::{Grant, GrantStatus, Profile, unix_rfc3339};
use crate::types::ScopeSet;

/// When Google will end the grant's refresh token (RFC 3339), or `null`.
fn grant_expires_at(grant: Option<&Grant>) -> Option<String> {
    grant.and_then(Grant::expires_at).and_then(unix_rfc3339)
}

/// `POST /auth/exchange`.
#[derive(Debug, Serialize)]
pub struct SignedInView<'a> {
    pub user: &'a Profile,
    pub granted_scopes: &'a ScopeSet,
    pub offline_access: bool,
    pub id_token: &'a str,
    pub id_token_expires_at: i64,
    pub grant_expires_at: Option<String>,
}

impl<'a> SignedInView<'a> {
    pub fn new(user: &'a Profile, grant: &'a Grant, id_token: &'a str, id_token_expires_at: i64) -> Self {
        Self {
            user,
            granted_scopes: &grant.scopes,
            offline_access: grant.offline_access(),
            id_token,
            id_token_expires_at,
            grant_expires_at: grant_expires_at(Some(grant)),
        }
    }
}

/// `POST /auth/upgrade`.
#[derive(Debug, Serialize)]
pub struct GrantView<'a> {
    pub granted_scopes: &'a ScopeSet,
    pub offline_access: bool,
    pub grant_expires_at: Option<String>,
}

impl<'a> From<&'a Grant> for GrantView<'a> {
    fn from(grant: &'a Grant) -> Self {
        Self {
            granted_scopes: &grant.scopes,
            offline_access: grant.offline_access(),
            grant_expires_at: grant_expires_at(Some(grant)),
        }
    }
}

/// `GET /me`: the user always comes from the verified bearer token.
#[derive(Debug, Serialize)]
pub struct MeView<'a> {
    pub user: &'a Profile,
    pub granted_scopes: ScopeSet,
    pub offline_access: bool,
    pub status: &'static str,
    pub updated_at: Option<&'a str>,
    pub grant_expires_at: Option<String>,
}

impl<'a> MeView<'a> {
    pub fn new(user: &'a Profile, grant: Option<&'a Grant>) -> Self {
        match grant {
            None => Self {
                user,
                granted_scopes: ScopeSet::default(),
                offline_access: false,
                status: "not_connected",
                updated_at: None,
                grant_expires_at: None,
            },
            Some(grant) => Self {
                user,
                granted_scopes: grant.scopes.clone(),
                offline_access: grant.offline_access(),
                status: GrantStatus::as_str(grant.status),
                updated_at: Some(&grant.updated_at),
                grant_expires_at: grant_expires_at(Some(grant)),
            },
        }
    }
}
