//! `template.yaml` grants each function only what its code calls. What that is lives in
//! one place, `infra/iam-expectations.yaml`: this test checks the template's own policy
//! statements against it, and `infra/lint-template` checks the roles CloudFormation will
//! deploy (after the SAM transform) against the same file. KMS is usable only under an
//! encryption-context condition: the table's key only through DynamoDB for this table,
//! the token contexts (purpose `refresh_token` or `access_token`) only with `sub`, the
//! client ID and the purpose, and, in the key policy, only by this stack's function roles.
//!
//! Reads the two YAML files only (serde_yaml + std), no crate of the workspace.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::Value;

fn read(relative: &str) -> Value {
    let path = format!("{}/../{relative}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn template() -> Value {
    read("template.yaml")
}

fn expectations() -> Value {
    read("infra/iam-expectations.yaml")
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(list) => list.iter().map(|v| v.as_str().expect("a string").to_owned()).collect(),
        other => panic!("expected a string or a list of strings, got {other:?}"),
    }
}

fn statements(template: &Value, function: &str) -> Vec<Value> {
    template["Resources"][function]["Properties"]["Policies"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{function}: Policies"))
        .iter()
        .flat_map(|p| p["Statement"].as_sequence().cloned().unwrap_or_default())
        .collect()
}

/// Sid -> sorted actions.
fn by_sid(statements: &[Value], function: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for statement in statements {
        let sid = statement["Sid"]
            .as_str()
            .unwrap_or_else(|| panic!("{function}: every statement has a Sid"))
            .to_owned();
        let previous = out.insert(sid.clone(), strings(&statement["Action"]).into_iter().collect());
        assert!(previous.is_none(), "{function}: Sid {sid} twice");
    }
    out
}

/// The application's own encryption contexts: statement Sid -> its purpose.
fn token_purpose(sid: &str) -> Option<&'static str> {
    match sid {
        "RefreshTokens" => Some("refresh_token"),
        "AccessTokens" => Some("access_token"),
        _ => None,
    }
}

fn expected_functions() -> Vec<(String, Value)> {
    expectations()["functions"]
        .as_mapping()
        .expect("functions")
        .iter()
        .map(|(k, v)| (k.as_str().expect("logical id").to_owned(), v.clone()))
        .collect()
}

#[test]
fn each_function_policy_is_what_iam_expectations_lists() {
    let template = template();
    let expected = expected_functions();
    let listed: BTreeSet<&str> = expected.iter().map(|(f, _)| f.as_str()).collect();
    let in_template: BTreeSet<&str> = template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(k, _)| k.as_str().unwrap())
        .collect();
    assert_eq!(
        in_template, listed,
        "functions of template.yaml vs iam-expectations.yaml"
    );

    for (function, want) in &expected {
        let got = by_sid(&statements(&template, function), function);
        let want: BTreeMap<String, BTreeSet<String>> = want["policy"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{function}: policy"))
            .iter()
            .map(|(sid, actions)| (sid.as_str().unwrap().to_owned(), strings(actions).into_iter().collect()))
            .collect();
        assert_eq!(got, want, "{function}: statements (Sid -> actions)");
    }
}

#[test]
fn every_function_statement_is_narrow_and_kms_is_bound_to_an_encryption_context() {
    let template = template();
    for (function, _) in expected_functions() {
        for statement in statements(&template, &function) {
            let sid = statement["Sid"].as_str().unwrap_or_default().to_owned();
            assert_eq!(statement["Effect"], "Allow", "{function} {sid}");
            assert_ne!(
                statement["Resource"].as_str(),
                Some("*"),
                "{function} {sid}: Resource *"
            );
            let actions = strings(&statement["Action"]);
            assert!(
                actions.iter().all(|a| !a.contains('*')),
                "{function} {sid}: wildcard action"
            );
            if !actions.iter().any(|a| a.starts_with("kms:")) {
                continue;
            }
            assert!(
                actions.iter().all(|a| a.starts_with("kms:")),
                "{function} {sid}: KMS statements hold KMS actions only"
            );
            let equals = &statement["Condition"]["StringEquals"];
            if sid == "TokensTableAtRestKey" {
                // The table's encryption at rest: only through DynamoDB, only this table.
                assert_eq!(actions, ["kms:Decrypt"], "{function} {sid}");
                assert!(
                    equals.get("kms:ViaService").is_some(),
                    "{function} {sid}: kms:ViaService"
                );
                assert!(
                    equals.get("kms:EncryptionContext:aws:dynamodb:tableName").is_some(),
                    "{function} {sid}: table name encryption context"
                );
                continue;
            }
            let purpose = token_purpose(&sid).unwrap_or_else(|| panic!("{function}: KMS statement {sid}"));
            assert_eq!(
                equals["kms:EncryptionContext:purpose"], purpose,
                "{function} {sid}: purpose"
            );
            assert!(
                equals.get("kms:EncryptionContext:client_id").is_some(),
                "{function} {sid}: client_id"
            );
            let keys: BTreeSet<String> =
                strings(&statement["Condition"]["ForAllValues:StringEquals"]["kms:EncryptionContextKeys"])
                    .into_iter()
                    .collect();
            assert_eq!(
                keys,
                BTreeSet::from(["client_id", "purpose", "sub"].map(String::from)),
                "{function} {sid}: context keys"
            );
            assert_eq!(
                statement["Condition"]["Null"]["kms:EncryptionContext:sub"], "false",
                "{function} {sid}: sub required"
            );
        }
    }
}

