#!/usr/bin/env python3
"""The engine of infra/bench: runs each function binary as AWS Lambda would and
measures it.

Per function, against moto (DynamoDB, KMS, EventBridge) and the Google emulator
binary, each behind a loopback proxy that counts and times every call:
  * init duration: process spawn -> first GET /runtime/invocation/next (median of
    --cold-starts fresh processes), with the CPU the process used for it, and a
    minimal C Runtime API client started in the same rounds (the harness's floor);
  * each cold process's first invocation: latency, own CPU, and the time its calls
    to moto and Google took (what it must wait for, as opposed to its own work);
  * warm p50/p99 over --invocations invocations of the real flow in one container;
  * own CPU time per warm invocation (sum of the process's threads' schedstat),
    beside that of the minimal C client serving the same events and replaying the
    upstream requests one warm invocation made (the floor of those exchanges here),
    and that of the same replay on the functions' own runtime and HTTP client
    (infra/stack-floor: the floor of the stack they are built on);
  * peak RSS (VmHWM) after all of them;
  * size of the stripped binary and of bootstrap.zip (deflate, level 9);
  * billed duration and cost per million invocations at the template's memory size
    (arm64 price), warm and cold (init is billed);
  * calls per operation to Google (the emulator's /emulator/hits), DynamoDB, KMS and
    EventBridge (X-Amz-Target as seen by the proxy in front of moto);
  * what each call is billed as (the proxy in front of moto keeps a copy of every
    item it has seen written, so each DynamoDB call is counted in read and write
    request units from the sizes of the items it reads or changes, index writes
    included; EventBridge entries in 64 KB events), and from that and the Lambda,
    SQS, API Gateway and CloudWatch Logs charges the bench can see, the full cost
    per million operations (sign-in, Calendar event, job, vend) at list prices;
  * worker: a batch of jobs for distinct users with a slow Calendar, to prove the
    jobs of a batch run concurrently.

HTTP functions get API Gateway HTTP API (v2) events; `worker` an SQS event, `tokens`
a direct invocation payload, `sweeper` the `{}` of its schedule over a table of the
bench's users, `publisher` DynamoDB stream records read from moto's stream of the
bench's own table, in the shape Lambda's event source mapping delivers them.

With --compare DIR, every function is run from two builds side by side, DIR's
binaries ("before") and --release-dir's ("after"): cold starts interleaved (A B, B A,
...) and the two warm containers taking turns invocation by invocation. A function
DIR has no binary of (one added since) is measured for the second build alone.

--fleet measures the fleet alone (a full run measures it too, after the functions):
K separate `tokens` environments (and then `worker` ones), each a process with its
own Runtime API as Lambda runs K environments, all handed a request for the same
user at the same moment, over several rounds with a fresh user each: refreshes per
user at Google, KMS and DynamoDB calls per vend, and the latency of the environment
that refreshed and of those that did not.

Only the Python standard library is used, except boto3 (from .venv) to create the
table, the KMS key and the event bus, and PyYAML (there too, with moto) to read
template.yaml. Everything listens on and connects to
127.0.0.1 only, and every loop is bounded in count and time.
"""

import argparse
import base64
import hashlib
import http.client
import json
import math
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
import zipfile

from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import devstack  # noqa: E402  (the table exactly as infra/dev creates it)

# Display order.
FUNCTIONS = ["exchange", "upgrade", "events", "account", "risc", "worker", "tokens", "publisher", "sweeper"]
# risc's security events revoke the bench users' tokens: it runs last. The sweeper runs
# over the grants the others wrote, and the publisher over the stream of all of them.
RUN_ORDER = ["exchange", "upgrade", "events", "account", "worker", "tokens", "sweeper", "publisher", "risc"]
HTTP_FUNCTIONS = {"exchange", "upgrade", "events", "account", "risc"}
CALENDAR_EVENTS = "https://www.googleapis.com/auth/calendar.events"
BASE_SCOPES = [
    "openid",
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/userinfo.profile",
]
ORIGIN = "https://app.example.com"
LOOPBACK = "127.0.0.1"
# Hard ceilings, whatever the arguments say.
MAX_INVOCATIONS = 5000
MAX_COLD_STARTS = 200
# Invocations of the C floor per function (at most --invocations).
FLOOR_INVOCATIONS = 400
INVOKE_TIMEOUT_S = 20.0
INIT_TIMEOUT_S = 10.0
RUN_DEADLINE_S = 60 * 60

# The template's MemorySize without a capacity provider (read from template.yaml at
# start; this is the fallback).
MEMORY_MB = 128

# List prices in us-east-1 (first tier, no free tier), as published on the AWS pricing
# pages on PRICES_AS_OF. Lambda: https://aws.amazon.com/lambda/pricing/ (arm64; duration
# billed per 1 ms rounded up, init included for custom runtimes). DynamoDB on-demand:
# https://aws.amazon.com/dynamodb/pricing/on-demand/ (the prices of 1 November 2024).
# KMS: https://aws.amazon.com/kms/pricing/ ($0.03 per 10,000 requests). SQS:
# https://aws.amazon.com/sqs/pricing/ (standard queue, each 64 KB chunk of a request's
# payload is a request). EventBridge: https://aws.amazon.com/eventbridge/pricing/
# (custom events, each 64 KB chunk of an entry is an event). API Gateway:
# https://aws.amazon.com/api-gateway/pricing/ (HTTP APIs, first 300 million a month,
# per 512 KB). CloudWatch Logs: https://aws.amazon.com/cloudwatch/pricing/ (ingestion,
# Lambda's logs at their first tier).
PRICES_AS_OF = "2026-12-03"
ARM64_USD_PER_GB_S = 0.0000133334
USD_PER_MILLION_REQUESTS = 0.20
PRICES = {
    "lambda_request": 0.20e-6,
    "lambda_gb_s": ARM64_USD_PER_GB_S,
    "ddb_rru": 0.125e-6,
    "ddb_wru": 0.625e-6,
    "kms_request": 0.03 / 10_000,
    "sqs_request": 0.40e-6,
    "eventbridge_event": 1.00e-6,
    "http_api_request": 1.00e-6,
    "logs_gb": 0.50,
}

# worker: one batch of this many jobs, one per user, with every Calendar insert
# delayed this long; run one after the other they would take >= jobs x delay.
BATCH_JOBS = 10
# Full batches per worker container for the CPU per job in a batch.
BATCH_ROUNDS = 40
BATCH_INSERT_DELAY_MS = 200

# The fleet (--fleet): K environments per fleet, rounds per K (each with a fresh user).
FLEET_SIZES = (1, 8, 32)
FLEET_ROUNDS = 5
FLEET_FUNCTIONS = ("tokens", "worker")

# Google calls per warm operation (mean over 400 invocations over 10 users) and in a
# cold process's first invocation, of the build of 165b75f (the commit before the
# return to the AWS SDK and the fleet's shared tokens; its BENCHMARKS.md): "no more
# Google calls than before" when no --compare build is measured beside this one.
GOOGLE_CALLS_BEFORE = {
    "exchange": (1.0, 2),
    "upgrade": (1.0, 2),
    "events": (1.022, 3),
    "account": (0.0, 1),
    "risc": (0.0, 1),
    "worker": (1.022, 2),
    "tokens": (0.022, 1),
    "publisher": (0.0, 0),
}

DDB_READS = {"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"}
DDB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}

STARTED = time.monotonic()
LOAD_AT_START = [round(x, 2) for x in os.getloadavg()]


def check_deadline():
    if time.monotonic() - STARTED > RUN_DEADLINE_S:
        raise SystemExit(f"bench: gave up after {RUN_DEADLINE_S} s")


