//! Google's OAuth grant rules: codes, refresh tokens, scopes and ID tokens.

use std::collections::BTreeSet;

use http::StatusCode;
use serde_json::{Map, Value, json};

use crate::config::{AppPlatform, CodeRequest, PublishingStatus, SCOPE_OPENID, TESTING_REFRESH_TOKEN_LIFETIME};
use crate::keys::{self, Signer};
use crate::state::{CodeEntry, State, UserGrant, normalise_scope, normalised_scopes, now, now_ms, scope_string};

pub const ID_TOKEN_ISSUER: &str = "https://accounts.google.com";

/// A rejected token or revoke request: the OAuth `error` and `error_description`.
#[derive(Debug, PartialEq)]
pub(crate) struct OAuthError {
    pub(crate) status: StatusCode,
    pub(crate) error: &'static str,
    pub(crate) description: String,
}

impl OAuthError {
    pub(crate) fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
        }
    }

    pub(crate) fn invalid_grant(description: &'static str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }
}

/// A successful token response.
pub(crate) struct Issued {
    pub(crate) access_token: String,
    pub(crate) expires_in: u64,
    pub(crate) scopes: BTreeSet<String>,
    pub(crate) refresh_token: Option<String>,
    /// Remaining life of a time-limited refresh token, in whole seconds.
    pub(crate) refresh_token_expires_in: Option<u64>,
    pub(crate) id_token: Option<String>,
}

impl Issued {
    pub(crate) fn to_json(&self) -> Value {
        let mut body = json!({
            "access_token": self.access_token,
            "expires_in": self.expires_in,
            "scope": scope_string(&self.scopes),
            "token_type": "Bearer",
        });
        if let Some(id_token) = &self.id_token {
            body["id_token"] = json!(id_token);
        }
        if let Some(refresh_token) = &self.refresh_token {
            body["refresh_token"] = json!(refresh_token);
        }
        if let Some(seconds) = self.refresh_token_expires_in {
            body["refresh_token_expires_in"] = json!(seconds);
        }
        body
    }
}

impl State {
    pub(crate) fn mint_code(&mut self, request: CodeRequest) -> String {
        let code = self.issue("4/0A", 48);
        let entry = CodeEntry { request, used: false };
        self.codes.insert(code.clone(), entry);
        code
    }

