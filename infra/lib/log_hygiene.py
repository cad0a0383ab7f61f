"""Log hygiene at RUST_LOG=trace: the real function binaries under `infra/dev --run`, every
flow that handles a token (sign-in, upgrade, event, job, token vending, security event,
disconnect), then every JSON log line the functions wrote is searched for every token,
code and secret the Google emulator issued and every bearer or security event token this
script sent. Run by infra/test as `RUST_LOG=trace infra/dev --run python3 <this>`.

cargo lambda's own (plain-text) lines are not the functions' and are left out: only
JSON lines come from the functions' log subscriber."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from devstack import request  # noqa: E402

CALENDAR_EVENTS = "https://www.googleapis.com/auth/calendar.events"
FUNCTIONS = os.environ["DEV_FUNCTIONS_URL"]
INVOKE = os.environ["DEV_INVOKE_URL"]
EMULATOR = os.environ["DEV_EMULATOR_URL"]
RUN_DIR = os.environ["DEV_RUN_DIR"]
XRW = {"X-Requested-With": "XMLHttpRequest"}


def call(method, url, body=None, headers=None, expect=(200,)):
    status, _, answer = request(method, url, body, headers)
    if status not in expect:
        raise SystemExit(f"{method} {url}: {status} {answer}")
    return answer


def mint(body):
    return call("POST", f"{EMULATOR}/emulator/codes", body)["code"]


def main():
    sent = []
    sub = "log-hygiene-user"
    code = mint({"sub": sub, "scopes": ["openid", "email"], "offline": True, "consent": True})
    sent.append(code)
    signed_in = call("POST", f"{FUNCTIONS}/exchange/auth/exchange", {"code": code}, XRW)
    id_token = signed_in["id_token"]
    sent.append(id_token)
    bearer = {"Authorization": f"Bearer {id_token}"}
    code = mint({"sub": sub, "scopes": [CALENDAR_EVENTS], "offline": True, "include_granted_scopes": True})
    sent.append(code)
    call("POST", f"{FUNCTIONS}/upgrade/auth/upgrade", {"code": code, "scopes": [CALENDAR_EVENTS]}, {**XRW, **bearer})
    event = {"start": {"date": "2031-01-01"}, "end": {"date": "2031-01-02"}}
    call("POST", f"{FUNCTIONS}/events/calendar/events", event, bearer, expect=(201,))
    call("GET", f"{FUNCTIONS}/account/me", None, bearer)
    vended = call("POST", f"{INVOKE}/tokens/invocations", {"sub": sub})
    sent.append(vended["access_token"])
    job = {"job_id": "hygiene-1", "sub": sub, "event": event}
    sqs_event = {"Records": [{"messageId": "m1", "body": json.dumps(job)}]}
    call("POST", f"{INVOKE}/worker/invocations", sqs_event)
    risc = call("POST", f"{EMULATOR}/emulator/risc", {"event_type": "sessions-revoked", "sub": sub})
    token = risc["set"]
    sent.append(token)
    status, _, _ = request_raw(f"{FUNCTIONS}/risc/risc", token)
    if status != 202:
        raise SystemExit(f"security event: {status}")
    call("DELETE", f"{FUNCTIONS}/account/me/google", None, bearer, expect=(204,))
    time.sleep(1)  # let the last log lines reach the file

    issued = call("GET", f"{EMULATOR}/emulator/issued-secrets")
    secrets = [s for s in (issued if isinstance(issued, list) else issued.get("secrets", [])) if len(s) >= 8]
    secrets += [s for s in sent if s]
    lines = []
    with open(os.path.join(RUN_DIR, "functions.log"), encoding="utf-8", errors="replace") as f:
        for line in f:
            start = line.find("{")
            if start < 0:
                continue
            try:
                json.loads(line[start:])
            except ValueError:
                continue
            lines.append(line)
    verbose = [line for line in lines if '"level":"TRACE"' in line or '"level":"DEBUG"' in line]
    leaks = [(secret[:6] + "...", line[:160]) for secret in secrets for line in lines if secret in line]
    print(f"{len(lines)} JSON log lines from the functions ({len(verbose)} at debug/trace), "
          f"{len(secrets)} issued or sent secrets searched")
    failed = 0
    if not verbose:
        print("FAIL the functions did not log at trace level: RUST_LOG=trace did not reach them")
        failed += 1
    for secret, line in leaks[:5]:
        print(f"FAIL {secret} found in: {line}")
    failed += 1 if leaks else 0
    print(f"{2 - failed} passed, {failed} failed")
    return 1 if failed else 0


def request_raw(url, text):
    import urllib.error
    import urllib.request
    req = urllib.request.Request(url, data=text.encode(), method="POST",
                                 headers={"Content-Type": "application/secevent+jwt"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


if __name__ == "__main__":
    sys.exit(main())
