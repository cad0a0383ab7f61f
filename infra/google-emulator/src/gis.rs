//! Google Identity Services stand-in: the `/gsi/client` script (code model,
//! popup mode) and the consent popup it opens at `/o/oauth2/v2/auth`.
//!
//! A page loads `/gsi/client` instead of `https://accounts.google.com/gsi/client`
//! and calls `google.accounts.oauth2.initCodeClient({...}).requestCode()` as it
//! would with Google. The popup lets the tester choose one of
//! [`TEST_ACCOUNTS`] and untick requested scopes (granular consent). Allow mints
//! a code with the same logic as `/emulator/codes` ([`CodeRequest`]):
//! `access_type=offline` and `prompt=consent` decide whether its exchange
//! returns a refresh token, exactly as for codes minted through the control
//! API. The code is posted to the opener addressed to the origin the request
//! named (a well-formed `http(s)` origin, checked here), never to `*`.
//!
//! For offline requests the screen also asks how long access lasts, like
//! Google's time-based access: radio buttons `name="access_duration"` with
//! the ids `duration-until-removed` (value `""`, the default), `duration-1h`
//! (`3600`), `duration-1d` (`86400`) and `duration-7d` (`604800`). Allow
//! accepts any whole number of seconds from 1 to [`MAX_ACCESS_DURATION_SECS`]
//! there; the code's refresh token then dies after that long
//! ([`CodeRequest::refresh_token_lifetime`]).

use std::collections::BTreeSet;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::{
    CodeRequest, PublishingStatus, SCOPE_CALENDAR, SCOPE_CALENDAR_EVENTS, SCOPE_EMAIL, SCOPE_OPENID, SCOPE_PROFILE,
};
use crate::server::{Shared, lock};

/// An account offered on the emulator's consent screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TestAccount {
    pub sub: &'static str,
    pub name: &'static str,
    pub email: &'static str,
    /// Google Workspace domain (`hd` claim); `None` for consumer accounts.
    pub hd: Option<&'static str>,
}

pub const TEST_ACCOUNTS: [TestAccount; 4] = [
    TestAccount {
        sub: "104729000000000000001",
        name: "Ada Lovelace",
        email: "ada@example.com",
        hd: None,
    },
    TestAccount {
        sub: "104729000000000000002",
        name: "Grace Hopper",
        email: "grace@example.com",
        hd: None,
    },
    TestAccount {
        sub: "104729000000000000003",
        name: "Alan Turing",
        email: "alan@example.com",
        hd: None,
    },
    TestAccount {
        sub: "104729000000000000004",
        name: "Katherine Johnson",
        email: "katherine@corp.example",
        hd: Some("corp.example"),
    },
];

/// Scopes every sign-in includes: shown, but not optional (as on Google's screen).
const BASIC_SCOPES: [&str; 3] = [SCOPE_OPENID, SCOPE_EMAIL, SCOPE_PROFILE];

/// The longest time-based access Allow accepts (400 days).
pub const MAX_ACCESS_DURATION_SECS: u64 = 400 * 24 * 3600;

/// The time-based access choices the consent screen offers: element id,
/// seconds (`""`: until the user removes access), label.
const ACCESS_DURATIONS: [(&str, &str, &str); 4] = [
    ("duration-until-removed", "", "Until you remove access"),
    ("duration-1h", "3600", "For 1 hour"),
    ("duration-1d", "86400", "For 1 day"),
    ("duration-7d", "604800", "For 7 days"),
];

const CLIENT_JS: &str = include_str!("gis/client.js");
const POPUP_JS: &str = include_str!("gis/popup.js");
const CONSENT_CSS: &str = include_str!("gis/consent.css");
const AUTH_PATH: &str = "/o/oauth2/v2/auth";

/// `GET /gsi/client`: the `google.accounts.oauth2` code-model API.
pub(crate) async fn client_script(headers: HeaderMap) -> Response {
    let Some(origin) = own_origin(&headers) else {
        return (StatusCode::BAD_REQUEST, "invalid Host header").into_response();
    };
    let script = CLIENT_JS.replace("__EMULATOR_ORIGIN__", &script_json(&json!(origin)));
    asset("text/javascript; charset=utf-8", script)
}