def log(message):
    print(f"    {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- HTTP


def read_body(rfile, headers):
    """The request body, Content-Length or chunked."""
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        chunks = []
        for _ in range(100_000):
            size = int(rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                for _ in range(100):  # trailers, up to the empty line
                    if rfile.readline() in (b"\r\n", b"\n", b""):
                        break
                return b"".join(chunks)
            chunks.append(rfile.read(size))
            rfile.readline()
        raise ValueError("chunked body too long")
    length = int(headers.get("Content-Length") or 0)
    return rfile.read(length) if length else b""


def end_with_body(handler, body):
    """Ends the headers and sends them with the body in one write."""
    handler._headers_buffer.append(b"\r\n" + body)
    handler.flush_headers()


def request(base, method, path, body=None, headers=None, timeout=10.0):
    """One request to a loopback service; returns (status, headers, body bytes)."""
    url = urlsplit(base)
    if url.hostname != LOOPBACK:
        raise ValueError(f"refusing a non-loopback address: {base}")
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        hdrs = dict(headers or {})
        if isinstance(body, (dict, list)):
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    finally:
        conn.close()


class Google:
    """The emulator's control API (/emulator/...)."""

    def __init__(self, base):
        self.base = base.rstrip("/")
        self.config = self._json("GET", "/emulator/config")
        self._bearers = {}

    def _json(self, method, path, body=None):
        status, _, data = request(self.base, method, path, body)
        if status != 200:
            raise RuntimeError(f"emulator {path}: HTTP {status} {data[:200]!r}")
        return json.loads(data)

    def code(self, sub, scopes=None, consent=False):
        body = {"sub": sub, "offline": True, "consent": consent}
        if scopes:
            body["scopes"] = scopes
        return self._json("POST", "/emulator/codes", body)["code"]

    def bearer(self, sub):
        # Emulator ID tokens live an hour; the whole run is bounded well below.
        if sub not in self._bearers:
            self._bearers[sub] = self._json("POST", "/emulator/id-token", {"sub": sub})["id_token"]
        return self._bearers[sub]

    def risc_set(self, event_type, sub):
        return self._json("POST", "/emulator/risc", {"event_type": event_type, "sub": sub})["set"]

    def hits(self):
        return self._json("GET", "/emulator/hits")

    def url(self, path):
        return f"{self.base}{path}"


# ------------------------------------------------------------- timing proxy


class QuietServer(ThreadingHTTPServer):
    """A loopback server that does not print a traceback when a client (a function
    process being stopped) drops its connection."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
}


def amz_target(handler):
    """`DynamoDB_20120810.GetItem`, `TrentService.Decrypt`, `AWSEvents.PutEvents`, ..."""
    return handler.headers.get("X-Amz-Target") or f"{handler.command} {handler.path.split('?')[0]}"


def path_only(handler):
    return f"{handler.command} {handler.path.split('?')[0]}"


class Proxy:
    """Forwards every request to `upstream`, counts it under `key_of(request)` and
    adds the time the upstream took to answer to `busy` (seconds): what a function
    waits for, as opposed to its own work. With a `ledger`, every call is also
    counted in what it is billed as (see Ledger)."""

    def __init__(self, upstream, key_of, ledger=None):
        up = urlsplit(upstream)
        if up.hostname != LOOPBACK:
            raise ValueError(f"refusing a non-loopback upstream: {upstream}")
        self.counts = Counter()
        self.busy = 0.0
        self.lock = threading.Lock()
        self.ledger = ledger
        # While set: every request as received, in order (for the C floor's replay).
        self.captured = None
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without TCP_NODELAY, Nagle
            # plus the client's delayed ACK stalls each answer by ~40 ms.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def _forward(self):
                started = time.perf_counter()
                body = read_body(self.rfile, self.headers)
                with proxy.lock:
                    # Counted before the answer goes out, so a snapshot taken once
                    # the function has answered always includes it.
                    proxy.counts[key_of(self)] += 1
                    if proxy.captured is not None:
                        head = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
                        raw = f"{self.requestline}\r\n{head}\r\n".encode() + body
                        proxy.captured.append((self.server.server_address[1], raw))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                # A write holds its item's ledger lock until it is counted, so the
                # ledger sees the writes of one item in the order moto applied them.
                ticket = proxy.ledger.begin(key_of(self), body) if proxy.ledger else None
                conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    if ticket is not None:
                        # Counted before the answer goes out, like the call itself.
                        proxy.ledger.finish(ticket, resp.status, data)
                    self.send_response_only(resp.status, resp.reason)
                    for name, value in resp.getheaders():
                        if name.lower() not in HOP_BY_HOP:
                            self.send_header(name, value)
                finally:
                    conn.close()
                    if ticket is not None:
                        proxy.ledger.release(ticket)
                self.send_header("Content-Length", str(len(data)))
                with proxy.lock:
                    proxy.busy += time.perf_counter() - started
                end_with_body(self, data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        self.server = QuietServer((LOOPBACK, 0), Handler)
        self.url = f"http://{LOOPBACK}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    def snapshot(self):
        with self.lock:
            return Counter(self.counts), self.busy

    def capture(self, on):
        with self.lock:
            captured, self.captured = self.captured, ([] if on else None)
        return captured or []

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Upstreams:
    """moto and Google behind their proxies: one snapshot of everything a function
    calls (Google's own per-endpoint hit counts included)."""

    def __init__(self, google, aws_proxy, google_proxy):
        self.google = google
        self.aws = aws_proxy
        self.google_proxy = google_proxy

    def capture(self):
        self.aws.capture(True)
        self.google_proxy.capture(True)

    def captured(self):
        """The requests made since `capture()`: (proxy port, raw request), in order
        per upstream (AWS calls, then Google calls)."""
        return self.aws.capture(False) + self.google_proxy.capture(False)

    def snapshot(self):
        aws, aws_busy = self.aws.snapshot()
        _, google_busy = self.google_proxy.snapshot()
        units = self.aws.ledger.snapshot() if self.aws.ledger else Counter()
        return {"google": self.google.hits(), "aws": aws, "busy": aws_busy + google_busy, "units": units}


# ------------------------------------------------------------ what calls cost


def number_size(text):
    """DynamoDB's size of a number: about 1 byte per two significant digits, plus 1."""
    digits = text.strip().lstrip("+-").lower().split("e")[0].replace(".", "").strip("0")
    return 1 + (len(digits) + 1) // 2


def value_size(value):
    """DynamoDB's size of one attribute value (its name not included): UTF-8 bytes of
    a string, raw bytes of a binary, 1 for a boolean or null, the sum of a set's
    members, 3 plus 1 per element (and a map's names) for a list or map."""
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        return number_size(v)
    if kind == "B":
        return len(base64.b64decode(v))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(x.encode()) for x in v)
    if kind == "NS":
        return sum(number_size(x) for x in v)
    if kind == "BS":
        return sum(len(base64.b64decode(x)) for x in v)
    if kind == "L":
        return 3 + sum(1 + value_size(x) for x in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(x) for k, x in v.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item):
    """An item's size as DynamoDB bills it: every attribute's name and value."""
    return sum(len(name.encode()) + value_size(v) for name, v in (item or {}).items())


def canonical(item):
    """An item as text that compares equal whatever order its sets come in."""
    if item is None:
        return None

    def norm(value):
        ((kind, v),) = value.items()
        if kind in ("SS", "NS", "BS"):
            return {kind: sorted(v)}
        if kind == "L":
            return {kind: [norm(x) for x in v]}
        if kind == "M":
            return {kind: {k: norm(x) for k, x in v.items()}}
        return value

    return json.dumps({k: norm(v) for k, v in item.items()}, sort_keys=True)


def read_units(size, consistent):
    """Read request units of one read of `size` bytes: 1 per 4 KB (at least one 4 KB),
    half that when eventually consistent."""
    return max(1, math.ceil(size / 4096)) * (1.0 if consistent else 0.5)


def write_units(size):
    """Write request units of one write of `size` bytes: 1 per 1 KB, at least 1."""
    return max(1, math.ceil(size / 1024))


# A clause keyword, not a `#name` or `:value` placeholder that happens to spell one.
UPDATE_CLAUSE = re.compile(r"(?<![#:\w])(SET|REMOVE|ADD|DELETE)\b", re.IGNORECASE)
PLACEHOLDER = re.compile(r"^:[A-Za-z0-9_]+$")


def apply_update(item, request):
    """The item after an UpdateItem of the forms the functions send (`SET a = :v, ...`,
    `REMOVE a, ...`, names as `#n` or plain); None for any other form."""
    expression = request.get("UpdateExpression")
    if not expression or "(" in expression:
        return None
    names = request.get("ExpressionAttributeNames") or {}
    values = request.get("ExpressionAttributeValues") or {}

    def name_of(token):
        token = token.strip()
        if token.startswith("#"):
            return names.get(token)
        return token if re.fullmatch(r"[A-Za-z0-9_]+", token) else None

    out = dict(item or {})
    out.update(request["Key"])
    parts = UPDATE_CLAUSE.split(expression)
    if parts[0].strip():
        return None
    for clause, body in zip(parts[1::2], parts[2::2]):
        clause = clause.upper()
        for part in body.split(","):
            if clause == "SET":
                target, _, source = part.partition("=")
                name, source = name_of(target), source.strip()
                if name is None or not PLACEHOLDER.match(source) or source not in values:
                    return None
                out[name] = values[source]
            elif clause == "REMOVE":
                name = name_of(part)
                if name is None:
                    return None
                out.pop(name, None)
            else:
                return None
    return out


class Ledger:
    """What each call through the proxy in front of moto is billed as, counted from the
    call and the items it reads or changes. The proxy keeps a copy of every item of the
    table as the writes it forwarded left it (the table starts empty and every write
    goes through the proxy; `verify` compares the copy with moto's table at the end).

    Counting rule (DynamoDB on-demand): a read is 1 read request unit per 4 KB of what
    it reads, at least one 4 KB, half that when eventually consistent (every index
    query is); a BatchGetItem counts each item it reads (or each key it finds nothing
    for) alone; a Query or Scan counts the summed size of the items it reads. A write is
    1 write request unit per 1 KB of the larger of the item before and after it (at least
    1), plus, for each global secondary index, 1 per 1 KB of each index entry it puts or
    deletes: 1 when the item enters or leaves the index, 2 when the index key changes
    (delete and put), 0 when the entry stays as it is (every index of the table projects
    keys only). A conditional write whose condition fails is still 1 per 1 KB of the item
    it checked. Errors other than a failed condition are not counted. Successful writes
    that change the item are stream records; those of grant items (`grant#`) are what
    the stream filter hands to `publisher`.
    EventBridge: each PutEvents entry the bus accepts is 1 event per 64 KB (its Time as
    14 bytes, Source, DetailType, Detail and Resources)."""

    def __init__(self, table, table_props, upstream):
        self.table = table
        self.upstream = upstream
        self.key_names = [k["AttributeName"] for k in table_props["KeySchema"]]
        self.indexes = []
        for index in table_props.get("GlobalSecondaryIndexes") or []:
            projection = index.get("Projection") or {}
            self.indexes.append(
                (
                    [k["AttributeName"] for k in index["KeySchema"]],
                    projection.get("ProjectionType", "ALL"),
                    projection.get("NonKeyAttributes") or [],
                )
            )
        self.images = {}
        self.lock = threading.Lock()
        self.item_locks = {}
        self.units = Counter()
        self.problems = Counter()

    def snapshot(self):
        with self.lock:
            return Counter(self.units)

    def _key(self, item):
        return json.dumps([item.get(k) for k in self.key_names], sort_keys=True)

    def begin(self, target, body):
        service, _, operation = target.partition(".")
        if (service, operation) not in (("AWSEvents", "PutEvents"),) and service != "DynamoDB_20120810":
            return None
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return None
        ticket = {"operation": operation, "request": request, "lock": None}
        if service == "DynamoDB_20120810" and operation in ("PutItem", "UpdateItem", "DeleteItem"):
            if request.get("TableName") != self.table:
                return None
            key = self._key(request["Item"] if operation == "PutItem" else request["Key"])
            with self.lock:
                lock = self.item_locks.setdefault(key, threading.Lock())
            lock.acquire()
            ticket.update(lock=lock, key=key)
            with self.lock:
                ticket["before"] = self.images.get(key)
        return ticket

    def release(self, ticket):
        if ticket["lock"] is not None:
            ticket["lock"].release()
            ticket["lock"] = None

    def finish(self, ticket, status, data):
        try:
            response = json.loads(data or b"{}") if data else {}
            counted, image = self._count(ticket, status, response)
        except (ValueError, KeyError, TypeError, RuntimeError, OSError) as err:
            with self.lock:
                self.problems[f"{ticket['operation']}: {type(err).__name__}"] += 1
            return
        with self.lock:
            self.units.update(counted)
            if image is not None:
                key, after = image
                if after is None:
                    self.images.pop(key, None)
                else:
                    self.images[key] = after

    def _count(self, ticket, status, response):
        op, request = ticket["operation"], ticket["request"]
        units = Counter()
        if op == "PutEvents":
            if status != 200:
                return units, None
            for sent, answer in zip(request.get("Entries") or [], response.get("Entries") or []):
                if answer.get("ErrorCode"):
                    continue
                size = 14 if sent.get("Time") is not None else 0
                size += sum(len((sent.get(k) or "").encode()) for k in ("Source", "DetailType", "Detail"))
                size += sum(len(r.encode()) for r in sent.get("Resources") or [])
                units["eventbridge_events"] += max(1, math.ceil(size / 65536))
                units["eventbridge_entries"] += 1
            return units, None
        if op in ("GetItem", "BatchGetItem", "Query", "Scan"):
            if status == 200:
                units["ddb_rru"] += self._read_units(op, request, response)
            return units, None
        if op not in ("PutItem", "UpdateItem", "DeleteItem"):
            units["ddb_other_calls"] += 1
            return units, None
        before = ticket["before"]
        if status != 200:
            if "ConditionalCheckFailed" in str(response.get("__type", "")):
                units["ddb_wru"] += write_units(item_size(before))
                units["ddb_conditions_failed"] += 1
            return units, None
        if op == "PutItem":
            after = request["Item"]
        elif op == "DeleteItem":
            after = None
        else:
            after = apply_update(before, request)
            if after is None:
                # A form apply_update does not know: read what moto stored.
                units["ledger_reads"] += 1
                got = aws_json(
                    self.upstream,
                    "DynamoDB_20120810.GetItem",
                    {"TableName": self.table, "Key": request["Key"], "ConsistentRead": True},
                )
                after = got.get("Item")
        units["ddb_wru"] += write_units(max(item_size(before), item_size(after)))
        units["ddb_wru_index"] += self._index_units(before, after)
        if canonical(before) != canonical(after):
            units["stream_records"] += 1
            pk = (after or before or {}).get(self.key_names[0], {}).get("S", "")
            if pk.startswith("grant#"):
                units["stream_grant_records"] += 1
        return units, (ticket["key"], after)

    def _read_units(self, op, request, response):
        if op == "GetItem":
            return read_units(item_size(response.get("Item")), bool(request.get("ConsistentRead")))
        if op == "BatchGetItem":
            total = 0.0
            for table, wanted in (request.get("RequestItems") or {}).items():
                consistent = bool(wanted.get("ConsistentRead"))
                found = (response.get("Responses") or {}).get(table) or []
                left = len(((response.get("UnprocessedKeys") or {}).get(table) or {}).get("Keys") or [])
                total += sum(read_units(item_size(item), consistent) for item in found)
                total += max(0, len(wanted.get("Keys") or []) - len(found) - left) * read_units(0, consistent)
            return total
        items = response.get("Items") or []
        size = sum(item_size(item) for item in items)
        scanned = response.get("ScannedCount", len(items))
        if scanned > len(items):
            # Items a filter dropped were read too: counted at the mean size of the rest.
            size += (scanned - len(items)) * (size / len(items) if items else 100)
        consistent = bool(request.get("ConsistentRead")) and not request.get("IndexName")
        return read_units(size, consistent)

    def _entry(self, item, index):
        keys, projection, extra = index
        if item is None or any(k not in item for k in keys):
            return None
        if projection == "ALL":
            return item
        names = set(self.key_names) | set(keys) | (set(extra) if projection == "INCLUDE" else set())
        return {k: v for k, v in item.items() if k in names}

    def _index_units(self, before, after):
        total = 0
        for index in self.indexes:
            old, new = self._entry(before, index), self._entry(after, index)
            if old is None and new is None:
                continue
            if old is None or new is None:
                total += write_units(item_size(old if new is None else new))
                continue
            keys = index[0]
            if any(canonical({k: before[k]}) != canonical({k: after[k]}) for k in keys):
                total += write_units(item_size(old)) + write_units(item_size(new))
            elif canonical(old) != canonical(new):
                total += write_units(item_size(new))
        return total

    def verify(self):
        """Compares the ledger's copy with moto's table: (items, items that differ)."""
        actual = {}
        start = None
        for _ in range(10_000):
            body = {"TableName": self.table, "ConsistentRead": True}
            if start:
                body["ExclusiveStartKey"] = start
            page = aws_json(self.upstream, "DynamoDB_20120810.Scan", body)
            for item in page.get("Items") or []:
                actual[self._key(item)] = canonical(item)
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        with self.lock:
            kept = {k: canonical(v) for k, v in self.images.items()}
        differ = sum(1 for k in set(actual) | set(kept) if actual.get(k) != kept.get(k))
        return {"items": len(actual), "differ": differ, "problems": dict(self.problems)}


# ------------------------------------------------------- Lambda Runtime API


class RuntimeApi:
    """The Lambda Runtime API for one execution environment (container)."""

    PREFIX = "/2018-06-01/runtime"

    def __init__(self, function):
        self.function = function
        self.events = queue.Queue()
        self.cond = threading.Condition()
        self.results = {}  # request id -> dict
        self.handed_at = {}  # request id -> perf_counter when the event was sent
        self.first_poll = None
        self.init_error = None
        self.stopping = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without TCP_NODELAY, Nagle
            # plus the client's delayed ACK stalls each answer by ~40 ms.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):
                now = time.perf_counter()
                if self.path != f"{api.PREFIX}/invocation/next":
                    return self._reply(404, {"errorMessage": "unknown path", "errorType": "NotFound"})
                with api.cond:
                    if api.first_poll is None:
                        api.first_poll = now
                        api.cond.notify_all()
                # Long poll, bounded: the environment lives at most RUN_DEADLINE_S.
                for _ in range(int(RUN_DEADLINE_S / 0.2)):
                    if api.stopping.is_set():
                        break
                    try:
                        request_id, payload = api.events.get(timeout=0.2)
                    except queue.Empty:
                        continue
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
                    self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000 + 15_000)))
                    self.send_header(
                        "Lambda-Runtime-Invoked-Function-Arn",
                        f"arn:aws:lambda:us-east-1:123456789012:function:{api.function}",
                    )
                    self.send_header(
                        "Lambda-Runtime-Trace-Id",
                        f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0",
                    )
                    with api.cond:
                        api.handed_at[request_id] = time.perf_counter()
                    end_with_body(self, payload)
                    return
                self.close_connection = True

            def do_POST(self):
                body = read_body(self.rfile, self.headers)
                now = time.perf_counter()
                parts = self.path[len(api.PREFIX) :].strip("/").split("/")
                if self.path == f"{api.PREFIX}/init/error":
                    with api.cond:
                        api.init_error = body.decode(errors="replace")
                        api.cond.notify_all()
                    return self._reply(202, {"status": "OK"})
                if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                    with api.cond:
                        api.results[parts[1]] = {"kind": parts[2], "body": body, "at": now}
                        api.cond.notify_all()
                    return self._reply(202, {"status": "OK"})
                return self._reply(404, {"errorMessage": "unknown path", "errorType": "NotFound"})

            def _reply(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                end_with_body(self, data)

        self.server = QuietServer((LOOPBACK, 0), Handler)
        self.address = f"{LOOPBACK}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    def close(self):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def cpu_ns(pid):
    """CPU time of every live thread of `pid` in ns (schedstat: nanosecond precision,
    where /proc/PID/stat counts 10 ms ticks)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


class Container:
    """One execution environment: the bootstrap process and its Runtime API."""

    def __init__(self, function, bootstrap, env, log_path):
        self.function = function
        self.api = RuntimeApi(function)
        env = dict(env)
        env.update(
            {
                "AWS_LAMBDA_RUNTIME_API": self.api.address,
                "AWS_LAMBDA_FUNCTION_NAME": function,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(MEMORY_MB),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function}",
                "AWS_LAMBDA_LOG_STREAM_NAME": f"2026/11/25/[$LATEST]{uuid.uuid4().hex}",
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
                "LAMBDA_TASK_ROOT": os.path.dirname(bootstrap),
                "LAMBDA_RUNTIME_DIR": os.path.dirname(bootstrap),
                "_HANDLER": "bootstrap",
            }
        )
        self.log = open(log_path, "ab")
        self.last_response = None
        self.spawned_at = time.perf_counter()
        self.proc = subprocess.Popen(
            [bootstrap],
            env=env,
            cwd=os.path.dirname(bootstrap),
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.log_path = log_path

    def wait_ready(self):
        """Init duration in ms: spawn -> first `next` poll."""
        deadline = time.perf_counter() + INIT_TIMEOUT_S
        with self.api.cond:
            while self.api.first_poll is None and self.api.init_error is None:
                remaining = deadline - time.perf_counter()
                if remaining <= 0 or self.proc.poll() is not None:
                    break
                self.api.cond.wait(min(remaining, 0.05))
        if self.api.first_poll is None:
            self.fail(f"no `next` poll within {INIT_TIMEOUT_S} s (init error: {self.api.init_error})")
        return (self.api.first_poll - self.spawned_at) * 1000

    def invoke(self, event):
        """(response JSON, latency ms: event handed over -> response in)."""
        return self.collect(self.submit(event))

    def submit(self, event):
        """Queues `event` for the next `next` poll; its request id, for `collect`."""
        request_id = str(uuid.uuid4())
        self.api.events.put((request_id, json.dumps(event).encode()))
        return request_id

    def collect(self, request_id):
        """(response JSON, latency ms) of a submitted event, once it is answered."""
        deadline = time.perf_counter() + INVOKE_TIMEOUT_S
        with self.api.cond:
            while request_id not in self.api.results:
                remaining = deadline - time.perf_counter()
                if remaining <= 0 or self.proc.poll() is not None:
                    break
                self.api.cond.wait(min(remaining, 0.05))
            result = self.api.results.pop(request_id, None)
            handed = self.api.handed_at.pop(request_id, None)
        if result is None:
            self.fail(f"no answer within {INVOKE_TIMEOUT_S} s")
        if result["kind"] == "error":
            self.fail(f"invocation error: {result['body'][:500]!r}")
        return json.loads(result["body"]), (result["at"] - handed) * 1000

    def checked(self, event, check, what="invocation"):
        response, latency = self.invoke(event)
        self.last_response = response
        problem = check(response)
        if problem:
            self.fail(f"{what}: {problem}")
        return latency

    def status(self, field):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])  # kB
        raise RuntimeError(f"{field} not in /proc/{self.proc.pid}/status")

    def cpu_ms(self):
        return cpu_ns(self.proc.pid) / 1e6

    def log_bytes(self):
        """Bytes the process has written to its log so far (its writes are unbuffered
        by the time it answers)."""
        return os.path.getsize(self.log_path)

    def cpu_ms_ticks(self):
        """utime + stime of /proc/PID/stat (10 ms ticks, exited threads included)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # utime and stime are fields 14 and 15 of stat; fields[0] here is field 3.
        return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.api.close()
        self.log.close()

    def fail(self, why):
        tail = ""
        try:
            self.log.flush()
            with open(self.log_path, "rb") as f:
                tail = f.read()[-2000:].decode(errors="replace")
        except OSError:
            pass
        self.stop()
        raise SystemExit(f"bench: {self.function}: {why}\n--- log tail ---\n{tail}")


def http_event(method, path, headers, body=None, query=None):
    """An API Gateway HTTP API (payload 2.0) event, as API Gateway sends it."""
    now = time.time()
    request_id = uuid.uuid4().hex[:12] + "="
    headers = {k.lower(): v for k, v in headers.items()}
    headers.setdefault("host", "bench.execute-api.us-east-1.amazonaws.com")
    headers.setdefault("user-agent", "infra-bench")
    headers.setdefault("x-forwarded-for", "203.0.113.7")
    headers.setdefault("x-forwarded-proto", "https")
    headers.setdefault("x-forwarded-port", "443")
    if body is not None:
        headers["content-length"] = str(len(body.encode()))
    route_key = f"{method} {path}"
    event = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "bench.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "bench",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "infra-bench",
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = dict(query)
    if body is not None:
        event["body"] = body
    return event


def user(i):
    return f"bench-user-{i:03d}"


def expect_status(code):
    def check(response):
        if response.get("statusCode") == code:
            return None
        return f"answered {response.get('statusCode')}, expected {code}: {str(response.get('body'))[:300]}"

    return check


def expect_no_failures(response):
    if response.get("batchItemFailures") == []:
        return None
    return f"expected no batchItemFailures: {str(response)[:300]}"


def expect_swept(response):
    if isinstance(response.get("expiring"), int) and response.get("more") is False:
        return None
    return f"expected a complete sweep: {str(response)[:300]}"


def expect_token(response):
    # Never print the token; an error payload holds none.
    if isinstance(response.get("access_token"), str) and response.get("token_type") == "Bearer":
        return None
    return f"no access token vended: {str(response.get('error'))[:300]}"


def calendar_event(i):
    return {
        "summary": f"Bench event {i}",
        "description": "created by infra/bench",
        "start": {"dateTime": "2031-01-15T10:00:00Z"},
        "end": {"dateTime": "2031-01-15T11:00:00+00:00"},
        "attendees": [{"email": "guest@example.com"}],
    }


def sqs_event(bodies):
    """An SQS event as Lambda's event source mapping delivers it."""
    now_ms = str(int(time.time() * 1000))
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": uuid.uuid4().hex,
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": now_ms,
                    "SenderId": "AROAEXAMPLEBACKEND:backend",
                    "ApproximateFirstReceiveTimestamp": now_ms,
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench-jobs",
                "awsRegion": "us-east-1",
            }
            for body in bodies
        ]
    }


