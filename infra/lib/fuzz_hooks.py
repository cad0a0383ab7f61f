"""schemathesis hooks for infra/fuzz-api (loaded through the `hooks` key of the generated config).

- A serializer for `application/secevent+jwt` (`POST /risc`): the body is the compact JWS
  itself, as Google's push delivery sends it (RFC 8935). Generated non-string bodies (negative
  cases) are sent as their JSON text.
- Cases that `cargo lambda watch` cannot turn into a Lambda event are dropped: a header value
  that is not valid UTF-8 on the wire (requests sends header strings as Latin-1), or a raw
  body that is not valid UTF-8. cargo lambda answers those with its own 500
  (`{"type":"https://httpstatuses.com/500",...}`, text/plain) without invoking the function,
  so the answer would say nothing about our code. Non-ASCII UTF-8 values still reach the
  functions.
"""

import json

import schemathesis


@schemathesis.serializer("application/secevent+jwt")
def secevent_jwt(_ctx, value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value).encode("utf-8")


def _header_is_utf8(value):
    try:
        str(value).encode("latin-1").decode("utf-8")
    except UnicodeError:
        return False
    return True


def _body_is_utf8(body):
    if not isinstance(body, (bytes, bytearray)):
        return True  # serialized by schemathesis (JSON, or the serializer above): UTF-8
    try:
        bytes(body).decode("utf-8")
    except UnicodeError:
        return False
    return True


@schemathesis.hook
def filter_case(_ctx, case):
    headers = case.headers or {}
    return all(_header_is_utf8(value) for value in headers.values()) and _body_is_utf8(case.body)
