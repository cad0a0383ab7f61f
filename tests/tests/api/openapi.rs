//! `infra/openapi.yaml` describes what the functions really serve: every route (taken from
//! each function's `ROUTES`), every error `code` (`shared::error::all_codes`), for every
//! operation its 4xx errors, and every member of the success bodies
//! (`shared::http::views`). No moto or emulator needed: only the document is read.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_yaml::Value;
use shared::Secret;
use shared::error::all_codes;
use shared::grant::{Ciphertext, Grant, GrantStatus, Profile, SealedToken, TokenIds};
use shared::http::Route;
use shared::http::views::{GrantView, MeView, SignedInView};
use shared::types::{ScopeSet, Sub};

/// The codes the HTTP routes answer with: all but `not_connected` and `invalid_job`,
/// which only `tokens` and `worker` (no HTTP route) answer with.
fn http_codes() -> Vec<&'static str> {
    all_codes()
        .filter(|code| !["not_connected", "invalid_job"].contains(code))
        .collect()
}

const PROBLEM_MEDIA_TYPE: &str = "application/problem+json";
const PROBLEM_SCHEMA: &str = "#/components/schemas/Problem";
const RISC_ERROR_SCHEMA: &str = "#/components/schemas/RiscError";
const OPERATION_METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// What a function's 4xx answers look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorBody {
    /// RFC 9457 problem documents, as every route but the RISC receiver answers.
    Problem,
    /// The RFC 8935 §2.3 `{"err", "description"}` body the RISC receiver answers with.
    SetError,
}

/// Each binary (its name is its `cargo lambda watch` prefix), the routes it serves and the
/// shape of its 4xx answers.
fn functions() -> [(&'static str, &'static [Route], ErrorBody); 5] {
    [
        ("exchange", &exchange::ROUTES, ErrorBody::Problem),
        ("upgrade", &upgrade::ROUTES, ErrorBody::Problem),
        ("events", &events::ROUTES, ErrorBody::Problem),
        ("account", &account::ROUTES, ErrorBody::Problem),
        ("risc", &risc::ROUTES, ErrorBody::SetError),
    ]
}

fn spec() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/openapi.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

/// Follows local `$ref`s (`#/components/...`) until a value that is not a reference.
fn resolve<'a>(doc: &'a Value, mut value: &'a Value) -> &'a Value {
    for _ in 0..16 {
        let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
            return value;
        };
        let pointer = reference
            .strip_prefix("#/")
            .unwrap_or_else(|| panic!("only local references are expected, got {reference}"));
        value = pointer.split('/').fold(doc, |node, key| {
            node.get(key.replace("~1", "/").replace("~0", "~").as_str())
                .unwrap_or_else(|| panic!("dangling $ref {reference}"))
        });
    }
    panic!("$ref chain too long (a cycle?) at {value:?}")
}

/// The operation documenting `route`, if any.
fn operation<'a>(doc: &'a Value, route: &Route) -> Option<&'a Value> {
    let item = resolve(doc, doc["paths"].get(route.path)?);
    item.get(route.method.as_str().to_ascii_lowercase().as_str())
}

/// A response's status key as a number (`'400'` and `400` alike); `None` for `default`, `4XX`.
fn status_of(key: &Value) -> Option<u16> {
    match key {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        _ => None,
    }
}

/// A mapping key for messages: `400`, not `String("400")`.
fn key(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other).unwrap_or_default().trim().to_owned(),
    }
}

/// The `$ref` a media type's schema points at.
fn schema_ref(media: &Value) -> Option<&str> {
    media.get("schema")?.get("$ref")?.as_str()
}

