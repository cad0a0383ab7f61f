//! `template.yaml` grants each function only what it uses (SPEC §7): the DynamoDB
//! actions of its handlers, KMS only under the encryption-context purposes it
//! handles, the client secret only where the token endpoint is called.

use std::collections::BTreeSet;

use serde_yaml::Value;
use shared::Needs;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn statements(template: &Value, function: &str) -> Vec<Value> {
    let policies = template["Resources"][function]["Properties"]["Policies"]
        .as_sequence()
        .expect("Policies");
    policies
        .iter()
        .flat_map(|p| p["Statement"].as_sequence().cloned().unwrap_or_default())
        .collect()
}

fn actions(statement: &Value) -> Vec<String> {
    match &statement["Action"] {
        Value::String(a) => vec![a.clone()],
        Value::Sequence(list) => list.iter().map(|a| a.as_str().unwrap().to_owned()).collect(),
        other => panic!("unexpected Action {other:?}"),
    }
}

fn condition(statement: &Value, key: &str) -> Option<Value> {
    statement["Condition"]["StringEquals"].get(key).cloned()
}

/// What each function's code does against DynamoDB (see shared/src/vault.rs).
const FUNCTIONS: &[(&str, Needs, &[&str], &[&str])] = &[
    (
        "ExchangeFunction",
        exchange::NEEDS,
        &["dynamodb:GetItem", "dynamodb:PutItem"],
        &["kms:Encrypt"],
    ),
    (
        "UpgradeFunction",
        upgrade::NEEDS,
        &["dynamodb:GetItem", "dynamodb:PutItem"],
        &["kms:Encrypt"],
    ),
    (
        "EventsFunction",
        events::NEEDS,
        &["dynamodb:GetItem", "dynamodb:PutItem"],
        &["kms:Decrypt", "kms:Encrypt"],
    ),
    (
        "AccountFunction",
        account::NEEDS,
        &["dynamodb:DeleteItem", "dynamodb:GetItem"],
        &["kms:Decrypt"],
    ),
    (
        "RiscFunction",
        risc::NEEDS,
        &["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem"],
        &[],
    ),
];

#[test]
fn each_function_gets_only_the_actions_it_needs() {
    let template = template();
    for (function, needs, dynamodb, token_kms) in FUNCTIONS {
        let statements = statements(&template, function);
        let mut granted_dynamodb = BTreeSet::new();
        let mut granted_token_kms = BTreeSet::new();
        let mut reads_secret = false;
        for statement in &statements {
            assert_eq!(statement["Effect"], "Allow", "{function}");
            for action in actions(statement) {
                assert!(!action.contains('*'), "{function}: wildcard action {action}");
                assert_ne!(statement["Resource"].as_str(), Some("*"), "{function}: {action} on *");
                match action.split(':').next().unwrap() {
                    "dynamodb" => {
                        granted_dynamodb.insert(action);
                    }
                    "kms" => {
                        if condition(statement, "kms:ViaService").is_some() {
                            // Table encryption at rest: usable only through DynamoDB.
                            assert_eq!(action, "kms:Decrypt", "{function}");
                            continue;
                        }
                        let purpose = condition(statement, "kms:EncryptionContext:purpose");
                        assert_eq!(
                            purpose.as_ref().and_then(Value::as_str),
                            Some("refresh_token"),
                            "{function}: {action} without purpose condition"
                        );
                        assert!(
                            condition(statement, "kms:EncryptionContext:client_id").is_some(),
                            "{function}: {action} without client_id condition"
                        );
                        granted_token_kms.insert(action);
                    }
                    "secretsmanager" => {
                        assert_eq!(action, "secretsmanager:GetSecretValue");
                        reads_secret = true;
                    }
                    other => panic!("{function}: unexpected service {other}"),
                }
            }
        }
        let want: BTreeSet<String> = dynamodb.iter().map(|s| s.to_string()).collect();
        assert_eq!(granted_dynamodb, want, "{function} DynamoDB actions");
        let want: BTreeSet<String> = token_kms.iter().map(|s| s.to_string()).collect();
        assert_eq!(granted_token_kms, want, "{function} token KMS actions");
        assert_eq!(
            !granted_token_kms.is_empty(),
            needs.kms,
            "{function}: KMS grants match its configuration needs"
        );
        assert_eq!(
            reads_secret, needs.client_secret,
            "{function}: secret access matches its needs"
        );
    }
}

#[test]
fn functions_are_arm64_al2023_cargo_lambda_builds_of_the_right_binary() {
    let template = template();
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Architectures"][0], "arm64");
    assert_eq!(globals["Handler"], "bootstrap");
    for (function, binary) in [
        ("ExchangeFunction", "exchange"),
        ("UpgradeFunction", "upgrade"),
        ("EventsFunction", "events"),
        ("AccountFunction", "account"),
        ("RiscFunction", "risc"),
    ] {
        let metadata = &template["Resources"][function]["Metadata"];
        assert_eq!(metadata["BuildMethod"], "rust-cargolambda", "{function}");
        assert_eq!(metadata["BuildProperties"]["Binary"], binary, "{function}");
    }
    let table = &template["Resources"]["TokensTable"]["Properties"];
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        template["Resources"]["TokensKey"]["Properties"]["EnableKeyRotation"],
        true
    );
}
