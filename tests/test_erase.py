"""The right to erasure (issue 6, privacy), on SQLite and PostgreSQL: erasing a customer
removes every row about them from every table, leaves other customers and tenants alone, is
audited under a pseudonym, is admin-only over HTTP, works from the CLI, and is idempotent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from filterd.cli import main
from filterd.errors import StaleStateError
from filterd.metrics import Metrics
from filterd.privacy import erase_customer
from filterd.route.conversation import ConversationState
from filterd.store.base import (
    AuditEntry,
    ConversationWrite,
    NewMessage,
    Removed,
    pseudonym,
    utcnow,
)
from filterd.store.models import messages, metadata
from filterd.store.sql import SqlStore
from tests.service import Receiver, bearer, client, issue_keys, message
from tests.test_retention import NEW, OLD, Msg, put

pytestmark = pytest.mark.anyio

# Every table of the store, and whether it can hold data about a customer. A new table must
# be added here: to HOLDS_CUSTOMER_DATA (then the erasure test seeds it and checks it is
# emptied of the customer), or to NO_CUSTOMER_DATA with the reason.
HOLDS_CUSTOMER_DATA = frozenset({"conversations", "messages", "message_originals", "feedback",
                                 "outbox", "audit_log"})
NO_CUSTOMER_DATA = {
    "heartbeat": "one row: when /readyz last wrote",
    "api_keys": "keys of agents, platforms and admins (digests, roles, tenants)",
}
MARK = "ZEBRA"  # in every piece of text about the erased customer
THEIRS = ("acme-conv-1", "acme-conv-2")  # the erased customer's conversations


def test_every_table_is_classified() -> None:
    tables = set(metadata.tables)
    assert tables == HOLDS_CUSTOMER_DATA | NO_CUSTOMER_DATA.keys(), (
        "a table was added or removed: classify it above (and make the erasure cover it): "
        f"{sorted(tables ^ (HOLDS_CUSTOMER_DATA | NO_CUSTOMER_DATA.keys()))}")


def _rows(store: SqlStore) -> dict[str, list[str]]:
    """Every row of every table (as text), read directly."""
    with store._engine.connect() as conn:
        return {name: sorted(repr(tuple(r)) for r in conn.execute(select(table)))
                for name, table in metadata.tables.items()}


def _about_them(row: str) -> bool:
    return MARK in row or any(cid in row for cid in THEIRS)


def _seed(store: SqlStore) -> None:
    """cust-42 of acme (two conversations, with an agent's and a bot's replies), cust-7 of
    acme served by the same agent, and a cust-42 of another tenant."""
    put(store, "acme", "acme-conv-1", Msg("m1", OLD, sender="cust-42", delivery="delivered",
                                          feedback=True), marker=MARK)
    put(store, "acme", "acme-conv-1",
        Msg("m2", NEW, role="agent", sender="agent-7", delivery="dead", feedback=True),
        Msg("m3", NEW, sender="cust-42", delivery="pending"),
        Msg("m4", NEW, role="bot", sender="bot-1", sealed=False), marker=MARK)
    put(store, "acme", "acme-conv-2", Msg("m1", NEW, sender="cust-42", delivery="pending"),
        marker=MARK)
    put(store, "acme", "acme-other", Msg("m1", NEW, sender="cust-7", delivery="pending",
                                         feedback=True),
        Msg("m2", NEW, role="agent", sender="agent-7", feedback=True))
    put(store, "globex", "globex-conv", Msg("m1", NEW, sender="cust-42", delivery="pending",
                                            feedback=True))
    for tenant, cid in (("acme", "acme-conv-1"), ("acme", "acme-other"),
                        ("globex", "globex-conv")):
        store.audit(tenant, AuditEntry("key-sup", "supervisor", "read_original", cid, "m1",
                                       "granted", utcnow()))


EXPECTED = Removed(conversations=2, messages=5, message_originals=4, feedback=2, outbox=4,
                   audit_log=1)


def _entry() -> AuditEntry:
    return AuditEntry("key-dpo", "admin", "erase", "-", "-", "done", utcnow(),
                      detail={"customer": pseudonym("acme", "cust-42")})


def test_erasure_removes_the_customer_from_every_table(store: SqlStore) -> None:
    _seed(store)
    before = _rows(store)
    for table in HOLDS_CUSTOMER_DATA:  # the seed really reaches every table (the check can fail)
        assert any(_about_them(r) for r in before[table]), table
    erasure = store.erase_customer("acme", "cust-42", _entry(), batch=1)  # one conversation
    assert erasure.removed == EXPECTED                                    # per transaction
    after = _rows(store)
    traces = {t: [r for r in rows if _about_them(r)] for t, rows in after.items()}
    assert traces == {t: [] for t in metadata.tables}
    # other customers, other tenants: every row as it was (the audit log aside, below)
    for table in set(metadata.tables) - {"audit_log"}:
        assert after[table] == [r for r in before[table] if not _about_them(r)], table
    m = messages.c
    with store._engine.connect() as conn:
        assert conn.execute(select(m.tenant).where(m.sender_id == "cust-42")).scalars().all() \
            == ["globex"]
    assert [x.message_id for x in store.transcript("acme", "acme-other").messages] == ["m1",
                                                                                     "m2"]
    # the audit log: the read of their original stays, under a pseudonym; then the erasure
    entries = store.audit_entries("acme", 10)
    erase, read_other, read_theirs = entries
    assert (read_theirs.who, read_theirs.outcome, read_theirs.conversation_id) == (
        "key-sup", "granted", pseudonym("acme", "acme-conv-1"))
    assert read_other.conversation_id == "acme-other"
    assert (erase.action, erase.who, erase.outcome, erase.id) == (
        "erase", "key-dpo", "done", erasure.audit.id)
    assert erase.detail == {"customer": pseudonym("acme", "cust-42"),
                            "removed": EXPECTED.as_dict()}
    assert not any("cust-42" in r for r in after["audit_log"])
    assert store.audit_entries("globex", 10)[0].conversation_id == "globex-conv"
    # idempotent: nothing left, and that is recorded too
    again = store.erase_customer("acme", "cust-42", _entry())
    assert again.removed == Removed() and again.audit.detail is not None
    assert again.audit.detail["removed"] == Removed().as_dict()
    assert _rows(store)["messages"] == after["messages"]


def test_a_crash_mid_erasure_leaves_whole_conversations(store: SqlStore,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each batch of conversations is one transaction: a failure in the second batch undoes
    that batch only; the first conversation is wholly gone, the second wholly there, and no
    erasure is recorded until a rerun completes it."""
    _seed(store)
    real = store._erase_batch
    calls = []

    def crash_in_second_batch(*args: Any) -> Removed:
        removed = real(*args)  # the deletes run...
        calls.append(removed)
        if len(calls) == 2:
            raise RuntimeError("power cut")  # ...and are rolled back
        return removed

    monkeypatch.setattr(store, "_erase_batch", crash_in_second_batch)
    with pytest.raises(RuntimeError):
        store.erase_customer("acme", "cust-42", _entry(), batch=1)
    rows = _rows(store)
    assert not any("acme-conv-1" in r for t in rows.values() for r in t)
    assert len([r for r in rows["messages"] if "acme-conv-2" in r]) == 1
    assert len([r for r in rows["outbox"] if "acme-conv-2" in r]) == 1
    assert [e.action for e in store.audit_entries("acme", 10)] == ["read_original"] * 2
    monkeypatch.undo()
    rest = store.erase_customer("acme", "cust-42", _entry())
    assert rest.removed == Removed(conversations=1, messages=1, message_originals=1, outbox=1)
    assert not any(_about_them(r) for t in _rows(store).values() for r in t)