#[test]
fn only_the_function_roles_may_use_the_token_contexts_of_the_key() {
    let template = template();
    // One role path for every function (Globals), naming the stack's unique id.
    let path = &template["Globals"]["Function"]["RolePath"];
    let path_format = path[0].as_str().expect("RolePath: !Sub [format, variables]");
    assert!(path_format.starts_with("/${AWS::StackName}/"), "RolePath {path_format}");
    assert!(
        serde_yaml::to_string(&path[1]).unwrap().contains("AWS::StackId"),
        "RolePath names the stack's unique id"
    );
    for (function, _) in expected_functions() {
        assert!(
            template["Resources"][function.as_str()]["Properties"]
                .get("RolePath")
                .is_none(),
            "{function}: no RolePath of its own"
        );
    }
    let principal_format = format!("arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role{path_format}*");

    let statements = template["Resources"]["TokensKey"]["Properties"]["KeyPolicy"]["Statement"]
        .as_sequence()
        .expect("key policy statements");
    let mut purposes = BTreeSet::new();
    for statement in statements {
        let sid = statement["Sid"].as_str().expect("every key policy statement has a Sid");
        let actions = strings(&statement["Action"]);
        if !actions
            .iter()
            .any(|a| ["kms:Encrypt", "kms:Decrypt"].contains(&a.as_str()))
        {
            continue;
        }
        let condition = &statement["Condition"];
        if condition["StringEquals"].get("kms:ViaService").is_some() {
            // DynamoDB's use of the key for the table, only through DynamoDB.
            assert!(
                condition["StringLike"]
                    .get("kms:EncryptionContext:aws:dynamodb:tableName")
                    .is_some(),
                "{sid}: the table's encryption context"
            );
            continue;
        }
        let purpose = token_purpose(sid).unwrap_or_else(|| panic!("key policy statement {sid}"));
        assert_eq!(
            condition["StringEquals"]["kms:EncryptionContext:purpose"], purpose,
            "{sid}"
        );
        let principal = &condition["ArnLike"]["aws:PrincipalArn"];
        assert_eq!(
            principal[0].as_str(),
            Some(principal_format.as_str()),
            "{sid}: aws:PrincipalArn"
        );
        assert_eq!(
            principal[1], path[1],
            "{sid}: aws:PrincipalArn, the stack's id as in RolePath"
        );
        purposes.insert(purpose);
    }
    assert_eq!(purposes, BTreeSet::from(["access_token", "refresh_token"]));
}

#[test]
fn functions_are_arm64_al2023_cargo_lambda_builds_of_the_right_binary() {
    let template = template();
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Architectures"][0], "arm64");
    assert_eq!(globals["Handler"], "bootstrap");
    for (function, want) in expected_functions() {
        let metadata = &template["Resources"][function.as_str()]["Metadata"];
        assert_eq!(metadata["BuildMethod"], "rust-cargolambda", "{function}");
        assert_eq!(metadata["BuildProperties"]["Binary"], want["binary"], "{function}");
    }
    let table = &template["Resources"]["TokensTable"]["Properties"];
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(table["StreamSpecification"]["StreamViewType"], "NEW_AND_OLD_IMAGES");
    // Index name -> its key attributes (HASH, then RANGE if any).
    let indexes: BTreeMap<String, Vec<String>> = table["GlobalSecondaryIndexes"]
        .as_sequence()
        .expect("GlobalSecondaryIndexes")
        .iter()
        .map(|index| {
            assert_eq!(index["Projection"]["ProjectionType"], "KEYS_ONLY");
            let keys = index["KeySchema"]
                .as_sequence()
                .expect("KeySchema")
                .iter()
                .map(|key| key["AttributeName"].as_str().unwrap().to_owned())
                .collect();
            (index["IndexName"].as_str().unwrap().to_owned(), keys)
        })
        .collect();
    assert_eq!(
        indexes,
        BTreeMap::from([
            ("refresh-token-hash".to_owned(), vec!["refresh_token_hash".to_owned()]),
            (
                "refresh-token-prefix".to_owned(),
                vec!["refresh_token_prefix_hash".to_owned()]
            ),
            (
                "sweep-due".to_owned(),
                vec!["sweep_bucket".to_owned(), "sweep_at".to_owned()]
            ),
        ])
    );
    assert_eq!(
        template["Resources"]["TokensKey"]["Properties"]["EnableKeyRotation"],
        true
    );
}
