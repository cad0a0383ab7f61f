"""Browser tests of the example frontend (infra/web) in headless Chromium.

Run by infra/web-test under `infra/dev --run`, which sets DEV_WEB_URL (the page),
DEV_FUNCTIONS_URL and DEV_EMULATOR_URL (the Google emulator: its /gsi/client script and
consent popup stand in for Google's). Playwright drives Debian's /usr/bin/chromium.

Each case clicks through the page as a user would, in a fresh browser context, and then
checks the network as the browser saw it (Chrome DevTools Protocol, browser cache off so
that no preflight is answered from the preflight cache): every API call from the page
went through a real CORS preflight from the page's origin that the API allowed, the call
itself was allowed too, and the console shows no CORS error and no script error.

  web_test.py --out DIR     screenshots go to DIR (emptied first); prints one line per
                            case and ends with "N passed, M failed"
"""

import argparse
import datetime
import json
import os
import shutil
import sys
import time
import traceback
import urllib.parse
import urllib.request
import uuid

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
CALENDAR_EVENTS = "https://www.googleapis.com/auth/calendar.events"
TIMEOUT_MS = 20_000

WEB = os.environ["DEV_WEB_URL"]
FUNCTIONS = os.environ["DEV_FUNCTIONS_URL"]
EMULATOR = os.environ["DEV_EMULATOR_URL"]


# ------------------------------------------------------------------ the emulator's control API