def job(sub, i):
    return json.dumps({"job_id": f"bench-{uuid.uuid4().hex}", "sub": sub, "event": calendar_event(i)})


class Flows:
    """The real request each function serves, prepared outside the timed window."""

    def __init__(self, google, users):
        self.google = google
        self.users = users
        # publisher: grant records of the table's stream (read once the other
        # functions have written to the table).
        self.stream_records = []

    def event(self, function, i):
        """(event, check): `check(response)` is None when the answer is the expected one."""
        return self.event_for(function, user(i % self.users), i)

    def event_for(self, function, sub, i):
        """The same for the user `sub`; `i` numbers the request (its Calendar event)."""
        g = self.google
        if function == "exchange":
            code = g.code(sub, BASE_SCOPES, consent=True)
            body = json.dumps({"code": code, "redirect_uri": "postmessage"})
            headers = {"content-type": "application/json", "x-requested-with": "XMLHttpRequest", "origin": ORIGIN}
            return http_event("POST", "/auth/exchange", headers, body), expect_status(200)
        if function == "upgrade":
            code = g.code(sub, BASE_SCOPES + [CALENDAR_EVENTS])
            body = json.dumps({"code": code, "scopes": [CALENDAR_EVENTS], "redirect_uri": "postmessage"})
            headers = {
                "content-type": "application/json",
                "x-requested-with": "XMLHttpRequest",
                "origin": ORIGIN,
                "authorization": f"Bearer {g.bearer(sub)}",
            }
            return http_event("POST", "/auth/upgrade", headers, body), expect_status(200)
        if function == "events":
            body = json.dumps(calendar_event(i))
            headers = {"content-type": "application/json", "authorization": f"Bearer {g.bearer(sub)}"}
            query = {"calendarId": "primary", "sendUpdates": "none"}
            return http_event("POST", "/calendar/events", headers, body, query), expect_status(201)
        if function == "account":
            return http_event("GET", "/me", {"authorization": f"Bearer {g.bearer(sub)}"}), expect_status(200)
        if function == "risc":
            token = g.risc_set("tokens-revoked", sub)
            headers = {"content-type": "application/secevent+jwt", "accept": "application/json"}
            return http_event("POST", "/risc", headers, token), expect_status(202)
        if function == "worker":
            return sqs_event([job(sub, i)]), expect_no_failures
        if function == "tokens":
            return {"sub": sub, "scopes": [CALENDAR_EVENTS]}, expect_token
        if function == "sweeper":
            # What its schedule sends.
            return {}, expect_swept
        if function == "publisher":
            if not self.stream_records:
                raise SystemExit("bench: publisher: the table's stream holds no grant record")
            record = self.stream_records[i % len(self.stream_records)]
            return {"Records": [record]}, expect_no_failures
        raise ValueError(function)

    def batch(self, first):
        """worker: one SQS batch of BATCH_JOBS jobs, each for a different user."""
        jobs = [job(user(k % self.users), first + k) for k in range(BATCH_JOBS)]
        return sqs_event(jobs), expect_no_failures


# ------------------------------------------------------------- measuring


def call_delta(before, after):
    google = {k: v - before["google"].get(k, 0) for k, v in after["google"].items()}
    google = {k: v for k, v in google.items() if v}
    aws = {k: v for k, v in (after["aws"] - before["aws"]).items() if v}
    by_op = lambda prefix: {k.split(".", 1)[1]: v for k, v in aws.items() if k.startswith(prefix)}  # noqa: E731
    ddb = by_op("DynamoDB_20120810.")
    kms = by_op("TrentService.")
    bus = by_op("AWSEvents.")
    known = ("DynamoDB_20120810.", "TrentService.", "AWSEvents.")
    return {
        "google": sum(google.values()),
        "google_by_endpoint": google,
        "dynamodb_reads": sum(v for k, v in ddb.items() if k in DDB_READS),
        "dynamodb_writes": sum(v for k, v in ddb.items() if k in DDB_WRITES),
        "dynamodb_by_operation": ddb,
        "kms": sum(kms.values()),
        "kms_by_operation": kms,
        "eventbridge": sum(bus.values()),
        "eventbridge_by_operation": bus,
        "other_aws": {k: v for k, v in aws.items() if not k.startswith(known)},
        "upstream_ms": (after["busy"] - before["busy"]) * 1000,
        # What the calls are billed as (Ledger): request units, events, stream records.
        "units": {k: v - before["units"].get(k, 0) for k, v in after["units"].items() if v - before["units"].get(k, 0)},
    }


COUNTED = ("google", "dynamodb_reads", "dynamodb_writes", "kms", "eventbridge")


def summarise_calls(deltas):
    """Per-operation call counts: mean, most common value and max of each kind."""
    if not deltas:
        return {}
    out = {}
    for kind in COUNTED:
        values = [d[kind] for d in deltas]
        out[kind] = {
            "mean": round(statistics.fmean(values), 3),
            "mode": Counter(values).most_common(1)[0][0],
            "min": min(values),
            "max": max(values),
        }
    for kind in ("google_by_endpoint", "dynamodb_by_operation", "kms_by_operation", "eventbridge_by_operation", "other_aws", "units"):
        total = Counter()
        for d in deltas:
            total.update(d.get(kind) or {})
        out[kind] = {k: round(v / len(deltas), 4) for k, v in sorted(total.items())}
    return out


def percentile(values, p):
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[rank]


def usd_per_million(billed_ms):
    """What a million invocations billed `billed_ms` each cost at MEMORY_MB on arm64."""
    gb_s = billed_ms / 1000 * MEMORY_MB / 1024
    return 1e6 * gb_s * ARM64_USD_PER_GB_S + USD_PER_MILLION_REQUESTS


