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
  * worker: a batch of jobs for distinct users with a slow Calendar, to prove the
    jobs of a batch run concurrently.

HTTP functions get API Gateway HTTP API (v2) events; `worker` an SQS event, `tokens`
a direct invocation payload, `publisher` DynamoDB stream records read from moto's
stream of the bench's own table.

With --compare DIR, every function is run from two builds side by side, DIR's
binaries ("before") and --release-dir's ("after"): cold starts interleaved (A B, B A,
...) and the two warm containers taking turns invocation by invocation.

Only the Python standard library is used, except boto3 (from .venv) to create the
table, the KMS key and the event bus. Everything listens on and connects to
127.0.0.1 only, and every loop is bounded in count and time.
"""

import argparse
import http.client
import json
import math
import os
import queue
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
FUNCTIONS = ["exchange", "upgrade", "events", "account", "risc", "worker", "tokens", "publisher"]
# risc's security events revoke the bench users' tokens: it runs last.
RUN_ORDER = ["exchange", "upgrade", "events", "account", "worker", "tokens", "publisher", "risc"]
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

# The template's MemorySize and the arm64 price (us-east-1, first tier) of
# https://aws.amazon.com/lambda/pricing/: duration is billed per 1 ms, rounded up,
# init included; each request costs $0.20 per million.
MEMORY_MB = 128
ARM64_USD_PER_GB_S = 0.0000133334
USD_PER_MILLION_REQUESTS = 0.20

# worker: one batch of this many jobs, one per user, with every Calendar insert
# delayed this long; run one after the other they would take >= jobs x delay.
BATCH_JOBS = 10
# Full batches per worker container for the CPU per job in a batch.
BATCH_ROUNDS = 40
BATCH_INSERT_DELAY_MS = 200

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
    waits for, as opposed to its own work."""

    def __init__(self, upstream, key_of):
        up = urlsplit(upstream)
        if up.hostname != LOOPBACK:
            raise ValueError(f"refusing a non-loopback upstream: {upstream}")
        self.counts = Counter()
        self.busy = 0.0
        self.lock = threading.Lock()
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
                conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response_only(resp.status, resp.reason)
                    for name, value in resp.getheaders():
                        if name.lower() not in HOP_BY_HOP:
                            self.send_header(name, value)
                finally:
                    conn.close()
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
        return {"google": self.google.hits(), "aws": aws, "busy": aws_busy + google_busy}


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
        request_id = str(uuid.uuid4())
        self.api.events.put((request_id, json.dumps(event).encode()))
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
                    "ApproximateFirstReceiveTimestamp": now_ms,
                },
                "messageAttributes": {},
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
        sub = user(i % self.users)
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
    for kind in ("google_by_endpoint", "dynamodb_by_operation", "kms_by_operation", "eventbridge_by_operation", "other_aws"):
        total = Counter()
        for d in deltas:
            total.update(d[kind])
        out[kind] = {k: round(v / len(deltas), 3) for k, v in sorted(total.items())}
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
                    cpu0, logged0 = st["container"].cpu_ms(), st["container"].log_bytes()
                    st["container"].checked(event, check, "batch")
                    st["batch_cpu"] = st.get("batch_cpu", 0.0) + st["container"].cpu_ms() - cpu0
                    st["batch_log_bytes"] += st["container"].log_bytes() - logged0
        for st in states:
            st["batch"] = None
            if function == "worker":
                st["batch"] = worker_batch(st["container"], flows, upstreams, counter)
                st["batch"]["cpu_ms_per_job"] = round(st["batch_cpu"] / (BATCH_ROUNDS * BATCH_JOBS), 3)
                st["batch"]["log_bytes_per_job"] = round(st["batch_log_bytes"] / (BATCH_ROUNDS * BATCH_JOBS))
                st["batch"]["cpu_batches"] = BATCH_ROUNDS
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
        "usd_per_million": round(usd_per_million(statistics.fmean(billed)), 4),
        "calls_per_invocation": summarise_calls(deltas),
        "steady_calls_per_invocation": summarise_calls(steady),
        # JWKS (ID token or RISC) fetches over the container's whole life.
        "jwks_fetches_in_container": st["first_jwks"] + jwks,
        "operations_before_rss": 1 + len(latencies),
        "peak_rss_kib": st["hwm"],
        "rss_kib": st["rss"],
        "batch": st["batch"],
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