def emulator(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(EMULATOR + path, data=data, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def accounts():
    return {account["name"]: account for account in emulator("GET", "/emulator/accounts")}


def calendar_events(sub):
    return [stored["event"] for stored in emulator("GET", f"/emulator/events?sub={sub}&calendarId=primary")]


# ------------------------------------------------------------------ what the browser saw

class Recorder:
    """Network (through CDP), console and script errors of one browser context."""

    def __init__(self, context, page):
        self.requests = {}  # CDP requestId -> dict
        self.console = []  # (url of the resource or page, type, text)
        self.page_errors = []
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        # No cache, so the preflight cache cannot hide a preflight: each call gets its own.
        cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
        cdp.on("Network.requestWillBeSent", self._request)
        cdp.on("Network.responseReceived", self._response)
        cdp.on("Network.loadingFailed", self._failed)
        self.cdp = cdp
        context.on("page", self.watch)
        self.watch(page)

    def watch(self, page):
        page.on("console", lambda msg: self.console.append((msg.location.get("url") or page.url, msg.type, msg.text)))
        page.on("pageerror", lambda error: self.page_errors.append(f"{page.url}: {error}"))

    def _request(self, event):
        request = event["request"]
        self.requests[event["requestId"]] = {
            "id": event["requestId"],
            "method": request["method"],
            "url": request["url"],
            "headers": request.get("headers", {}),
            "initiator": event.get("initiator", {}),
            "status": None,
            "response_headers": {},
            "error": None,
        }

    def _response(self, event):
        entry = self.requests.get(event["requestId"])
        if entry is not None:
            entry["status"] = event["response"]["status"]
            entry["response_headers"] = {k.lower(): v for k, v in event["response"]["headers"].items()}

    def _failed(self, event):
        entry = self.requests.get(event["requestId"])
        if entry is not None:
            entry["error"] = event.get("errorText") or "failed"
            if event.get("corsErrorStatus"):
                entry["error"] += f" (CORS: {event['corsErrorStatus'].get('corsError')})"

    def api_calls(self):
        return [r for r in self.requests.values() if r["url"].startswith(FUNCTIONS) and r["method"] != "OPTIONS"]

    def preflight_for(self, request_id):
        for entry in self.requests.values():
            initiator = entry["initiator"]
            if initiator.get("type") == "preflight" and initiator.get("requestId") == request_id:
                return entry
        return None

    def check_cors(self, origin):
        """Every API call was preflighted from `origin`, and both answers allowed it."""
        calls = self.api_calls()
        assert calls, "the page made no API call"
        for call in calls:
            what = f"{call['method']} {call['url']}"
            preflight = self.preflight_for(call["id"])
            assert preflight is not None, f"{what}: no CORS preflight"
            assert preflight["method"] == "OPTIONS", what
            assert preflight["status"] is not None and 200 <= preflight["status"] < 300, (
                f"{what}: preflight answered {preflight['status']} {preflight['error'] or ''}"
            )
            allowed = preflight["response_headers"].get("access-control-allow-origin")
            assert allowed == origin, f"{what}: preflight allowed origin {allowed!r}, not {origin!r}"
            assert call["error"] is None, f"{what}: {call['error']}"
            allowed = call["response_headers"].get("access-control-allow-origin")
            assert allowed == origin, f"{what}: answer allowed origin {allowed!r}"
        cors = [text for _, _, text in self.console if "CORS" in text or "Access-Control" in text]
        assert not cors, f"CORS errors in the console: {cors}"
        # The only console errors allowed: the browser's own line for an API answer 4xx
        # (a refused event, an expired grant), which the cases provoke on purpose.
        errors = [
            (url, text) for url, kind, text in self.console
            if kind == "error"
            and not (url.startswith(FUNCTIONS)
                     and text.startswith("Failed to load resource: the server responded with a status of 4"))
        ]
        assert not errors, f"console errors: {errors}"
        assert not self.page_errors, f"script errors: {self.page_errors}"
        return len(calls)


# ------------------------------------------------------------------ the page, as a user clicks it

class Session:
    def __init__(self, browser, shots, case):
        self.context = browser.new_context(viewport={"width": 1000, "height": 1100}, locale="en-US")
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.recorder = Recorder(self.context, self.page)
        self.shots = shots
        self.case = case
        self.shot_count = 0

    def open(self):
        self.page.goto(WEB)
        expect(self.page.locator("body")).to_have_attribute("data-ready", "true")
        expect(self.page.locator("#sign-in")).to_be_enabled()

    def shot(self, name, page=None):
        self.shot_count += 1
        path = os.path.join(self.shots, f"{self.case}-{self.shot_count:02d}-{name}.png")
        (page or self.page).screenshot(path=path, full_page=True)
        return path

    def notice(self):
        return self.page.locator("#notice-text")

    def consent(self, click, account, untick=(), expect_params=None, shot=None, duration=None):
        """Clicks `click`, then in Google's popup chooses `account`, unticks scopes, picks how
        long access lasts (`duration`: the radio's id, e.g. `duration-1d`; default: until
        removed), Allow."""
        with self.page.expect_popup() as popup_info:
            self.page.click(click)
        popup = popup_info.value
        popup.wait_for_load_state()
        for name, value in (expect_params or {}).items():
            assert f"{name}={value}" in popup.url, f"popup URL lacks {name}={value}: {popup.url}"
        popup.locator("label.account", has_text=account).locator("input").check()
        for scope in untick:
            popup.locator(f'input[name="grant"][value="{scope}"]').uncheck()
        if duration:
            popup.locator(f"#{duration}").check()
        if shot:
            self.shot(shot, popup)
        with popup.expect_event("close"):
            popup.click("#allow")

    def cancel(self, click, close_window=False):
        with self.page.expect_popup() as popup_info:
            self.page.click(click)
        popup = popup_info.value
        popup.wait_for_load_state()
        if close_window:
            popup.close()  # the user closes the window instead of answering
        else:
            with popup.expect_event("close"):
                try:
                    popup.click("#cancel")
                except PlaywrightError:
                    if not popup.is_closed():  # the click closed it before Playwright finished
                        raise

    def sign_in(self, account, **kwargs):
        self.consent("#sign-in", account, **kwargs)
        expect(self.notice()).to_contain_text(f"Signed in as {account}, with offline access")
        expect(self.page.locator("#status")).to_have_text("active")

    def connect_calendar(self, account, click="#connect-calendar", **kwargs):
        self.consent(click, account, **kwargs)
        expect(self.notice()).to_contain_text("Google Calendar connected")
        expect(self.page.locator("#scopes")).to_contain_text(CALENDAR_EVENTS)

    def create_event(self, summary):
        self.page.fill('input[name="summary"]', summary)
        self.page.click("#create-event")

    def close(self):
        self.context.close()


def event_id_on_page(session):
    details = session.page.locator("#event-details").inner_text()
    return details.split(" · id ")[1].split(" · ")[0]


# ------------------------------------------------------------------ the cases

def full_flow(s):
    """Sign in → connect Calendar → create an event → it is in the calendar → /me → disconnect."""
    ada = accounts()["Ada Lovelace"]
    s.open()
    s.shot("signed-out")
    s.sign_in("Ada Lovelace", expect_params={"access_type": "offline"}, shot="google-sign-in")
    expect(s.page.locator("#name")).to_have_text("Ada Lovelace")
    expect(s.page.locator("#offline")).to_contain_text("yes")
    expect(s.page.locator("#grant-expiry")).to_be_hidden()  # access until removed: no end date
    assert s.page.eval_on_selector("#picture", "img => img.complete && img.naturalWidth > 0"), "picture shown"
    expect(s.page.locator("#connect-calendar")).to_be_visible()

    s.connect_calendar(
        "Ada Lovelace",
        expect_params={"include_granted_scopes": "true", "scope": "https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fcalendar.events"},
        shot="google-calendar-consent",
    )
    expect(s.page.locator("#connect-calendar")).to_be_hidden()

    summary = f"Planning session {uuid.uuid4().hex[:6]}"
    s.create_event(summary)
    expect(s.notice()).to_contain_text("Event created")
    link = s.page.locator("#event-link")
    expect(link).to_have_text(summary)
    href = link.get_attribute("href")
    assert href and href.startswith("https://"), href
    s.shot("event-created")

    # The event exists in the (emulated) Google Calendar, and it is the one the page shows.
    stored = [event for event in calendar_events(ada["sub"]) if event.get("summary") == summary]
    assert len(stored) == 1, stored
    assert stored[0]["id"] == event_id_on_page(s)
    assert stored[0]["htmlLink"] == href
    # It was sent with an Idempotency-Key.
    posts = [c for c in s.recorder.api_calls() if c["method"] == "POST" and "/calendar/events" in c["url"]]
    assert posts and all(c["headers"].get("Idempotency-Key") for c in posts), posts

    s.page.click("#refresh-me")
    expect(s.page.locator("#status")).to_have_text("active")
    expect(s.page.locator("#scopes")).to_contain_text("openid")

    s.page.click("#disconnect")
    expect(s.notice()).to_contain_text("Disconnected")
    expect(s.page.locator("#status")).to_have_text("not connected")
    expect(s.page.locator("#offline")).to_have_text("no")
    expect(s.page.locator("#connect-google")).to_have_text("Connect Google account")
    s.shot("disconnected")


def calendar_unticked(s):
    """Calendar box unticked → the page asks for Calendar again and nothing was created."""
    grace = accounts()["Grace Hopper"]
    s.open()
    s.sign_in("Grace Hopper")
    s.consent("#connect-calendar", "Grace Hopper", untick=[CALENDAR_EVENTS], shot="calendar-unticked")
    expect(s.notice()).to_contain_text("Calendar access was not granted")
    expect(s.page.locator("#notice-action")).to_have_text("Connect Google Calendar")
    expect(s.page.locator("#scopes")).not_to_contain_text("calendar")
    s.shot("scope-not-granted")

    # Trying anyway: the API answers scope_required, the page gives the same advice.
    s.create_event("Should not exist")
    expect(s.page.locator("#log li").first).to_contain_text("/calendar/events → 403 scope_required")
    expect(s.notice()).to_contain_text("Calendar access was not granted")
    expect(s.page.locator("#event-result")).to_be_hidden()
    assert calendar_events(grace["sub"]) == [], "nothing was created"

    # Following the advice works.
    s.connect_calendar("Grace Hopper", click="#notice-action")
    s.create_event("Created after connecting")
    expect(s.notice()).to_contain_text("Event created")
    assert [e["summary"] for e in calendar_events(grace["sub"])] == ["Created after connecting"]


def popup_cancelled(s):
    """Cancel, or closing Google's window, leaves the page usable."""
    s.open()
    s.cancel("#sign-in")
    expect(s.notice()).to_contain_text("closed before finishing")
    expect(s.page.locator("#sign-in")).to_be_enabled()
    expect(s.page.locator("#signed-out")).to_be_visible()
    s.shot("cancelled")

    s.cancel("#sign-in", close_window=True)
    expect(s.notice()).to_contain_text("closed before finishing")
    expect(s.page.locator("#sign-in")).to_be_enabled()

    s.sign_in("Alan Turing")
    s.cancel("#connect-calendar")
    expect(s.notice()).to_contain_text("closed before finishing")
    expect(s.page.locator("#connect-calendar")).to_be_enabled()
    expect(s.page.locator("#status")).to_have_text("active")


def grant_revoked(s):
    """A grant made dead at Google → the page asks to sign in again, and that works."""
    katherine = accounts()["Katherine Johnson"]
    s.open()
    s.sign_in("Katherine Johnson")
    expect(s.page.locator("#email")).to_have_text("katherine@corp.example (corp.example)")
    s.connect_calendar("Katherine Johnson")
    s.create_event("Before the revocation")
    expect(s.notice()).to_contain_text("Event created")

    # The user removes the app's access in their Google Account.
    assert emulator("POST", f"/emulator/users/{katherine['sub']}/revoke", {}) == {"revoked": True}
    s.create_event("After the revocation")
    expect(s.notice()).to_contain_text("expired or was revoked")
    expect(s.page.locator("#notice-action")).to_have_text("Sign in again")
    expect(s.page.locator("#log li").first).to_contain_text("401 reauthorization_required")
    s.page.click("#refresh-me")
    expect(s.page.locator("#status")).to_have_text("reauthorization required")
    expect(s.page.locator("#connect-google")).to_have_text("Sign in again")
    expect(s.page.locator("#connect-calendar")).to_be_hidden()
    s.shot("reauthorization-required")
    assert [e["summary"] for e in calendar_events(katherine["sub"])] == ["Before the revocation"]

    # Signing in again asks Google for consent (a new refresh token) for the same account.
    s.consent("#notice-action", "Katherine Johnson",
              expect_params={"prompt": "consent", "login_hint": "katherine%40corp.example"})
    expect(s.notice()).to_contain_text("with offline access")
    expect(s.page.locator("#status")).to_have_text("active")
    expect(s.page.locator("#offline")).to_contain_text("yes")
    assert [e["summary"] for e in calendar_events(katherine["sub"])] == ["Before the revocation"]

    # The revocation took Calendar access with it: connecting it again works at once.
    expect(s.page.locator("#scopes")).not_to_contain_text("calendar")
    s.connect_calendar("Katherine Johnson")
    s.create_event("After reconnecting")
    expect(s.notice()).to_contain_text("Event created")
    summaries = sorted(e["summary"] for e in calendar_events(katherine["sub"]))
    assert summaries == ["After reconnecting", "Before the revocation"], summaries


def offline_access_missing(s):
    """Google gives no refresh token (it already gave one elsewhere) → ask again with consent."""
    ada = accounts()["Ada Lovelace"]
    # Another client session of this app holds Ada's refresh token at Google; a sign-in
    # without prompt=consent then brings no new one (Google's rule, the emulator's too).
    config = emulator("GET", "/emulator/config")
    code = emulator("POST", "/emulator/codes", {"sub": ada["sub"], "name": ada["name"], "email": ada["email"],
                                                "offline": True, "consent": True})["code"]
    form = urllib.parse.urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": "postmessage",
                                   "client_id": config["client_id"], "client_secret": config["client_secret"]})
    with urllib.request.urlopen(EMULATOR + "/token", data=form.encode(), timeout=10) as response:
        assert "refresh_token" in json.loads(response.read())

    s.open()
    s.consent("#sign-in", "Ada Lovelace")
    expect(s.notice()).to_contain_text("did not give this app offline access")
    expect(s.page.locator("#notice-action")).to_have_text("Allow offline access")
    expect(s.page.locator("#offline")).to_have_text("no")
    s.shot("offline-access-missing")

    s.consent("#notice-action", "Ada Lovelace", expect_params={"prompt": "consent", "access_type": "offline"})
    expect(s.notice()).to_contain_text("Signed in as Ada Lovelace, with offline access")
    expect(s.page.locator("#offline")).to_contain_text("yes")


