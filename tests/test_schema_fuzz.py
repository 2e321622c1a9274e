"""Hostile input against the HTTP API: schemathesis fuzzes every operation of the app's own
OpenAPI schema (in-process, over ASGI) and no answer may be a 5xx.

The app is the real one (SQLite in tmp, migrations, encrypted originals on) judging with the
fast keyword classifier; the caller holds an ``admin`` key, the role that reaches every
route's handler. Each operation gets a bounded number of examples, valid and invalid
(schemathesis' positive and negative modes), so the whole file runs in well under a minute.
Checks: no server error, the status code is one the schema documents, the content type
and, for documented answers, the body conform to the schema.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="pip install -e '.[dev]'")

from cryptography.fernet import Fernet  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.service import bearer, client, issue_keys, message  # noqa: E402

EXAMPLES = 25
# The event stream never ends by itself (it waits for messages): fuzzing it would hang.
ENDLESS = "/v1/events"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture
def fuzz_app(make_app: Any) -> Iterator[tuple[Any, dict[str, str]]]:
    """The app with one admin key and a stored message (so lookups can also hit)."""
    from schemathesis.python import asgi

    # Rate limits off: the fuzzer sends hundreds of requests with one key, and 429s would
    # stand in for the answers this test is about.
    app = make_app(store_originals=True, originals_key=Fernet.generate_key().decode(),
                   rate_key_per_second=0, rate_conversation_per_second=0,
                   rate_api_per_second=0)
    keys = issue_keys(app, "admin")
    headers = bearer(keys["admin"])
    _seed(app, headers)
    logging.getLogger("filterd").setLevel(logging.CRITICAL)  # 4xx noise, not failures
    try:
        yield app, headers
    finally:
        logging.getLogger("filterd").setLevel(logging.NOTSET)
        asgi.shutdown_lifespans()  # schemathesis keeps each app's lifespan running


def _seed(app: Any, headers: dict[str, str]) -> None:
    """Some data so lookups by id can hit something (a 200, not only 404s)."""

    async def go() -> None:
        async with client(app) as c:
            r = await c.post("/v1/messages", headers=headers,
                             json=message("c-1", "m-1", "you idiot, call +1 415 555 0132"))
            assert r.status_code == 200, r.text

    asyncio.run(go())


@pytest.fixture
def api_schema(fuzz_app: tuple[Any, dict[str, str]]) -> Any:
    app, headers = fuzz_app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.update(headers=headers)
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.exclude(path=ENDLESS).parametrize()  # type: ignore[untyped-decorator]
@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_operation_answers_a_server_error(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


# ------------------------------------------------------------------ what the fuzzing found


def _post_raw(app: Any, headers: dict[str, str], method: str, path: str,
              body: str | None = None) -> Any:
    async def go() -> Any:
        async with client(app) as c:
            return await c.request(method, path, content=body,
                                   headers={**headers, "content-type": "application/json"})

    return asyncio.run(go())


@pytest.mark.parametrize("body", [
    '{"conversation_id": "c-2", "message_id": "m-1", "channel": "chat", '
    '"sender": {"role": "customer", "id": "x"}, "text": "hi \\ud800 you idiot"}',
    '{"conversation_id": "c-2", "message_id": "m-2", "channel": "chat", '
    '"sender": {"role": "customer", "id": "x"}, "text": "hi", "metadata": {"k": "\\udfff"}}',
])
def test_lone_surrogate_in_a_message_is_a_422_not_a_500(
    fuzz_app: tuple[Any, dict[str, str]], body: str,
) -> None:
    # JSON can spell half a character ("\ud800"); the store could not encode it as UTF-8
    # and the request failed with 500 internal_error.
    app, headers = fuzz_app
    r = _post_raw(app, headers, "POST", "/v1/messages", body)
    assert r.status_code == 422, r.text
    assert "surrogate" in r.json()["error"]["message"]


def test_lone_surrogate_in_a_feedback_note_is_a_422(fuzz_app: tuple[Any, dict[str, str]]
                                                   ) -> None:
    app, headers = fuzz_app
    r = _post_raw(app, headers, "POST", "/v1/messages/c-1/m-1/feedback",
                  '{"category": "neutral", "by": "agent-1", "note": "\\ud800"}')
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("delivery_id", ["4104818469511760445440", "0", "-1"])
def test_delivery_id_outside_a_row_id_is_a_422(fuzz_app: tuple[Any, dict[str, str]],
                                               delivery_id: str) -> None:
    # An id past 2**63 - 1 reached the database driver, which raised: 500.
    app, headers = fuzz_app
    r = _post_raw(app, headers, "POST", f"/v1/deliveries/{delivery_id}/retry")
    assert r.status_code == 422, r.text


def test_schema_documents_the_shared_error_answers(fuzz_app: tuple[Any, dict[str, str]]
                                                   ) -> None:
    app, _ = fuzz_app
    paths = app.openapi()["paths"]
    post = paths["/v1/messages"]["post"]["responses"]
    assert {"400", "401", "403", "413", "415", "422", "429", "503"} <= set(post)
    assert post["415"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorOut")
    assert "404" in paths["/v1/conversations/{conversation_id}"]["get"]["responses"]
    assert "401" not in paths["/healthz"]["get"]["responses"]
