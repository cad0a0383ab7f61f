"""Helpers for infra/dev. Standard library only, except `resources`, which uses PyYAML
and boto3 from .venv (both come with moto / cfn-lint / sam).

  devstack.py resources ENDPOINT TEMPLATE TABLE ALIAS   create the table and KMS key in moto
  devstack.py emulator-config EMULATOR                   client id, secret, RISC issuer (one a line)
  devstack.py wait-functions BASE TIMEOUT_SECS           wait until all five functions answer
  devstack.py demo EMULATOR BASE                         drive the whole flow, print each step

Never shows the client secret (emulator-config writes it only to the pipe infra/dev
reads), a refresh/access token or an authorization code; the ID token only shortened.
"""

import json
import sys
import time
import urllib.error
import urllib.request

CALENDAR_EVENTS = "https://www.googleapis.com/auth/calendar.events"

# (binary, method, path, status that proves the handler itself answered)
PROBES = [
    ("account", "GET", "/me", 401),
    ("exchange", "GET", "/auth/exchange", 405),
    ("upgrade", "GET", "/auth/upgrade", 405),
    ("events", "GET", "/calendar/events", 405),
    ("risc", "GET", "/risc", 405),
]


def table_extras(props):
    """The table's indexes and stream as template.yaml declares them (DynamoDB refuses
    attribute definitions that no key or index uses)."""
    extra = {}
    if props.get("GlobalSecondaryIndexes"):
        extra["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    if props.get("StreamSpecification"):
        extra["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    return extra


def resources(endpoint, template_path, table, alias):
    import boto3
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader that reads CloudFormation short tags (!Ref, !GetAtt, ...) as None."""

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    with open(template_path, encoding="utf-8") as f:
        props = yaml.load(f, Loader=Loader)["Resources"]["TokensTable"]["Properties"]

    session = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )
    dynamodb = session.client("dynamodb", endpoint_url=endpoint)
    dynamodb.create_table(
        TableName=table,
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        BillingMode=props["BillingMode"],
        **table_extras(props),
    )
    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        dynamodb.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": bool(ttl["Enabled"])},
        )
    kms = session.client("kms", endpoint_url=endpoint)
    key_id = kms.create_key(Description="tokens (infra/dev)")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)


def request(method, url, body=None, headers=None, timeout=30):
    """(status, headers, parsed JSON or text) without raising on HTTP errors."""
    data = None
    headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, resp_headers, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        status, resp_headers, raw = err.code, err.headers, err.read()
    text = raw.decode("utf-8", "replace")
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = text
    return status, resp_headers, parsed


def emulator_config(emulator):
    _, _, config = request("GET", emulator + "/emulator/config")
    # One per line, for `mapfile` in infra/dev (never shown).
    for key in ("client_id", "client_secret", "risc_issuer"):
        print(config[key])


def wait_functions(base, timeout):
    deadline = time.monotonic() + timeout
    for binary, method, path, want in PROBES:
        started = time.monotonic()
        last = "no answer yet"
        while True:
            try:
                # The first request makes cargo lambda compile and start the binary.
                status, headers, _ = request(method, f"{base}/{binary}{path}", timeout=max(5, deadline - time.monotonic()))
                ctype = headers.get("Content-Type", "")
                if status == want and ctype.startswith("application/problem+json"):
                    print(f"    {binary:<8} ready ({method} {path} -> {status}, {time.monotonic() - started:.1f}s)", file=sys.stderr)
                    break
                last = f"{status} {ctype}"
            except (OSError, urllib.error.URLError) as err:
                last = str(err)
            if time.monotonic() > deadline:
                print(f"{binary} did not become ready within {timeout:.0f}s (last: {last})", file=sys.stderr)
                sys.exit(1)
            time.sleep(1)


def shorten_tokens(value):
    """A copy of a response fit for printing: the ID token shortened."""
    if isinstance(value, dict):
        return {
            k: (v[:16] + f"...[{len(v)} chars]" if k == "id_token" and isinstance(v, str) else shorten_tokens(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [shorten_tokens(v) for v in value]
    return value


class Demo:
    def __init__(self, emulator, base):
        self.emulator = emulator
        self.base = base
        self.step = 0

    def call(self, title, method, path, body=None, headers=None, expect=200, show=True):
        self.step += 1
        print(f"\n\033[1m[{self.step}] {title}\033[0m\n    {method} {path}")
        try:
            status, _, parsed = request(method, self.base + path, body, headers, timeout=120)
        except OSError as err:
            raise SystemExit(f"demo failed at step {self.step}: {title}: {err}")
        ok = status == expect
        print(f"    -> HTTP {status}" + ("" if ok else f" (expected {expect})"))
        if show or not ok:
            text = json.dumps(shorten_tokens(parsed), indent=2) if not isinstance(parsed, str) else parsed
            print("\n".join("    " + line for line in text.splitlines()))
        if not ok:
            raise SystemExit(f"demo failed at step {self.step}: {title}")
        return parsed

    def mint_code(self, title, request_body):
        self.step += 1
        print(f"\n\033[1m[{self.step}] {title}\033[0m\n    POST <emulator>/emulator/codes")
        summary = {k: v for k, v in request_body.items() if k != "sub"}
        print("    " + json.dumps(summary))
        try:
            status, _, parsed = request("POST", self.emulator + "/emulator/codes", request_body)
        except OSError as err:
            raise SystemExit(f"demo failed at step {self.step}: {title}: {err}")
        print(f"    -> HTTP {status} (a one-time code; not shown)")
        if status != 200:
            raise SystemExit(f"demo failed at step {self.step}: {title}: {parsed}")
        return parsed["code"]


def demo(emulator, base):
    d = Demo(emulator, base)
    sub = "104729000000000000001"
    xrw = {"X-Requested-With": "XMLHttpRequest"}

    code = d.mint_code(
        "Sign in with Google: code with offline access and consent",
        {
            "sub": sub,
            "email": "ada@example.com",
            "name": "Ada Lovelace",
            "scopes": ["openid", "https://www.googleapis.com/auth/userinfo.email",
                       "https://www.googleapis.com/auth/userinfo.profile"],
            "offline": True,
            "consent": True,
        },
    )
    signed_in = d.call("Exchange the code", "POST", "/exchange/auth/exchange", {"code": code}, xrw)
    if not signed_in.get("offline_access"):
        raise SystemExit("demo failed: exchange did not store offline access")
    bearer = {"Authorization": "Bearer " + signed_in["id_token"]}

    code = d.mint_code(
        "Incremental authorization: code for Calendar events",
        {"sub": sub, "scopes": [CALENDAR_EVENTS], "offline": True, "include_granted_scopes": True},
    )
    d.call("Upgrade the grant", "POST", "/upgrade/auth/upgrade",
           {"code": code, "scopes": [CALENDAR_EVENTS]}, {**xrw, **bearer})

    start = time.gmtime(time.time() + 86400)
    day = time.strftime("%Y-%m-%d", start)
    event = {
        "summary": "Tea with Charles (created by infra/dev --demo)",
        "location": "London",
        "start": {"dateTime": f"{day}T15:00:00Z"},
        "end": {"dateTime": f"{day}T15:30:00Z"},
    }
    created = d.call("Create a Calendar event (offline: refresh token -> access token -> events.insert)",
                     "POST", "/events/calendar/events?sendUpdates=none", event,
                     {**bearer, "Idempotency-Key": "demo-" + day}, expect=201, show=False)
    print(f"    id {created.get('id')}, status {created.get('status')} (full event below)")
    d.call("Who am I", "GET", "/account/me", headers=bearer)

    status, _, stored = request("GET", f"{emulator}/emulator/events?sub={sub}&calendarId=primary")
    if status != 200 or not any(e.get("event", e).get("id") == created.get("id") for e in stored):
        raise SystemExit("demo failed: the event is not in the emulator's calendar")
    print("\n\033[1mCreated event (as Google's Calendar API returned it):\033[0m")
    print(json.dumps(created, indent=2))


def main(argv):
    command, args = argv[1], argv[2:]
    if command == "resources":
        resources(*args)
    elif command == "emulator-config":
        emulator_config(*args)
    elif command == "wait-functions":
        wait_functions(args[0], float(args[1]))
    elif command == "demo":
        demo(*args)
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv)