def package(function, built, pkg):
    """Copies the binary to `bootstrap`, strips it, zips it as Lambda deploys it."""
    os.makedirs(pkg, exist_ok=True)
    bootstrap = os.path.join(pkg, "bootstrap")
    shutil.copy2(built, bootstrap)
    stripped_by = "profile"
    if shutil.which("strip"):
        before = os.path.getsize(bootstrap)
        subprocess.run(["strip", bootstrap], check=True, timeout=60)
        if os.path.getsize(bootstrap) != before:
            stripped_by = "strip"
    archive = os.path.join(pkg, "bootstrap.zip")
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        info = zipfile.ZipInfo("bootstrap", date_time=(2026, 1, 1, 0, 0, 0))
        info.external_attr = 0o100755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(bootstrap, "rb") as f:
            z.writestr(info, f.read(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return bootstrap, {
        "built_bytes": os.path.getsize(built),
        "stripped_bytes": os.path.getsize(bootstrap),
        "stripped_by": stripped_by,
        "zip_bytes": os.path.getsize(archive),
    }


class Counters:
    """Numbers the flows of one function take, unique across variants and rounds."""

    def __init__(self):
        self.next = 0

    def take(self):
        self.next += 1
        return self.next - 1


def cold_start(function, bootstrap, env, flows, upstreams, counter, log_path):
    """One fresh process: init, then its first invocation."""
    event, check = flows.event(function, counter.take())
    container = Container(function, bootstrap, env, log_path)
    try:
        init = container.wait_ready()
        init_cpu = container.cpu_ms()
        before = upstreams.snapshot()
        latency = container.checked(event, check, "first invocation")
        calls = call_delta(before, upstreams.snapshot())
        return {
            "init_ms": init,
            "init_cpu_ms": init_cpu,
            "first_ms": latency,
            "first_cpu_ms": container.cpu_ms() - init_cpu,
            "first_upstream_ms": calls["upstream_ms"],
            "calls": calls,
            "rss_kib": container.status("VmHWM"),
        }
    finally:
        container.stop()


def warm_runs(function, variants, env, flows, upstreams, counter, args, log_path, replay=None):
    """One container per build serving 1 + --invocations invocations (and worker's
    batch). With two builds their containers take turns, invocation by invocation
    (same user, same kind of request), so a change of load on the machine reaches
    both alike."""
    states = []
    try:
        for label, bootstrap in variants:
            # A log file per build: its growth is that build's log volume.
            own_log = log_path if len(variants) == 1 else log_path.replace(".log", f"-{label}.log")
            container = Container(function, bootstrap, env, own_log)
            states.append({"label": label, "container": container})
            st = states[-1]
            st["init"] = container.wait_ready()
            event, check = flows.event(function, counter.take())
            before = upstreams.snapshot()
            st["first"] = container.checked(event, check, "first invocation")
            fetched = call_delta(before, upstreams.snapshot())["google_by_endpoint"]
            st["first_jwks"] = fetched.get("jwks", 0) + fetched.get("risc_jwks", 0)
            st.update(latencies=[], upstream=[], deltas=[], cpu=0.0, wall=0.0, log_bytes=0, batch_log_bytes=0)
            st["ticks0"] = container.cpu_ms_ticks()
        for k in range(args.invocations):
            check_deadline()
            i = counter.take()
            for st in states if k % 2 == 0 else list(reversed(states)):
                container = st["container"]
                event, check = flows.event(function, i)
                before, cpu0, wall0 = upstreams.snapshot(), container.cpu_ms(), time.perf_counter()
                logged0 = container.log_bytes()
                latency = container.checked(event, check)
                st["cpu"] += container.cpu_ms() - cpu0
                st["log_bytes"] += container.log_bytes() - logged0
                st["wall"] += time.perf_counter() - wall0
                delta = call_delta(before, upstreams.snapshot())
                st["last_response"] = container.last_response
                st["deltas"].append(delta)
                st["latencies"].append(latency)
                st["upstream"].append(delta["upstream_ms"])
        for st in states:
            container = st["container"]
            st["ticks"] = container.cpu_ms_ticks() - st["ticks0"]
            st["hwm"] = container.status("VmHWM")
            st["rss"] = container.status("VmRSS")
        if replay is not None:
            # One more invocation of the last build, its upstream requests recorded
            # for the C floor to replay.
            event, _ = flows.event(function, counter.take())
            upstreams.capture()
            response, _ = states[-1]["container"].invoke(event)
            replay.update(calls=upstreams.captured(), response=json.dumps(response).encode())
        if function == "worker":
            # CPU per job in full batches (as the event source mapping delivers them
            # under load), the builds taking turns; then one slow batch each to show
            # the jobs of a batch run concurrently.
            for k in range(BATCH_ROUNDS):
                for st in states if k % 2 == 0 else list(reversed(states)):
                    event, check = flows.batch(counter.take() * 1000)
                    before = upstreams.snapshot()
                    cpu0, logged0 = st["container"].cpu_ms(), st["container"].log_bytes()
                    latency = st["container"].checked(event, check, "batch")
                    st["batch_cpu"] = st.get("batch_cpu", 0.0) + st["container"].cpu_ms() - cpu0
                    st["batch_log_bytes"] += st["container"].log_bytes() - logged0
                    st.setdefault("batch_latencies", []).append(latency)
                    st.setdefault("batch_deltas", []).append(call_delta(before, upstreams.snapshot()))
        for st in states:
            st["batch"] = None
            if function == "worker":
                st["batch"] = worker_batch(st["container"], flows, upstreams, counter)
                st["batch"]["cpu_ms_per_job"] = round(st["batch_cpu"] / (BATCH_ROUNDS * BATCH_JOBS), 3)
                st["batch"]["log_bytes_per_job"] = round(st["batch_log_bytes"] / (BATCH_ROUNDS * BATCH_JOBS))
                st["batch"]["cpu_batches"] = BATCH_ROUNDS
                st["batch"]["billed_ms_mean"] = round(statistics.fmean(math.ceil(x) for x in st["batch_latencies"]), 2)
                st["batch"]["p50_ms"] = round(percentile(st["batch_latencies"], 50), 2)
                st["batch"]["calls_per_batch"] = summarise_calls(st["batch_deltas"])
    finally:
        for st in states:
            st["container"].stop()
    return {st["label"]: warm_summary(st, flows) for st in states}


def warm_summary(st, flows):
    latencies, upstream, deltas = st["latencies"], st["upstream"], st["deltas"]
    # Invocations after each user has been served once in this container: the
    # steady state of the per-container caches (access tokens, JWKS).
    steady = deltas[flows.users :] or deltas
    own = [lat - up for lat, up in zip(latencies, upstream)]
    billed = [math.ceil(lat) for lat in latencies]
    jwks = sum(d["google_by_endpoint"].get("jwks", 0) + d["google_by_endpoint"].get("risc_jwks", 0) for d in deltas)
    return {
        "container_init_ms": round(st["init"], 2),
        "container_first_invocation_ms": round(st["first"], 2),
        "invocations": len(latencies),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p90_ms": round(percentile(latencies, 90), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies), 2),
        "mean_ms": round(statistics.fmean(latencies), 2),
        "upstream_p50_ms": round(percentile(upstream, 50), 2),
        "own_p50_ms": round(percentile(own, 50), 2),
        "cpu_ms_per_invocation": round(st["cpu"] / len(latencies), 3),
        # What the function wrote to stdout/stderr (logs and EMF metrics): CloudWatch
        # Logs bills its ingestion.
        "log_bytes_per_invocation": round(st["log_bytes"] / len(latencies)),
        # The same from /proc/PID/stat's 10 ms ticks: a cross-check.
        "cpu_ms_per_invocation_ticks": round(st["ticks"] / len(latencies), 3),
        "invocations_per_s": round(len(latencies) / st["wall"], 1),
        "billed_ms_mean": round(statistics.fmean(billed), 2),
        "steady_billed_ms_mean": round(statistics.fmean(billed[flows.users :] or billed), 2),
        "usd_per_million": round(usd_per_million(statistics.fmean(billed)), 4),
        "calls_per_invocation": summarise_calls(deltas),
        "steady_calls_per_invocation": summarise_calls(steady),
        # JWKS (ID token or RISC) fetches over the container's whole life.
        "jwks_fetches_in_container": st["first_jwks"] + jwks,
        "operations_before_rss": 1 + len(latencies),
        "peak_rss_kib": st["hwm"],
        "rss_kib": st["rss"],
        "batch": st["batch"],
        # The size of an answer, for the API's access log line (full cost).
        "response_bytes": len(str((st.get("last_response") or {}).get("body") or "").encode()),
        "response_status": (st.get("last_response") or {}).get("statusCode"),
    }


def worker_batch(container, flows, upstreams, counter):
    """One SQS batch of BATCH_JOBS jobs for as many users, every Calendar insert
    delayed by BATCH_INSERT_DELAY_MS: concurrent jobs finish in about one delay,
    jobs run one after the other in BATCH_JOBS delays."""
    event, check = flows.batch(counter.take() * 1000)
    upstreams.google._json(
        "POST",
        "/emulator/faults",
        {"endpoint": "calendar_insert", "kind": "latency", "latency_ms": BATCH_INSERT_DELAY_MS, "count": BATCH_JOBS},
    )
    before = upstreams.snapshot()
    latency = container.checked(event, check, "batch")
    calls = call_delta(before, upstreams.snapshot())
    jobs = len(event["Records"])
    users = len({json.loads(r["body"])["sub"] for r in event["Records"]})
    return {
        "jobs": jobs,
        "users": users,
        "insert_delay_ms": BATCH_INSERT_DELAY_MS,
        "latency_ms": round(latency, 1),
        "sequential_floor_ms": jobs * BATCH_INSERT_DELAY_MS,
        "concurrent": latency < 2 * BATCH_INSERT_DELAY_MS,
        "google_calls": calls["google"],
        "calendar_inserts": calls["google_by_endpoint"].get("calendar_insert", 0),
        "dynamodb_by_operation": calls["dynamodb_by_operation"],
        "eventbridge_by_operation": calls["eventbridge_by_operation"],
    }


def floor_once(client):
    """Spawn -> first `next` poll of a minimal C client: what the harness itself adds
    to every init figure (fork/exec, dynamic loading, connect, this server's parsing)."""
    api = RuntimeApi("floor")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [client],
        env={"AWS_LAMBDA_RUNTIME_API": api.address},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with api.cond:
            deadline = started + INIT_TIMEOUT_S
            while api.first_poll is None and time.perf_counter() < deadline:
                api.cond.wait(0.05)
        return None if api.first_poll is None else (api.first_poll - started) * 1000
    finally:
        proc.kill()
        proc.wait(timeout=5)
        api.close()


def floor_warm(client, function, env, replay, flows, counter, invocations, work_dir, log_path):
    """Own CPU per invocation of the minimal C client serving `function`'s events
    and replaying the upstream requests one of its warm invocations made (`replay`),
    answering with that invocation's answer: the same exchanges with none of the
    function's own work. Replayed writes (an event insert, a PutEvents) repeat
    harmlessly: the emulator answers a repeated event id with 409."""
    calls = []
    for k, (port, raw) in enumerate(replay["calls"]):
        path = os.path.join(work_dir, f"{function}-call-{k}.http")
        with open(path, "wb") as f:
            f.write(raw)
        calls.append(f"{port}={path}")
    answer = os.path.join(work_dir, f"{function}-answer.json")
    with open(answer, "wb") as f:
        f.write(replay["response"])
    env = dict(env, FLOOR_SERVE="1", FLOOR_CALLS=",".join(calls), FLOOR_RESPONSE=answer)
    container = Container(function, client, env, log_path)
    cpu = 0.0
    try:
        container.wait_ready()
        for _ in range(invocations):
            event, check = flows.event(function, counter.take())
            cpu0 = container.cpu_ms()
            container.checked(event, check, "floor invocation")
            cpu += container.cpu_ms() - cpu0
    finally:
        container.stop()
    return {"cpu_ms_per_invocation": round(cpu / invocations, 3), "calls": len(calls)}


def median(values):
    return round(statistics.median(values), 2) if values else None


def summarise_cold(colds):
    return {
        "cold_starts": len(colds),
        "init_ms": {
            "median": median([c["init_ms"] for c in colds]),
            "min": round(min(c["init_ms"] for c in colds), 2),
            "max": round(max(c["init_ms"] for c in colds), 2),
            "all": [round(c["init_ms"], 2) for c in colds],
        },
        "init_cpu_ms": {"median": median([c["init_cpu_ms"] for c in colds])},
        "first_invocation_ms": {
            "median": median([c["first_ms"] for c in colds]),
            "min": round(min(c["first_ms"] for c in colds), 2),
            "max": round(max(c["first_ms"] for c in colds), 2),
        },
        "first_invocation_cpu_ms": {"median": median([c["first_cpu_ms"] for c in colds])},
        "first_invocation_upstream_ms": {"median": median([c["first_upstream_ms"] for c in colds])},
        "first_invocation_calls": summarise_calls([c["calls"] for c in colds]),
        "cold_billed_ms": {"median": median([math.ceil(c["init_ms"] + c["first_ms"]) for c in colds])},
        "peak_rss_after_first_invocation_kib": {
            "median": statistics.median([c["rss_kib"] for c in colds]),
            "max": max(c["rss_kib"] for c in colds),
        },
    }


def bench_function(function, variants, env, flows, upstreams, args, logs_dir, floor, stack_floor=None):
    """`variants`: [(label, bootstrap)], one or two builds, measured side by side."""
    counter = Counters()
    log_path = os.path.join(logs_dir, f"{function}.log")
    labels = [label for label, _ in variants]
    log(f"{function}: {args.cold_starts} cold starts{' each for ' + ' and '.join(labels) if len(variants) > 1 else ''}")
    colds = {label: [] for label in labels}
    floors = []
    for k in range(args.cold_starts):
        check_deadline()
        # A B, B A, A B, ...: neither build always runs right after the other.
        for label, bootstrap in variants if k % 2 == 0 else list(reversed(variants)):
            colds[label].append(cold_start(function, bootstrap, env, flows, upstreams, counter, log_path))
        if floor:
            measured = floor_once(floor)
            if measured is not None:
                floors.append(measured)
    results = {}
    log(f"{function}: 1 + {args.invocations} invocations in one container{' per build, taking turns' if len(variants) > 1 else ''}")
    replay = {} if floor else None
    warm = warm_runs(function, variants, env, flows, upstreams, counter, args, log_path, replay)
    floor_cpu = None
    if floor:
        log(f"{function}: the C floor replaying its {len(replay['calls'])} upstream requests per invocation")
        work_dir = os.path.join(os.path.dirname(logs_dir), "floor")
        os.makedirs(work_dir, exist_ok=True)
        floor_log = os.path.join(logs_dir, f"{function}-floor.log")
        floor_invocations = min(args.invocations, FLOOR_INVOCATIONS)
        floor_cpu = floor_warm(floor, function, env, replay, flows, counter, floor_invocations, work_dir, floor_log)
    stack_cpu = None
    if floor and stack_floor:
        log(f"{function}: the Rust stack floor replaying the same requests")
        stack_log = os.path.join(logs_dir, f"{function}-stack-floor.log")
        stack_cpu = floor_warm(
            stack_floor, function, env, replay, flows, counter, floor_invocations, work_dir, stack_log
        )
    for label, bootstrap in variants:
        r = summarise_cold(colds[label])
        r["warm"] = warm[label]
        w = r["warm"]
        # The upstream calls a first invocation must make beyond a warm one (JWKS,
        # a refresh and its KMS Decrypt): median over the cold starts.
        extra = [max(0.0, c["first_upstream_ms"] - w["upstream_p50_ms"]) for c in colds[label]]
        r["first_invocation_extra_upstream_ms"] = median(extra)
        r["first_invocation_limit_ms"] = round(2 * w["p50_ms"] + statistics.median(extra), 2)
        r["cold_usd_per_million"] = round(usd_per_million(r["cold_billed_ms"]["median"]), 4)
        r["harness_floor_ms"] = median(floors)
        r["warm"]["floor"] = floor_cpu
        r["warm"]["stack_floor"] = stack_cpu
        results[label] = r
    return results


def warm_users(function, bootstrap, env, flows, logs_dir, subs=None, times=None):
    """Runs the flow once per user (`subs`, else the bench's users) so later functions
    find their grants; or `times` times, whoever the flow is for."""
    container = Container(function, bootstrap, env, os.path.join(logs_dir, f"{function}.log"))
    try:
        container.wait_ready()
        if times is not None:
            for i in range(times):
                event, check = flows.event(function, i)
                container.checked(event, check, "setup")
            return
        for i, sub in enumerate(subs if subs is not None else [user(k) for k in range(flows.users)]):
            event, check = flows.event_for(function, sub, i)
            container.checked(event, check, "setup")
    finally:
        container.stop()


def publishing(records, bootstrap, env, upstreams, logs_dir, limit=2000):
    """The stream records that make the publisher send events: most records of a
    busy table (a refresh, a repeated sign-in) change nothing a consumer sees. Also
    what a record that publishes nothing costs (one invocation each, as a quiet table
    delivers them): billed ms and log bytes, means."""
    container = Container("publisher", bootstrap, env, os.path.join(logs_dir, "publisher.log"))
    keep = []
    quiet = {"records": 0, "billed_ms": 0, "log_bytes": 0}
    try:
        container.wait_ready()
        for record in records[:limit]:
            check_deadline()
            before = upstreams.snapshot()
            logged0 = container.log_bytes()
            latency = container.checked({"Records": [record]}, expect_no_failures, "setup")
            if call_delta(before, upstreams.snapshot())["eventbridge"]:
                keep.append(record)
            else:
                quiet["records"] += 1
                quiet["billed_ms"] += math.ceil(latency)
                quiet["log_bytes"] += container.log_bytes() - logged0
    finally:
        container.stop()
    n = max(1, quiet["records"])
    return keep, {
        "records": quiet["records"],
        "billed_ms_mean": round(quiet["billed_ms"] / n, 2),
        "log_bytes_mean": round(quiet["log_bytes"] / n),
    }


# --------------------------------------------------------------------- fleet


def fleet_users(label, function, k, rounds):
    """Fresh users of one fleet size: round 0 opens the environments, not counted."""
    return [f"fleet-{label}-{function}-k{k}-r{r}" for r in range(rounds + 1)]


def new_log_text(path, offset, limit=1_000_000):
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(limit).decode(errors="replace")


def fleet_bench(function, bootstrap, env, flows, upstreams, logs_dir, label, rounds):
    """K environments of `function` (FLEET_SIZES), each its own process and Runtime API,
    handed a request for one user at the same moment, `rounds` times with a fresh
    user each. Per round: refreshes of that user at Google (the emulator's per-user
    count), KMS and DynamoDB calls (the proxy in front of moto), and which environments
    refreshed (a `RefreshSucceeded` metric in the log they wrote): the latency of those
    and of the others, which waited for the token the fleet shares."""
    out = []
    for k in FLEET_SIZES:
        log(f"fleet of {k} `{function}` environments ({label}): {rounds} rounds")
        containers = []
        rounds_out = []
        try:
            for i in range(k):
                path = os.path.join(logs_dir, f"fleet-{function}-{label}-k{k}-{i}.log")
                containers.append(Container(function, bootstrap, env, path))
            for c in containers:
                c.wait_ready()
            for r, sub in enumerate(fleet_users(label, function, k, rounds)):
                check_deadline()
                events = [flows.event_for(function, sub, 100_000 + r * 100 + i) for i in range(k)]
                offsets = [c.log_bytes() for c in containers]
                before = upstreams.snapshot()
                ids = [c.submit(event) for c, (event, _) in zip(containers, events)]
                answers = [c.collect(request_id) for c, request_id in zip(containers, ids)]
                after = upstreams.snapshot()
                for c, (response, _), (_, check) in zip(containers, answers, events):
                    problem = check(response)
                    if problem:
                        c.fail(f"fleet of {k}, round {r}: {problem}")
                refreshed = [
                    "RefreshSucceeded" in new_log_text(c.log_path, offset) for c, offset in zip(containers, offsets)
                ]
                calls = call_delta(before, after)
                tokens = {response.get("access_token") for response, _ in answers}
                refreshes = upstreams.google._json("GET", "/emulator/hits/refreshes")["by_user"].get(sub, 0)
                rounds_out.append(
                    {
                        "round": r,
                        "refreshes": refreshes,
                        "refreshed_environments": sum(refreshed),
                        "kms_calls": calls["kms"],
                        "kms_by_operation": calls["kms_by_operation"],
                        "dynamodb_by_operation": calls["dynamodb_by_operation"],
                        "distinct_tokens": len(tokens) if function == "tokens" else None,
                        "refreshed_ms": [round(lat, 2) for (_, lat), x in zip(answers, refreshed) if x],
                        "waited_ms": [round(lat, 2) for (_, lat), x in zip(answers, refreshed) if not x],
                    }
                )
        finally:
            for c in containers:
                c.stop()
        counted = rounds_out[1:] or rounds_out
        winners = [x for r in counted for x in r["refreshed_ms"]]
        losers = [x for r in counted for x in r["waited_ms"]]
        ddb = Counter()
        for r in counted:
            ddb.update(r["dynamodb_by_operation"])
        out.append(
            {
                "k": k,
                "rounds": len(counted),
                "refreshes_per_user": [r["refreshes"] for r in counted],
                "refreshed_environments": [r["refreshed_environments"] for r in counted],
                "kms_per_operation": round(sum(r["kms_calls"] for r in counted) / (k * len(counted)), 3),
                "dynamodb_per_operation": {op: round(n / (k * len(counted)), 3) for op, n in sorted(ddb.items())},
                "distinct_tokens": max((r["distinct_tokens"] or 0) for r in counted) if function == "tokens" else None,
                "refreshed_ms": spread(winners),
                "waited_ms": spread(losers),
                "first_round": rounds_out[0] if len(rounds_out) > 1 else None,
                "all_rounds": rounds_out,
            }
        )
    return out


def spread(latencies):
    """Median, 99th percentile (nearest rank) and max of some latencies, ms."""
    if not latencies:
        return {"p50": None, "p99": None, "max": None, "n": 0}
    return {
        "p50": median(latencies),
        "p99": round(percentile(latencies, 99), 2),
        "max": round(max(latencies), 2),
        "n": len(latencies),
    }


def fleet_check(label, function, sizes):
    """The fleet's target: one refresh per user for every K."""
    per_user = [n for size in sizes for n in size["refreshes_per_user"]]
    worst = {size["k"]: max(size["refreshes_per_user"]) for size in sizes}
    return (
        f"{function} ({label}): 1 refresh per user at Google for K = {', '.join(str(k) for k in worst)}",
        bool(per_user) and all(n == 1 for n in per_user),
        "most per user: " + ", ".join(f"K={k}: {n}" for k, n in worst.items()),
    )


FLEET_COLUMNS = [
    ("k", "K"),
    ("refreshes", "refreshes per user"),
    ("refreshers", "environments that refreshed"),
    ("kms", "KMS calls per op"),
    ("ddb", "DynamoDB calls per op"),
    ("winner", "refreshing environment p50 / p99 / max ms"),
    ("losers", "waiting environments p50 / p99 / max ms"),
]


def fleet_rows(sizes):
    def span(values):
        lo, hi = min(values), max(values)
        return str(lo) if lo == hi else f"{lo}-{hi}"

    def ms(d):
        return "-" if d["p50"] is None else f"{d['p50']:.1f} / {d['p99']:.1f} / {d['max']:.1f}"

    rows = []
    for size in sizes:
        rows.append(
            {
                "k": str(size["k"]),
                "refreshes": span(size["refreshes_per_user"]),
                "refreshers": span(size["refreshed_environments"]),
                "kms": f"{size['kms_per_operation']:g}",
                "ddb": ", ".join(f"{op} {n:g}" for op, n in size["dynamodb_per_operation"].items()) or "0",
                "winner": ms(size["refreshed_ms"]),
                "losers": ms(size["waited_ms"]),
            }
        )
    return rows


# -------------------------------------------------------------- setup


def create_resources(moto, root):
    """The table (with its indexes and stream), the KMS key and the event bus."""
    import boto3  # only for setup; from .venv
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    # CloudFormation short forms (!Ref, !GetAtt, ...) are irrelevant here.
    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    with open(os.path.join(root, "template.yaml")) as f:
        props = yaml.load(f, Loader=Loader)["Resources"]["TokensTable"]["Properties"]
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    ddb = session.client("dynamodb", endpoint_url=moto)
    kms = session.client("kms", endpoint_url=moto)
    name = f"tokens-bench-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=name,
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        BillingMode=props["BillingMode"],
        **devstack.table_extras(props),
    )
    ttl = props["TimeToLiveSpecification"]
    ddb.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": bool(ttl["Enabled"])},
    )
    key = kms.create_key(Description="tokens (bench)")["KeyMetadata"]["KeyId"]
    alias = f"alias/{name}"
    kms.create_alias(AliasName=alias, TargetKeyId=key)
    bus = f"{name}-events"
    session.client("events", endpoint_url=moto).create_event_bus(Name=bus)
    return name, alias, bus, props