/// `GET /gsi/popup.js`: the consent popup's own script.
pub(crate) async fn popup_script() -> Response {
    asset("text/javascript; charset=utf-8", POPUP_JS.to_owned())
}

/// `GET /gsi/avatars/{sub}.svg`: a profile picture for a test account.
pub(crate) async fn avatar(Path(file): Path<String>) -> Response {
    let sub = file.strip_suffix(".svg").unwrap_or(&file);
    let (initials, color) = match TEST_ACCOUNTS.iter().position(|account| account.sub == sub) {
        Some(index) => {
            let initials: String = TEST_ACCOUNTS[index]
                .name
                .split_whitespace()
                .filter_map(|word| word.chars().next())
                .collect();
            (initials, ["#1a73e8", "#188038", "#c5221f", "#a142f4"][index % 4])
        }
        None => ("?".to_owned(), "#5f6368"),
    };
    let svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96"><rect width="96" height="96" rx="48" fill="{color}"/><text x="48" y="61" font-family="sans-serif" font-size="36" fill="#fff" text-anchor="middle">{initials}</text></svg>"##
    );
    asset("image/svg+xml", svg)
}

/// `GET /o/oauth2/v2/auth`: the consent screen.
pub(crate) async fn consent(State(shared): State<Shared>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let params = parse_pairs(query.unwrap_or_default().as_bytes());
    let client_id = lock(&shared).config.client_id.clone();
    let request = match AuthRequest::parse(&params, &client_id) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    if own_origin(&headers).is_none() {
        return AuthError::new(StatusCode::BAD_REQUEST, "invalid_request", "Invalid Host header.").into_response();
    }
    let testing = lock(&shared).config.publishing_status == PublishingStatus::Testing;
    page(
        StatusCode::OK,
        &consent_body(&request, testing),
        &request.popup_data(None),
    )
}

/// `POST /o/oauth2/v2/auth`: Allow. Mints the code and posts it to the opener.
pub(crate) async fn approve(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let params = parse_pairs(&body);
    let Some(emulator) = own_origin(&headers) else {
        return AuthError::new(StatusCode::BAD_REQUEST, "invalid_request", "Invalid Host header.").into_response();
    };
    let mut state = lock(&shared);
    let request = match AuthRequest::parse(&params, &state.config.client_id) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    let chosen = params
        .iter()
        .find(|(name, _)| name == "account")
        .map(|(_, value)| value);
    let Some(account) = TEST_ACCOUNTS
        .iter()
        .find(|account| Some(&account.sub.to_owned()) == chosen)
    else {
        return AuthError::new(StatusCode::BAD_REQUEST, "invalid_request", "Choose an account.").into_response();
    };
    let duration = params
        .iter()
        .find(|(name, _)| name == "access_duration")
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty());
    let lifetime = match duration.map(str::parse::<u64>) {
        None => None,
        Some(Ok(seconds)) if (1..=MAX_ACCESS_DURATION_SECS).contains(&seconds) => Some(Duration::from_secs(seconds)),
        Some(_) => {
            let description = format!("Invalid access_duration: whole seconds from 1 to {MAX_ACCESS_DURATION_SECS}.");
            return AuthError::new(StatusCode::BAD_REQUEST, "invalid_request", &description).into_response();
        }
    };
    // Granular consent: the basic sign-in scopes always, others only when ticked.
    let ticked: BTreeSet<&str> = params
        .iter()
        .filter(|(name, _)| name == "grant")
        .map(|(_, value)| value.as_str())
        .collect();
    let granted: Vec<String> = request
        .scopes
        .iter()
        .filter(|scope| BASIC_SCOPES.contains(&scope.as_str()) || ticked.contains(scope.as_str()))
        .cloned()
        .collect();

    let mut code_request = CodeRequest::new(account.sub)
        .name(account.name)
        .email(account.email)
        .scopes(granted.clone())
        .offline(request.offline)
        .consent(request.consent)
        .include_granted_scopes(request.include_granted_scopes);
    code_request.picture = format!("{emulator}/gsi/avatars/{}.svg", account.sub);
    code_request.hd = account.hd.map(str::to_owned);
    code_request.refresh_token_lifetime = lifetime;

    // What the code's exchange will report as granted (GIS puts it in `scope`).
    state.end_expired_refresh_tokens();
    let mut scopes: BTreeSet<String> = granted.into_iter().collect();
    if request.include_granted_scopes
        && let Some(grant) = state.users.get(account.sub)
    {
        scopes.extend(grant.scopes.iter().cloned());
    }
    let code = state.mint_code(code_request);
    drop(state);

    let mut response = json!({
        "code": code,
        "scope": scopes.into_iter().collect::<Vec<_>>().join(" "),
        "authuser": "0",
        "prompt": if request.consent { "consent" } else { "none" },
    });
    if let Some(hd) = account.hd {
        response["hd"] = json!(hd);
    }
    if let Some(app_state) = &request.state {
        response["state"] = json!(app_state);
    }
    let body = format!(
        "<h1>Signing you in…</h1><p class=\"to\" id=\"status\">Returning to {}</p>",
        escape(&request.origin)
    );
    page(StatusCode::OK, &body, &request.popup_data(Some(response)))
}