def time_limited_access(s):
    """Access granted for one day only → the page says when Google ends it; renewing it (consent
    again, access until removed: an ordinary sign-in) takes the end date away."""
    alan = accounts()["Alan Turing"]
    # As if Alan removed the app's access earlier: the next offline sign-in is a first grant,
    # so Google issues a refresh token without prompt=consent (whichever cases ran before).
    emulator("POST", f"/emulator/users/{alan['sub']}/revoke", {})
    s.open()
    s.consent("#sign-in", "Alan Turing", duration="duration-1d", shot="google-time-limited")
    expect(s.notice()).to_contain_text("Signed in as Alan Turing, with offline access")
    expect(s.page.locator("#grant-expiry")).to_be_visible()
    expect(s.page.locator("#grant-expiry-text")).to_contain_text("Google will end this access on")
    expect(s.page.locator("#renew-access")).to_be_visible()
    ends = s.page.locator("#grant-expiry").get_attribute("data-expires-at")
    left = datetime.datetime.fromisoformat(ends.replace("Z", "+00:00")).timestamp() - time.time()
    assert 86_400 - 120 < left <= 86_400, f"one day of access, ends {ends}"
    s.shot("grant-expiry")

    s.consent("#renew-access", "Alan Turing", expect_params={"prompt": "consent", "access_type": "offline"})
    expect(s.notice()).to_contain_text("Signed in as Alan Turing, with offline access")
    expect(s.page.locator("#grant-expiry")).to_be_hidden()
    expect(s.page.locator("#status")).to_have_text("active")


