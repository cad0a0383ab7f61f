"""API fuzzing for infra/fuzz-api: schemathesis against infra/openapi.yaml and the local stack.

Runs inside `infra/dev --run`, which provides DEV_FUNCTIONS_URL, DEV_EMULATOR_URL and
ALLOWED_ORIGINS.

  fuzz_api.py --out DIR [--examples N] [--seed N] [--workers N]

1. Signs users in through the real `POST /auth/exchange` (emulator codes with offline access,
   consent and the Calendar scope), so that fuzzed calls reach real logic: stored grants, KMS,
   refresh tokens, Calendar inserts. Bearers are fresh ID tokens minted by the emulator
   (`/emulator/id-token`) for those users. One user is the bearer of every operation; another
   one is the bearer of `DELETE /me/google`, so that disconnecting never takes the first
   one's grant away (see USERS).
2. Writes to DIR a copy of the document (`openapi.local.json`) in which each path carries the
   prefix of its local `cargo lambda watch` server (`/lambda-url/<binary>`, read from the
   path's `servers`) and a few request examples that succeed once (a fresh sign-in code, a
   Calendar upgrade code, a signed RISC token) are added, so the 200/202 answers are checked
   too; schemas are not touched. Also writes the schemathesis configuration: the bearer for
   the `GoogleIdToken` scheme, `X-Requested-With` and an allowed `Origin` on exchange and
   upgrade (else the CSRF check refuses nearly everything before real logic), the seed, no
   example database and no cache, and infra/lib/fuzz_hooks.py.
3. Runs `schemathesis run` on every operation: phases examples, coverage and fuzzing, valid
   and invalid data, at most N examples per operation and phase, one worker (deterministic),
   and the CHECKS below: no 5xx, and status, content type, headers and body of every answer
   as documented; required headers, undocumented methods (405 + Allow) and authentication
   enforced. JUnit and NDJSON reports go to DIR.
4. Prints a summary (operations, test cases, requests, checks, failed checks, statuses per
   operation) and exits non-zero if schemathesis failed or found anything.

Tokens reach schemathesis through its environment; they are never written to DIR or printed
(schemathesis masks the Authorization header in its output).
"""

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCHEMA = os.path.join(ROOT, "infra", "openapi.yaml")
CALENDAR_EVENTS = "https://www.googleapis.com/auth/calendar.events"
SIGN_IN_SCOPES = [
    "openid",
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/userinfo.profile",
    CALENDAR_EVENTS,
]
XRW = {"X-Requested-With": "XMLHttpRequest"}
USERS = {
    "main": "fuzz-user-1",        # the bearer of every operation but DELETE /me/google
    "disconnect": "fuzz-user-2",  # the bearer of DELETE /me/google
    "exchange": "fuzz-user-3",    # the live /auth/exchange example signs this one in
    "risc": "fuzz-user-4",        # the live /risc example revokes this one's tokens
}
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "ignored_auth",
]
LOCAL_SERVER = "http://127.0.0.1:{port}"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
PHASES = ["examples", "coverage", "fuzzing"]  # no links in the document: nothing stateful to chain