/// The authorization request as the popup URL (GET) or the consent form (POST) carries it.
struct AuthRequest {
    origin: String,
    request_id: String,
    state: Option<String>,
    /// Requested scopes, short names (`email`, `profile`) expanded, duplicates dropped.
    scopes: Vec<String>,
    access_type: String,
    offline: bool,
    prompt: String,
    consent: bool,
    include_granted_scopes: bool,
    login_hint: Option<String>,
    client_id: String,
}

impl AuthRequest {
    fn parse(params: &[(String, String)], client_id: &str) -> Result<Self, AuthError> {
        let get = |name: &str| {
            params
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
                .filter(|value| !value.is_empty())
        };
        let invalid = |description: &str| AuthError::new(StatusCode::BAD_REQUEST, "invalid_request", description);
        let given_client = get("client_id").ok_or_else(|| invalid("Missing required parameter: client_id"))?;
        if given_client != client_id {
            return Err(AuthError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "The OAuth client was not found.",
            ));
        }
        if get("redirect_uri").is_some_and(|uri| uri != "postmessage") {
            return Err(AuthError::new(
                StatusCode::BAD_REQUEST,
                "redirect_uri_mismatch",
                "The popup flow returns codes by postMessage only (redirect_uri=postmessage).",
            ));
        }
        if get("response_type").is_some_and(|kind| kind != "code") {
            return Err(AuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_response_type",
                "Only response_type=code is supported.",
            ));
        }
        let origin = get("origin").filter(|origin| valid_origin(origin)).ok_or_else(|| {
            invalid("Missing or invalid parameter: origin (scheme://host[:port] of the calling page)")
        })?;
        let request_id = get("request_id")
            .filter(|id| id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
            .ok_or_else(|| invalid("Missing or invalid parameter: request_id"))?;
        let mut scopes: Vec<String> = Vec::new();
        for scope in get("scope").unwrap_or_default().split_whitespace() {
            let scope = match scope {
                "email" => SCOPE_EMAIL,
                "profile" => SCOPE_PROFILE,
                other => other,
            };
            if !scopes.iter().any(|known| known == scope) {
                scopes.push(scope.to_owned());
            }
        }
        if scopes.is_empty() {
            return Err(invalid("Missing required parameter: scope"));
        }
        let access_type = get("access_type").unwrap_or("online");
        if !matches!(access_type, "online" | "offline") {
            return Err(invalid("Invalid access_type: use online or offline"));
        }
        let prompt = get("prompt").unwrap_or_default();
        if !prompt
            .split_whitespace()
            .all(|value| matches!(value, "none" | "consent" | "select_account"))
        {
            return Err(invalid("Invalid prompt: use none, consent and/or select_account"));
        }
        let include_granted_scopes = match get("include_granted_scopes") {
            None | Some("true") => true,
            Some("false") => false,
            Some(_) => return Err(invalid("Invalid include_granted_scopes: use true or false")),
        };
        Ok(Self {
            origin: origin.to_owned(),
            request_id: request_id.to_owned(),
            state: get("state").map(str::to_owned),
            scopes,
            offline: access_type == "offline",
            access_type: access_type.to_owned(),
            consent: prompt.split_whitespace().any(|value| value == "consent"),
            prompt: prompt.to_owned(),
            include_granted_scopes,
            login_hint: get("login_hint").map(str::to_owned),
            client_id: client_id.to_owned(),
        })
    }

    /// What `popup.js` needs: where to post, the request it answers, the result.
    fn popup_data(&self, response: Option<Value>) -> Value {
        json!({"origin": self.origin, "request_id": self.request_id, "response": response})
    }

    fn hidden_fields(&self) -> String {
        let mut fields = vec![
            ("client_id", self.client_id.clone()),
            ("origin", self.origin.clone()),
            ("request_id", self.request_id.clone()),
            ("scope", self.scopes.join(" ")),
            ("access_type", self.access_type.clone()),
            ("prompt", self.prompt.clone()),
            ("include_granted_scopes", self.include_granted_scopes.to_string()),
        ];
        if let Some(state) = &self.state {
            fields.push(("state", state.clone()));
        }
        fields
            .iter()
            .map(|(name, value)| format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">", escape(value)))
            .collect()
    }
}

