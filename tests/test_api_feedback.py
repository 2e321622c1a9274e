"""Feedback: POST .../feedback, then `filterd feedback export`, read by `filterd train`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from filterd.classify.data import load_feedback
from filterd.cli import main
from tests.service import client, message


@pytest.mark.anyio
async def test_feedback_round_trip_through_export(make_app: Any, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path}/filterd.db"
    async with client(make_app(database_url=db)) as c:
        await c.post("/v1/messages", json=message("c1", "m1", "you idiot, call 415 555 0132"))
        await c.post("/v1/messages", json=message("c1", "m2", "this is fine"))
        r = await c.post("/v1/messages/c1/m1/feedback",
                         json={"category": "frustrated", "by": "agent-7", "note": "not aimed"})
        assert r.status_code == 201
        fb = r.json()
        assert (fb["category"], fb["flags"], fb["by"], fb["note"]) == (
            "frustrated", [], "agent-7", "not aimed")
        # a second look wins
        await c.post("/v1/messages/c1/m1/feedback",
                     json={"category": "abusive", "flags": ["insult"], "by": "lead-1"})
        await c.post("/v1/messages/c1/m2/feedback", json={"category": "neutral", "by": "a"})
    out = tmp_path / "feedback.jsonl"
    assert main(["feedback", "export", "--out", str(out), "--database-url", db]) == 0
    assert "wrote 2 corrections" in capsys.readouterr().err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["category"], r["flags"]) for r in rows] == [("abusive", ["insult"]),
                                                          ("neutral", [])]
    assert "idiot" not in rows[0]["text"] and "555 0132" not in rows[0]["text"]
    examples = load_feedback(out)  # what `filterd train --feedback FILE` reads
    assert [(e.category, e.flags["insult"]) for e in examples] == [("abusive", 1),
                                                                  ("neutral", 0)]
    assert all(e.source == "feedback" for e in examples)


def test_db_upgrade_command(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/new.db"
    assert main(["db", "upgrade", "--database-url", db]) == 0
    assert main(["db", "upgrade", "--database-url", db]) == 0
    assert (tmp_path / "new.db").exists()


@pytest.mark.anyio
async def test_feedback_note_is_stored_masked_and_redacted(make_app: Any, tmp_path: Path) -> None:
    """Agents quote customers in notes: the note gets the same masking as message text."""
    db_file = tmp_path / "notes.db"
    async with client(make_app(database_url=f"sqlite:///{db_file}")) as c:
        await c.post("/v1/messages", json=message("c1", "m1", "you idiot"))
        r = await c.post("/v1/messages/c1/m1/feedback", json={
            "category": "abusive", "by": "agent-7",
            "note": "he said 'you fucking idiot', call him on 415 555 0132 or bob@example.com"})
        assert r.status_code == 201
        note = r.json()["note"]
    assert "fucking" not in note and "555 0132" not in note and "bob@example.com" not in note
    assert note.startswith("he said") and "call him on" in note
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("notes.db*"))
    assert b"555 0132" not in raw and b"bob@example.com" not in raw and b"fucking" not in raw
