//! The response bodies of the API, as types: what a frontend reads is written down
//! once here (see `infra/openapi.yaml`).

use serde::Serialize;

use crate::grant::{Grant, GrantStatus, Profile};
use crate::types::ScopeSet;

/// `POST /auth/exchange`.
#[derive(Debug, Serialize)]
pub struct SignedInView<'a> {
    pub user: &'a Profile,
    pub granted_scopes: &'a ScopeSet,
    pub offline_access: bool,
    pub id_token: &'a str,
    pub id_token_expires_at: i64,
}

/// `POST /auth/upgrade`.
#[derive(Debug, Serialize)]
pub struct GrantView<'a> {
    pub granted_scopes: &'a ScopeSet,
    pub offline_access: bool,
}

impl<'a> From<&'a Grant> for GrantView<'a> {
    fn from(grant: &'a Grant) -> Self {
        Self {
            granted_scopes: &grant.scopes,
            offline_access: grant.offline_access(),
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
            },
            Some(grant) => Self {
                user,
                granted_scopes: grant.scopes.clone(),
                offline_access: grant.offline_access(),
                status: GrantStatus::as_str(grant.status),
                updated_at: Some(&grant.updated_at),
            },
        }
    }
}
