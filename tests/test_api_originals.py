"""Originals (opt-in, encrypted at rest), the supervisor-only read, and its audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from filterd.errors import ConfigError
from tests.service import client, issue_keys, message

pytestmark = pytest.mark.anyio

KEY = Fernet.generate_key().decode()
RAW = "you idiot, call me on +1 415 555 0132"


def _keys(app: Any) -> tuple[dict[str, str], Any]:
    """Keys by role, and ``_as(role)``: the headers of that role's key."""
    keys = issue_keys(app, "supervisor", "agent", "ingest", "admin")

    def as_(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {keys[role]}"}

    return keys, as_


def _dump(db: str) -> str:
    engine = create_engine(db)
    with engine.connect() as conn:
        rows = [str(tuple(r)) for t in ("messages", "message_originals", "audit_log", "api_keys")
                for r in conn.execute(text(f"SELECT * FROM {t}"))]
    engine.dispose()
    return "\n".join(rows)


async def test_originals_round_trip_encrypted_and_audited(make_app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = f"sqlite:///{tmp_path}/o.db"
    app = make_app(database_url=db, store_originals=True, originals_key=KEY)
    keys, _as = _keys(app)
    async with client(app) as c:
        r = await c.post("/v1/messages", json=message("c1", "m1", RAW), headers=_as("ingest"))
        assert r.status_code == 200 and "idiot" not in r.json()["text_masked"]
        url = "/v1/messages/c1/m1/original"
        ok = await c.get(url, headers=_as("supervisor"))
        assert ok.status_code == 200, ok.text
        assert ok.json() == {"conversation_id": "c1", "message_id": "m1", "text": RAW}
        assert ok.headers["Cache-Control"] == "no-store"
        assert (await c.get(url, headers={"X-API-Key": keys["admin"]})).json()["text"] == RAW
        denied = await c.get(url, headers=_as("agent"))
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
        assert RAW not in denied.text
        missing = await c.get("/v1/messages/c1/nope/original", headers=_as("supervisor"))
        assert missing.json()["error"]["code"] == "message_not_found"
        # the audit log: supervisors and admins only, newest first
        assert (await c.get("/v1/audit", headers=_as("agent"))).status_code == 403
        log = (await c.get("/v1/audit", headers=_as("supervisor"))).json()["entries"]
    assert [(e["role"], e["outcome"], e["message_id"]) for e in log] == [
        ("supervisor", "not_found", "nope"), ("agent", "denied", "m1"),
        ("admin", "granted", "m1"), ("supervisor", "granted", "m1")]
    assert all(e["action"] == "read_original" and e["who"].startswith("key-") for e in log)
    secrets = [k.split("_", 2)[2] for k in keys.values()]
    assert not any(s in e["who"] for e in log for s in secrets)  # the key's id, never the key
    stored = _dump(db)
    assert "gAAAAA" in stored  # a Fernet token is stored...
    for secret in ("idiot", "555 0132", *secrets):  # ...never the text, nor a key
        assert secret not in stored


async def test_originals_are_off_by_default(make_app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = f"sqlite:///{tmp_path}/o.db"
    app = make_app(database_url=db)
    _, _as = _keys(app)
    async with client(app) as c:
        await c.post("/v1/messages", json=message("c1", "m1", RAW), headers=_as("ingest"))
        r = await c.get("/v1/messages/c1/m1/original", headers=_as("supervisor"))
        assert r.status_code == 404 and r.json()["error"]["code"] == "original_not_found"
    assert "gAAAAA" not in _dump(db) and "555 0132" not in _dump(db)


async def test_without_any_key_originals_and_audit_stay_closed(make_app) -> None:  # type: ignore[no-untyped-def]
    async with client(make_app(store_originals=True, originals_key=KEY)) as c:
        r = await c.post("/v1/messages", json=message("c1", "m1", RAW))
        assert r.status_code == 200  # open, as before
        assert (await c.get("/v1/messages/c1/m1/original")).status_code == 403
        assert (await c.get("/v1/audit")).status_code == 403


@pytest.mark.parametrize("overrides, needle", [
    ({"store_originals": True}, "FILTERD_ORIGINALS_KEY is not set"),  # key missing
    ({"store_originals": True, "originals_key": "not-a-key"}, "not a valid Fernet key"),
    ({"originals_key": "x" * 44}, "not a valid Fernet key"),  # checked even when off
])
def test_a_bad_or_missing_fernet_key_stops_start_up(make_app, overrides: dict[str, Any],  # type: ignore[no-untyped-def]
                                                    needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as e:
        make_app(**overrides)
    assert "FILTERD_ORIGINALS_KEY" in str(e.value)