fn consent_body(request: &AuthRequest, testing: bool) -> String {
    let hinted = request.login_hint.as_deref().and_then(|hint| {
        TEST_ACCOUNTS
            .iter()
            .position(|account| account.email.eq_ignore_ascii_case(hint) || account.sub == hint)
    });
    let accounts: String = TEST_ACCOUNTS
        .iter()
        .enumerate()
        .map(|(index, account)| {
            let checked = if index == hinted.unwrap_or(0) { " checked" } else { "" };
            format!(
                "<label class=\"account\"><input type=\"radio\" name=\"account\" value=\"{sub}\"{checked}>\
                 <img src=\"/gsi/avatars/{sub}.svg\" alt=\"\"><span>{name}<small>{email}</small></span></label>",
                sub = account.sub,
                name = account.name,
                email = account.email,
            )
        })
        .collect();
    let scopes: String = request
        .scopes
        .iter()
        .map(|scope| {
            let basic = BASIC_SCOPES.contains(&scope.as_str());
            format!(
                "<label class=\"scope\"><input type=\"checkbox\" name=\"grant\" value=\"{value}\" checked{disabled}>\
                 <span>{what}<small>{value}</small></span></label>",
                value = escape(scope),
                disabled = if basic { " disabled" } else { "" },
                what = escape(&describe(scope)),
            )
        })
        .collect();
    let refresh = match (request.offline, request.consent) {
        (false, _) => "access_type=online: no refresh token.",
        (true, false) => {
            "access_type=offline: a refresh token comes with the first offline grant only (add prompt=consent to get a new one)."
        }
        (true, true) => "access_type=offline and prompt=consent: a new refresh token comes with this code.",
    };
    let testing_note = if testing && request.offline {
        " This app's consent screen is in Testing: its refresh tokens expire 7 days after consent."
    } else {
        ""
    };
    // Time-based access: only an offline grant has a refresh token to end.
    let durations = if request.offline {
        let choices: String = ACCESS_DURATIONS
            .iter()
            .map(|(id, seconds, label)| {
                let checked = if seconds.is_empty() { " checked" } else { "" };
                format!(
                    "<label class=\"duration\" for=\"{id}\"><input type=\"radio\" name=\"access_duration\" \
                     id=\"{id}\" value=\"{seconds}\"{checked}><span>{label}</span></label>"
                )
            })
            .collect();
        format!(
            "<fieldset id=\"access-duration\"><legend>How long may {origin} keep this access?</legend>{choices}</fieldset>",
            origin = escape(&request.origin)
        )
    } else {
        String::new()
    };
    let details = [
        ("client_id", request.client_id.as_str()),
        ("origin", request.origin.as_str()),
        ("access_type", request.access_type.as_str()),
        ("prompt", request.prompt.as_str()),
        (
            "include_granted_scopes",
            if request.include_granted_scopes {
                "true"
            } else {
                "false"
            },
        ),
    ]
    .iter()
    .map(|(name, value)| format!("<dt>{name}</dt><dd>{}</dd>", escape(value)))
    .collect::<String>();
    format!(
        "<h1>Sign in with Google</h1>\
         <p class=\"to\">to continue to <strong>{origin}</strong></p>\
         <form method=\"post\" action=\"{AUTH_PATH}\">{hidden}\
         <fieldset><legend>Choose an account</legend>{accounts}</fieldset>\
         <fieldset><legend>{origin} wants to</legend>{scopes}</fieldset>{durations}\
         <p class=\"note\">{refresh}{testing_note}</p>\
         <div class=\"actions\"><button type=\"button\" id=\"cancel\">Cancel</button>\
         <button type=\"submit\" id=\"allow\">Allow</button></div></form>\
         <details><summary>Request</summary><dl>{details}</dl></details>",
        origin = escape(&request.origin),
        hidden = request.hidden_fields(),
    )
}

