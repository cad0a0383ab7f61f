"""Credentials for a moto_server started with INITIAL_NO_AUTH_ACTION_COUNT=5, where
every request after the first five must carry a valid SigV4 signature by an IAM
identity whose policy allows it (moto recomputes each signature with botocore).

The first five requests (unsigned checks) create an IAM user, its policy and access
key, and a role with its policy; then, signed as that user, this assumes the role
(temporary credentials with a session token, as a Lambda function has) and creates a
DynamoDB table, one item and an EventBridge bus. Prints all of it as JSON.

    python infra/lib/moto_iam.py http://127.0.0.1:PORT"""

import json
import sys

import boto3

ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
)


def client(endpoint, service, key="test", secret="test", token=None):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
    )


def main(endpoint):
    iam = client(endpoint, "iam")
    iam.create_user(UserName="signer")
    iam.put_user_policy(UserName="signer", PolicyName="all", PolicyDocument=ALLOW_ALL)
    key = iam.create_access_key(UserName="signer")["AccessKey"]
    role = iam.create_role(RoleName="function", AssumeRolePolicyDocument=TRUST)["Role"]
    iam.put_role_policy(RoleName="function", PolicyName="all", PolicyDocument=ALLOW_ALL)

    user = (key["AccessKeyId"], key["SecretAccessKey"])
    assumed = client(endpoint, "sts", *user).assume_role(RoleArn=role["Arn"], RoleSessionName="fn")["Credentials"]
    dynamodb = client(endpoint, "dynamodb", *user)
    dynamodb.create_table(
        TableName="signed",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName="signed", Item={"pk": {"S": "risc-jti#client#seen"}})
    client(endpoint, "events", *user).create_event_bus(Name="signed")
    print(
        json.dumps(
            {
                "user": {"key": user[0], "secret": user[1]},
                "role": {
                    "key": assumed["AccessKeyId"],
                    "secret": assumed["SecretAccessKey"],
                    "token": assumed["SessionToken"],
                },
                "table": "signed",
                "bus": "signed",
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
