"""API keys: presenting one (header or sign-in cookie), 401s, revoking, open mode, the key
cache, CSRF on cookie-signed requests, /login and /logout, /metrics behind a key.

Every route against every role is tests/test_access.py; tenants are tests/test_tenants.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from filterd import apikeys
from filterd.store.base import utcnow
from tests.service import bearer, client, issue_keys, message

pytestmark = pytest.mark.anyio

CSRF = {"X-Requested-With": "filterd"}


async def test_a_key_is_accepted_as_bearer_or_x_api_key(make_app: Any) -> None:
    app = make_app()
    keys = issue_keys(app, "agent")
    async with client(app) as c:
        for headers in (bearer(keys["agent"]), {"Authorization": "bearer " + keys["agent"]},
                        {"X-API-Key": keys["agent"]}):
            r = await c.get("/v1/me", headers=headers)
            assert r.status_code == 200, (headers, r.text)
            assert r.json()["role"] == "agent" and r.json()["tenant"] == "default"


@pytest.mark.parametrize("case", ["none", "basic", "malformed", "unknown id", "wrong secret",
                                  "revoked"])
async def test_without_a_valid_key_every_v1_route_is_401(make_app: Any, case: str) -> None:
    app = make_app()
    keys = issue_keys(app, "agent", "ingest")
    store = app.state.services.store
    agent = keys["agent"]
    other_id, _ = apikeys.generate()
    headers = {
        "none": {},
        "basic": {"Authorization": "Basic " + agent},  # not a bearer token
        "malformed": bearer("x" * 40),
        "unknown id": bearer(f"fd_{other_id}_{agent.split('_', 2)[2]}"),
        "wrong secret": bearer(agent[:-4] + ("AAAA" if not agent.endswith("AAAA") else "BBBB")),
        "revoked": bearer(keys["ingest"]),
    }[case]
    if case == "revoked":
        store.revoke_api_key(apikeys.key_id_of(keys["ingest"]) or "", utcnow())
    async with client(app) as c:
        for method, path in (("GET", "/v1/conversations"), ("POST", "/v1/messages"),
                             ("GET", "/v1/me"), ("GET", "/v1/audit")):
            r = await c.request(method, path, headers=headers,
                                json=message("c1", "m1", "hi") if method == "POST" else None)
            assert r.status_code == 401, (path, r.text)
            assert r.json()["error"]["code"] == "unauthorized"
            assert r.headers["WWW-Authenticate"] == "Bearer"
            assert agent not in r.text and "x" * 40 not in r.text
        # probes stay open
        assert (await c.get("/healthz")).status_code == 200
        assert (await c.get("/readyz")).status_code == 200
        assert (await c.get("/metrics")).status_code == 200  # FILTERD_METRICS_REQUIRE_KEY off
    if case == "revoked":
        assert "revoked" in r.json()["error"]["message"]


async def test_keys_are_stored_hashed(make_app: Any, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/keys.db"
    app = make_app(database_url=db)
    keys = issue_keys(app, "ingest", "supervisor")
    async with client(app) as c:
        assert (await c.post("/v1/messages", json=message("c1", "m1", "hello"),
                             headers=bearer(keys["ingest"]))).status_code == 200
    raw = Path(f"{tmp_path}/keys.db").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("keys.db-*"))  # the WAL too
    engine = create_engine(db)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, role, digest, last_used_at FROM api_keys")).all()
    engine.dispose()
    assert len(rows) == 2
    for key in keys.values():
        secret = key.split("_", 2)[2]
        assert secret.encode() not in raw and key.encode() not in raw
        row = next(r for r in rows if r.id == apikeys.key_id_of(key))
        assert row.digest == apikeys.digest(key) and len(row.digest) == 64
    used = {r.role: r.last_used_at for r in rows}
    assert used["ingest"] is not None and used["supervisor"] is None


async def test_revoking_takes_effect_within_the_cache_time(make_app: Any) -> None:
    app = make_app(key_cache_seconds=10)
    ring = app.state.services.keyring
    now = [1000.0]
    ring.clock = lambda: now[0]
    keys = issue_keys(app, "agent", "admin")
    store = app.state.services.store
    async with client(app) as c:
        assert (await c.get("/v1/me", headers=bearer(keys["agent"]))).status_code == 200
        store.revoke_api_key(apikeys.key_id_of(keys["agent"]) or "", utcnow())  # the CLI's way
        now[0] += 5  # still cached in this process
        assert (await c.get("/v1/me", headers=bearer(keys["agent"]))).status_code == 200
        now[0] += 6  # past FILTERD_KEY_CACHE_SECONDS: read again, refused
        r = await c.get("/v1/me", headers=bearer(keys["agent"]))
        assert r.status_code == 401 and "revoked" in r.text
        # revoked through the API: at once in this process
        admin = bearer(keys["admin"])
        made = await c.post("/v1/keys", json={"role": "agent", "name": "temp"}, headers=admin)
        assert made.status_code == 201 and made.headers["Cache-Control"] == "no-store"
        token = made.json()["key"]
        assert (await c.get("/v1/me", headers=bearer(token))).status_code == 200
        gone = await c.post(f"/v1/keys/{made.json()['id']}/revoke", headers=admin)
        assert gone.status_code == 200 and gone.json()["active"] is False
        assert (await c.get("/v1/me", headers=bearer(token))).status_code == 401
        listed = (await c.get("/v1/keys", headers=admin)).json()["keys"]
    assert [(k["role"], k["active"]) for k in listed] == [
        ("agent", False), ("admin", True), ("agent", False)]
    assert not any("key" in k for k in listed)  # ids and dates, never a secret


async def test_without_keys_the_service_stays_open(make_app: Any,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    async with client(make_app()) as c:
        r = await c.post("/v1/messages", json=message("c1", "m1", "hello"),
                         headers={"X-API-Key": "anything at all"})
        me = (await c.get("/v1/me")).json()
        closed = [(await c.get(p)).status_code for p in ("/v1/audit", "/v1/keys")]
        original = await c.get("/v1/messages/c1/m1/original")
    assert r.status_code == 200
    assert me["role"] == "anonymous" and me["tenant"] == "default"
    assert closed == [403, 403] and original.status_code == 403
    assert "no API keys in the store" in caplog.text


async def test_revoking_every_key_does_not_reopen_the_service(make_app: Any) -> None:
    app = make_app(key_cache_seconds=0)
    keys = issue_keys(app, "agent")
    app.state.services.store.revoke_api_key(apikeys.key_id_of(keys["agent"]) or "", utcnow())
    async with client(app) as c:
        assert (await c.get("/v1/conversations")).status_code == 401


async def test_require_keys_closes_an_empty_store(make_app: Any) -> None:
    async with client(make_app(require_keys=True)) as c:
        assert (await c.get("/v1/conversations")).status_code == 401
        assert (await c.post("/v1/messages", json=message("c", "m", "hi"))).status_code == 401
        assert (await c.get("/console")).status_code == 401
        assert (await c.get("/healthz")).status_code == 200
        assert (await c.get("/readyz")).status_code == 200


async def test_a_first_key_closes_an_open_service_within_the_cache_time(
        make_app: Any) -> None:
    app = make_app(key_cache_seconds=10)
    ring = app.state.services.keyring
    now = [0.0]
    ring.clock = lambda: now[0]
    async with client(app) as c:
        assert (await c.get("/v1/conversations")).status_code == 200  # open
        issue_keys(app, "agent")  # filterd keys create, from another process
        assert (await c.get("/v1/conversations")).status_code == 200  # cached: still open
        now[0] += 11
        assert (await c.get("/v1/conversations")).status_code == 401


@pytest.mark.parametrize("role, status", [("metrics", 200), ("admin", 200),
                                          ("supervisor", 403), ("agent", 403)])
async def test_metrics_can_require_a_metrics_or_admin_key(make_app: Any, role: str,
                                                          status: int) -> None:
    app = make_app(metrics_require_key=True)
    keys = issue_keys(app, role)
    async with client(app) as c:
        assert (await c.get("/metrics")).status_code == 401
        r = await c.get("/metrics", headers=bearer(keys[role]))
    assert r.status_code == status
    if status == 200:
        assert "filterd_messages_total" in r.text


# ------------------------------------------------------------------ sign-in cookie


async def test_sign_in_sets_an_httponly_strict_cookie_the_pages_and_api_accept(
        make_app: Any) -> None:
    app = make_app()
    keys = issue_keys(app, "agent", "supervisor")
    async with client(app) as c:
        html = {"Accept": "text/html,application/xhtml+xml"}
        r = await c.get("/console", headers=html)
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/console"
        assert (await c.get("/console")).status_code == 401  # not a browser: JSON
        page = await c.get("/login", headers=html)
        assert page.status_code == 200 and "key-input" in page.text
        no_csrf = await c.post("/login", json={"key": keys["agent"]})
        assert no_csrf.status_code == 403 and "set-cookie" not in no_csrf.headers
        bad = await c.post("/login", json={"key": "fd_nope"}, headers=CSRF)
        assert bad.status_code == 401 and "set-cookie" not in bad.headers
        ok = await c.post("/login", json={"key": keys["agent"], "next": "/dashboard"},
                          headers=CSRF)
        assert ok.status_code == 200
        assert ok.json() == {"role": "agent", "tenant": "default", "next": "/console"}
        cookie = ok.headers["set-cookie"]
        assert cookie.startswith("filterd_key=") and "HttpOnly" in cookie
        assert "SameSite=strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain http here; https requests get Secure
        assert keys["agent"] in cookie
        # the cookie now signs the pages and the API in
        assert (await c.get("/console", headers=html)).status_code == 200
        forbidden = await c.get("/dashboard", headers=html)
        assert forbidden.status_code == 403 and "may not use this page" in forbidden.text
        assert (await c.get("/dashboard")).status_code == 403
        assert (await c.get("/v1/me")).json()["role"] == "agent"
        # CSRF: a cookie-signed request that changes something needs the header
        await c.post("/v1/messages", json=message("c1", "m1", "hi"),
                     headers=bearer(issue_keys(app, "ingest")["ingest"]))
        body = {"category": "abusive", "by": "agent-7"}
        url = "/v1/messages/c1/m1/feedback"
        refused = await c.post(url, json=body)
        assert refused.status_code == 403 and "X-Requested-With" in refused.text
        assert (await c.post(url, json=body, headers=CSRF)).status_code == 201
        # a header key wins over the cookie and needs no CSRF header
        assert (await c.get("/v1/dashboard", headers=bearer(keys["supervisor"]))
                ).status_code == 200
        # sign out: the cookie is dropped
        out = await c.get("/logout", headers=html)
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert 'filterd_key=""' in out.headers["set-cookie"] or \
            "Max-Age=0" in out.headers["set-cookie"]
        assert (await c.get("/v1/me")).status_code == 401


async def test_sign_in_is_secure_over_https_and_only_for_page_roles(make_app: Any) -> None:
    app = make_app()
    keys = issue_keys(app, "supervisor", "ingest")
    async with client(app) as c:
        ok = await c.post("https://filterd.test/login", json={"key": keys["supervisor"],
                                                              "next": "//evil.example"},
                          headers=CSRF)
        ingest = await c.post("/login", json={"key": keys["ingest"]}, headers=CSRF)
    assert ok.status_code == 200 and "Secure" in ok.headers["set-cookie"]
    assert ok.json()["next"] == "/console"  # never somewhere else
    assert ingest.status_code == 403 and "set-cookie" not in ingest.headers


async def test_a_revoked_key_in_the_cookie_sends_the_browser_back_to_login(
        make_app: Any) -> None:
    app = make_app(key_cache_seconds=0)
    keys = issue_keys(app, "agent")
    async with client(app) as c:
        assert (await c.post("/login", json={"key": keys["agent"]}, headers=CSRF)
                ).status_code == 200
        app.state.services.store.revoke_api_key(apikeys.key_id_of(keys["agent"]) or "",
                                                utcnow())
        r = await c.get("/console", headers={"Accept": "text/html"})
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