#[test]
fn every_route_the_functions_serve_is_documented_with_its_method_and_nothing_else() {
    let doc = spec();
    let paths = doc["paths"].as_mapping().expect("paths is a mapping");
    let mut served = BTreeSet::new();
    let mut missing = Vec::new();
    for (binary, routes, _) in functions() {
        for route in routes {
            let method = route.method.as_str().to_ascii_lowercase();
            served.insert((method.clone(), route.path.to_owned()));
            if operation(&doc, route).is_none() {
                missing.push(format!("{} {} ({binary})", route.method, route.path));
                continue;
            }
            let item = resolve(&doc, &doc["paths"][route.path]);
            // Every function answers the preflight of the paths it serves.
            if item.get("options").is_none() {
                missing.push(format!("OPTIONS {} ({binary})", route.path));
            }
            // The local `cargo lambda watch` URL of the binary that serves the path.
            let local = format!("/lambda-url/{binary}");
            let servers = item["servers"].as_sequence().map(Vec::as_slice).unwrap_or_default();
            assert!(
                servers
                    .iter()
                    .filter_map(|s| s["url"].as_str())
                    .any(|url| url.ends_with(&local)),
                "{} needs a path-level server ending in {local}",
                route.path
            );
        }
    }
    assert!(
        missing.is_empty(),
        "routes missing from infra/openapi.yaml: {missing:?}"
    );

    let served_paths: BTreeSet<&str> = served.iter().map(|(_, path)| path.as_str()).collect();
    let mut extra = Vec::new();
    for (path, item) in paths {
        let path = path.as_str().expect("path keys are strings");
        let item = resolve(&doc, item);
        for method in OPERATION_METHODS {
            if item.get(method).is_none() {
                continue;
            }
            let known = if method == "options" {
                served_paths.contains(path)
            } else {
                served.contains(&(method.to_owned(), path.to_owned()))
            };
            if !known {
                extra.push(format!("{} {path}", method.to_ascii_uppercase()));
            }
        }
    }
    assert!(extra.is_empty(), "documented but not served by any function: {extra:?}");
}

#[test]
fn problem_code_enum_is_exactly_the_implemented_codes() {
    let doc = spec();
    let problem = &doc["components"]["schemas"]["Problem"];
    let required: BTreeSet<&str> = problem["required"]
        .as_sequence()
        .expect("Problem.required is a list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for member in ["type", "title", "status", "code", "detail", "request_id"] {
        assert!(required.contains(member), "Problem must require {member}");
    }
    for extension in ["required_scopes", "missing_scopes", "errors"] {
        assert!(
            problem["properties"].get(extension).is_some(),
            "Problem must describe the {extension} extension"
        );
    }

    let listed: Vec<&str> = problem["properties"]["code"]["enum"]
        .as_sequence()
        .expect("Problem.properties.code.enum is a list")
        .iter()
        .map(|v| v.as_str().expect("codes are strings"))
        .collect();
    let documented: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(documented.len(), listed.len(), "duplicate codes in {listed:?}");
    let implemented: BTreeSet<&str> = http_codes().into_iter().collect();
    let undocumented: Vec<_> = implemented.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&implemented).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "Problem.code enum differs from shared::error::all_codes: missing {undocumented:?}, not implemented {unknown:?}"
    );
}

#[test]
fn every_operation_documents_its_4xx_errors() {
    let doc = spec();
    for (binary, routes, error_body) in functions() {
        for route in routes {
            let name = format!("{} {} ({binary})", route.method, route.path);
            let operation = operation(&doc, route).unwrap_or_else(|| panic!("{name} is not documented"));
            let responses = operation["responses"]
                .as_mapping()
                .unwrap_or_else(|| panic!("{name} has no responses"));
            let client_errors: Vec<&Value> = responses
                .iter()
                .filter(|(status, _)| status_of(status).is_some_and(|s| (400..500).contains(&s)))
                .map(|(_, response)| resolve(&doc, response))
                .collect();
            let documented = client_errors.iter().any(|response| match error_body {
                ErrorBody::Problem => schema_ref(&response["content"][PROBLEM_MEDIA_TYPE]) == Some(PROBLEM_SCHEMA),
                ErrorBody::SetError => schema_ref(&response["content"]["application/json"]) == Some(RISC_ERROR_SCHEMA),
            });
            assert!(documented, "{name} documents no 4xx {error_body:?} response");
        }
    }
}