    /// Redeems a code. `redirect_uri` must equal the one the code was issued
    /// for: `postmessage` for the web popup, `""` for a phone app's server
    /// auth code.
    pub(crate) fn exchange_code(&mut self, code: &str, redirect_uri: &str) -> Result<Issued, OAuthError> {
        self.end_expired_refresh_tokens();
        let entry = self
            .codes
            .get_mut(code)
            .ok_or(OAuthError::invalid_grant("Malformed auth code."))?;
        if entry.used {
            return Err(OAuthError::invalid_grant("Bad Request"));
        }
        if entry.request.redirect_uri != redirect_uri {
            return Err(OAuthError::invalid_grant("redirect_uri_mismatch"));
        }
        entry.used = true;
        let request = entry.request.clone();

        let sub = request.sub.clone();
        let grant = self.users.entry(sub.clone()).or_insert_with(|| UserGrant {
            scopes: BTreeSet::new(),
            refresh_tokens: BTreeSet::new(),
            profile: request.clone(),
        });
        // Google returns a refresh token only on the first offline consent,
        // or when consent is forced again.
        let wants_refresh = request.offline && (request.consent || grant.refresh_tokens.is_empty());
        let code_scopes: BTreeSet<String> = request.scopes.iter().cloned().collect();
        let mut scopes = code_scopes.clone();
        if request.include_granted_scopes {
            scopes.extend(grant.scopes.iter().cloned());
        }
        grant.scopes.extend(code_scopes);
        grant.profile = request.clone();

        let refresh_token = wants_refresh.then(|| self.issue("1//0g", 72));
        let mut refresh_token_expires_in = None;
        if let Some(token) = &refresh_token {
            let (lifetime, announce) = self.refresh_token_lifetime(&request);
            let expires_at_ms = lifetime.map(|lifetime| {
                let millis = i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX / 4);
                now_ms().saturating_add(millis)
            });
            self.add_refresh_token(token, &sub, expires_at_ms, announce);
            if announce {
                refresh_token_expires_in = expires_at_ms.map(remaining_secs);
            }
        }
        let access_token = self.mint_access_token(&sub, scopes.clone());
        let id_token = match request.raw_id_token.clone() {
            Some(raw) if raw.is_empty() => None,
            Some(raw) => Some(raw),
            // Like Google: no ID token unless `openid` is among the scopes.
            None if !scopes.contains(SCOPE_OPENID) => None,
            None => {
                let mut claims = self.id_token_claims_for(&request);
                claims["at_hash"] = json!(keys::at_hash(&access_token));
                // A phone app's server auth code: issued to the web client
                // (`aud`) for the app (`azp`).
                if let Some(app) = &request.app_client_id {
                    claims["azp"] = json!(app);
                }
                if let Some(overrides) = &request.id_token_claims {
                    apply_overrides(&mut claims, overrides);
                }
                Some(self.sign_id_token(&claims))
            }
        };
        Ok(Issued {
            access_token,
            expires_in: self.config.access_token_ttl_secs,
            scopes,
            refresh_token,
            refresh_token_expires_in,
            id_token,
        })
    }

    /// The life of a refresh token issued for `request`, and whether token
    /// responses announce it (`refresh_token_expires_in`).
    fn refresh_token_lifetime(&self, request: &CodeRequest) -> (Option<std::time::Duration>, bool) {
        let chosen = request.refresh_token_lifetime;
        match self.config.publishing_status {
            PublishingStatus::InProduction => (chosen, chosen.is_some()),
            PublishingStatus::Testing => {
                let lifetime = chosen.map_or(TESTING_REFRESH_TOKEN_LIFETIME, |chosen| {
                    chosen.min(TESTING_REFRESH_TOKEN_LIFETIME)
                });
                (Some(lifetime), chosen.is_some() || self.config.testing_announces_expiry)
            }
        }
    }

    /// A refresh (RFC 6749 §6). With `scope`, the new access token carries
    /// exactly those scopes, each of which must be granted (`email` and
    /// `profile` stand for their `userinfo.*` scopes), else `invalid_scope`.
    pub(crate) fn refresh(&mut self, refresh_token: &str, scope: Option<&str>) -> Result<Issued, OAuthError> {
        self.end_expired_refresh_tokens();
        let entry = self
            .refresh_tokens
            .get(refresh_token)
            .ok_or(OAuthError::invalid_grant("Token has been expired or revoked."))?;
        let sub = entry.sub.clone();
        let refresh_token_expires_in = entry
            .expires_at_ms
            .filter(|_| entry.announce_expiry)
            .map(remaining_secs);
        let profile = self.profile(&sub);
        let granted = self
            .users
            .get(&sub)
            .map(|grant| grant.scopes.clone())
            .unwrap_or_default();
        let scopes = match scope.filter(|scope| !scope.trim().is_empty()) {
            None => granted,
            Some(requested) => narrow(&granted, requested)?,
        };
        let access_token = self.mint_access_token(&sub, scopes.clone());
        let id_token = scopes.contains(SCOPE_OPENID).then(|| {
            let mut claims = self.id_token_claims_for(&profile);
            claims["at_hash"] = json!(keys::at_hash(&access_token));
            self.sign_id_token(&claims)
        });
        Ok(Issued {
            access_token,
            expires_in: self.config.access_token_ttl_secs,
            scopes,
            refresh_token: None,
            refresh_token_expires_in,
            id_token,
        })
    }

    /// The claims of a fresh, valid ID token for this sign-in.
    pub(crate) fn id_token_claims_for(&self, profile: &CodeRequest) -> Value {
        let iat = now();
        let client_id = &self.config.client_id;
        let mut claims = json!({
            "iss": ID_TOKEN_ISSUER,
            "azp": client_id,
            "aud": client_id,
            "sub": profile.sub,
            "email": profile.email,
            "email_verified": profile.email_verified,
            "name": profile.name,
            "picture": profile.picture,
            "iat": iat,
            "exp": iat + 3600,
        });
        let (given, family) = profile.name.split_once(' ').unwrap_or((&profile.name, ""));
        claims["given_name"] = json!(given);
        if !family.is_empty() {
            claims["family_name"] = json!(family);
        }
        if let Some(hd) = &profile.hd {
            claims["hd"] = json!(hd);
        }
        claims
    }

    pub(crate) fn sign_id_token(&self, claims: &Value) -> String {
        let key = self.current_key();
        keys::encode_jwt(&keys::rs256_header(key.kid()), claims, &key, Signer::Current)
    }

    /// A valid ID token for the user's latest sign-in, with optional overrides.
    pub(crate) fn id_token(&self, sub: &str, overrides: Option<&Value>) -> String {
        let mut claims = self.id_token_claims_for(&self.profile(sub));
        if let Some(overrides) = overrides {
            apply_overrides(&mut claims, overrides);
        }
        self.sign_id_token(&claims)
    }

    /// An ID token as a phone app gets it at sign-in (see [`AppPlatform`]).
    pub(crate) fn app_id_token(
        &self,
        sub: &str,
        platform: AppPlatform,
        app_client_id: &str,
        overrides: Option<&Value>,
    ) -> String {
        let mut claims = self.id_token_claims_for(&self.profile(sub));
        claims["azp"] = json!(app_client_id);
        if platform == AppPlatform::Ios {
            claims["aud"] = json!(app_client_id);
        }
        if let Some(overrides) = overrides {
            apply_overrides(&mut claims, overrides);
        }
        self.sign_id_token(&claims)
    }

    pub(crate) fn sign_jwt(&self, header: &Value, claims: &Value, signer: Signer) -> String {
        let key = match signer {
            Signer::Foreign => keys::foreign_key(),
            Signer::Risc => keys::risc_key(),
            Signer::Current | Signer::NoneAlg | Signer::Hs256WithPublicKey => self.current_key(),
        };
        keys::encode_jwt(header, claims, &key, signer)
    }
}

