#!/usr/bin/env python3
"""The engine of infra/bench: runs each function binary as AWS Lambda would and
measures it.

Per function, against moto (DynamoDB + KMS) and the Google emulator binary:
  * init duration: process spawn -> first GET /runtime/invocation/next (median of
    --cold-starts fresh processes), and the latency of each one's first invocation;
  * warm p50/p99 over --invocations invocations of the real flow in one container;
  * CPU time per warm invocation (utime + stime of the process, /proc/PID/stat);
  * peak RSS (VmHWM) after all of them;
  * size of the stripped binary and of bootstrap.zip (deflate, level 9);
  * calls per operation to Google (the emulator's /emulator/hits), DynamoDB and KMS
    (a counting proxy in front of moto, keyed by X-Amz-Target).

Only the Python standard library is used, except boto3 (from .venv) to create the
table and the KMS key. Everything listens on and connects to 127.0.0.1 only, and
every loop is bounded in count and time.
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

FUNCTIONS = ["exchange", "upgrade", "events", "account", "risc"]
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
INVOKE_TIMEOUT_S = 20.0
INIT_TIMEOUT_S = 10.0
RUN_DEADLINE_S = 30 * 60

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


# ------------------------------------------------------------- counting proxy


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


class CountingProxy:
    """Forwards every request to moto and counts it by X-Amz-Target
    (`DynamoDB_20120810.GetItem`, `TrentService.Decrypt`, ...)."""

    def __init__(self, upstream):
        up = urlsplit(upstream)
        if up.hostname != LOOPBACK:
            raise ValueError(f"refusing a non-loopback upstream: {upstream}")
        self.counts = Counter()
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without TCP_NODELAY, Nagle
            # plus the client's delayed ACK stalls each answer by ~40 ms.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def _forward(self):
                body = read_body(self.rfile, self.headers)
                target = self.headers.get("X-Amz-Target") or f"{self.command} {self.path.split('?')[0]}"
                with proxy.lock:
                    proxy.counts[target] += 1
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
                end_with_body(self, data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        self.server = QuietServer((LOOPBACK, 0), Handler)
        self.url = f"http://{LOOPBACK}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    def snapshot(self):
        with self.lock:
            return Counter(self.counts)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


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
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
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
        """(status code, response JSON, latency ms: event handed over -> response in)."""
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
        response = json.loads(result["body"])
        return response.get("statusCode"), response, (result["at"] - handed) * 1000

    def status(self, field):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])  # kB
        raise RuntimeError(f"{field} not in /proc/{self.proc.pid}/status")

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # utime and stime are fields 14 and 15 of stat; fields[0] here is field 3.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

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


# ------------------------------------------------------------------ flows


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


class Flows:
    """The real request each function serves, prepared outside the timed window."""

    def __init__(self, google, users):
        self.google = google
        self.users = users

    def event(self, function, i):
        sub = user(i % self.users)
        g = self.google
        if function == "exchange":
            code = g.code(sub, BASE_SCOPES, consent=True)
            body = json.dumps({"code": code, "redirect_uri": "postmessage"})
            headers = {"content-type": "application/json", "x-requested-with": "XMLHttpRequest", "origin": ORIGIN}
            return http_event("POST", "/auth/exchange", headers, body), 200
        if function == "upgrade":
            code = g.code(sub, BASE_SCOPES + [CALENDAR_EVENTS])
            body = json.dumps({"code": code, "scopes": [CALENDAR_EVENTS], "redirect_uri": "postmessage"})
            headers = {
                "content-type": "application/json",
                "x-requested-with": "XMLHttpRequest",
                "origin": ORIGIN,
                "authorization": f"Bearer {g.bearer(sub)}",
            }
            return http_event("POST", "/auth/upgrade", headers, body), 200
        if function == "events":
            body = json.dumps(
                {
                    "summary": f"Bench event {i}",
                    "description": "created by infra/bench",
                    "start": {"dateTime": "2031-01-15T10:00:00Z"},
                    "end": {"dateTime": "2031-01-15T11:00:00+00:00"},
                    "attendees": [{"email": "guest@example.com"}],
                }
            )
            headers = {"content-type": "application/json", "authorization": f"Bearer {g.bearer(sub)}"}
            query = {"calendarId": "primary", "sendUpdates": "none"}
            return http_event("POST", "/calendar/events", headers, body, query), 201
        if function == "account":
            return http_event("GET", "/me", {"authorization": f"Bearer {g.bearer(sub)}"}), 200
        if function == "risc":
            token = g.risc_set("tokens-revoked", sub)
            headers = {"content-type": "application/secevent+jwt", "accept": "application/json"}
            return http_event("POST", "/risc", headers, token), 202
        raise ValueError(function)


# ------------------------------------------------------------- measuring


def call_delta(google_before, google_after, aws_before, aws_after):
    google = {k: google_after[k] - google_before.get(k, 0) for k in google_after}
    google = {k: v for k, v in google.items() if v}
    aws = {k: v for k, v in (aws_after - aws_before).items() if v}
    by_op = lambda prefix: {k.split(".", 1)[1]: v for k, v in aws.items() if k.startswith(prefix)}  # noqa: E731
    ddb = by_op("DynamoDB_20120810.")
    kms = by_op("TrentService.")
    return {
        "google": sum(google.values()),
        "google_by_endpoint": google,
        "dynamodb_reads": sum(v for k, v in ddb.items() if k in DDB_READS),
        "dynamodb_writes": sum(v for k, v in ddb.items() if k in DDB_WRITES),
        "dynamodb_by_operation": ddb,
        "kms": sum(kms.values()),
        "kms_by_operation": kms,
        "other_aws": {k: v for k, v in aws.items() if not k.startswith(("DynamoDB_20120810.", "TrentService."))},
    }


def summarise_calls(deltas):
    """Per-operation call counts: mean, most common value and max of each kind."""
    out = {}
    for kind in ("google", "dynamodb_reads", "dynamodb_writes", "kms"):
        values = [d[kind] for d in deltas]
        out[kind] = {
            "mean": round(statistics.fmean(values), 3),
            "mode": Counter(values).most_common(1)[0][0],
            "max": max(values),
        }
    for kind in ("google_by_endpoint", "dynamodb_by_operation", "kms_by_operation", "other_aws"):
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


def package(function, release_dir, out_dir):
    """Copies the binary to `bootstrap`, strips it, zips it as Lambda deploys it."""
    pkg = os.path.join(out_dir, "pkg", function)
    os.makedirs(pkg, exist_ok=True)
    bootstrap = os.path.join(pkg, "bootstrap")
    built = os.path.join(release_dir, function)
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


def bench_function(function, bootstrap, env, flows, google, proxy, args, logs_dir):
    log(f"{function}: {args.cold_starts} cold starts")
    inits, firsts, first_calls, first_rss = [], [], [], []
    counter = 0
    log_path = os.path.join(logs_dir, f"{function}.log")
    for _ in range(args.cold_starts):
        check_deadline()
        event, expected = flows.event(function, counter)
        counter += 1
        container = Container(function, bootstrap, env, log_path)
        try:
            inits.append(container.wait_ready())
            g0, a0 = google.hits(), proxy.snapshot()
            status, response, latency = container.invoke(event)
            if status != expected:
                container.fail(f"first invocation answered {status}, expected {expected}: {response}")
            first_calls.append(call_delta(g0, google.hits(), a0, proxy.snapshot()))
            firsts.append(latency)
            first_rss.append(container.status("VmHWM"))
        finally:
            container.stop()

    log(f"{function}: 1 + {args.invocations} invocations in one container")
    container = Container(function, bootstrap, env, log_path)
    try:
        init = container.wait_ready()
        g_start = google.hits()
        event, expected = flows.event(function, counter)
        counter += 1
        status, response, first = container.invoke(event)
        if status != expected:
            container.fail(f"first invocation answered {status}, expected {expected}: {response}")
        latencies, deltas = [], []
        cpu0 = container.cpu_seconds()
        g_prev, a_prev = google.hits(), proxy.snapshot()
        wall0 = time.perf_counter()
        for _ in range(args.invocations):
            check_deadline()
            event, expected = flows.event(function, counter)
            counter += 1
            status, response, latency = container.invoke(event)
            if status != expected:
                container.fail(f"invocation answered {status}, expected {expected}: {response}")
            g_now, a_now = google.hits(), proxy.snapshot()
            deltas.append(call_delta(g_prev, g_now, a_prev, a_now))
            g_prev, a_prev = g_now, a_now
            latencies.append(latency)
        wall = time.perf_counter() - wall0
        cpu = container.cpu_seconds() - cpu0
        hwm = container.status("VmHWM")
        rss = container.status("VmRSS")
        container_google = {k: v - g_start.get(k, 0) for k, v in google.hits().items()}
    finally:
        container.stop()

    return {
        "cold_starts": len(inits),
        "init_ms": {
            "median": round(statistics.median(inits), 2),
            "min": round(min(inits), 2),
            "max": round(max(inits), 2),
            "all": [round(x, 2) for x in inits],
        },
        "first_invocation_ms": {
            "median": round(statistics.median(firsts), 2),
            "min": round(min(firsts), 2),
            "max": round(max(firsts), 2),
        },
        "first_invocation_calls": summarise_calls(first_calls),
        "peak_rss_after_first_invocation_kib": {"median": statistics.median(first_rss), "max": max(first_rss)},
        "warm": {
            "container_init_ms": round(init, 2),
            "container_first_invocation_ms": round(first, 2),
            "invocations": len(latencies),
            "p50_ms": round(percentile(latencies, 50), 2),
            "p90_ms": round(percentile(latencies, 90), 2),
            "p99_ms": round(percentile(latencies, 99), 2),
            "max_ms": round(max(latencies), 2),
            "mean_ms": round(statistics.fmean(latencies), 2),
            "cpu_ms_per_invocation": round(cpu * 1000 / len(latencies), 3),
            "invocations_per_s": round(len(latencies) / wall, 1),
            "calls_per_invocation": summarise_calls(deltas),
            # JWKS (ID token or RISC) fetches over the container's whole life.
            "jwks_fetches_in_container": container_google.get("jwks", 0) + container_google.get("risc_jwks", 0),
        },
        "operations_before_rss": 1 + len(latencies),
        "peak_rss_kib": hwm,
        "rss_kib": rss,
    }


# -------------------------------------------------------------- setup


def table_extras(props):
    """The table's indexes and stream as template.yaml declares them (DynamoDB refuses
    attribute definitions that no key or index uses)."""
    extra = {}
    if props.get("GlobalSecondaryIndexes"):
        extra["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    if props.get("StreamSpecification"):
        extra["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    return extra


def create_table_and_key(moto, root):
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
        **table_extras(props),
    )
    ttl = props["TimeToLiveSpecification"]
    ddb.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": bool(ttl["Enabled"])},
    )
    key = kms.create_key(Description="tokens (bench)")["KeyMetadata"]["KeyId"]
    alias = f"alias/{name}"
    kms.create_alias(AliasName=alias, TargetKeyId=key)
    return name, alias


# -------------------------------------------------------------- report

COLUMNS = [
    ("function", "function"),
    ("init", "init ms (median)"),
    ("first", "1st invoke ms"),
    ("p50", "warm p50 ms"),
    ("p99", "warm p99 ms"),
    ("cpu", "CPU ms/inv"),
    ("rss", "peak RSS MiB"),
    ("bin", "binary MB"),
    ("zip", "zip MB"),
    ("google", "Google/op"),
    ("ddb", "DDB read+write/op"),
    ("kms", "KMS/op"),
    ("jwks", "JWKS fetches/container"),
]


def rows(results):
    out = []
    for function in FUNCTIONS:
        r = results["functions"].get(function)
        if not r:
            continue
        calls = r["warm"]["calls_per_invocation"]

        def fmt(kind):
            c = calls[kind]
            return f"{c['mode']}" if c["mean"] == c["mode"] else f"{c['mode']} (mean {c['mean']:g})"

        out.append(
            {
                "function": function,
                "init": f"{r['init_ms']['median']:.2f}",
                "first": f"{r['first_invocation_ms']['median']:.1f}",
                "p50": f"{r['warm']['p50_ms']:.2f}",
                "p99": f"{r['warm']['p99_ms']:.2f}",
                "cpu": f"{r['warm']['cpu_ms_per_invocation']:.2f}",
                "rss": f"{r['peak_rss_kib'] / 1024:.1f}",
                "bin": f"{r['size']['stripped_bytes'] / 1e6:.2f}",
                "zip": f"{r['size']['zip_bytes'] / 1e6:.2f}",
                "google": fmt("google"),
                "ddb": f"{fmt('dynamodb_reads')} + {fmt('dynamodb_writes')}",
                "kms": fmt("kms"),
                "jwks": str(r["warm"]["jwks_fetches_in_container"]),
            }
        )
    return out


def text_table(results):
    data = rows(results)
    widths = {k: max(len(title), *(len(row[k]) for row in data)) for k, title in COLUMNS}
    lines = ["  ".join(title.ljust(widths[k]) for k, title in COLUMNS)]
    lines.append("  ".join("-" * widths[k] for k, _ in COLUMNS))
    for row in data:
        lines.append("  ".join(row[k].ljust(widths[k]) for k, _ in COLUMNS))
    return "\n".join(lines)


def markdown_table(results):
    data = rows(results)
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |"]
    lines.append("|" + "|".join("---" if k == "function" else "---:" for k, _ in COLUMNS) + "|")
    for row in data:
        lines.append("| " + " | ".join(row[k] for k, _ in COLUMNS) + " |")
    return "\n".join(lines)


def targets(results):
    """Each target of issue 9 that this run can check, with the measured value."""
    checks = []
    for function in FUNCTIONS:
        r = results["functions"].get(function)
        if not r:
            continue
        checks.append((f"{function}: init <= 10 ms (median)", r["init_ms"]["median"] <= 10, f"{r['init_ms']['median']} ms"))
        mib = r["peak_rss_kib"] / 1024
        checks.append((f"{function}: peak RSS <= 25 MiB after {r['operations_before_rss']} ops", mib <= 25, f"{mib:.1f} MiB"))
        checks.append(
            (f"{function}: zipped bootstrap <= 4 MB", r["size"]["zip_bytes"] <= 4_000_000, f"{r['size']['zip_bytes']} B")
        )
    ev = results["functions"].get("events")
    if ev:
        c = ev["warm"]["calls_per_invocation"]
        ok = c["google"]["mode"] == 1 and c["dynamodb_reads"]["max"] <= 1 and c["kms"]["max"] <= 1
        checks.append(
            (
                "events (warm): 1 Google call, <= 1 DynamoDB read, <= 1 KMS call",
                ok,
                f"Google {c['google']['mode']} (max {c['google']['max']}), DDB reads max "
                f"{c['dynamodb_reads']['max']}, KMS max {c['kms']['max']}",
            )
        )
    ex = results["functions"].get("exchange")
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
    crit = results.get("criterion")
    if crit:
        checks.append(
            (
                "ID-token verification >= 40,000/s on one core (criterion, warm JWKS)",
                crit["verifications_per_s"] >= 40_000,
                f"{crit['verifications_per_s']}/s ({crit['ns_per_verification'] / 1000:.2f} µs each)",
            )
        )
    return checks


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True)
    parser.add_argument("--release-dir", required=True)
    parser.add_argument("--moto", required=True)
    parser.add_argument("--google", required=True)
    parser.add_argument("--cold-starts", type=int, default=15)
    parser.add_argument("--invocations", type=int, default=400)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--functions", default=",".join(FUNCTIONS))
    parser.add_argument("--out", required=True)
    parser.add_argument("--markdown")
    parser.add_argument("--command", default="infra/bench")
    parser.add_argument("--criterion", help="criterion's output directory of the ID-token benchmark")
    parser.add_argument("--floor", help="a minimal C Runtime API client: the harness's own spawn-to-poll time")
    args = parser.parse_args()
    args.cold_starts = max(1, min(args.cold_starts, MAX_COLD_STARTS))
    args.invocations = max(1, min(args.invocations, MAX_INVOCATIONS))
    selected = [f for f in FUNCTIONS if f in args.functions.split(",")]

    out_dir = os.path.dirname(os.path.abspath(args.out))
    logs_dir = os.path.join(out_dir, "logs")
    os.makedirs(logs_dir, exist_ok=True)
    for name in os.listdir(logs_dir):
        if name.endswith(".log"):
            os.remove(os.path.join(logs_dir, name))

    google = Google(args.google)
    table, key = create_table_and_key(args.moto, args.root)
    proxy = CountingProxy(args.moto)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_SESSION_TOKEN": "test",
        "AWS_ENDPOINT_URL": proxy.url,
        "GOOGLE_CLIENT_ID": google.config["client_id"],
        "GOOGLE_CLIENT_SECRET": google.config["client_secret"],
        "GOOGLE_TOKEN_URL": google.url("/token"),
        "GOOGLE_REVOKE_URL": google.url("/revoke"),
        "GOOGLE_JWKS_URL": google.url("/oauth2/v3/certs"),
        "GOOGLE_CALENDAR_API_URL": google.url("/calendar/v3"),
        "GOOGLE_RISC_JWKS_URL": google.url("/risc/certs"),
        "GOOGLE_RISC_ISSUER": google.config["risc_issuer"],
        "TOKENS_TABLE": table,
        "TOKENS_KMS_KEY_ID": key,
        "ALLOWED_ORIGINS": ORIGIN,
    }
    flows = Flows(google, max(1, args.users))

    # Users exist (signed in, Calendar granted) before functions that need them run,
    # whichever subset is benchmarked.
    results = {"functions": {}}
    for function in FUNCTIONS:
        bootstrap, size = package(function, args.release_dir, out_dir)
        if function not in selected:
            if function in ("exchange", "upgrade"):
                warm_users(function, bootstrap, env, flows, logs_dir)
            continue
        r = bench_function(function, bootstrap, env, flows, google, proxy, args, logs_dir)
        r["size"] = size
        results["functions"][function] = r
    proxy.close()

    if args.floor:
        results["harness_floor_ms"] = harness_floor(args.floor, args.cold_starts)
    if args.criterion:
        results["criterion"] = criterion_estimates(args.criterion)

    results["config"] = {
        "cold_starts": args.cold_starts,
        "invocations": args.invocations,
        "users": args.users,
        "memory_size_mb": 128,
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
    print(text_table(results))
    print()
    if results.get("harness_floor_ms"):
        print(f"harness floor (minimal C client, spawn -> first poll): {results['harness_floor_ms']['median']} ms median")
    if results.get("criterion"):
        c = results["criterion"]
        print(f"ID-token verification (criterion): {c['verifications_per_s']}/s, {c['ns_per_verification']} ns each")
    print()
    for t, ok, m in checks:
        print(f"{'met   ' if ok else 'MISSED'}  {t}: {m}")
    if args.markdown:
        write_markdown(args.markdown, results, checks)
    return 0


def warm_users(function, bootstrap, env, flows, logs_dir):
    """Runs the flow once per user so later functions find their grants."""
    container = Container(function, bootstrap, env, os.path.join(logs_dir, f"{function}.log"))
    try:
        container.wait_ready()
        for i in range(flows.users):
            event, expected = flows.event(function, i)
            status, response, _ = container.invoke(event)
            if status != expected:
                container.fail(f"setup answered {status}: {response}")
    finally:
        container.stop()


def harness_floor(client, runs):
    """Spawn -> first `next` poll of a minimal C client: what the harness itself adds
    to every init figure (fork/exec, dynamic loading, connect, this server's parsing)."""
    times = []
    for _ in range(runs):
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
            if api.first_poll is not None:
                times.append((api.first_poll - started) * 1000)
        finally:
            proc.kill()
            proc.wait(timeout=5)
            api.close()
    if not times:
        return None
    return {"median": round(statistics.median(times), 2), "min": round(min(times), 2)}


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


def write_markdown(path, results, checks):
    m = results["machine"]
    c = results["config"]
    lines = [
        "# Benchmarks",
        "",
        "Latest run of `infra/bench` (written by it; rerun to refresh). Every function binary",
        "(release profile, stripped) runs as AWS Lambda runs it: a Lambda Runtime API emulator on",
        "loopback hands it API Gateway HTTP API (v2) events, against moto (DynamoDB + KMS, behind a",
        "call-counting proxy) and the Google emulator binary.",
        "",
        f"- Command: `{results['command']}`",
        f"- Machine: `nproc` = {m['nproc']}, CPU: {m['cpu_model']}, Linux {m['kernel']} ({m['arch']});"
        f" load average {m['load_average_at_start']} at the start, {m['load_average_at_end']} at the end",
        f"- Run: {results['finished_at']}; per function {c['cold_starts']} cold starts, then one container"
        f" serving 1 + {c['invocations']} invocations over {c['users']} users;"
        f" `AWS_LAMBDA_FUNCTION_MEMORY_SIZE={c['memory_size_mb']}`",
        "",
        markdown_table(results),
        "",
    ]
    floor = results.get("harness_floor_ms")
    if floor:
        lines += [
            f"Harness floor: a minimal C Runtime API client (`infra/lib/runtime_floor.c`) polls",
            f"{floor['median']} ms (median) after spawn here; that much of each init figure is the",
            "harness (fork/exec, dynamic loading, the Python Runtime API server), not the function.",
            "",
        ]
    crit = results.get("criterion")
    if crit:
        low, high = crit["verifications_per_s_interval"]
        lines += [
            "## ID-token verification (criterion)",
            "",
            "`cargo bench -p integration-tests --bench verify` (`tests/benches/verify.rs`), pinned to one core:",
            "a Google-signed RS256 ID token verified with a warm JWKS cache (header, cached key,",
            "signature, every claim check) on a current-thread Tokio runtime.",
            "",
            f"- {crit['verifications_per_s']:,} verifications/s ({crit['ns_per_verification'] / 1000:.2f} µs each;"
            f" 95% interval {low:,}-{high:,}/s)",
            "",
        ]
    lines += ["## Targets (issue 9)", ""]
    for t, ok, measured in checks:
        lines.append(f"- {'met' if ok else '**missed**'}: {t} (measured: {measured})")
    lines += [
        "",
        "## What the columns mean",
        "",
        "- **init**: process spawn to the first `GET /2018-06-01/runtime/invocation/next` (what",
        "  Lambda reports as Init Duration), median over the cold starts.",
        "- **1st invoke**: the first invocation of each cold process, event handed over to response",
        "  received; it pays for the JWKS fetch, first connections and first-use initialisation.",
        "  Median over the cold starts.",
        "- **warm p50/p99**: event handed over to response received, in one warm container. They",
        "  include the time moto (Python) and the emulator take to answer, which dominates;",
        "  **CPU ms/inv** is the function's own CPU time (utime + stime) per warm invocation.",
        "- **peak RSS**: `VmHWM` of the warm container's process after all its invocations.",
        "- **binary / zip**: the stripped `bootstrap` and `bootstrap.zip` (deflate, level 9), in",
        "  MB = 10^6 bytes. Built for the machine's architecture (Lambda runs the arm64 build).",
        "- **calls/op**: per warm invocation, the most common count (and the mean when it",
        "  differs) of Google requests (emulator `/emulator/hits`), DynamoDB reads + writes and KMS",
        "  calls (counted by `X-Amz-Target` in a proxy in front of moto). **JWKS fetches/container**:",
        "  Google key-set fetches over the warm container's whole life.",
        "- Flows: `exchange` redeems a freshly minted code (offline, consent: a refresh token to",
        "  encrypt every time); `upgrade` adds Calendar with a new code and a bearer ID token;",
        "  `events` creates a Calendar event (an access token is refreshed once per user per",
        "  container, then reused from memory); `account` is `GET /me`; `risc` receives a fresh",
        "  `tokens-revoked` security event token.",
        "",
        "Every figure (min/max, per-endpoint and per-operation call counts, calls made by first",
        "invocations, each cold start's init) is in `target/bench/results.json` after a run.",
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