fn describe(scope: &str) -> String {
    match scope {
        SCOPE_OPENID => "Associate you with your personal info on Google".to_owned(),
        SCOPE_EMAIL => "See your primary Google Account email address".to_owned(),
        SCOPE_PROFILE => {
            "See your personal info, including any personal info you've made publicly available".to_owned()
        }
        SCOPE_CALENDAR_EVENTS => "View and edit events on all your calendars".to_owned(),
        SCOPE_CALENDAR => "See, edit, share, and permanently delete all the calendars you can access".to_owned(),
        other => format!("Use {other}"),
    }
}

/// An authorization request Google would refuse: shown in the popup, as Google does.
struct AuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl AuthError {
    fn new(status: StatusCode, error: &'static str, description: &str) -> Self {
        Self {
            status,
            error,
            description: description.to_owned(),
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let body = format!(
            "<h1>Access blocked: authorization error</h1><p class=\"error\" id=\"error\">Error {}: {}</p><p>{}</p>",
            self.status.as_u16(),
            self.error,
            escape(&self.description)
        );
        // No opener data: nothing is posted anywhere.
        page(self.status, &body, &Value::Null)
    }
}

fn page(status: StatusCode, body: &str, data: &Value) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Sign in - Google Accounts (emulator)</title><link rel=\"icon\" href=\"data:,\"><style>{CONSENT_CSS}</style></head>\
         <body><main><p class=\"brand\">Google<span>emulator</span></p>{body}</main>\
         <script type=\"application/json\" id=\"gis-data\">{data}</script>\
         <script src=\"/gsi/popup.js\"></script></body></html>",
        data = script_json(data),
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Like Google's consent screen: never inside another site's frame.
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

fn asset(content_type: &'static str, body: String) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `http://host:port` of this emulator as the browser addressed it.
fn own_origin(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    valid_authority(host).then(|| format!("http://{host}"))
}

/// `http(s)://host[:port]` and nothing more (no path, user info, query or fragment).
fn valid_origin(origin: &str) -> bool {
    match origin.split_once("://") {
        Some(("http" | "https", authority)) => valid_authority(authority),
        _ => false,
    }
}

/// `host[:port]` with a DNS name, an IPv4 address or a bracketed IPv6 address.
fn valid_authority(authority: &str) -> bool {
    let (host_ok, port) = if let Some(rest) = authority.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return false,
            },
        };
        let v6_ok = !v6.is_empty() && v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        (v6_ok, port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        (name_ok, port)
    };
    let port_ok = port.is_none_or(|port| {
        !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok()
    });
    host_ok && port_ok
}

/// JSON safe to place inside a `<script>` element.
fn script_json(value: &Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Every `name=value` pair, repeated names kept (the form repeats `grant`).
fn parse_pairs(raw: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(raw).into_owned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        for good in [
            "http://127.0.0.1:5173",
            "https://app.example.com",
            "http://localhost",
            "http://[::1]:8080",
        ] {
            assert!(valid_origin(good), "{good}");
        }
        for bad in [
            "*",
            "null",
            "",
            "127.0.0.1:5173",
            "ftp://example.com",
            "http://example.com/",
            "http://example.com/path",
            "http://user@example.com",
            "http://example.com:99999",
            "http://example.com:",
            "http://[::1",
            "http://exa mple.com",
            "javascript://alert(1)",
            "http://example.com#x",
            "http://example.com?x",
        ] {
            assert!(!valid_origin(bad), "{bad}");
        }
    }

    #[test]
    fn script_json_cannot_close_the_script_element() {
        let encoded = script_json(&json!({"origin": "</script><script>alert(1)</script>"}));
        assert!(!encoded.contains('<'));
        let decoded: Value = serde_json::from_str(&encoded).unwrap();
        assert_eq!(decoded["origin"], "</script><script>alert(1)</script>");
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