def test_a_message_racing_the_erasure_starts_a_fresh_conversation(store: SqlStore) -> None:
    """A message judged against the conversation before the erasure commits is refused
    (the version it expects is gone) and re-judged against a new, empty conversation."""
    _seed(store)
    snap = store.snapshots("acme", ["acme-conv-2"])["acme-conv-2"]
    assert snap.version == 1
    store.erase_customer("acme", "cust-42", _entry())
    msg = NewMessage("m9", "chat", "customer", "cust-42", {
        "text_masked": "again", "category": "neutral", "level": 0, "intensity": 0.0,
        "flags": [], "route": {"queue": "standard", "priority": 3}},
        ConversationState(customer_messages=1), False, utcnow())
    with pytest.raises(StaleStateError, match="vanished"):
        store.write("acme", ConversationWrite("acme-conv-2", "chat", snap.version, (msg,),
                                              ConversationState(1)))
    store.write("acme", ConversationWrite("acme-conv-2", "chat", 0, (msg,),
                                          ConversationState(1)))
    assert store.snapshots("acme", ["acme-conv-2"])["acme-conv-2"].state.customer_messages == 1
    assert [m.message_id for m in store.transcript("acme", "acme-conv-2").messages] == ["m9"]


def test_erase_counts_in_the_metrics_and_refuses_a_bad_id(store: SqlStore) -> None:
    _seed(store)
    metrics = Metrics()
    erase_customer(store, "acme", "cust-42", who="key-dpo", role="admin", metrics=metrics)
    text = metrics.render().decode()
    assert "filterd_erasures_total 1.0" in text
    assert 'filterd_erased_rows_total{table="messages"} 5.0' in text
    from filterd.errors import InputError

    with pytest.raises(InputError, match="1 to 200 characters"):
        erase_customer(store, "acme", "x" * 201, who="key-dpo", role="admin")


# ------------------------------------------------------------------ over HTTP


RAW = "you idiot, call me on +1 415 555 0132"


def _from(customer: str, cid: str, mid: str, text: str = RAW, role: str = "customer"
          ) -> dict[str, Any]:
    return message(cid, mid, text, role=role, sender={"role": role, "id": customer})