def template_settings(root):
    """From template.yaml: each function's memory size without a capacity provider (the
    `!If` of the Globals falls back to it) and the HTTP API's access log format."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def short_tag(loader, suffix, node):
        if isinstance(node, yaml.SequenceNode):
            return {f"Fn::{suffix}": loader.construct_sequence(node, deep=True)}
        return None

    Loader.add_multi_constructor("!", short_tag)
    with open(os.path.join(root, "template.yaml")) as f:
        doc = yaml.load(f, Loader=Loader)

    def memory(value):
        if isinstance(value, dict) and "Fn::If" in value:
            return memory(value["Fn::If"][2])
        return int(value) if isinstance(value, (int, str)) and str(value).isdigit() else None

    default = memory(((doc.get("Globals") or {}).get("Function") or {}).get("MemorySize")) or MEMORY_MB
    resources = doc.get("Resources") or {}
    per_function = {}
    for function in FUNCTIONS:
        props = (resources.get(f"{function.capitalize()}Function") or {}).get("Properties") or {}
        per_function[function] = memory(props.get("MemorySize")) or default
    api = ((resources.get("HttpApi") or {}).get("Properties") or {}).get("AccessLogSettings") or {}
    return {"memory_mb": default, "function_memory_mb": per_function, "access_log_format": api.get("Format")}


def aws_json(moto, target, body):
    """One call of an AWS JSON protocol to moto, wire format kept (no boto3 decoding)."""
    status, _, data = request(
        moto,
        "POST",
        "/",
        json.dumps(body).encode(),
        {
            "X-Amz-Target": target,
            "Content-Type": "application/x-amz-json-1.0",
            "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, "
            "SignedHeaders=host, Signature=0",
        },
    )
    if status != 200:
        raise RuntimeError(f"moto {target}: HTTP {status} {data[:200]!r}")
    return json.loads(data)


def lambda_stream_record(record, arn):
    """A record of moto's stream in the shape Lambda's event source mapping delivers it:
    exactly the members Lambda sends, the creation time in whole seconds and the record's
    size (moto's is the size of its JSON)."""
    change = record["dynamodb"]
    out = {
        "eventID": record.get("eventID") or uuid.uuid4().hex,
        "eventName": record["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion") or "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": int(float(change.get("ApproximateCreationDateTime") or time.time())),
            "Keys": change["Keys"],
            "SequenceNumber": str(change["SequenceNumber"]),
            "SizeBytes": sum(item_size(change.get(k)) for k in ("Keys", "NewImage", "OldImage")),
            "StreamViewType": change.get("StreamViewType") or "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": arn,
    }
    for image in ("NewImage", "OldImage"):
        if change.get(image):
            out["dynamodb"][image] = change[image]
    return out


def stream_records(moto, table):
    """The grant records of the table's stream, in the shape Lambda's event source
    mapping delivers them (lambda_stream_record)."""
    arn = aws_json(moto, "DynamoDB_20120810.DescribeTable", {"TableName": table})["Table"]["LatestStreamArn"]
    stream = aws_json(moto, "DynamoDBStreams_20120810.DescribeStream", {"StreamArn": arn})["StreamDescription"]
    records = []
    for shard in stream["Shards"]:
        iterator = aws_json(
            moto,
            "DynamoDBStreams_20120810.GetShardIterator",
            {"StreamArn": arn, "ShardId": shard["ShardId"], "ShardIteratorType": "TRIM_HORIZON"},
        ).get("ShardIterator")
        for _ in range(1000):
            if not iterator:
                break
            out = aws_json(moto, "DynamoDBStreams_20120810.GetRecords", {"ShardIterator": iterator, "Limit": 1000})
            if not out.get("Records"):
                break
            records += out["Records"]
            iterator = out.get("NextShardIterator")
    # The template's stream filter: grant items only.
    return [lambda_stream_record(r, arn) for r in records if r["dynamodb"]["Keys"]["pk"]["S"].startswith("grant#")]


# -------------------------------------------------------------- report


MAIN_COLUMNS = [
    ("function", "function"),
    ("init", "init ms (median)"),
    ("floor", "C floor ms"),
    ("init_cpu", "init CPU ms"),
    ("first", "1st invoke ms"),
    ("limit", "1st invoke limit ms"),
    ("p50", "warm p50 ms"),
    ("p99", "warm p99 ms"),
    ("cpu", "CPU ms/inv"),
    ("stack_cpu", "stack floor CPU ms/inv"),
    ("above", "above the stack floor ms"),
    ("floor_cpu", "C floor CPU ms/inv"),
    ("log", "log B/inv"),
    ("rss", "peak RSS MiB"),
    ("zip", "zip MB"),
    ("warm_usd", "$/M warm"),
    ("cold_usd", "$/M cold"),
]

# BENCHMARKS.md shows the same figures one concern at a time.
COLD_COLUMNS = [
    ("function", "function"),
    ("init", "init ms (median)"),
    ("floor", "C floor ms"),
    ("init_cpu", "init CPU ms"),
    ("first", "1st invoke ms"),
    ("limit", "1st invoke limit ms"),
]
WARM_COLUMNS = [
    ("function", "function"),
    ("p50", "warm p50 ms"),
    ("p99", "warm p99 ms"),
    ("cpu", "own CPU ms/inv"),
    ("stack_cpu", "stack floor CPU ms/inv"),
    ("above", "above the stack floor ms"),
    ("floor_cpu", "C floor CPU ms/inv"),
]
FOOTPRINT_COLUMNS = [
    ("function", "function"),
    ("rss", "peak RSS MiB"),
    ("zip", "zip MB"),
    ("log", "log B/inv"),
]
COST_COLUMNS = [
    ("function", "function"),
    ("warm_usd", "$/M warm"),
    ("cold_usd", "$/M cold"),
]

CALL_COLUMNS = [
    ("function", "function"),
    ("google", "Google/op"),
    ("ddb", "DDB read+write/op"),
    ("kms", "KMS/op"),
    ("bus", "EventBridge/op"),
    ("first_calls", "1st invocation: Google, DDB r+w, KMS"),
    ("jwks", "JWKS fetches/container"),
]

COMPARE_COLUMNS = [
    ("function", "function"),
    ("init", "init ms"),
    ("init_cpu", "init CPU ms"),
    ("first", "1st invoke ms"),
    ("first_cpu", "1st invoke CPU ms"),
    ("p50", "warm p50 ms"),
    ("cpu", "CPU ms/inv"),
    ("log", "log B/inv"),
    ("rss", "peak RSS MiB"),
    ("zip", "zip MB"),
]


def fmt_calls(c):
    return f"{c['mode']}" if c["mean"] == c["mode"] else f"{c['mode']} (mean {c['mean']:g})"


def figures(r):
    """The headline figures of one function's result, formatted."""
    w = r["warm"]
    calls = w["calls_per_invocation"]
    first = r["first_invocation_calls"]
    return {
        "init": f"{r['init_ms']['median']:.2f}",
        "floor": f"{r['harness_floor_ms']:.2f}" if r.get("harness_floor_ms") is not None else "-",
        "init_cpu": f"{r['init_cpu_ms']['median']:.2f}",
        "first": f"{r['first_invocation_ms']['median']:.1f}",
        "first_cpu": f"{r['first_invocation_cpu_ms']['median']:.2f}",
        "limit": f"{r['first_invocation_limit_ms']:.1f}",
        "p50": f"{w['p50_ms']:.2f}",
        "p99": f"{w['p99_ms']:.2f}",
        "cpu": f"{w['cpu_ms_per_invocation']:.2f}",
        "stack_cpu": f"{w['stack_floor']['cpu_ms_per_invocation']:.2f}" if w.get("stack_floor") else "-",
        "floor_cpu": f"{w['floor']['cpu_ms_per_invocation']:.2f}" if w.get("floor") else "-",
        "above": f"{w['cpu_ms_per_invocation'] - w['stack_floor']['cpu_ms_per_invocation']:.2f}"
        if w.get("stack_floor")
        else "-",
        "log": str(w["log_bytes_per_invocation"]),
        "rss": f"{w['peak_rss_kib'] / 1024:.1f}",
        "zip": f"{r['size']['zip_bytes'] / 1e6:.2f}",
        "warm_usd": f"{w['usd_per_million']:.3f}",
        "cold_usd": f"{r['cold_usd_per_million']:.3f}",
        "google": fmt_calls(calls["google"]),
        "ddb": f"{fmt_calls(calls['dynamodb_reads'])} + {fmt_calls(calls['dynamodb_writes'])}",
        "kms": fmt_calls(calls["kms"]),
        "bus": fmt_calls(calls["eventbridge"]),
        "first_calls": f"{first['google']['mode']}, {first['dynamodb_reads']['mode']} + "
        f"{first['dynamodb_writes']['mode']}, {first['kms']['mode']}",
        "jwks": str(w["jwks_fetches_in_container"]),
    }


def rows(functions, columns):
    out = []
    for function in FUNCTIONS:
        r = functions.get(function)
        if r:
            row = figures(r)
            row["function"] = function
            out.append({k: row[k] for k, _ in columns})
    return out


def compare_rows(before, after):
    out = []
    for function in FUNCTIONS:
        if function not in before or function not in after:
            continue
        b, a = figures(before[function]), figures(after[function])
        row = {"function": function}
        for k, _ in COMPARE_COLUMNS[1:]:
            row[k] = f"{b[k]} → {a[k]}"
        out.append(row)
    return out


def text_table(data, columns):
    widths = {k: max([len(title)] + [len(row[k]) for row in data]) for k, title in columns}
    lines = ["  ".join(title.ljust(widths[k]) for k, title in columns)]
    lines.append("  ".join("-" * widths[k] for k, _ in columns))
    for row in data:
        lines.append("  ".join(row[k].ljust(widths[k]) for k, _ in columns))
    return "\n".join(lines)


def markdown_table(data, columns):
    lines = ["| " + " | ".join(title for _, title in columns) + " |"]
    lines.append("|" + "|".join("---" if k in ("function", "target", "verdict", "operation") else "---:" for k, _ in columns) + "|")
    for row in data:
        lines.append("| " + " | ".join(row[k] for k, _ in columns) + " |")
    return "\n".join(lines)


def google_calls_before(function, before):
    """(warm mean, first invocation's most common count) of Google calls of the build
    before: the --compare build of this run, else 165b75f's (GOOGLE_CALLS_BEFORE)."""
    r = (before or {}).get(function)
    if r:
        return (
            r["warm"]["calls_per_invocation"]["google"]["mean"],
            r["first_invocation_calls"]["google"]["mode"],
            "the --compare build",
        )
    if function in GOOGLE_CALLS_BEFORE:
        return (*GOOGLE_CALLS_BEFORE[function], "165b75f")
    return None


def targets(results, before=None):
    """Each target this run can check, with the measured value: what users can feel
    (init, the first invocation of a fresh container, memory, zip size) and no more
    Google calls than before. Own CPU per invocation is reported without a target."""
    checks = []
    fns = results["functions"]
    for function in FUNCTIONS:
        r = fns.get(function)
        if not r:
            continue
        w = r["warm"]
        was = google_calls_before(function, before)
        if was:
            mean, first = w["calls_per_invocation"]["google"]["mean"], r["first_invocation_calls"]["google"]["mode"]
            checks.append(
                (
                    f"{function}: no more Google calls per operation than before",
                    mean <= was[0] + 0.0005 and first <= was[1],
                    f"warm {mean:g} per op, first invocation {first}; before ({was[2]}): {was[0]:g} and {was[1]}",
                )
            )
        first, limit = r["first_invocation_ms"]["median"], r["first_invocation_limit_ms"]
        checks.append(
            (
                f"{function}: 1st invocation <= 2 x warm p50 + the upstream calls only it makes",
                first <= limit,
                f"{first} ms <= 2 x {w['p50_ms']} + {r['first_invocation_extra_upstream_ms']} ms = {limit} ms",
            )
        )
        floor = r.get("harness_floor_ms")
        checks.append(
            (
                f"{function}: init <= 5 ms (median)",
                r["init_ms"]["median"] <= 5,
                f"{r['init_ms']['median']} ms; harness floor {floor} ms",
            )
        )
        mib = w["peak_rss_kib"] / 1024
        checks.append((f"{function}: peak RSS <= 12 MiB after {w['operations_before_rss']} ops", mib <= 12, f"{mib:.1f} MiB"))
        checks.append(
            (
                f"{function}: zipped bootstrap <= 3.5 MB",
                r["size"]["zip_bytes"] <= 3_500_000,
                f"{r['size']['zip_bytes']} B",
            )
        )
    ev = fns.get("events")
    if ev:
        c = ev["warm"]["steady_calls_per_invocation"]
        ok = c["google"]["max"] == 1 and c["dynamodb_reads"]["max"] <= 1 and c["kms"]["max"] == 0
        checks.append(
            (
                "events (warm, token cached): 1 Google call, <= 1 DynamoDB read, no KMS call",
                ok,
                f"Google max {c['google']['max']}, DDB reads max {c['dynamodb_reads']['max']}, KMS max {c['kms']['max']}",
            )
        )
    ex = fns.get("exchange")
    if ex:
        c = ex["warm"]["calls_per_invocation"]
        token_calls = c["google_by_endpoint"].get("token_authorization_code", 0)
        jwks = ex["warm"]["jwks_fetches_in_container"]
        ok = token_calls == 1 and c["google"]["max"] == 1 and jwks == 1
        checks.append(
            (
                "exchange: 1 Google token call per op, JWKS fetched once per container",
                ok,
                f"token calls/op {token_calls}, Google calls/op max {c['google']['max']}, JWKS fetches {jwks}",
            )
        )
    wk = fns.get("worker")
    if wk:
        w = wk["warm"]
        c = w["steady_calls_per_invocation"]["google"]
        checks.append(
            ("worker: Google calls per warm job = 1", c["min"] == c["max"] == 1, f"min {c['min']}, max {c['max']}")
        )
        b = w.get("batch")
        if b:
            checks.append(
                (
                    f"worker: a batch of {b['jobs']} jobs for {b['users']} users processed concurrently",
                    b["concurrent"] and b["users"] == b["jobs"] and b["calendar_inserts"] == b["jobs"],
                    f"{b['latency_ms']} ms with every insert delayed {b['insert_delay_ms']} ms "
                    f"(one after the other: >= {b['sequential_floor_ms']} ms)",
                )
            )
    tk = fns.get("tokens")
    if tk:
        w = tk["warm"]
        c = w["steady_calls_per_invocation"]
        checks.append(
            (
                "tokens: a cached vend makes no Google and no KMS call",
                c["google"]["max"] == 0 and c["kms"]["max"] == 0,
                f"Google max {c['google']['max']}, KMS max {c['kms']['max']} per vend once each user's token is cached",
            )
        )
    return checks


# ------------------------------------------------------- full cost per operation

# The operations whose full cost is reported: (name, function, jobs per batch, or None
# for one invocation per operation, and whether only the invocations after each user's
# first in the container count: the steady state of its caches).
OPERATIONS = [
    ("sign-in (`/auth/exchange`)", "exchange", None, False),
    ("Calendar event (`/calendar/events`)", "events", None, False),
    ("job (`worker`, alone in its batch)", "worker", 1, False),
    ("job (`worker`, batches of 10)", "worker", BATCH_JOBS, False),
    ("vend (`tokens`, cached)", "tokens", None, True),
]
REQUEST_ID = "8f5b9c1e-3a2d-4c6b-9e7f-0a1b2c3d4e5f"


def platform_log_bytes(billed_ms, rss_mib, memory_mb):
    """Lambda's own START, END and REPORT lines of one invocation (text log format, as
    the template's functions log), at their real length."""
    lines = [
        f"START RequestId: {REQUEST_ID} Version: $LATEST\n",
        f"END RequestId: {REQUEST_ID}\n",
        f"REPORT RequestId: {REQUEST_ID}\tDuration: {max(billed_ms - 0.5, 0):.2f} ms\tBilled Duration:"
        f" {math.ceil(billed_ms)} ms\tMemory Size: {memory_mb} MB\tMax Memory Used: {math.ceil(rss_mib)} MB\t\n",
    ]
    return sum(len(line.encode()) for line in lines)


def access_log_bytes(log_format, route, status, response_bytes, latency_ms):
    """The HTTP API's access log line of one request, in the template's format."""
    method, _, path = route.partition(" ")
    values = {
        "requestId": "Ab1CdEfGhIjKlMn=",
        "identity.sourceIp": "203.0.113.7",
        "requestTime": "03/Dec/2026:19:12:12 +0000",
        "httpMethod": method,
        "routeKey": route,
        "path": path,
        "status": str(status),
        "protocol": "HTTP/1.1",
        "responseLength": str(response_bytes),
        "integrationLatency": str(math.ceil(latency_ms)),
        "integrationStatus": "200",
        "integrationErrorMessage": "-",
    }
    line = re.sub(r"\$context\.([A-Za-z.]+)", lambda m: values.get(m.group(1), "-"), log_format or "")
    return len(line.encode()) + 1


ROUTES = {"exchange": "POST /auth/exchange", "events": "POST /calendar/events"}


def operation_use(function, r, per_batch, steady, memory_mb, access_format):
    """What one operation uses of every service, from the warm container's invocations
    (means over all of them, or with `steady` over those after each user's first, as
    the proxies counted them)."""
    w = r["warm"]
    rss = w["peak_rss_kib"] / 1024
    if per_batch == BATCH_JOBS:
        b = w["batch"]
        calls, jobs, billed = b["calls_per_batch"], b["jobs"], b["billed_ms_mean"]
        own_log = b["log_bytes_per_job"] * jobs
    elif steady:
        calls, jobs, billed = w["steady_calls_per_invocation"], 1, w["steady_billed_ms_mean"]
        own_log = w["log_bytes_per_invocation"]
    else:
        calls, jobs, billed = w["calls_per_invocation"], 1, w["billed_ms_mean"]
        own_log = w["log_bytes_per_invocation"]
    units = calls.get("units") or {}
    use = {
        "lambda_requests": 1 / jobs,
        "billed_ms": billed / jobs,
        "rru": units.get("ddb_rru", 0) / jobs,
        "wru": (units.get("ddb_wru", 0) + units.get("ddb_wru_index", 0)) / jobs,
        "wru_index": units.get("ddb_wru_index", 0) / jobs,
        "kms": calls["kms"]["mean"] / jobs,
        "eventbridge_events": units.get("eventbridge_events", 0) / jobs,
        "http_api": 1 if function in ROUTES else 0,
        "log_bytes": (own_log + platform_log_bytes(billed, rss, memory_mb)) / jobs,
        "stream_records": units.get("stream_grant_records", 0) / jobs,
        # The backend's SendMessage of the job, and Lambda's poller's ReceiveMessage and
        # DeleteMessageBatch for its batch (each far below a 64 KB chunk).
        "sqs": (1 + 2 / jobs) if function == "worker" else 0,
    }
    if function in ROUTES:
        use["log_bytes"] += access_log_bytes(
            access_format, ROUTES[function], w.get("response_status") or 200, w.get("response_bytes") or 0, w["p50_ms"]
        )
    return use


def operation_usd(use, memory_mb, stream_invocation_usd):
    """Dollars per million operations, per service, and their total."""
    million = 1e6
    usd = {
        "lambda": million
        * (use["lambda_requests"] * PRICES["lambda_request"] + use["billed_ms"] / 1000 * memory_mb / 1024 * PRICES["lambda_gb_s"]),
        "dynamodb": million * (use["rru"] * PRICES["ddb_rru"] + use["wru"] * PRICES["ddb_wru"]),
        "kms": million * use["kms"] * PRICES["kms_request"],
        "sqs": million * use["sqs"] * PRICES["sqs_request"],
        "eventbridge": million * use["eventbridge_events"] * PRICES["eventbridge_event"],
        "api_gateway": million * use["http_api"] * PRICES["http_api_request"],
        "logs": million * use["log_bytes"] / 2**30 * PRICES["logs_gb"],
        "stream": million * use["stream_records"] * stream_invocation_usd if stream_invocation_usd is not None else 0.0,
    }
    usd["total"] = sum(usd.values())
    return {k: round(v, 4) for k, v in usd.items()}


def full_costs(fns, quiet_publisher, memory_mb, access_format):
    """The full cost of each operation of OPERATIONS this run measured."""
    stream_usd = None
    pub = fns.get("publisher")
    if quiet_publisher and quiet_publisher.get("records"):
        billed = quiet_publisher["billed_ms_mean"]
        rss = pub["warm"]["peak_rss_kib"] / 1024 if pub else 8
        logs = quiet_publisher["log_bytes_mean"] + platform_log_bytes(billed, rss, memory_mb)
        stream_usd = (
            PRICES["lambda_request"]
            + billed / 1000 * memory_mb / 1024 * PRICES["lambda_gb_s"]
            + logs / 2**30 * PRICES["logs_gb"]
        )
    out = []
    for name, function, per_batch, steady in OPERATIONS:
        r = fns.get(function)
        if not r or (per_batch == BATCH_JOBS and not r["warm"].get("batch")):
            continue
        use = operation_use(function, r, per_batch, steady, memory_mb, access_format)
        out.append(
            {
                "operation": name,
                "function": function,
                "use": {k: round(v, 4) for k, v in use.items()},
                "usd_per_million": operation_usd(use, memory_mb, stream_usd),
            }
        )
    return {
        "prices": dict(PRICES, as_of=PRICES_AS_OF, region="us-east-1"),
        "memory_mb": memory_mb,
        "publisher_per_stream_record_usd": stream_usd,
        "operations": out,
    }


USE_COLUMNS = [
    ("operation", "operation"),
    ("lambda_requests", "Lambda invocations"),
    ("billed_ms", "billed ms"),
    ("rru", "DynamoDB RRU"),
    ("wru", "DynamoDB WRU (of which index)"),
    ("kms", "KMS requests"),
    ("sqs", "SQS requests"),
    ("eventbridge_events", "EventBridge events"),
    ("http_api", "API requests"),
    ("log_bytes", "log bytes"),
    ("stream_records", "grant stream records"),
]
USD_COLUMNS = [
    ("operation", "operation"),
    ("lambda", "Lambda"),
    ("dynamodb", "DynamoDB"),
    ("kms", "KMS"),
    ("sqs", "SQS"),
    ("eventbridge", "EventBridge"),
    ("api_gateway", "API Gateway"),
    ("logs", "CloudWatch Logs"),
    ("stream", "stream → publisher"),
    ("total", "total"),
]


def fmt_number(v):
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}".rstrip("0").rstrip(".")


