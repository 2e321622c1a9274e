"""Every 4xx the API answers, and the 500 that never shows a traceback."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.service import client, message

pytestmark = pytest.mark.anyio

_OK = message("c1", "m1", "hello")


def _with(**changes: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(_OK))
    for key, value in changes.items():
        if value is _DROP:
            body.pop(key)
        else:
            body[key] = value
    return body


_DROP = object()


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "says"),
    [
        # not JSON at all
        ("POST", "/v1/messages", b'{"text": ', 400, "malformed_json", "not valid JSON"),
        # JSON, but a list where an object belongs
        ("POST", "/v1/messages", [], 422, "invalid_field", "'body'"),
        # a required field is missing
        ("POST", "/v1/messages", _with(text=_DROP), 422, "missing_field", "'text'"),
        # nested field missing
        ("POST", "/v1/messages", _with(sender={"id": "u"}), 422, "missing_field",
         "'sender.role'"),
        # wrong types
        ("POST", "/v1/messages", _with(text=42), 422, "invalid_field", "'text'"),
        ("POST", "/v1/messages", _with(sender={"role": "robot", "id": "u"}), 422,
         "invalid_field", "'customer', 'agent' or 'bot'"),
        ("POST", "/v1/messages", _with(sent_at="yesterday"), 422, "invalid_field", "'sent_at'"),
        # an id that cannot appear in a URL
        ("POST", "/v1/messages", _with(conversation_id="a/b"), 422, "invalid_field",
         "'conversation_id'"),
        # an unknown field (a typo would otherwise be silently dropped)
        ("POST", "/v1/messages", _with(txt="hi"), 422, "invalid_field", "'txt'"),
        # metadata too big
        ("POST", "/v1/messages", _with(metadata={f"k{i}": i for i in range(40)}), 422,
         "invalid_field", "at most 32 keys"),
        # empty and oversize text (limit: FILTERD_MAX_MESSAGE_BYTES, 8 KB by default)
        ("POST", "/v1/messages", _with(text="  \n "), 422, "invalid_input", "empty"),
        ("POST", "/v1/messages", _with(text="x" * 8193), 413, "text_too_long",
         "8,193 bytes of UTF-8; the limit is 8,192"),
        ("POST", "/v1/messages", _with(text="é" * 4097), 413, "text_too_long", "8,194 bytes"),
        # batches
        ("POST", "/v1/messages:batch", {"messages": []}, 422, "invalid_input", "no messages"),
        ("POST", "/v1/messages:batch", {"messages": [_OK, _with(text="")]}, 422,
         "invalid_input", "messages[1]: 'text' is empty"),
        ("POST", "/v1/messages:batch", {"messages": [_with(message_id=_DROP)]}, 422,
         "missing_field", "'messages[0].message_id'"),
        # unknown things
        ("GET", "/v1/conversations/nope", None, 404, "conversation_not_found", "'nope'"),
        ("POST", "/v1/messages/c1/nope/feedback", {"category": "neutral", "by": "a"}, 404,
         "message_not_found", "'c1/nope'"),
        ("POST", "/v1/messages/c1/m1/feedback", {"category": "angry", "by": "a"}, 422,
         "invalid_field", "'category'"),
        ("POST", "/v1/messages/c1/m1/feedback", {"category": "neutral"}, 422, "missing_field",
         "'by'"),
        ("POST", "/v1/deliveries/7/retry", None, 404, "delivery_not_found", "7"),
        ("POST", "/v1/deliveries/seven/retry", None, 422, "invalid_field", "'path.delivery_id'"),
        # queries
        ("GET", "/v1/conversations?limit=0", None, 422, "invalid_field", "'query.limit'"),
        ("GET", "/v1/conversations?category=angry", None, 422, "invalid_field",
         "'query.category'"),
        ("GET", "/v1/conversations?since=soon", None, 422, "invalid_field", "'query.since'"),
        ("GET", "/v1/stats?window=forever", None, 422, "invalid_input", "'window'"),
        ("GET", "/v1/stats?window=90d", None, 422, "invalid_input", "at most 31d"),
        # routes and methods
        ("GET", "/v2/nothing", None, 404, "not_found", "No route GET /v2/nothing"),
        ("GET", "/v1/messages", None, 405, "method_not_allowed", "GET is not allowed"),
    ],
)
async def test_errors_say_what_is_wrong(make_app: Any, method: str, path: str, body: Any,
                                        status: int, code: str, says: str) -> None:
    async with client(make_app()) as c:
        assert (await c.post("/v1/messages", json=_OK)).status_code == 200
        if isinstance(body, bytes):
            r = await c.request(method, path, content=body,
                                headers={"content-type": "application/json"})
        else:
            r = await c.request(method, path, json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code
    assert says in err["message"]
    assert "Traceback" not in r.text


async def test_a_body_that_is_not_json_is_refused_by_type(make_app: Any) -> None:
    async with client(make_app()) as c:
        r = await c.post("/v1/messages", content="hello", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "unsupported_media_type"


async def test_a_batch_over_the_limit_is_refused(make_app: Any) -> None:
    async with client(make_app(batch_max_messages=3)) as c:
        r = await c.post("/v1/messages:batch", json={"messages": [
            message("c", f"m{i}", "hi") for i in range(4)]})
    assert r.status_code == 413
    assert r.json()["error"] == {
        "code": "batch_too_large",
        "message": "The batch holds 4 messages; the limit is 3 (FILTERD_BATCH_MAX_MESSAGES). "
                   "Split it."}


async def test_an_unexpected_failure_is_a_500_without_traceback_or_text(
    make_app: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app()
    store = app.state.services.store

    words = "my secret words"

    def broken(*args: Any) -> Any:
        raise RuntimeError(f"boom: {words}")

    store.find_messages = broken
    async with client(app) as c:  # the app itself raises nothing
        r = await c.post("/v1/messages", json=message("c1", "m1", words))
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal_error"
    assert "Traceback" not in r.text and "boom" not in r.text
    logged = caplog.text
    assert "RuntimeError" in logged and "secret" not in logged