async def test_the_erasure_api(make_app: Any, tmp_path: Path) -> None:
    receiver = Receiver()
    app = make_app(database_url=f"sqlite:///{tmp_path}/e.db", store_originals=True,
                   originals_key=Fernet.generate_key().decode(),
                   console_webhook_url="http://console.test/hook", transport=receiver.transport)
    keys = issue_keys(app, "ingest", "agent", "supervisor", "admin", tenant="acme")
    other = issue_keys(app, "ingest", "admin", tenant="globex")
    store: SqlStore = app.state.services.store
    async with client(app) as c:
        for body in (_from("cust-42", "k1", "m1"), _from("agent-7", "k1", "m2", "hello",
                                                         role="agent"),
                     _from("cust-42", "k2", "m1"), _from("cust-7", "k3", "m1")):
            r = await c.post("/v1/messages", json=body, headers=bearer(keys["ingest"]))
            assert r.status_code == 200, r.text
        r = await c.post("/v1/messages", json=_from("cust-42", "k1", "m1"),
                         headers=bearer(other["ingest"]))
        assert r.status_code == 200
        assert store.outbox_depth() == 4  # customer messages to the console, not yet sent
        url = "/v1/customers/cust-42"
        for role in ("agent", "supervisor", "ingest"):
            r = await c.delete(url, headers=bearer(keys[role]))
            assert r.status_code == 403 and "admin" in r.json()["error"]["message"], role
        assert store.transcript("acme", "k1").messages  # nothing erased yet
        r = await c.delete(url, headers=bearer(keys["admin"]))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["tenant"] == "acme" and body["customer"] == pseudonym("acme", "cust-42")
        assert body["removed"] == Removed(conversations=2, messages=3, message_originals=3,
                                          outbox=2).as_dict()
        assert r.headers["Cache-Control"] == "no-store"
        for cid in ("k1", "k2"):
            got = await c.get(f"/v1/conversations/{cid}", headers=bearer(keys["agent"]))
            assert got.status_code == 404
        got = await c.get("/v1/messages/k1/m1/original", headers=bearer(keys["supervisor"]))
        assert got.status_code == 404
        listed = await c.get("/v1/conversations", headers=bearer(keys["agent"]))
        assert [x["id"] for x in listed.json()["conversations"]] == ["k3"]
        # the pending deliveries were cancelled: the console only ever gets the others
        await app.state.services.deliverer.run_once()
        assert sorted((p["tenant"], p["conversation_id"])
                      for p in receiver.accepted.values()) == [("acme", "k3"), ("globex", "k1")]
        assert store.transcript("globex", "k1").messages  # the other tenant's cust-42 stays
        # audited, under the pseudonym; the audit read itself is the supervisor's right
        log = (await c.get("/v1/audit", headers=bearer(keys["supervisor"]))).json()["entries"]
        erase = [e for e in log if e["action"] == "erase"]
        assert len(erase) == 1 and erase[0]["who"].startswith("key-")
        assert erase[0]["detail"] == {"customer": body["customer"], "removed": body["removed"]}
        assert "cust-42" not in json.dumps(log)
        # idempotent
        again = await c.delete(url, headers=bearer(keys["admin"]))
        assert again.status_code == 200 and set(again.json()["removed"].values()) == {0}
        metrics = (await c.get("/metrics")).text
        assert "filterd_erasures_total 2.0" in metrics


async def test_erasure_is_closed_on_the_open_service(make_app: Any) -> None:
    async with client(make_app()) as c:
        await c.post("/v1/messages", json=_from("cust-42", "k1", "m1"))
        r = await c.delete("/v1/customers/cust-42")
        assert r.status_code == 403
        assert (await c.get("/v1/conversations/k1")).status_code == 200


# ------------------------------------------------------------------ the CLI


def test_filterd_erase(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path}/c.db"
    store = SqlStore(db)
    store.upgrade()
    _seed(store)
    args = ["erase", "--customer", "cust-42", "--tenant", "acme", "--by", "dpo@acme.example",
            "--database-url", db]
    assert main(args) == 0
    out, err = capsys.readouterr()
    got = json.loads(out)
    assert got["removed"] == EXPECTED.as_dict() and got["tenant"] == "acme"
    assert got["customer"] == pseudonym("acme", "cust-42") and "cust-42" not in out
    assert "as dpo@acme.example" in err
    [entry] = [e for e in store.audit_entries("acme", 10) if e.action == "erase"]
    assert (entry.who, entry.role, entry.id) == ("dpo@acme.example", "cli", got["audit_id"])
    assert not any(_about_them(r) for t in _rows(store).values() for r in t)
    assert main(args) == 0  # idempotent
    assert set(json.loads(capsys.readouterr().out)["removed"].values()) == {0}
    assert main(["erase", "--customer", "cust-42", "--tenant", "no spaces",
                 "--database-url", db]) == 2
    assert "not a valid name" in capsys.readouterr().err
    store.close()
