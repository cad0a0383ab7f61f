"""Helpers for infra/dev. Standard library only, except `resources`, which uses PyYAML
and boto3 from .venv (both come with moto / cfn-lint / sam).

  devstack.py resources ENDPOINT TEMPLATE TABLE ALIAS   create the table and KMS key in moto
  devstack.py offline-resources CONFIG ENDPOINT TEMPLATE TABLE BUS INVOKE EVENTS_LOG
                                                         jobs queue + DLQ, bus, rule -> events queue;
                                                         writes CONFIG (JSON) for `feeder` and `demo`
  devstack.py emulator-config EMULATOR                   client id, secret, RISC issuer (one a line)
  devstack.py wait-functions BASE INVOKE TIMEOUT_SECS    wait until all nine functions answer
  devstack.py demo EMULATOR BASE CONFIG                  drive the whole flow (web, a phone app, the
                                                         offline entry points, time-limited access),
                                                         print each step

infra/lib/feeder.py reads CONFIG and does what Lambda's event source mappings do.

Never shows the client secret (emulator-config writes it only to the pipe infra/dev
reads), a refresh/access token or an authorization code; the ID token only shortened.
"""

import base64
import json
import os
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

# Entry points without HTTP routes, invoked directly: (binary, payload, answer that proves
# the handler itself answered).
INVOKE_PROBES = [
    ("worker", {"Records": []}, lambda answer: answer == {"batchItemFailures": []}),
    ("publisher", {"Records": []}, lambda answer: answer == {"batchItemFailures": []}),
    ("tokens", {}, lambda answer: (answer.get("error") or {}).get("code") == "invalid_request"),
    ("sweeper", {}, lambda answer: "expiring" in answer and "more" in answer),
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


def load_resources(template_path):
    """template.yaml's Resources, with CloudFormation short tags read as None, except a
    scalar !Ref or !GetAtt (what ties an event source mapping to its function and source)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def short_tag(loader, suffix, node):
        if isinstance(node, yaml.ScalarNode) and suffix == "Ref":
            return {"Ref": node.value}
        if isinstance(node, yaml.ScalarNode) and suffix == "GetAtt":
            return {"Fn::GetAtt": node.value.split(".", 1)}
        return None

    Loader.add_multi_constructor("!", short_tag)
    with open(template_path, encoding="utf-8") as f:
        return yaml.load(f, Loader=Loader)["Resources"]


def moto_session():
    import boto3

    return boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )


def resources(endpoint, template_path, table, alias):
    props = load_resources(template_path)["TokensTable"]["Properties"]
    session = moto_session()
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


# ---------------------------------------------------------------- queues, bus, stream (offline entry points)
EVENT_SOURCE = "google-offline-access"
# Local redelivery of a job the worker reported failed: seconds, not the queue's visibility timeout.
RETRY_VISIBILITY = 5


def event_source(resources, binary, kind):
    """The Properties of `binary`'s event source of Type `kind` (SQS: a queue, DynamoDB: a
    table's stream) in template.yaml: a SAM event of its function, or an
    AWS::Lambda::EventSourceMapping of it."""
    functions = set()
    for name, resource in resources.items():
        props = resource.get("Properties") or {}
        build = (resource.get("Metadata") or {}).get("BuildProperties") or {}
        if resource.get("Type") != "AWS::Serverless::Function" or build.get("Binary") != binary:
            continue
        functions.add(name)
        for source in (props.get("Events") or {}).values():
            if source.get("Type") == kind:
                return source.get("Properties") or {}
    source_types = {"SQS": ("AWS::SQS::Queue", "Arn"), "DynamoDB": ("AWS::DynamoDB::Table", "StreamArn")}
    for resource in resources.values():
        props = resource.get("Properties") or {}
        if resource.get("Type") != "AWS::Lambda::EventSourceMapping":
            continue
        if (props.get("FunctionName") or {}).get("Ref") not in functions:
            continue
        target, attribute = ((props.get("EventSourceArn") or {}).get("Fn::GetAtt") or [None, None])[:2]
        if (resources.get(target or "", {}).get("Type"), attribute) == source_types.get(kind):
            return props
    raise SystemExit(f"template.yaml: no {kind} event source for {binary}")


def offline_resources(config_path, endpoint, template_path, table, bus, invoke, events_log):
    """The jobs queue and its dead-letter queue, the publisher's on-failure queue, the bus and a
    rule sending everything with our Source to a queue that infra/dev tails, configured as
    template.yaml configures them. Writes what the feeder and the demo need to CONFIG and
    prints the URLs infra/dev shows (one a line)."""
    template = load_resources(template_path)
    jobs_props = template["JobsQueue"]["Properties"]
    worker_source = event_source(template, "worker", "SQS")
    stream_source = event_source(template, "publisher", "DynamoDB")

    session = moto_session()
    sqs = session.client("sqs", endpoint_url=endpoint)

    def queue(name, **attributes):
        url = sqs.create_queue(QueueName=name, Attributes={k: str(v) for k, v in attributes.items()})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    dlq_url, dlq_arn = queue("jobs-dlq", MessageRetentionPeriod=template["JobsDeadLetterQueue"]["Properties"]["MessageRetentionPeriod"])
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": jobs_props["RedrivePolicy"]["maxReceiveCount"]}
    jobs_url, jobs_arn = queue("jobs", VisibilityTimeout=jobs_props["VisibilityTimeout"], RedrivePolicy=json.dumps(redrive))
    failures_url, _ = queue("publisher-failures")
    events_url, events_arn = queue("dev-events")

    events = session.client("events", endpoint_url=endpoint)
    events.create_event_bus(Name=bus)
    events.put_rule(Name="dev-all-events", EventBusName=bus, EventPattern=json.dumps({"source": [EVENT_SOURCE]}))
    events.put_targets(Rule="dev-all-events", EventBusName=bus, Targets=[{"Id": "dev-events", "Arn": events_arn}])

    stream_arn = session.client("dynamodb", endpoint_url=endpoint).describe_table(TableName=table)["Table"]["LatestStreamArn"]
    config = {
        "endpoint": endpoint,
        "invoke": invoke,
        "bus": bus,
        "events_log": events_log,
        "jobs": {
            "url": jobs_url,
            "arn": jobs_arn,
            "dlq_url": dlq_url,
            "batch_size": worker_source.get("BatchSize", 10),
            "max_receive_count": redrive["maxReceiveCount"],
            "retry_visibility": RETRY_VISIBILITY,
        },
        "stream": {
            "arn": stream_arn,
            "batch_size": stream_source.get("BatchSize", 100),
            "starting_position": stream_source.get("StartingPosition", "TRIM_HORIZON"),
            "max_retries": stream_source.get("MaximumRetryAttempts", -1),
            "filters": [json.loads(f["Pattern"]) for f in (stream_source.get("FilterCriteria") or {}).get("Filters", [])],
            "failures_url": failures_url,
        },
        "events_queue": {"url": events_url},
    }
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    for line in (jobs_url, dlq_url, events_url, failures_url):
        print(line)


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


def wait_until(what, deadline, timeout, attempt):
    """Calls attempt() -> (done, last answer) every second until done or the deadline."""
    started = time.monotonic()
    last = "no answer yet"
    while True:
        try:
            done, last = attempt()
            if done:
                print(f"    {what} ({last}, {time.monotonic() - started:.1f}s)", file=sys.stderr)
                return
        except (OSError, urllib.error.URLError) as err:
            last = str(err)
        if time.monotonic() > deadline:
            print(f"{what.split()[0]} did not become ready within {timeout:.0f}s (last: {last})", file=sys.stderr)
            sys.exit(1)
        time.sleep(1)


def wait_functions(base, invoke, timeout):
    deadline = time.monotonic() + timeout
    for binary, method, path, want in PROBES:
        def probe(binary=binary, method=method, path=path, want=want):
            # The first request makes cargo lambda compile and start the binary.
            status, headers, _ = request(method, f"{base}/{binary}{path}", timeout=max(5, deadline - time.monotonic()))
            ctype = headers.get("Content-Type", "")
            ok = status == want and ctype.startswith("application/problem+json")
            return ok, (f"{method} {path} -> {status}" if ok else f"{status} {ctype}")

        wait_until(f"{binary:<9} ready", deadline, timeout, probe)
    for binary, payload, proves in INVOKE_PROBES:
        def probe(binary=binary, payload=payload, proves=proves):
            status, _, answer = request("POST", f"{invoke}/{binary}/invocations", payload,
                                        timeout=max(5, deadline - time.monotonic()))
            ok = status == 200 and isinstance(answer, dict) and proves(answer)
            return ok, (f"invoked -> {json.dumps(answer)}" if ok else f"{status} {answer}")

        wait_until(f"{binary:<9} ready", deadline, timeout, probe)


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

    def begin(self, title, what):
        self.step += 1
        print(f"\n\033[1m[{self.step}] {title}\033[0m\n    {what}")

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


def demo(emulator, base, config_path):
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
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
    phone_demo(d)
    offline_demo(d, config, sub, day)
    lifetime_demo(d, config)
    print("\n\033[1mCreated event (as Google's Calendar API returned it):\033[0m")
    print(json.dumps(created, indent=2))


def jwt_claims(token):
    """The payload of a JWT, unverified: only to show what a token says."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def phone_demo(d):
    """An Android app's sign-in (its server auth code, exchanged with an empty redirect URI)
    and an iOS app's ID token as the bearer of a later call."""
    apps = [app for app in os.environ.get("GOOGLE_APP_CLIENT_IDS", "").split(",") if app]
    if os.environ.get("ALLOW_APP_CODES") != "true" or len(apps) < 2:
        raise SystemExit("demo needs ALLOW_APP_CODES=true and two GOOGLE_APP_CLIENT_IDS (infra/dev sets them)")
    android, ios = apps[0], apps[1]
    sub = "104729000000000000002"
    xrw = {"X-Requested-With": "XMLHttpRequest"}
    code = d.mint_code(
        "A phone app signs in: the Android app's server auth code for the web client",
        {"sub": sub, "email": "grace@example.com", "name": "Grace Hopper", "app_client_id": android,
         "offline": True, "consent": True},
    )
    signed_in = d.call("Exchange the app's code (redirect_uri \"\", allowed by ALLOW_APP_CODES)",
                       "POST", "/exchange/auth/exchange", {"code": code, "redirect_uri": ""}, xrw)
    claims = jwt_claims(signed_in["id_token"])
    print(f"    ID token: aud {claims.get('aud')} (the web client), azp {claims.get('azp')} (the app)")
    if not signed_in.get("offline_access") or claims.get("azp") != android:
        raise SystemExit(f"demo failed at step {d.step}: the app's sign-in stored no offline access"
                         f" or its ID token does not name the app")

    d.begin("The iOS app signs the same user in with GoogleSignIn", "POST <emulator>/emulator/id-token")
    status, _, minted = request("POST", d.emulator + "/emulator/id-token",
                                {"sub": sub, "platform": "ios", "app_client_id": ios})
    if status != 200:
        raise SystemExit(f"demo failed at step {d.step}: {minted}")
    claims = jwt_claims(minted["id_token"])
    print(f"    ID token: aud {claims.get('aud')}, azp {claims.get('azp')} (the iOS app)")
    me = d.call("The iOS app's ID token as bearer: the same user, the same grant", "GET", "/account/me",
                headers={"Authorization": "Bearer " + minted["id_token"]})
    if me.get("status") != "active" or not me.get("offline_access"):
        raise SystemExit(f"demo failed at step {d.step}: the phone user's grant is not active")


class BusEvents:
    """The events infra/dev's feeder took off the bus's queue, from its events log
    (`HH:MM:SS DetailType {detail}` a line)."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.seen = []

    def read(self):
        with open(self.path, encoding="utf-8") as f:
            f.seek(self.offset)
            while True:
                line = f.readline()
                if not line.endswith("\n"):
                    break  # a partial line: read it whole next time
                self.offset = f.tell()
                _, detail_type, detail = line.rstrip("\n").split(" ", 2)
                try:
                    self.seen.append((detail_type, json.loads(detail)))
                except ValueError:
                    pass

    def wait_for(self, detail_type, match, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            self.read()
            for seen_type, detail in self.seen:
                if seen_type == detail_type and match(detail):
                    return detail
            if time.monotonic() > deadline:
                return None
            time.sleep(0.2)


def offline_demo(d, config, sub, day):
    """The entry points without a user: the lifecycle events the sign-in produced, a Calendar
    job from the queue, an access token for a backend."""
    events = BusEvents(config["events_log"])

    def expect_event(detail_type, match, why):
        detail = events.wait_for(detail_type, match)
        if detail is None:
            raise SystemExit(f"demo failed at step {d.step}: no {detail_type} {why} on the bus within 60 s"
                             f" (events seen: {[t for t, _ in events.seen]}; see feeder.log)")
        print(f"    {detail_type} {json.dumps(detail)}")
        return detail

    d.begin("Lifecycle events on the bus (table stream -> publisher -> EventBridge)",
            f"rule on {config['bus']} -> SQS, tailed by infra/dev")
    expect_event("GrantConnected", lambda e: e.get("sub") == sub, "for the sign-in")
    changed = expect_event("GrantScopesChanged", lambda e: e.get("sub") == sub, "for the upgrade")
    if CALENDAR_EVENTS not in changed.get("added", []):
        raise SystemExit(f"demo failed at step {d.step}: GrantScopesChanged does not add Calendar")

    job_id = f"demo-job-{day}"
    job = {
        "job_id": job_id,
        "sub": sub,
        "calendar_id": "primary",
        "send_updates": "none",
        "event": {
            "summary": "Booking confirmed (a job sent by infra/dev --demo)",
            "start": {"dateTime": f"{day}T16:00:00Z"},
            "end": {"dateTime": f"{day}T16:30:00Z"},
        },
    }
    d.begin("A backend sends a Calendar job (the user is not there)", "SQS SendMessage <jobs queue>")
    print("    " + json.dumps(job))
    sqs = moto_session().client("sqs", endpoint_url=config["endpoint"])
    message_id = sqs.send_message(QueueUrl=config["jobs"]["url"], MessageBody=json.dumps(job))["MessageId"]
    print(f"    -> message {message_id}")

    d.begin("worker creates the event (jobs queue -> worker -> Calendar -> EventBridge)",
            "waiting for CalendarEventCreated")
    created = expect_event("CalendarEventCreated", lambda e: e.get("job_id") == job_id, f"for job {job_id}")
    if created.get("replayed") is not False:
        raise SystemExit(f"demo failed at step {d.step}: a first delivery says replayed={created.get('replayed')}")
    # The event is sent before the message is consumed: give the feeder a moment to delete it.
    for _ in range(50):
        attrs = sqs.get_queue_attributes(QueueUrl=config["jobs"]["url"], AttributeNames=["All"])["Attributes"]
        left = int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])
        if not left:
            break
        time.sleep(0.2)
    print(f"    jobs queue: {left} message(s) left")
    if left:
        raise SystemExit(f"demo failed at step {d.step}: the consumed job is still in the queue")

    d.begin("A backend gets an access token for the user (tokens, invoked directly)",
            "POST <cargo lambda>/2015-03-31/functions/tokens/invocations")
    body = {"sub": sub, "scopes": [CALENDAR_EVENTS]}
    print("    " + json.dumps(body))
    status, _, vended = request("POST", f"{config['invoke']}/tokens/invocations", body, timeout=120)
    token = vended.get("access_token") if isinstance(vended, dict) else None
    shown = {**vended, "access_token": f"[{len(token)} chars, not shown]"} if token else vended
    print(f"    -> HTTP {status}\n    {json.dumps(shown)}")
    if status != 200 or not token or vended.get("token_type") != "Bearer":
        raise SystemExit(f"demo failed at step {d.step}: no access token")
    if vended.get("expires_at", 0) < time.time() + 300 or CALENDAR_EVENTS not in vended.get("scopes", []):
        raise SystemExit(f"demo failed at step {d.step}: the token lives < 5 min or lacks Calendar")

    event_id = created["calendar_event_id"]
    d.begin("Google accepts it: read the job's event with the vended token",
            f"GET <emulator>/calendar/v3/calendars/primary/events/{event_id}")
    status, _, event = request("GET", f"{d.emulator}/calendar/v3/calendars/primary/events/{event_id}",
                               headers={"Authorization": "Bearer " + token})
    print(f"    -> HTTP {status}" + (f": {event.get('summary')!r}, {event['start']}" if status == 200 else f" {event}"))
    if status != 200 or event.get("summary") != job["event"]["summary"]:
        raise SystemExit(f"demo failed at step {d.step}: the vended token did not read the job's event")


def lifetime_demo(d, config):
    """A user grants access for three days only: the sweeper (daily in AWS) records the notice
    and publisher turns it into GrantExpiring on the bus."""
    events = BusEvents(config["events_log"])
    sub = "104729000000000000003"
    code = d.mint_code(
        "Time-limited access: the user allows access for 3 days on Google's consent screen",
        {"sub": sub, "email": "katherine@example.com", "name": "Katherine Johnson",
         "offline": True, "consent": True, "refresh_token_lifetime_secs": 3 * 86400},
    )
    signed_in = d.call("Exchange the code", "POST", "/exchange/auth/exchange", {"code": code},
                       {"X-Requested-With": "XMLHttpRequest"}, show=False)
    expires_at = signed_in.get("grant_expires_at")
    print(f"    grant_expires_at {expires_at}")
    if not expires_at:
        raise SystemExit(f"demo failed at step {d.step}: no grant_expires_at for time-limited access")

    d.begin("The daily sweep (sweeper, invoked directly with {} as the schedule does)",
            "POST <cargo lambda>/2015-03-31/functions/sweeper/invocations")
    status, _, swept = request("POST", f"{config['invoke']}/sweeper/invocations", {}, timeout=120)
    print(f"    -> HTTP {status}\n    {json.dumps(swept)}")
    if status != 200 or not isinstance(swept, dict) or swept.get("expiring", 0) < 1:
        raise SystemExit(f"demo failed at step {d.step}: the sweep recorded no expiry notice")

    d.begin("GrantExpiring on the bus (the notice -> table stream -> publisher -> EventBridge)",
            f"rule on {config['bus']} -> SQS, tailed by infra/dev")
    detail = events.wait_for("GrantExpiring", lambda e: e.get("sub") == sub)
    if detail is None:
        raise SystemExit(f"demo failed at step {d.step}: no GrantExpiring for {sub} on the bus within 60 s"
                         f" (events seen: {[t for t, _ in events.seen]}; see feeder.log)")
    print(f"    GrantExpiring {json.dumps(detail)}")
    if detail.get("expires_at") != expires_at:
        raise SystemExit(f"demo failed at step {d.step}: GrantExpiring says {detail.get('expires_at')},"
                         f" the sign-in said {expires_at}")


def main(argv):
    command, args = argv[1], argv[2:]
    if command == "resources":
        resources(*args)
    elif command == "emulator-config":
        emulator_config(*args)
    elif command == "offline-resources":
        offline_resources(*args)
    elif command == "wait-functions":
        wait_functions(args[0], args[1], float(args[2]))
    elif command == "demo":
        demo(*args)
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv)