CASES = [full_flow, calendar_unticked, popup_cancelled, grant_revoked, offline_access_missing, time_limited_access]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    origin = WEB.rstrip("/")
    print(f"page {WEB}, API {FUNCTIONS}, Google emulator {EMULATOR}; screenshots in {args.out}", flush=True)

    passed = failed = calls = 0
    started = time.monotonic()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        print(f"Chromium {browser.version}", flush=True)
        for case in CASES:
            name = case.__name__
            case_started = time.monotonic()
            session = Session(browser, args.out, name)
            try:
                case(session)
                checked = session.recorder.check_cors(origin)
                calls += checked
                passed += 1
                print(f"PASS {name} ({time.monotonic() - case_started:.1f} s, {checked} API calls preflighted)", flush=True)
            except Exception as error:  # noqa: BLE001 - report every failure, then go on
                failed += 1
                print(f"FAIL {name}: {error}", flush=True)
                traceback.print_exc(limit=3, file=sys.stdout)
                for url, kind, text in session.recorder.console:
                    if kind in ("error", "warning"):
                        print(f"    console {kind}: {text}  [{url}]")
                try:
                    print(f"    page notice: {session.notice().inner_text(timeout=1000)!r}")
                    session.shot("FAILED")
                except Exception:  # noqa: BLE001
                    pass
            finally:
                session.close()
        browser.close()
    print(f"{calls} API calls from the page, each after a CORS preflight from {origin}; "
          f"{time.monotonic() - started:.1f} s")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
