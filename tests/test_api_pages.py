"""The browser pages (/console, /dashboard), their static files and security headers, and
the data they use: /v1/me, /v1/dashboard, /v1/stats?bucket=day, /v1/events (SSE)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.service import bearer, client, issue_keys, message

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("path, kind", [
    ("/console", "text/html"),
    ("/dashboard", "text/html"),
    ("/login", "text/html"),
    ("/static/login.js", "javascript"),
    ("/static/console.js", "javascript"),
    ("/static/dashboard.js", "javascript"),
    ("/static/charts.js", "javascript"),
    ("/static/common.js", "javascript"),
    ("/static/style.css", "text/css"),
])
async def test_pages_and_static_files_carry_security_headers(make_app: Any, path: str,
                                                             kind: str) -> None:
    app = make_app()
    keys = issue_keys(app, "admin")
    async with client(app) as c:  # static files and the sign-in page need no key
        r = await c.get(path, headers=bearer(keys["admin"]) if path in (
            "/console", "/dashboard") else {})
    assert r.status_code == 200 and kind in r.headers["content-type"]
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"


async def test_pages_have_no_inline_script_or_style() -> None:
    from filterd.web import STATIC

    for page in ("console.html", "dashboard.html", "login.html", "forbidden.html"):
        html = (STATIC / page).read_text()
        assert "<script>" not in html and "style=" not in html and "<style" not in html
        assert "http://" not in html and "https://" not in html  # nothing from the internet
    for script in STATIC.glob("*.js"):
        assert "innerHTML" not in script.read_text(), script.name  # text goes in as text


async def test_api_answers_carry_the_headers_too(make_app: Any) -> None:
    async with client(make_app()) as c:
        r = await c.get("/v1/stats")
    assert r.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("role, console, dashboard, reveal", [
    ("agent", True, False, False),
    ("supervisor", True, True, True),
    ("admin", True, True, True),
    ("ingest", False, False, False),  # a machine key: no pages
    ("metrics", False, False, False),  # a scraper's key: no pages
])
async def test_me_says_what_a_key_may_do(make_app: Any, role: str, console: bool,
                                         dashboard: bool, reveal: bool) -> None:
    from cryptography.fernet import Fernet

    app = make_app(store_originals=True, originals_key=Fernet.generate_key().decode())
    key = issue_keys(app, role, tenant="acme")[role]
    _as = bearer
    async with client(app) as c:
        me = (await c.get("/v1/me", headers=_as(key))).json()
        dash = await c.get("/v1/dashboard", headers=_as(key))
        events = await c.get("/v1/events", headers=_as(key), params={"max_events": 1},
                             timeout=0.5) if not console else None
        unknown = await c.get("/v1/me")
    assert me == {"role": role, "tenant": "acme", "console": console, "dashboard": dashboard,
                  "reveal": reveal, "originals_kept": True}
    assert dash.status_code == (200 if dashboard else 403)
    if events is not None:
        assert events.status_code == 403
    assert unknown.status_code == 401


async def test_open_service_pages_work_anonymously_but_reveal_is_closed(make_app: Any) -> None:
    async with client(make_app()) as c:
        me = (await c.get("/v1/me")).json()
        dash = await c.get("/v1/dashboard")
    assert me == {"role": "anonymous", "tenant": "default", "console": True, "dashboard": True,
                  "reveal": False, "originals_kept": False}
    assert dash.status_code == 200 and dash.json()["reveal"] is False


async def test_dashboard_lists_urgent_queues_and_repeat_offenders(make_app: Any) -> None:
    batch = [message("a", "1", "you idiot"), message("a", "2", "you moron"),
             message("a", "3", "idiot again"),
             message("b", "1", "I want to kill myself", channel="sms"),
             message("c", "1", "hello there")]
    batch[3]["sender"]["id"] = "cust-b"
    batch[4]["sender"]["id"] = "cust-c"
    async with client(make_app()) as c:
        assert (await c.post("/v1/messages:batch", json={"messages": batch})).status_code == 200
        d = (await c.get("/v1/dashboard")).json()
        sms = (await c.get("/v1/dashboard", params={"channel": "sms"})).json()
    assert list(d["queues"]) == ["crisis", "supervisor", "abuse_review"]
    assert [c["id"] for c in d["queues"]["crisis"]] == ["b"]
    assert [c["id"] for c in d["queues"]["abuse_review"]] == ["a"]
    assert d["repeat_offenders"] == [{"sender_id": "customer-1", "abusive": 3, "messages": 3,
                                      "conversations": 1}]
    assert d["stats"]["messages"] == 5 and sms["stats"]["messages"] == 1
    assert sms["stats"]["channel"] == "sms" and sms["stats"]["abusive"] == 0


async def test_stats_by_day_with_escalations_and_routes(make_app: Any) -> None:
    batch = [message("a", "1", "you idiot"), message("a", "2", "you moron"),
             message("b", "1", "still waiting", channel="sms")]
    async with client(make_app()) as c:
        await c.post("/v1/messages:batch", json={"messages": batch})
        day = (await c.get("/v1/stats", params={"window": "30d", "bucket": "day"})).json()
        hour = (await c.get("/v1/stats", params={"window": "24h"})).json()
        bad = await c.get("/v1/stats", params={"bucket": "week"})
    assert day["bucket"] == "day" and len(day["series"]) in (30, 31)
    assert day["series"][-1]["start"].endswith("T00:00:00Z")
    last = day["series"][-1]
    assert (last["messages"], last["abusive"], last["frustrated"], last["escalations"]) == (
        3, 2, 1, 1)
    assert last["queues"] == {"priority": 2, "abuse_review": 1}  # frustrated: priority
    assert sum(p["messages"] for p in day["series"]) == 3
    assert hour["bucket"] == "hour" and len(hour["series"]) in (24, 25)
    assert hour["series"][-1] == {**last, "start": hour["series"][-1]["start"]}
    assert bad.status_code == 422


async def test_events_stream_stored_messages_masked(make_app: Any) -> None:
    app = make_app()
    events = app.state.services.events
    async with client(app) as c:
        async def listen() -> str:
            r = await c.get("/v1/events", params={"max_events": 2})
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            return r.text

        task = asyncio.create_task(listen())
        for _ in range(200):
            if events.subscribers:
                break
            await asyncio.sleep(0.01)
        await c.post("/v1/messages", json=message("e", "1", "you idiot <b>x</b>"))
        await c.post("/v1/messages", json=message("e", "1", "you idiot <b>x</b>"))  # replay
        await c.post("/v1/messages", json=message("e", "2", "ok thanks", role="agent"))
        body = await asyncio.wait_for(task, 10)
    data = [json.loads(line[5:]) for line in body.splitlines() if line.startswith("data:")]
    assert [(d["conversation_id"], d["message"]["message_id"]) for d in data] == [
        ("e", "1"), ("e", "2")]  # the replay is not announced again
    first = data[0]["message"]
    assert "idiot" not in json.dumps(data) and first["text_masked"].endswith("<b>x</b>")
    assert first["category"] == "abusive" and "insult" in first["flags"]
    assert data[0]["state"]["strikes"] == 1 and data[1]["message"]["role"] == "agent"
    assert events.subscribers == 0