def use_rows(costs):
    rows = []
    for op in costs["operations"]:
        u = op["use"]
        row = {k: fmt_number(u[k]) for k, _ in USE_COLUMNS[1:]}
        row["wru"] = f"{fmt_number(u['wru'])} ({fmt_number(u['wru_index'])})"
        row["operation"] = op["operation"]
        rows.append(row)
    return rows


def usd_rows(costs):
    rows = []
    for op in costs["operations"]:
        row = {k: f"{op['usd_per_million'][k]:.3f}" for k, _ in USD_COLUMNS[1:]}
        row["total"] = f"**{op['usd_per_million']['total']:.3f}**"
        row["operation"] = op["operation"]
        rows.append(row)
    return rows


def usd_compare_rows(before, after):
    """Each operation's dollars per million, before → after (operations both measured)."""
    was = {op["operation"]: op for op in before["operations"]}
    rows = []
    for op in after["operations"]:
        b = was.get(op["operation"])
        if not b:
            continue
        row = {"operation": op["operation"]}
        for k, _ in USD_COLUMNS[1:]:
            row[k] = f"{b['usd_per_million'][k]:.3f} → {op['usd_per_million'][k]:.3f}"
        rows.append(row)
    return rows


def criterion_estimates(directory):
    """criterion's estimates (ns per verification) turned into verifications/s."""
    with open(os.path.join(directory, "new", "estimates.json")) as f:
        estimates = json.load(f)
    # criterion reports the slope of its linear sampling as "time"; fall back to the mean.
    point = estimates.get("slope") or estimates["mean"]
    ns = point["point_estimate"]
    low, high = point["confidence_interval"]["lower_bound"], point["confidence_interval"]["upper_bound"]
    return {
        "benchmark": "id_token/verify_warm_jwks",
        "ns_per_verification": round(ns, 1),
        "ns_confidence_interval": [round(low, 1), round(high, 1)],
        "median_ns": round(estimates["median"]["point_estimate"], 1),
        "verifications_per_s": round(1e9 / ns),
        "verifications_per_s_interval": [round(1e9 / high), round(1e9 / low)],
    }


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": os.uname().release,
        "arch": os.uname().machine,
        "load_average_at_start": LOAD_AT_START,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


