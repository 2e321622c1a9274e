"""The role matrix, route by route: every route of the app, enumerated from ``app.routes``,
against no key, bad keys and every role.

``EXPECTED`` below is this test's own copy of the matrix (README "Access"); a route the app
serves that is missing here fails the test, so a new route cannot ship without a rule.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import fastapi.routing
import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from filterd import apikeys
from filterd.api.access import ACCESS
from filterd.route.conversation import ConversationState
from filterd.store.base import ConversationWrite, NewDelivery, NewMessage, utcnow
from tests.service import bearer, client, issue_keys, message

pytestmark = pytest.mark.anyio

ROLES = ("ingest", "agent", "supervisor", "admin", "metrics")
PUBLIC = frozenset({"public"})
CONSOLE = frozenset({"agent", "supervisor", "admin", "anonymous"})
SUPERVISORS = frozenset({"supervisor", "admin"})
DASHBOARD = SUPERVISORS | {"anonymous"}

# (method, path) -> roles that may call it ("anonymous": the open service; PUBLIC: no key)
EXPECTED: dict[tuple[str, str], frozenset[str]] = {
    ("POST", "/v1/messages"): frozenset({"ingest", "admin", "anonymous"}),
    ("POST", "/v1/messages:batch"): frozenset({"ingest", "admin", "anonymous"}),
    ("GET", "/v1/me"): frozenset({*ROLES, "anonymous"}),
    ("GET", "/console"): CONSOLE,
    ("GET", "/v1/conversations"): CONSOLE,
    ("GET", "/v1/conversations/{conversation_id}"): CONSOLE,
    ("GET", "/v1/events"): CONSOLE,
    ("POST", "/v1/messages/{conversation_id}/{message_id}/feedback"): CONSOLE,
    ("GET", "/dashboard"): DASHBOARD,
    ("GET", "/v1/dashboard"): DASHBOARD,
    ("GET", "/v1/stats"): DASHBOARD,
    ("GET", "/v1/deliveries/dead"): DASHBOARD,
    ("GET", "/v1/messages/{conversation_id}/{message_id}/original"): SUPERVISORS,
    ("GET", "/v1/audit"): SUPERVISORS,
    ("POST", "/v1/deliveries/{delivery_id}/retry"): frozenset({"admin", "anonymous"}),
    ("GET", "/v1/keys"): frozenset({"admin"}),
    ("POST", "/v1/keys"): frozenset({"admin"}),
    ("POST", "/v1/keys/{key_id}/revoke"): frozenset({"admin"}),
    ("DELETE", "/v1/customers/{customer_id}"): frozenset({"admin"}),  # erasure (privacy)
    # FILTERD_METRICS_REQUIRE_KEY=true here (off, /metrics is public)
    ("GET", "/metrics"): frozenset({"metrics", "admin", "anonymous"}),
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("GET", "/logout"): PUBLIC,
    ("POST", "/logout"): PUBLIC,
    ("GET", "/static"): PUBLIC,  # the pages' scripts and styles: no data
    ("GET", "/openapi.json"): PUBLIC,  # the API's description: no data
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
}


def _routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of everything the app serves. Newer FastAPI keeps included routers as
    one entry each; ``iter_route_contexts`` (where it exists) flattens them."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    routes: list[Any] = list(flatten(app.routes) if flatten else app.routes)
    out = []
    for r in routes:
        kind = r.original_route if hasattr(r, "original_route") else r
        if isinstance(kind, Mount):
            out.append(("GET", r.path))
        elif isinstance(kind, APIRoute | Route):
            out += [(m, r.path) for m in sorted(r.methods or ()) if m != "HEAD"]
        else:  # pragma: no cover - a new kind of route needs a rule here
            raise AssertionError(f"unknown route {r!r}")
    return out


class World:
    """An app with data to ask about: c1/m1 (original kept), a dead letter, a spare key."""

    def __init__(self, app: FastAPI, keys: dict[str, str]) -> None:
        self.app = app
        self.keys = keys
        self.delivery_id = 0
        self.spare_key = ""

    async def setup(self, c: httpx.AsyncClient) -> None:
        store = self.app.state.services.store
        auth = bearer(self.keys["ingest"]) if self.keys else {}
        r = await c.post("/v1/messages", json=message("c1", "m1", "you idiot"), headers=auth)
        assert r.status_code == 200, r.text
        now = utcnow()
        state = ConversationState(customer_messages=1)
        verdict = dict(r.json(), id="m1")
        store.write("default", ConversationWrite("c2", "chat", 0, (NewMessage(
            "m1", "chat", "customer", "u", verdict, state, False, now),), state,
            (NewDelivery("m1", "console", "http://console.test/hook", "k", {}),)))
        [d] = store.claim_deliveries(now, 10, 30)
        store.delivery_failed(d.id, now, "HTTP 503", retry_at=None)
        self.delivery_id = d.id
        spare, _ = apikeys.issue(store, "agent", "default", "spare")
        self.spare_key = spare.id

    def url(self, path: str) -> str:
        return (path.replace("{conversation_id}", "c1").replace("{message_id}", "m1")
                .replace("{delivery_id}", str(self.delivery_id))
                .replace("{key_id}", self.spare_key)
                .replace("{customer_id}", "nobody")  # erasing no one: the data stays
                .replace("/static", "/static/style.css"))

    def body(self, method: str, path: str) -> Any:
        if method != "POST":
            return None
        return {
            "/v1/messages": message("c1", "m2", "hello"),
            "/v1/messages:batch": {"messages": [message("c1", "m3", "hello")]},
            "/v1/messages/{conversation_id}/{message_id}/feedback": {"category": "abusive",
                                                                     "by": "someone"},
            "/v1/keys": {"role": "agent"},
            "/login": {"key": self.keys.get("agent", "x")},
        }.get(path)


async def _call(c: httpx.AsyncClient, world: World, method: str, path: str,
                headers: dict[str, str]) -> int:
    url = world.url(path)
    if path == "/v1/events":  # a stream: wait for it to subscribe, send it one event
        events = world.app.state.services.events
        before = events.subscribers

        async def listen() -> int:
            r = await c.get(url, params={"max_events": 1}, headers=headers)
            return r.status_code

        task = asyncio.create_task(listen())
        for _ in range(200):
            if task.done() or events.subscribers > before:
                break
            await asyncio.sleep(0.005)
        if not task.done():
            for tenant in ("default",):
                events.publish(tenant, {"ping": 1})
        return await asyncio.wait_for(task, 10)
    r = await c.request(method, url, headers={**headers, "X-Requested-With": "filterd"},
                        json=world.body(method, path))
    assert r.status_code < 500, (method, path, r.text)
    return r.status_code


def _bad_keys(keys: dict[str, str], revoked: str) -> dict[str, dict[str, str]]:
    other_id, _ = apikeys.generate()
    return {
        "no key": {},
        "malformed key": bearer("not-a-filterd-key-at-all"),
        "unknown key": bearer(f"fd_{other_id}_{keys['agent'].split('_', 2)[2]}"),
        "revoked key": bearer(revoked),
    }


Run = Callable[[], Coroutine[Any, Any, None]]


async def test_every_route_has_a_rule_and_each_role_gets_exactly_its_rights(
        make_app: Any) -> None:
    app = make_app(store_originals=True, originals_key=Fernet.generate_key().decode(),
                   metrics_require_key=True)
    routes = _routes(app)
    assert set(routes) == set(EXPECTED), (
        f"routes without a rule in this test: {sorted(set(routes) - set(EXPECTED))}; "
        f"rules without a route: {sorted(set(EXPECTED) - set(routes))}")
    keys = issue_keys(app, *ROLES)
    revoked = issue_keys(app, "admin")["admin"]
    app.state.services.store.revoke_api_key(apikeys.key_id_of(revoked) or "", utcnow())
    world = World(app, keys)
    wrong: list[str] = []
    async with client(app) as c:
        await world.setup(c)
        for method, path in routes:
            allowed = EXPECTED[(method, path)]
            if allowed == PUBLIC:
                status = await _call(c, world, method, path, {})
                if status in (401, 403):
                    wrong.append(f"{method} {path} without a key: {status}, expected open")
                continue
            for who, headers in _bad_keys(keys, revoked).items():
                status = await _call(c, world, method, path, headers)
                if status != 401:
                    wrong.append(f"{method} {path} with {who}: {status}, expected 401")
            for role in ROLES:
                status = await _call(c, world, method, path, bearer(keys[role]))
                ok = role in allowed
                if ok and not 200 <= status < 400 or not ok and status != 403:
                    wrong.append(f"{method} {path} as {role}: {status}, expected "
                                 f"{'2xx' if ok else 403}")
    assert wrong == []


async def test_the_open_service_grants_anonymous_its_column(make_app: Any) -> None:
    app = make_app(store_originals=True, originals_key=Fernet.generate_key().decode(),
                   metrics_require_key=True)
    world = World(app, {})
    wrong: list[str] = []
    async with client(app) as c:
        await world.setup(c)
        for method, path in _routes(app):
            allowed = EXPECTED[(method, path)]
            status = await _call(c, world, method, path, {})
            ok = allowed == PUBLIC or "anonymous" in allowed
            if ok and status in (401, 403) or not ok and status != 403:
                wrong.append(f"{method} {path} anonymous: {status}")
    assert wrong == []


def test_the_code_matrix_matches_the_readme() -> None:
    """README's "Access" table is written by hand: check it says what ACCESS does."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    lines = readme[readme.index("| permission |"):].splitlines()
    table_lines = lines[:next(n for n, line in enumerate(lines) if not line.startswith("|"))]
    rows = [line for line in table_lines if line.startswith("| `")]
    columns = ["anonymous", "ingest", "agent", "supervisor", "admin", "metrics"]
    table = {}
    for line in rows:
        cells = [x.strip() for x in line.strip("|").split("|")]
        table[cells[0].strip("`")] = {r for r, cell in zip(columns, cells[2:], strict=True)
                                      if cell == "✓"}
    assert table == {p: set(roles) for p, roles in ACCESS.items()}
