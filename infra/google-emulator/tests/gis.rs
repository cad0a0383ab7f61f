//! The Google Identity Services stand-in: `/gsi/client`, the consent popup at
//! `/o/oauth2/v2/auth` (GET: the screen, POST: Allow) and what its codes grant.

mod common;

use common::*;
use google_emulator::{
    Emulator, SCOPE_CALENDAR, SCOPE_CALENDAR_EVENTS, SCOPE_EMAIL, SCOPE_OPENID, SCOPE_PROFILE, TEST_ACCOUNTS,
};
use serde_json::Value;

const ORIGIN: &str = "http://127.0.0.1:5173";
const SIGN_IN: &str = "openid email profile";

fn auth_url(emu: &Emulator) -> String {
    format!("{}/o/oauth2/v2/auth", emu.base_url())
}

/// The parameters `/gsi/client` puts on the popup URL, with overrides.
fn params(emu: &Emulator, scope: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = [
        ("client_id", emu.client_id()),
        ("scope", scope.to_owned()),
        ("redirect_uri", "postmessage".to_owned()),
        ("response_type", "code".to_owned()),
        ("include_granted_scopes", "true".to_owned()),
        ("origin", ORIGIN.to_owned()),
        ("request_id", "0123456789abcdef".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    for (name, value) in extra {
        params.retain(|(known, _)| known != name);
        if !value.is_empty() {
            params.push(((*name).to_owned(), (*value).to_owned()));
        }
    }
    params
}

async fn consent_page(emu: &Emulator, params: &[(String, String)]) -> (u16, reqwest::header::HeaderMap, String) {
    let response = client().get(auth_url(emu)).query(params).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// Clicks Allow: posts the consent form (the request's fields, the account,
/// each ticked scope as `grant`) and returns the status and the popup's data.
async fn allow(emu: &Emulator, params: &[(String, String)], account: &str, ticked: &[&str]) -> (u16, Value) {
    let mut form = params.to_vec();
    form.push(("account".to_owned(), account.to_owned()));
    form.extend(ticked.iter().map(|scope| ("grant".to_owned(), (*scope).to_owned())));
    let response = client().post(auth_url(emu)).form(&form).send().await.unwrap();
    let status = response.status().as_u16();
    (status, popup_data(&response.text().await.unwrap()))
}

/// The JSON the popup's script posts from (`<script type="application/json" id="gis-data">`).
fn popup_data(html: &str) -> Value {
    let marker = r#"<script type="application/json" id="gis-data">"#;
    let start = html.find(marker).expect("popup data") + marker.len();
    let end = start + html[start..].find("</script>").expect("end of popup data");
    serde_json::from_str(&html[start..end]).expect("popup data is JSON")
}

fn code_of(data: &Value) -> String {
    data["response"]["code"].as_str().expect("a code").to_owned()
}

const ADA: &str = TEST_ACCOUNTS[0].sub;
const GRACE: &str = TEST_ACCOUNTS[1].sub;

#[tokio::test]
async fn client_script_offers_the_code_model_api() {
    let emu = start().await;
    let response = client()
        .get(format!("{}/gsi/client", emu.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let script = response.text().await.unwrap();
    for needle in [
        "initCodeClient",
        "requestCode",
        "error_callback",
        "popup_closed",
        "popup_failed_to_open",
    ] {
        assert!(script.contains(needle), "{needle}");
    }
    // It knows where the popup lives and accepts messages from there only.
    assert!(script.contains(&format!("const EMULATOR = \"{}\";", emu.base_url())));
    assert!(script.contains("event.origin !== EMULATOR || event.source !== popup"));
    assert!(!script.contains("__EMULATOR_ORIGIN__"));

    let popup = client()
        .get(format!("{}/gsi/popup.js", emu.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(popup.status(), 200);
    let popup = popup.text().await.unwrap();
    assert!(popup.contains("postMessage({ ...message, request_id: data.request_id }, data.origin)"));
    for script in [&script, &popup] {
        assert!(
            !script.contains(", '*')") && !script.contains(", \"*\")"),
            "never posts to any origin"
        );
    }
}

#[tokio::test]
async fn consent_page_shows_accounts_and_each_requested_scope() {
    let emu = start().await;
    let scope = format!("{SIGN_IN} {SCOPE_CALENDAR_EVENTS}");
    let request = params(
        &emu,
        &scope,
        &[("access_type", "offline"), ("login_hint", "grace@example.com")],
    );
    let (status, headers, html) = consent_page(&emu, &request).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    for account in TEST_ACCOUNTS {
        assert!(
            html.contains(account.name) && html.contains(account.email),
            "{}",
            account.name
        );
    }
    // login_hint preselects the account.
    assert!(html.contains(&format!(r#"value="{GRACE}" checked>"#)));
    assert!(!html.contains(&format!(r#"value="{ADA}" checked>"#)));
    // One checkbox per scope (short names expanded); the sign-in ones cannot be unticked.
    for basic in [SCOPE_OPENID, SCOPE_EMAIL, SCOPE_PROFILE] {
        assert!(
            html.contains(&format!(r#"name="grant" value="{basic}" checked disabled>"#)),
            "{basic}"
        );
    }
    assert!(html.contains(&format!(r#"name="grant" value="{SCOPE_CALENDAR_EVENTS}" checked>"#)));
    assert!(html.contains(r#"id="allow""#) && html.contains(r#"id="cancel""#));
    let data = popup_data(&html);
    assert_eq!(data["origin"], ORIGIN);
    assert_eq!(data["request_id"], "0123456789abcdef");
    assert!(data["response"].is_null(), "no code before Allow");
}

/// Parameter overrides, and the status and OAuth error Google's page shows for them.
type Refused = (&'static [(&'static str, &'static str)], u16, &'static str);

#[tokio::test]
async fn requests_google_would_refuse_show_an_error_and_no_code() {
    let emu = start().await;
    let cases: [Refused; 11] = [
        (
            &[("client_id", "someone-else.apps.googleusercontent.com")],
            401,
            "invalid_client",
        ),
        (&[("client_id", "")], 400, "invalid_request"),
        (&[("origin", "")], 400, "invalid_request"),
        (&[("origin", "*")], 400, "invalid_request"),
        (&[("origin", "http://127.0.0.1:5173/page")], 400, "invalid_request"),
        (&[("origin", "null")], 400, "invalid_request"),
        (
            &[("redirect_uri", "https://evil.example/cb")],
            400,
            "redirect_uri_mismatch",
        ),
        (&[("response_type", "token")], 400, "unsupported_response_type"),
        (&[("access_type", "forever")], 400, "invalid_request"),
        (&[("prompt", "always")], 400, "invalid_request"),
        (&[("request_id", "<script>")], 400, "invalid_request"),
    ];
    for (overrides, want_status, want_error) in cases {
        let request = params(&emu, SIGN_IN, overrides);
        let (status, _, html) = consent_page(&emu, &request).await;
        assert_eq!(status, want_status, "{overrides:?}");
        assert!(
            html.contains(&format!("Error {want_status}: {want_error}")),
            "{overrides:?}"
        );
        assert!(popup_data(&html).is_null(), "{overrides:?}: nothing to post");
        // Allow on a forged form is refused the same way.
        let (status, data) = allow(&emu, &request, ADA, &[]).await;
        assert_eq!((status, data.is_null()), (want_status, true), "{overrides:?}");
    }
    let (status, _, _) = consent_page(&emu, &params(&emu, " ", &[])).await;
    assert_eq!(status, 400, "a scope is required");
    assert!(emu.issued_secrets().len() == 1, "no code was minted");
}

#[tokio::test]
async fn allow_mints_a_code_for_the_chosen_account_and_posts_it_to_the_origin() {
    let emu = start().await;
    let scope = format!("{SIGN_IN} {SCOPE_CALENDAR_EVENTS}");
    let request = params(&emu, &scope, &[("access_type", "offline"), ("state", "app-state-1")]);
    let (status, data) = allow(&emu, &request, GRACE, &[SCOPE_CALENDAR_EVENTS]).await;
    assert_eq!(status, 200);
    assert_eq!(data["origin"], ORIGIN, "posted to the requesting origin only");
    assert_eq!(data["request_id"], "0123456789abcdef");
    assert_eq!(data["response"]["state"], "app-state-1");
    let scopes: Vec<&str> = data["response"]["scope"].as_str().unwrap().split(' ').collect();
    let want = sorted(&[SCOPE_OPENID, SCOPE_EMAIL, SCOPE_PROFILE, SCOPE_CALENDAR_EVENTS]);
    assert_eq!(sorted(&scopes), want);

    // A real emulator code: it exchanges like one from /emulator/codes.
    let (status, tokens) = json_of(exchange(&emu, &code_of(&data)).await).await;
    assert_eq!(status, 200);
    assert!(tokens["refresh_token"].is_string(), "first offline grant");
    assert_eq!(scopes_of(&tokens), want);
    let claims = claims_of(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["sub"], GRACE);
    assert_eq!(claims["email"], "grace@example.com");
    assert_eq!(claims["name"], "Grace Hopper");
    let picture = claims["picture"].as_str().unwrap();
    assert_eq!(picture, format!("{}/gsi/avatars/{GRACE}.svg", emu.base_url()));
    let avatar = client().get(picture).send().await.unwrap();
    assert_eq!(avatar.headers()["content-type"], "image/svg+xml");
    assert!(avatar.text().await.unwrap().contains(">GH</text>"));
}

#[tokio::test]
async fn unticked_scopes_and_scopes_never_requested_are_not_granted() {
    let emu = start().await;
    let scope = format!("{SIGN_IN} {SCOPE_CALENDAR_EVENTS}");
    let request = params(&emu, &scope, &[("access_type", "offline")]);
    // Calendar unticked; `calendar` (never requested) smuggled into the form.
    let (_, data) = allow(&emu, &request, ADA, &[SCOPE_CALENDAR]).await;
    let response_scope = data["response"]["scope"].as_str().unwrap();
    assert!(!response_scope.contains("calendar"), "{response_scope}");
    let (_, tokens) = json_of(exchange(&emu, &code_of(&data)).await).await;
    assert_eq!(scopes_of(&tokens), sorted(&[SCOPE_OPENID, SCOPE_EMAIL, SCOPE_PROFILE]));
    assert!(!emu.granted_scopes(ADA).iter().any(|scope| scope.contains("calendar")));
}

#[tokio::test]
async fn access_type_and_prompt_decide_the_refresh_token_as_at_google() {
    let emu = start().await;
    let online = params(&emu, SIGN_IN, &[]);
    let (_, data) = allow(&emu, &online, ADA, &[]).await;
    let (_, tokens) = json_of(exchange(&emu, &code_of(&data)).await).await;
    assert!(tokens.get("refresh_token").is_none(), "access_type defaults to online");

    let offline = params(&emu, SIGN_IN, &[("access_type", "offline")]);
    let (_, data) = allow(&emu, &offline, ADA, &[]).await;
    let (_, tokens) = json_of(exchange(&emu, &code_of(&data)).await).await;
    assert!(tokens["refresh_token"].is_string(), "first offline grant");

    let (_, data) = allow(&emu, &offline, ADA, &[]).await;
    assert_eq!(data["response"]["prompt"], "none");
    let (_, tokens) = json_of(exchange(&emu, &code_of(&data)).await).await;
    assert!(
        tokens.get("refresh_token").is_none(),
        "a live grant: no second refresh token"
    );

    let consent = params(&emu, SIGN_IN, &[("access_type", "offline"), ("prompt", "consent")]);
    let (_, data) = allow(&emu, &consent, ADA, &[]).await;
    assert_eq!(data["response"]["prompt"], "consent");
    let (_, tokens) = json_of(exchange(&emu, &code_of(&data)).await).await;
    assert!(tokens["refresh_token"].is_string(), "prompt=consent forces a new one");
    assert_eq!(emu.user_refresh_tokens_live(ADA), 2);
}

#[tokio::test]
async fn incremental_authorization_returns_the_union_of_granted_scopes() {
    let emu = start().await;
    let sign_in = params(&emu, SIGN_IN, &[("access_type", "offline")]);
    let (_, data) = allow(&emu, &sign_in, GRACE, &[]).await;
    exchange(&emu, &code_of(&data)).await;

    let calendar = params(&emu, SCOPE_CALENDAR_EVENTS, &[("access_type", "offline")]);
    let (status, _, html) = consent_page(&emu, &calendar).await;
    assert_eq!(status, 200);
    assert!(html.contains(&format!(r#"name="grant" value="{SCOPE_CALENDAR_EVENTS}" checked>"#)));
    let (_, data) = allow(&emu, &calendar, GRACE, &[SCOPE_CALENDAR_EVENTS]).await;
    let (_, tokens) = json_of(exchange(&emu, &code_of(&data)).await).await;
    let granted = scopes_of(&tokens);
    assert!(granted.contains(&SCOPE_OPENID.to_owned()) && granted.contains(&SCOPE_CALENDAR_EVENTS.to_owned()));
    assert_eq!(
        data["response"]["scope"].as_str().unwrap().split(' ').count(),
        granted.len()
    );
    assert!(tokens["id_token"].is_string(), "openid is among the included scopes");

    let narrow = params(&emu, SCOPE_CALENDAR_EVENTS, &[("include_granted_scopes", "false")]);
    let (_, data) = allow(&emu, &narrow, GRACE, &[SCOPE_CALENDAR_EVENTS]).await;
    assert_eq!(data["response"]["scope"], SCOPE_CALENDAR_EVENTS);
}

#[tokio::test]
async fn workspace_account_carries_hd_and_unknown_accounts_are_refused() {
    let emu = start().await;
    let request = params(&emu, SIGN_IN, &[("access_type", "offline")]);
    let (_, data) = allow(&emu, &request, TEST_ACCOUNTS[3].sub, &[]).await;
    assert_eq!(data["response"]["hd"], "corp.example");
    let (_, tokens) = json_of(exchange(&emu, &code_of(&data)).await).await;
    assert_eq!(claims_of(tokens["id_token"].as_str().unwrap())["hd"], "corp.example");

    let (status, data) = allow(&emu, &request, "110000000000000000099", &[]).await;
    assert_eq!(status, 400);
    assert!(data.is_null());
}

#[tokio::test]
async fn accounts_and_avatars() {
    let emu = start().await;
    let (status, accounts) = get_json(&format!("{}/emulator/accounts", emu.base_url())).await;
    assert_eq!(status, 200);
    assert_eq!(accounts.as_array().unwrap().len(), TEST_ACCOUNTS.len());
    assert_eq!(accounts[0]["sub"], ADA);
    assert_eq!(accounts[0]["name"], "Ada Lovelace");
    assert!(accounts[0]["hd"].is_null());

    let unknown = client()
        .get(format!("{}/gsi/avatars/nobody.svg", emu.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 200);
    assert!(unknown.text().await.unwrap().contains(">?</text>"));
}

fn sorted(scopes: &[&str]) -> Vec<String> {
    let mut scopes: Vec<String> = scopes.iter().map(|scope| (*scope).to_owned()).collect();
    scopes.sort();
    scopes
}