def call(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", **(headers or {})}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def mint_code(emulator, sub, scopes, **options):
    status, minted = call("POST", f"{emulator}/emulator/codes", {
        "sub": sub, "email": f"{sub}@example.com", "name": "Fuzz User", "scopes": scopes,
        "offline": True, "consent": True, **options,
    })
    if status != 200:
        raise SystemExit(f"emulator refused a code for {sub}: {status} {minted}")
    return minted["code"]


def sign_in(emulator, functions, sub):
    """Exchanges an offline code with the Calendar scope for `sub`; returns a fresh bearer."""
    status, signed_in = call("POST", f"{functions}/exchange/auth/exchange",
                             {"code": mint_code(emulator, sub, SIGN_IN_SCOPES)}, XRW)
    if status != 200 or not signed_in.get("offline_access") or CALENDAR_EVENTS not in signed_in["granted_scopes"]:
        raise SystemExit(f"sign-in of {sub} failed: {status} {signed_in}")
    status, token = call("POST", f"{emulator}/emulator/id-token", {"sub": sub})
    if status != 200:
        raise SystemExit(f"emulator refused an ID token for {sub}: {status} {token}")
    bearer = token["id_token"]
    status, me = call("GET", f"{functions}/account/me", headers={"Authorization": f"Bearer {bearer}"})
    if status != 200 or me.get("status") != "active":
        raise SystemExit(f"the minted bearer of {sub} is not accepted: {status} {me}")
    return bearer


def live_examples(emulator):
    """Request bodies that succeed once, so the 200/202 answers get checked too."""
    status, risc = call("POST", f"{emulator}/emulator/risc", {"event_type": "tokens-revoked", "sub": USERS["risc"]})
    if status != 200:
        raise SystemExit(f"emulator refused a security event token: {status} {risc}")
    return {
        ("/auth/exchange", "application/json"): {
            "code": mint_code(emulator, USERS["exchange"], SIGN_IN_SCOPES), "redirect_uri": "postmessage"},
        ("/auth/upgrade", "application/json"): {
            "code": mint_code(emulator, USERS["main"], [CALENDAR_EVENTS], include_granted_scopes=True),
            "scopes": [CALENDAR_EVENTS]},
        ("/risc", "application/secevent+jwt"): risc["set"],
    }


def local_schema(out, examples):
    """The document as schemathesis needs it here; returns the copy's path and its operation count.

    Each path gets the prefix of its local function (`/lambda-url/<binary>`, from its local
    server): schemathesis sends every operation to one base URL (`--url`) and ignores
    path-level `servers` for a schema read from a file; cargo lambda strips the prefix again,
    so each function sees the documented path. `examples` (path, media type) -> body are
    added as named examples next to the document's own; schemas are left as they are.
    """
    with open(SCHEMA, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    paths = {}
    for path, item in doc["paths"].items():
        local = [s["url"] for s in item.pop("servers", []) if s["url"].startswith(LOCAL_SERVER)]
        if len(local) != 1:
            raise SystemExit(f"{SCHEMA}: {path} does not have exactly one {LOCAL_SERVER}... server")
        prefix = local[0][len(LOCAL_SERVER):]  # /lambda-url/<binary>
        paths[prefix + path] = item
    for (path, media_type), value in examples.items():
        content = doc["paths"][path]["post"]["requestBody"]["content"][media_type]
        content.setdefault("examples", {})["live"] = {"summary": "accepted once (infra/fuzz-api)", "value": value}
    doc["paths"] = paths
    target = os.path.join(out, "openapi.local.json")
    with open(target, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, default=str)
    operations = sum(1 for item in paths.values() for method in item if method in HTTP_METHODS)
    return target, operations


def config(out, seed, origin):
    target = os.path.join(out, "schemathesis.toml")
    with open(target, "w", encoding="utf-8") as f:
        f.write(f"""# Written by infra/lib/fuzz_api.py; tokens come from the environment.
seed = {seed}
color = false
hooks = {json.dumps(os.path.join(HERE, 'fuzz_hooks.py'))}

[generation]
database = "none"

[cache]
enabled = false

[auth.openapi.GoogleIdToken]
bearer = "${{FUZZ_BEARER}}"

# The CSRF checks would refuse nearly every generated request before it reaches real logic.
[[operations]]
include-operation-id = ["exchangeCode", "upgradeScopes"]
headers = {{ X-Requested-With = "XMLHttpRequest", Origin = {json.dumps(origin)} }}

[[operations]]
include-operation-id = "disconnectGoogle"
headers = {{ Authorization = "Bearer ${{FUZZ_DISCONNECT_BEARER}}" }}
""")
    return target


def summarize(ndjson):
    """Test cases, checks, failures and statuses per operation from schemathesis' NDJSON events."""
    statuses = collections.defaultdict(collections.Counter)
    cases = checks = 0
    failures = collections.Counter()
    with open(ndjson, encoding="utf-8") as f:
        for line in f:
            for name, body in json.loads(line).items():
                if name != "ScenarioFinished":
                    continue
                recorder = body.get("recorder", {})
                method, _, path = (recorder.get("label") or "? ?").partition(" ")
                label = f"{method} /{path.split('/', 3)[-1]}" if path.startswith("/lambda-url/") else f"{method} {path}"
                cases += len(recorder.get("cases", {}))
                for results in recorder.get("checks", {}).values():
                    for result in results:
                        checks += 1
                        if result.get("status") != "success":
                            failures[result.get("name")] += 1
                for interaction in recorder.get("interactions", {}).values():
                    if interaction.get("response"):
                        statuses[label][interaction["response"]["status_code"]] += 1
    return cases, checks, failures, statuses


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    functions = os.environ["DEV_FUNCTIONS_URL"]
    emulator = os.environ["DEV_EMULATOR_URL"]
    args.out = os.path.abspath(args.out)
    shutil.rmtree(args.out, ignore_errors=True)  # nothing from an earlier run steers this one
    os.makedirs(args.out)

    env = dict(os.environ)
    env["FUZZ_BEARER"] = sign_in(emulator, functions, USERS["main"])
    env["FUZZ_DISCONNECT_BEARER"] = sign_in(emulator, functions, USERS["disconnect"])
    sign_in(emulator, functions, USERS["risc"])
    print(f"    signed in {', '.join(USERS[k] for k in ('main', 'disconnect', 'risc'))}", file=sys.stderr)

    origin = os.environ.get("ALLOWED_ORIGINS", "").split(",")[0].strip()
    if not origin:
        raise SystemExit("ALLOWED_ORIGINS is not set (infra/dev sets it)")
    schema, operations = local_schema(args.out, live_examples(emulator))
    base_url = functions.rsplit("/lambda-url", 1)[0]
    command = [
        os.path.join(os.path.dirname(sys.executable), "schemathesis"),
        "--config-file", config(args.out, args.seed, origin),
        "run", schema,
        "--url", base_url,
        "--checks", ",".join(CHECKS),
        "--phases", ",".join(PHASES),
        "--mode", "all",
        "--max-examples", str(args.examples),
        "--workers", str(args.workers),
        "--request-timeout", "30",
        "--continue-on-failure",
        "--report", "junit,ndjson",
        "--report-junit-path", os.path.join(args.out, "junit.xml"),
        "--report-ndjson-path", os.path.join(args.out, "events.ndjson"),
    ]
    started = time.monotonic()
    rc = subprocess.run(command, env=env, cwd=args.out, check=False).returncode
    elapsed = time.monotonic() - started

    ndjson = os.path.join(args.out, "events.ndjson")
    if not os.path.exists(ndjson):
        print(f"schemathesis exited with {rc} without a report", file=sys.stderr)
        return rc or 1
    cases, checks, failures, statuses = summarize(ndjson)
    requests = sum(sum(counts.values()) for counts in statuses.values())
    failed = ", ".join(f"{name}: {n}" for name, n in sorted(failures.items())) or "none"
    print(f"\nAPI fuzzing: {len(statuses)} operations, {cases} test cases, {requests} requests, "
          f"{checks} checks in {elapsed:.0f} s; failed checks: {failed} "
          f"(seed {args.seed}, at most {args.examples} examples per operation and phase)")
    for label in sorted(statuses):
        counts = ", ".join(f"{status}: {n}" for status, n in sorted(statuses[label].items()))
        print(f"    {label:<24} {counts}")
    print(f"reports: {args.out}/junit.xml, {args.out}/events.ndjson")
    if rc == 0 and (failures or len(statuses) != operations):
        print(f"expected {operations} operations tested and no failed check", file=sys.stderr)
        return 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