#[test]
fn every_problem_response_has_examples_with_an_implemented_code() {
    let doc = spec();
    // (where, status if tied to one, response)
    let mut responses: Vec<(String, Option<u16>, &Value)> = Vec::new();
    for (path, item) in doc["paths"].as_mapping().expect("paths is a mapping") {
        let item = resolve(&doc, item);
        for method in OPERATION_METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            for (status, response) in operation["responses"].as_mapping().into_iter().flatten() {
                let where_ = format!("{} {} {}", method.to_ascii_uppercase(), key(path), key(status));
                responses.push((where_, status_of(status), resolve(&doc, response)));
            }
        }
    }
    for (name, response) in doc["components"]["responses"].as_mapping().into_iter().flatten() {
        responses.push((format!("components.responses.{}", key(name)), None, response));
    }

    let mut exemplified = BTreeSet::new();
    for (where_, status, response) in responses {
        let Some(media) = response["content"].get(PROBLEM_MEDIA_TYPE) else {
            if let Some(status) = status.filter(|s| *s >= 400) {
                assert!(
                    schema_ref(&response["content"]["application/json"]) == Some(RISC_ERROR_SCHEMA),
                    "{where_}: a {status} answer is a problem document (or the RISC error body)"
                );
            }
            continue;
        };
        assert_eq!(schema_ref(media), Some(PROBLEM_SCHEMA), "{where_}: schema");
        let examples = media["examples"]
            .as_mapping()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| panic!("{where_}: a problem response needs an example per code"));
        for (name, example) in examples {
            let value = &resolve(&doc, example)["value"];
            let code = value["code"].as_str().unwrap_or_default();
            assert!(
                http_codes().contains(&code),
                "{where_} example {}: unknown code {code:?}",
                key(name)
            );
            if let Some(status) = status {
                assert_eq!(
                    value["status"].as_u64(),
                    Some(u64::from(status)),
                    "{where_} example {}: status",
                    key(name)
                );
            }
            exemplified.insert(code);
        }
    }
    let without_example: Vec<_> = http_codes().into_iter().filter(|c| !exemplified.contains(c)).collect();
    assert!(
        without_example.is_empty(),
        "codes with no problem example: {without_example:?}"
    );
}

/// A grant with every optional part present (a time-limited refresh token).
fn sample_grant() -> Grant {
    let sub = Sub::parse("110169484474386276334").unwrap();
    Grant {
        profile: Profile {
            email: Some("ada@example.com".into()),
            email_verified: true,
            name: Some("Ada Lovelace".into()),
            picture: Some("https://lh3.googleusercontent.com/a/example".into()),
            ..Profile::bare(sub)
        },
        scopes: ["openid", "email"].into_iter().collect::<ScopeSet>(),
        refresh_token: Some(SealedToken {
            ciphertext: Ciphertext(vec![1, 2, 3]),
            ids: TokenIds::of(&Secret::new("1//example")),
            issued_ms: Some(1_899_000_000_000),
            expires_at: Some(1_900_000_000),
        }),
        status: GrantStatus::Active,
        status_reason: None,
        version: 1,
        created_at: "2030-01-01T00:00:00Z".into(),
        updated_at: "2030-01-01T00:00:00Z".into(),
        last_used_at: Some(1_890_000_000),
        expiry_noticed: None,
    }
}

/// A response body as the function writes it.
fn json(view: impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(view).expect("the view serializes")
}

/// The names of a YAML mapping's keys, or of a sequence's strings.
fn names(value: &Value) -> BTreeSet<String> {
    match value {
        Value::Mapping(map) => map.keys().map(key).collect(),
        Value::Sequence(items) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => BTreeSet::new(),
    }
}

#[test]
fn every_member_of_the_success_bodies_is_documented_required_and_nullable_where_null() {
    let doc = spec();
    let grant = sample_grant();
    let user = &grant.profile;
    let bodies = [
        (
            "ExchangeResponse",
            json(SignedInView::new(user, &grant, "eyJ.example.jwt", 1_900_000_000)),
        ),
        ("UpgradeResponse", json(GrantView::from(&grant))),
        ("Me", json(MeView::new(user, Some(&grant)))),
        ("Me", json(MeView::new(user, None))),
        ("User", json(user)),
    ];
    for (name, body) in bodies {
        let schema = resolve(&doc, &doc["components"]["schemas"][name]);
        let members: BTreeSet<String> = body.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            members,
            names(&schema["properties"]),
            "{name}: members and documented properties"
        );
        assert_eq!(
            members,
            names(&schema["required"]),
            "{name}: every member is always present"
        );
        for (member, value) in body.as_object().unwrap() {
            let declared = resolve(&doc, &schema["properties"][member.as_str()]);
            if value.is_null() {
                assert!(
                    names(&declared["type"]).contains("null"),
                    "{name}.{member} is null here, so its schema must allow null"
                );
            }
            if member.ends_with("_at") && value.is_string() {
                assert_eq!(declared["format"].as_str(), Some("date-time"), "{name}.{member}");
            }
        }
    }
}