def warm_users(function, bootstrap, env, flows, logs_dir):
    """Runs the flow once per user so later functions find their grants."""
    container = Container(function, bootstrap, env, os.path.join(logs_dir, f"{function}.log"))
    try:
        container.wait_ready()
        for i in range(flows.users):
            event, check = flows.event(function, i)
            container.checked(event, check, "setup")
    finally:
        container.stop()


def publishing(records, bootstrap, env, upstreams, logs_dir, limit=2000):
    """The stream records that make the publisher send events: most records of a
    busy table (a refresh, a repeated sign-in) change nothing a consumer sees."""
    container = Container("publisher", bootstrap, env, os.path.join(logs_dir, "publisher.log"))
    keep = []
    try:
        container.wait_ready()
        for record in records[:limit]:
            check_deadline()
            before = upstreams.snapshot()
            container.checked({"Records": [record]}, expect_no_failures, "setup")
            if call_delta(before, upstreams.snapshot())["eventbridge"]:
                keep.append(record)
    finally:
        container.stop()
    return keep


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
    return name, alias, bus


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


def stream_records(moto, table):
    """The grant records of the table's stream, in the shape Lambda's event source
    mapping delivers them (moto leaves out the source ARN and sends a float time)."""
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
    grants = []
    for record in records:
        if not record["dynamodb"]["Keys"]["pk"]["S"].startswith("grant#"):
            continue
        record["eventSourceARN"] = arn
        record["dynamodb"]["ApproximateCreationDateTime"] = int(record["dynamodb"].get("ApproximateCreationDateTime", 0))
        grants.append(record)
    return grants


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
    widths = {k: max(len(title), *(len(row[k]) for row in data)) for k, title in columns}
    lines = ["  ".join(title.ljust(widths[k]) for k, title in columns)]
    lines.append("  ".join("-" * widths[k] for k, _ in columns))
    for row in data:
        lines.append("  ".join(row[k].ljust(widths[k]) for k, _ in columns))
    return "\n".join(lines)


def markdown_table(data, columns):
    lines = ["| " + " | ".join(title for _, title in columns) + " |"]
    lines.append("|" + "|".join("---" if k in ("function", "target", "verdict") else "---:" for k, _ in columns) + "|")
    for row in data:
        lines.append("| " + " | ".join(row[k] for k, _ in columns) + " |")
    return "\n".join(lines)


def targets(results):
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