# BENCHMARKS.md is written by hand except between these two lines, which every full run
# rewrites (a file without them gets the block at its top, the rest kept below it).
BEGIN_MARK = "<!-- infra/bench writes from here to its end mark: edit infra/lib/bench.py, not this block -->"
END_MARK = "<!-- infra/bench: end of the block it writes -->"


def target_rows(checks):
    """The checks grouped by target: one row each, naming the functions that missed it."""
    grouped = {}
    for text, ok, measured in checks:
        who, _, target = text.partition(": ")
        if who not in FUNCTIONS:
            who, target = None, text
        grouped.setdefault(target, []).append((who, ok, measured))
    rows = []
    for target, results in grouped.items():
        if len(results) == 1:
            who, ok, measured = results[0]
            name = f"{who}: {target}" if who else target
            rows.append({"target": name, "verdict": f"{'met' if ok else '**missed**'} ({measured})"})
            continue
        missed = [(who, measured) for who, ok, measured in results if not ok]
        if missed:
            verdict = "**missed** by " + "; ".join(f"{who} ({measured})" for who, measured in missed)
        else:
            verdict = f"met by all {len(results)}"
        rows.append({"target": target, "verdict": verdict})
    return rows


def sweeper_note(fns):
    sw = fns.get("sweeper")
    if not sw:
        return []
    c = sw["warm"]["calls_per_invocation"]["dynamodb_by_operation"]
    parts = ", ".join(f"{n:g} {op}" for op, n in c.items())
    return [
        f"`sweeper`: its schedule's `{{}}` over the grants of the bench's {sw.get('grants', 'users')}, none of them due"
        f" (every run of one day reads that day's buckets of the sweep index): {parts} per run.",
        "",
    ]


def cost_section(results, compare):
    """The full cost per million operations of this run, and before → after from a
    --compare run (this one, or the one given with --before-after)."""
    costs = (results.get("costs") or {}).get(results.get("after_label", "after"))
    if not costs or not costs["operations"]:
        return []
    p = costs["prices"]
    lines = [
        "### Full cost per million operations in this run",
        "",
        f"Every service an operation touches, counted from the calls the bench observes, at list prices"
        f" (us-east-1, as of {p['as_of']}, no free tier): Lambda ${p['lambda_request'] * 1e6:.2f} per million"
        f" requests and ${p['lambda_gb_s']} per GB-s (arm64, {costs['memory_mb']} MB, billed ms rounded up);"
        f" DynamoDB on-demand ${p['ddb_rru'] * 1e6:.3f} per million read and ${p['ddb_wru'] * 1e6:.3f} per million"
        f" write request units; KMS ${p['kms_request'] * 1e4:.2f} per 10,000 requests; SQS"
        f" ${p['sqs_request'] * 1e6:.2f} per million requests (64 KB chunks); EventBridge"
        f" ${p['eventbridge_event'] * 1e6:.2f} per million custom events (64 KB chunks); API Gateway HTTP API"
        f" ${p['http_api_request'] * 1e6:.2f} per million requests; CloudWatch Logs ${p['logs_gb']:.2f} per GB"
        " ingested.",
        "",
        "What one operation uses (means over the warm container's invocations, each user's first one included,"
        " except the cached vend's: those after each user's first):",
        "",
        markdown_table(use_rows(costs), USE_COLUMNS),
        "",
        "Dollars per million operations:",
        "",
        markdown_table(usd_rows(costs), USD_COLUMNS),
        "",
    ]
    if compare and compare.get("costs"):
        labels = compare.get("labels") or ["before", "after"]
        b, a = (compare["costs"].get(label) for label in labels)
        if b and a:
            lines += [
                f"Before → after this round, dollars per million operations (`{compare['command']}`,"
                f" {compare['finished_at']}: the build of {compare.get('before_commit') or labels[0]} and this"
                " round's, side by side in one run):",
                "",
                markdown_table(usd_compare_rows(b, a), USD_COLUMNS),
                "",
            ]
    lines += [
        "Counted so: **Lambda** one request per invocation (a tenth per job in a batch of ten) and its"
        " billed duration (each invocation's latency here, rounded up to the ms); **DynamoDB** each call"
        " in request units from the sizes of the items it reads or changes (a read 1 per 4 KB, half when"
        " eventually consistent; a write 1 per 1 KB of the larger of the item before and after it, plus"
        " 1 per 1 KB of each index entry it puts or deletes: 1 for an entry added or removed, 2 for a"
        " changed index key; a failed condition 1 per 1 KB of the item checked), from the proxy's copy of"
        " every item written through it"
        + (
            f" (compared with moto's table at the end: {results['ledger']['differ']} of"
            f" {results['ledger']['items']} items differ)"
            if results.get("ledger")
            else ""
        )
        + "; **KMS** every request; **SQS** per job the backend's `SendMessage`, and per batch Lambda's"
        " `ReceiveMessage` and `DeleteMessageBatch` (the event source mapping's polls of an empty queue"
        " are a fixed cost, left out); **EventBridge** each accepted entry per 64 KB; **API Gateway** one"
        " HTTP API request per HTTP operation; **CloudWatch Logs** what the function wrote, Lambda's"
        " `START`/`END`/`REPORT` lines and the API's access log line; **stream → publisher** each grant"
        " record the operation wrote (a change of a grant item), as one `publisher` invocation that"
        " publishes nothing (a quiet table's batch of one record: request, duration and logs, measured);"
        " reading the stream is free for Lambda. Left out: Secrets Manager (one read per cold start),"
        " DynamoDB's own use of the table's KMS key (cached by DynamoDB), storage, data transfer, Google.",
        "",
    ]
    return lines


def fleet_section(results, compare):
    fleet = (results.get("fleet") or {}).get(results.get("after_label", "after"))
    if not fleet:
        return []
    rounds = next(iter(fleet.values()))[0]["rounds"]
    lines = [
        "### One refresh for the whole fleet in this run",
        "",
        f"K environments of one function (each a process with its own Runtime API, as Lambda runs K"
        f" environments) handed a request for the same user at the same moment; {rounds} rounds per K,"
        " each with a fresh user (and one round before them, not counted, that opens the environments)."
        " Refreshes per user at Google (the emulator's per-user count), KMS and DynamoDB calls per"
        " operation (the proxy in front of moto), and the latency of the environment that refreshed and of"
        " those that waited for the token it shares through the table. `tokens` vends a Calendar token;"
        " `worker` gets a batch of one job each.",
        "",
    ]
    for function, sizes in fleet.items():
        lines += [f"`{function}`:", "", markdown_table(fleet_rows(sizes), FLEET_COLUMNS), ""]
    was = None
    if compare and compare.get("fleet"):
        labels = compare.get("labels") or ["before", "after"]
        was = compare["fleet"].get(labels[0])
    if was:
        out = []
        for function, sizes in fleet.items():
            before = {size["k"]: size for size in was.get(function) or []}
            for size in sizes:
                b = before.get(size["k"])
                if not b:
                    continue
                out.append(
                    {
                        "function": function,
                        "k": str(size["k"]),
                        "refreshes": f"{max(b['refreshes_per_user'])} → {max(size['refreshes_per_user'])}",
                        "kms": f"{b['kms_per_operation']:g} → {size['kms_per_operation']:g}",
                    }
                )
        if out:
            lines += [
                f"Before → after this round (most refreshes per user in a round; `{compare['command']}`):",
                "",
                markdown_table(
                    out,
                    [("function", "function"), ("k", "K"), ("refreshes", "refreshes per user"), ("kms", "KMS calls per op")],
                ),
                "",
            ]
    return lines


def before_after_section(compare):
    if not compare or not compare.get("variants"):
        return []
    labels = compare.get("labels") or ["before", "after"]
    data = compare_rows(compare["variants"][labels[0]], compare["variants"][labels[1]])
    if not data:
        return []
    m = compare["machine"]
    return [
        "### Before and after this round",
        "",
        f"`{compare['command']}` ({compare['finished_at']}; load average {m['load_average_at_start']} →"
        f" {m['load_average_at_end']}): the build of {compare.get('before_commit') or labels[0]} and this"
        " round's side by side, cold starts interleaved, warm containers taking turns; medians.",
        "",
        markdown_table(data, COMPARE_COLUMNS),
        "",
    ]