/// The granted scopes a refresh's `scope` parameter asks for, named as the
/// grant names them; `invalid_scope` when one of them is not granted.
fn narrow(granted: &BTreeSet<String>, requested: &str) -> Result<BTreeSet<String>, OAuthError> {
    let mut chosen = BTreeSet::new();
    let mut missing = Vec::new();
    for wanted in normalised_scopes(requested) {
        match granted.iter().find(|scope| normalise_scope(scope) == wanted) {
            Some(scope) => {
                chosen.insert(scope.clone());
            }
            None => missing.push(wanted),
        }
    }
    if missing.is_empty() {
        Ok(chosen)
    } else {
        let description = format!("Some requested scopes were not granted: {}", missing.join(" "));
        Err(OAuthError::new(StatusCode::BAD_REQUEST, "invalid_scope", description))
    }
}

/// Whole seconds left until `expires_at_ms`, rounded up (0 once past).
fn remaining_secs(expires_at_ms: i64) -> u64 {
    let left = expires_at_ms.saturating_sub(now_ms()).max(0);
    u64::try_from(left).unwrap_or(0).div_ceil(1000)
}

/// Merges `overrides` into `claims`; a `null` override removes the claim.
pub(crate) fn apply_overrides(claims: &mut Value, overrides: &Value) {
    let (Some(target), Some(changes)) = (claims.as_object_mut(), overrides.as_object()) else {
        return;
    };
    merge(target, changes);
}

fn merge(target: &mut Map<String, Value>, changes: &Map<String, Value>) {
    for (name, value) in changes {
        if value.is_null() {
            target.remove(name);
        } else {
            target.insert(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_and_remove() {
        let mut claims = json!({"aud": "a", "exp": 1, "sub": "s"});
        apply_overrides(&mut claims, &json!({"aud": "secret", "exp": null, "extra": true}));
        assert_eq!(claims, json!({"aud": "secret", "sub": "s", "extra": true}));
    }
}