def write_markdown(path, results, checks):
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
        "requests, an SQS batch for `worker`, a direct-invocation payload for `tokens`, DynamoDB",
        "stream records read from the table's stream for `publisher`), against moto (DynamoDB, KMS,",
        "EventBridge) and the Google emulator binary, each behind a loopback proxy that counts and",
        "times every call.",
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
        "Every figure (min/max, per-endpoint and per-operation call counts, calls made by first",
        "invocations, each cold start's init) is in `target/bench/results.json` after a run.",
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True)
    parser.add_argument("--release-dir", required=True)
    parser.add_argument("--compare", help="a directory with the other build's binaries, measured side by side")
    parser.add_argument("--labels", default="before,after", help="names of the --compare and --release-dir builds")
    parser.add_argument("--moto", required=True)
    parser.add_argument("--google", required=True)
    parser.add_argument("--cold-starts", type=int, default=15)
    parser.add_argument("--invocations", type=int, default=400)
    parser.add_argument("--users", type=int, default=BATCH_JOBS)
    parser.add_argument("--functions", default=",".join(FUNCTIONS))
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
    selected = [f for f in FUNCTIONS if f in args.functions.split(",")]
    unknown = set(args.functions.split(",")) - set(FUNCTIONS)
    if unknown:
        raise SystemExit(f"bench: unknown functions {sorted(unknown)}; known: {','.join(FUNCTIONS)}")
    before_label, after_label = (args.labels.split(",") + ["before", "after"])[:2]

    out_dir = os.path.dirname(os.path.abspath(args.out))
    logs_dir = os.path.join(out_dir, "logs")
    os.makedirs(logs_dir, exist_ok=True)
    for name in os.listdir(logs_dir):
        if name.endswith(".log"):
            os.remove(os.path.join(logs_dir, name))

    google = Google(args.google)
    table, key, bus = create_resources(args.moto, args.root)
    aws_proxy = Proxy(args.moto, amz_target)
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
    # whichever subset is benchmarked.
    variants_of = {}
    sizes = {}
    for function in FUNCTIONS:
        variants = []
        if args.compare:
            built = os.path.join(args.compare, function)
            bootstrap, size = package(function, built, os.path.join(out_dir, "pkg", f"{function}-{before_label}"))
            variants.append((before_label, bootstrap))
            sizes[(function, before_label)] = size
        built = os.path.join(args.release_dir, function)
        bootstrap, size = package(function, built, os.path.join(out_dir, "pkg", function))
        variants.append((after_label, bootstrap))
        sizes[(function, after_label)] = size
        variants_of[function] = variants

    by_label = {label: {} for label, _ in variants_of[FUNCTIONS[0]]}
    for function in RUN_ORDER:
        variants = variants_of[function]
        if function not in selected:
            if function in ("exchange", "upgrade"):
                warm_users(function, variants[-1][1], env, flows, logs_dir)
            continue
        if function == "publisher":
            records = stream_records(args.moto, table)
            flows.stream_records = publishing(records, variants[-1][1], env, upstreams, logs_dir)
            log(f"publisher: {len(flows.stream_records)} of {len(records)} grant records of the stream publish an event")
        measured = bench_function(
            function, variants, env, flows, upstreams, args, logs_dir, args.floor, args.stack_floor
        )
        for label, r in measured.items():
            r["size"] = sizes[(function, label)]
            by_label[label][function] = r
    aws_proxy.close()
    google_proxy.close()

    results = {"functions": by_label[after_label]}
    if args.compare:
        results["variants"] = by_label
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
        "arm64_usd_per_gb_s": ARM64_USD_PER_GB_S,
        "usd_per_million_requests": USD_PER_MILLION_REQUESTS,
    }
    results["machine"] = machine()
    results["command"] = args.command
    results["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    checks = targets(results)
    results["targets"] = [{"target": t, "met": ok, "measured": m} for t, ok, m in checks]
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")

    print()
    if args.compare:
        data = write_compare(os.path.join(out_dir, "compare.md"), results, before_label, after_label)
        print(text_table(data, COMPARE_COLUMNS))
        print()
        print(f"(also in {os.path.join(out_dir, 'compare.md')}; every figure of both builds in {args.out})")
        print()
    print(text_table(rows(results["functions"], MAIN_COLUMNS), MAIN_COLUMNS))
    print()
    print(text_table(rows(results["functions"], CALL_COLUMNS), CALL_COLUMNS))
    print()
    if results.get("criterion"):
        c = results["criterion"]
        print(f"ID-token verification (criterion): {c['verifications_per_s']}/s, {c['ns_per_verification']} ns each")
    for t, ok, m in checks:
        print(f"{'met   ' if ok else 'MISSED'}  {t}: {m}")
    # A comparison run is not the latest full picture: BENCHMARKS.md stays as it is.
    if args.markdown and not args.compare:
        write_markdown(args.markdown, results, checks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