def write_markdown(path, results, checks, compare=None):
    m = results["machine"]
    c = results["config"]
    fns = results["functions"]
    lines = [
        BEGIN_MARK,
        "",
        "## Latest run",
        "",
        "Every function binary (release profile, stripped) runs as AWS Lambda runs it: a Lambda",
        "Runtime API emulator on loopback hands it its real events (API Gateway HTTP API v2",
        "requests, an SQS batch for `worker`, a direct-invocation payload for `tokens`, the `{}` of",
        "its schedule for `sweeper`, DynamoDB stream records read from the table's stream, in the",
        "shape Lambda delivers them, for `publisher`), against moto (DynamoDB, KMS, EventBridge) and",
        "the Google emulator binary, each behind a loopback proxy that counts and times every call",
        "and counts what each call is billed as.",
        "",
        f"- Command: `{results['command']}`",
        f"- Machine: `nproc` = {m['nproc']}, CPU: {m['cpu_model']}, Linux {m['kernel']} ({m['arch']});"
        f" load average {m['load_average_at_start']} at the start, {m['load_average_at_end']} at the end",
        f"- Run: {results['finished_at']}; per function {c['cold_starts']} cold starts, then one container"
        f" serving 1 + {c['invocations']} invocations over {c['users']} users;"
        f" `AWS_LAMBDA_FUNCTION_MEMORY_SIZE={c['memory_size_mb']}`",
        "",
        "### Cold start",
        "",
        markdown_table(rows(fns, COLD_COLUMNS), COLD_COLUMNS),
        "",
        "### Warm CPU above the stack floor",
        "",
        markdown_table(rows(fns, WARM_COLUMNS), WARM_COLUMNS),
        "",
        "### Memory, size and logs",
        "",
        markdown_table(rows(fns, FOOTPRINT_COLUMNS), FOOTPRINT_COLUMNS),
        "",
        f"### Lambda cost per million invocations ({c['memory_size_mb']} MB, arm64)",
        "",
        markdown_table(rows(fns, COST_COLUMNS), COST_COLUMNS),
        "",
        "### Calls per operation",
        "",
        "Per warm operation (most common count, mean when it differs), and those of a cold process's",
        "first invocation:",
        "",
        markdown_table(rows(fns, CALL_COLUMNS), CALL_COLUMNS),
        "",
    ]
    wk = fns.get("worker", {}).get("warm", {}).get("batch")
    if wk:
        lines += [
            f"`worker` batch: {wk['jobs']} jobs for {wk['users']} users with every Calendar insert delayed"
            f" {wk['insert_delay_ms']} ms took {wk['latency_ms']} ms (one after the other they would take at least"
            f" {wk['sequential_floor_ms']} ms). In full batches of {wk['jobs']} (mean over {wk['cpu_batches']}),"
            f" {wk['cpu_ms_per_job']} ms own CPU and {wk['log_bytes_per_job']} bytes of log per job.",
            "",
        ]
    lines += sweeper_note(fns)
    lines += cost_section(results, compare)
    lines += fleet_section(results, compare)
    lines += before_after_section(compare)
    crit = results.get("criterion")
    if crit:
        low, high = crit["verifications_per_s_interval"]
        lines += [
            "### ID-token verification (criterion)",
            "",
            "`cargo bench -p integration-tests --bench verify` (`tests/benches/verify.rs`), pinned to one core:",
            "a Google-signed RS256 ID token verified with a warm JWKS cache (header, cached key,",
            "signature, every claim check) on a current-thread Tokio runtime.",
            "",
            f"- {crit['verifications_per_s']:,} verifications/s ({crit['ns_per_verification'] / 1000:.2f} µs each;"
            f" 95% interval {low:,}-{high:,}/s)",
            "",
        ]
    lines += [
        "### Targets in this run",
        "",
        markdown_table(target_rows(checks), [("target", "target"), ("verdict", "this run")]),
        "",
        "Every figure (min/max, per-endpoint and per-operation call counts and billed units, calls made",
        "by first invocations, each cold start's init, every fleet round) is in `target/bench/results.json`",
        "after a run.",
        "",
        END_MARK,
    ]
    block = "\n".join(lines)
    before, after = [], []
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        if BEGIN_MARK in old and END_MARK in old:
            before = [old.split(BEGIN_MARK, 1)[0].rstrip("\n"), ""]
            after = ["", old.split(END_MARK, 1)[1].lstrip("\n")]
        else:
            after = ["", old]
    with open(path, "w") as f:
        f.write("\n".join(before + [block] + after).rstrip("\n") + "\n")


def write_compare(path, results, before_label, after_label):
    fns = results["variants"]
    data = compare_rows(fns[before_label], fns[after_label])
    lines = [
        f"# {before_label} → {after_label}",
        "",
        f"`{results['command']}`, {results['finished_at']}; cold starts interleaved"
        f" ({results['config']['cold_starts']} each), medians; load average"
        f" {results['machine']['load_average_at_start']} → {results['machine']['load_average_at_end']}.",
        "",
        markdown_table(data, COMPARE_COLUMNS),
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return data


def print_fleet(fleet):
    for label, functions in fleet.items():
        for function, sizes in functions.items():
            print(f"fleet of `{function}` ({label}):")
            print(text_table(fleet_rows(sizes), FLEET_COLUMNS))
            print()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True)
    parser.add_argument("--release-dir", required=True)
    parser.add_argument("--compare", help="a directory with the other build's binaries, measured side by side")
    parser.add_argument("--labels", default="before,after", help="names of the --compare and --release-dir builds")
    parser.add_argument("--before-commit", help="the commit the --compare build was built from, for the report")
    parser.add_argument("--moto", required=True)
    parser.add_argument("--google", required=True)
    parser.add_argument("--cold-starts", type=int, default=15)
    parser.add_argument("--invocations", type=int, default=400)
    parser.add_argument("--users", type=int, default=BATCH_JOBS)
    parser.add_argument("--functions", default=",".join(FUNCTIONS))
    parser.add_argument("--fleet", action="store_true", help="measure the fleet alone (target/bench/fleet.json)")
    parser.add_argument("--no-fleet", action="store_true", help="leave the fleet out of a full run")
    parser.add_argument("--fleet-rounds", type=int, default=FLEET_ROUNDS)
    parser.add_argument(
        "--before-after", help="the results of a --compare run, for BENCHMARKS.md's before → after tables"
    )
    parser.add_argument("--out", required=True)
    parser.add_argument("--markdown")
    parser.add_argument("--command", default="infra/bench")
    parser.add_argument("--criterion", help="criterion's output directory of the ID-token benchmark")
    parser.add_argument(
        "--floor", help="a minimal C Runtime API client: the harness's own spawn-to-poll time and per-invocation CPU"
    )
    parser.add_argument(
        "--stack-floor", help="the same serving and replay on the functions' runtime and HTTP client (infra/stack-floor)"
    )
    args = parser.parse_args()
    args.cold_starts = max(1, min(args.cold_starts, MAX_COLD_STARTS))
    args.invocations = max(1, min(args.invocations, MAX_INVOCATIONS))
    args.users = max(1, args.users)
    args.fleet_rounds = max(1, min(args.fleet_rounds, 50))
    selected = [f for f in FUNCTIONS if f in args.functions.split(",")]
    unknown = set(args.functions.split(",")) - set(FUNCTIONS)
    if unknown:
        raise SystemExit(f"bench: unknown functions {sorted(unknown)}; known: {','.join(FUNCTIONS)}")
    before_label, after_label = (args.labels.split(",") + ["before", "after"])[:2]
    compare = None
    if args.before_after:
        with open(args.before_after) as f:
            compare = json.load(f)

    out_dir = os.path.dirname(os.path.abspath(args.out))
    # A comparison or a fleet alone is not the latest full picture: results.json stays.
    out_path = os.path.join(out_dir, "compare.json") if args.compare else args.out
    if args.fleet:
        out_path = os.path.join(out_dir, "fleet.json")
    logs_dir = os.path.join(out_dir, "logs")
    os.makedirs(logs_dir, exist_ok=True)
    for name in os.listdir(logs_dir):
        if name.endswith(".log"):
            os.remove(os.path.join(logs_dir, name))

    global MEMORY_MB
    settings = template_settings(args.root)
    MEMORY_MB = settings["memory_mb"]
    google = Google(args.google)
    table, key, bus, table_props = create_resources(args.moto, args.root)
    ledger = Ledger(table, table_props, args.moto)
    aws_proxy = Proxy(args.moto, amz_target, ledger)
    google_proxy = Proxy(args.google, path_only)
    upstreams = Upstreams(google, aws_proxy, google_proxy)
    g = google_proxy.url
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_SESSION_TOKEN": "test",
        "AWS_ENDPOINT_URL": aws_proxy.url,
        "GOOGLE_CLIENT_ID": google.config["client_id"],
        "GOOGLE_CLIENT_SECRET": google.config["client_secret"],
        "GOOGLE_TOKEN_URL": f"{g}/token",
        "GOOGLE_REVOKE_URL": f"{g}/revoke",
        "GOOGLE_JWKS_URL": f"{g}/oauth2/v3/certs",
        "GOOGLE_CALENDAR_API_URL": f"{g}/calendar/v3",
        "GOOGLE_RISC_JWKS_URL": f"{g}/risc/certs",
        "GOOGLE_RISC_ISSUER": google.config["risc_issuer"],
        "TOKENS_TABLE": table,
        "TOKENS_KMS_KEY_ID": key,
        "EVENT_BUS_NAME": bus,
        "ALLOWED_ORIGINS": ORIGIN,
    }
    flows = Flows(google, args.users)

    # Users exist (signed in, Calendar granted) before functions that need them run,
    # whichever subset is benchmarked. A function the --compare build has no binary of
    # (added since) is measured for this build alone.
    variants_of = {}
    sizes = {}
    for function in FUNCTIONS:
        variants = []
        if args.compare:
            built = os.path.join(args.compare, function)
            if os.path.exists(built):
                bootstrap, size = package(function, built, os.path.join(out_dir, "pkg", f"{function}-{before_label}"))
                variants.append((before_label, bootstrap))
                sizes[(function, before_label)] = size
        built = os.path.join(args.release_dir, function)
        bootstrap, size = package(function, built, os.path.join(out_dir, "pkg", function))
        variants.append((after_label, bootstrap))
        sizes[(function, after_label)] = size
        variants_of[function] = variants

    labels = [before_label, after_label] if args.compare else [after_label]
    by_label = {label: {} for label in labels}
    quiet_publisher = None
    results = {"after_label": after_label}
    if not args.fleet:
        for function in RUN_ORDER:
            variants = variants_of[function]
            if function not in selected:
                if function in ("exchange", "upgrade"):
                    warm_users(function, variants[-1][1], env, flows, logs_dir)
                continue
            if function == "publisher":
                records = stream_records(args.moto, table)
                flows.stream_records, quiet_publisher = publishing(records, variants[-1][1], env, upstreams, logs_dir)
                log(f"publisher: {len(flows.stream_records)} of {len(records)} grant records of the stream publish an event")
            if function == "sweeper":
                # The first run ever looks back a month; every later one reads one day.
                warm_users(function, variants[-1][1], env, flows, logs_dir, times=1)
            measured = bench_function(
                function, variants, env, flows, upstreams, args, logs_dir, args.floor, args.stack_floor
            )
            for label, r in measured.items():
                r["size"] = sizes[(function, label)]
                by_label[label][function] = r
        if "sweeper" in by_label[after_label]:
            by_label[after_label]["sweeper"]["grants"] = f"{args.users} users"
        results["ledger"] = ledger.verify()
        results["costs"] = {
            label: full_costs(fns, quiet_publisher, MEMORY_MB, settings["access_log_format"])
            for label, fns in by_label.items()
        }
        results["publisher_quiet_record"] = quiet_publisher

    if args.fleet or not args.no_fleet:
        # The fleet's latencies without the ledger's per-item locks.
        aws_proxy.ledger = None
        fleet_functions = [f for f in FLEET_FUNCTIONS if f in selected]
        subs = [
            sub
            for label in labels
            for function in fleet_functions
            for k in FLEET_SIZES
            for sub in fleet_users(label, function, k, args.fleet_rounds)
        ]
        if subs:
            log(f"fleet: connecting {len(subs)} fresh users")
            warm_users("exchange", variants_of["exchange"][-1][1], env, flows, logs_dir, subs=subs)
            warm_users("upgrade", variants_of["upgrade"][-1][1], env, flows, logs_dir, subs=subs)
        results["fleet"] = {}
        for label in labels:
            results["fleet"][label] = {}
            for function in fleet_functions:
                bootstrap = dict(variants_of[function]).get(label)
                if bootstrap:
                    results["fleet"][label][function] = fleet_bench(
                        function, bootstrap, env, flows, upstreams, logs_dir, label, args.fleet_rounds
                    )
    aws_proxy.close()
    google_proxy.close()

    results["functions"] = by_label[after_label]
    results["labels"] = labels
    if args.compare:
        results["variants"] = by_label
        results["before_commit"] = args.before_commit
    if args.criterion:
        results["criterion"] = criterion_estimates(args.criterion)
    floors = [r["harness_floor_ms"] for r in results["functions"].values() if r.get("harness_floor_ms") is not None]
    if floors:
        results["harness_floor_ms"] = {"median": median(floors)}
    results["config"] = {
        "cold_starts": args.cold_starts,
        "invocations": args.invocations,
        "users": args.users,
        "memory_size_mb": MEMORY_MB,
        "function_memory_mb": settings["function_memory_mb"],
        "arm64_usd_per_gb_s": ARM64_USD_PER_GB_S,
        "usd_per_million_requests": USD_PER_MILLION_REQUESTS,
        "prices": dict(PRICES, as_of=PRICES_AS_OF, region="us-east-1"),
        "fleet_sizes": list(FLEET_SIZES),
        "fleet_rounds": args.fleet_rounds,
    }
    results["machine"] = machine()
    results["command"] = args.command
    results["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    # "Before": the --compare build of this run, or that of the --before-after run.
    if args.compare:
        before_fns = by_label.get(before_label)
    else:
        before_fns = ((compare or {}).get("variants") or {}).get(((compare or {}).get("labels") or ["before"])[0])
    checks = targets(results, before_fns)
    for label, functions in (results.get("fleet") or {}).items():
        if label == after_label:
            for function, fleet_sizes in functions.items():
                checks.append(fleet_check(label, function, fleet_sizes))
    results["targets"] = [{"target": t, "met": ok, "measured": m} for t, ok, m in checks]
    with open(out_path, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")

    print()
    if args.compare and not args.fleet:
        data = write_compare(os.path.join(out_dir, "compare.md"), results, before_label, after_label)
        print(text_table(data, COMPARE_COLUMNS))
        print()
        b, a = results["costs"][before_label], results["costs"][after_label]
        print(text_table(usd_compare_rows(b, a), USD_COLUMNS))
        print()
        print(f"(also in {os.path.join(out_dir, 'compare.md')}; every figure of both builds in {out_path})")
        print()
    if not args.fleet:
        print(text_table(rows(results["functions"], MAIN_COLUMNS), MAIN_COLUMNS))
        print()
        print(text_table(rows(results["functions"], CALL_COLUMNS), CALL_COLUMNS))
        print()
        costs = results["costs"][after_label]
        print(text_table(use_rows(costs), USE_COLUMNS))
        print()
        print(text_table(usd_rows(costs), USD_COLUMNS))
        print()
        led = results["ledger"]
        print(f"ledger: {led['differ']} of {led['items']} items differ from moto's table; problems: {led['problems'] or 'none'}")
        print()
    print_fleet(results.get("fleet") or {})
    if results.get("criterion"):
        c = results["criterion"]
        print(f"ID-token verification (criterion): {c['verifications_per_s']}/s, {c['ns_per_verification']} ns each")
    for t, ok, m in checks:
        print(f"{'met   ' if ok else 'MISSED'}  {t}: {m}")
    # A comparison run or a fleet alone is not the latest full picture: BENCHMARKS.md
    # stays as it is.
    if args.markdown and not args.compare and not args.fleet:
        write_markdown(args.markdown, results, checks, compare)
    return 0


if __name__ == "__main__":
    sys.exit(main())
