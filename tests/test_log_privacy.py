"""Raw customer text never reaches a log line, nor the database file.

A real ``filterd serve`` runs with the root logger at DEBUG (every library's logging
heard) and uvicorn's access log on. Messages planted with unique PII (phone, e-mail, card
number, IBAN), profanity and a marker word go through every route that takes text: single,
batch, a replay, an agent's feedback note, requests refused by validation with the text in
the body, and a model that crashes while the text is in scope. Then every line the
process wrote is scanned. ``filterd check`` is scanned the same way. Masked forms
(``[phone]``, ``****``) may appear; the raw values may not.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.procs import DEBUG_CLI, Service, free_port, lines_containing, service_env, wait_for
from tests.service import message

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="real processes")

_TAG = uuid.uuid4().hex[:8]
MARKER = f"zebra{_TAG}"  # an ordinary word: masking keeps it, so it finds any text leak
EMAIL = f"jane.{_TAG}@example.com"
PHONE, PHONE_DIGITS = "+1 415 555 0142", "4155550142"
CARD, CARD_DIGITS = "4111 1111 1111 1111", "4111111111111111"
IBAN, IBAN_PLAIN = "DE89 3704 0044 0532 0130 00", "DE89370400440532013000"
RUDE = ("dickhead", "fuckwit", "shitstorm")
TEXT = (f"{MARKER} you {RUDE[0]} {RUDE[1]}, call me on {PHONE} or mail {EMAIL}, card {CARD}, "
        f"iban {IBAN}, what a {RUDE[2]}")
# What the database may never hold (the marker may: it survives masking).
RAW = (EMAIL, PHONE, PHONE_DIGITS, CARD, CARD_DIGITS, IBAN, IBAN_PLAIN, *RUDE)
# What no log line may hold: no text at all, raw or masked, is logged today.
NEVER_LOGGED = (*RAW, MARKER)
# An agent's feedback note is stored as the agent wrote it (it is not customer text, so it
# has values of its own here), but it is never logged either.
NOTE_MARKER = f"quagga{_TAG}"
NOTE = f"{NOTE_MARKER}: customer asked to be called at +44 20 7946 0{_TAG[:3]}"
TOKEN = f"secret{_TAG}"  # in the console webhook's URL

# A classifier that crashes quoting its input, as a tokenizer error might: the service
# must log that the model failed without the exception's text. "ready?" is /readyz's probe.
_CRASHING_MODEL = """
import filterd.classify.onnx as onnx

class Crashing:
    def __init__(self, *args, **kwargs):
        pass

    def predict(self, texts):
        if list(texts) == ["ready?"]:
            return onnx_ready(texts)
        raise ValueError(f"cannot encode {list(texts)!r}")

def onnx_ready(texts):
    from filterd.classify.fake import KeywordClassifier
    return KeywordClassifier().predict(texts)

onnx.OnnxClassifier = Crashing
"""


def _routes(c: httpx.Client) -> None:
    """Every route that takes customer text, the good and the refused requests."""
    assert c.post("/v1/messages", json=message("conv-1", "m1", TEXT)).status_code == 200
    again = c.post("/v1/messages", json=message("conv-1", "m1", TEXT))
    assert again.headers.get("Idempotent-Replayed") == "true"
    batch = c.post("/v1/messages:batch", json={"messages": [
        message("conv-1", "m2", TEXT), message("conv-1", "m3", TEXT, role="agent"),
        message("conv-2", "m1", TEXT)]})
    assert batch.status_code == 200, batch.text
    fb = c.post("/v1/messages/conv-1/m1/feedback",
                json={"category": "abusive", "by": "agent-7", "note": NOTE})
    assert fb.status_code == 201, fb.text
    refused = {
        422: [message("conv-1", "m9", TEXT, role="hacker"),
              {"conversation_id": "conv-1", "message_id": "m9", "text": TEXT},
              {**message("conv-1", "m9", TEXT), "metadata": {"k": {"nested": TEXT}}}],
        413: [message("conv-1", "m9", TEXT * 100)],
    }
    for status, bodies in refused.items():
        for body in bodies:
            r = c.post("/v1/messages", json=body)
            assert r.status_code == status, (status, r.text)
            assert MARKER not in r.text  # nor echoed to the caller
    bad_batch = c.post("/v1/messages:batch", json={"messages": [
        message("conv-3", "m1", TEXT), message("conv-3", "m2", " ")]})
    assert bad_batch.status_code == 422
    assert c.post("/v1/messages", content=("{" + TEXT).encode(),
                  headers={"content-type": "application/json"}).status_code == 400
    assert c.post("/v1/messages", content=TEXT.encode(),
                  headers={"content-type": "text/plain"}).status_code in (415, 422)
    bad_fb = c.post("/v1/messages/conv-1/m1/feedback",
                    json={"category": "nonsense", "by": "agent-7", "note": NOTE})
    assert bad_fb.status_code == 422


def _assert_clean(lines: list[str], what: str) -> None:
    leaks = list(lines_containing(lines, [*NEVER_LOGGED, NOTE_MARKER, TOKEN]))
    assert not leaks, f"{what} logged raw text:\n" + "\n".join(leaks[:20])


def _db_bytes(tmp: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(tmp.glob("*.db*")))


def _scan_db(tmp: Path) -> None:
    data = _db_bytes(tmp).lower()
    assert b"[phone]" in data and b"[email]" in data  # the scan reads the real file
    found = [v for v in RAW if v.lower().encode() in data]
    assert not found, f"the database file holds raw values: {found}"


def test_no_raw_text_in_service_logs_or_database(tmp_path: Path) -> None:
    # A console that refuses connections: failed deliveries are logged, without the
    # payload and without the URL's credentials and query string.
    console = f"http://hook:{TOKEN}@127.0.0.1:{free_port()}/console?token={TOKEN}"
    env = service_env(FILTERD_DATABASE_URL=f"sqlite:///{tmp_path}/privacy.db",
                      FILTERD_CONSOLE_WEBHOOK_URL=console, FILTERD_DELIVERY_POLL_SECONDS="0.2",
                      FILTERD_DELIVERY_BACKOFF_SECONDS="0.1")
    with Service(tmp_path, env, "--access-log", launcher=("-c", DEBUG_CLI),
                 cli_args=("-v",)).start() as srv, srv.client() as c:
        _routes(c)
        assert wait_for(lambda: any("delivery" in x and "failed" in x for x in srv.lines), 30)
        transcript = c.get("/v1/conversations/conv-1").json()["transcript"]
        assert [m["message_id"] for m in transcript] == ["m1", "m2", "m3"]
        assert all(MARKER in m["text_masked"] and EMAIL not in m["text_masked"]
                   for m in transcript)
        assert srv.stop() == 0
    lines = srv.lines
    # the capture works and is verbose: uvicorn's access log and filterd's INFO lines
    assert any("POST /v1/messages" in x for x in lines), lines[:20]
    assert any("stored conv-1/m1" in x for x in lines), lines[:20]
    assert any(x.startswith("DEBUG ") for x in lines), lines[:20]
    _assert_clean(lines, "filterd serve")
    _scan_db(tmp_path)


def test_no_raw_text_logged_when_the_model_crashes(tmp_path: Path) -> None:
    """The degraded path, with originals kept (encrypted): still no raw text anywhere."""
    from cryptography.fernet import Fernet

    env = service_env(FILTERD_DATABASE_URL=f"sqlite:///{tmp_path}/crash.db",
                      FILTERD_STORE_ORIGINALS="true",
                      FILTERD_ORIGINALS_KEY=Fernet.generate_key().decode())
    with Service(tmp_path, env, "--access-log", launcher=("-c", _CRASHING_MODEL + DEBUG_CLI),
                 cli_args=("-v",)).start() as srv, srv.client() as c:
        r = c.post("/v1/messages", json=message("conv-1", "m1", TEXT))
        assert r.status_code == 200 and r.json()["degraded"] is True, r.text
        batch = c.post("/v1/messages:batch", json={"messages": [message("conv-1", "m2", TEXT)]})
        assert batch.status_code == 200
        assert srv.stop() == 0
    lines = srv.lines
    assert any("classifier" in x and "ValueError" in x for x in lines), lines[-20:]
    _assert_clean(lines, "filterd serve with a crashing model")
    _scan_db(tmp_path)  # originals are on, but Fernet-encrypted


def _check(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", DEBUG_CLI, "-v", "check", *args],
                          input=stdin, capture_output=True, text=True, timeout=120,
                          env=service_env())


def test_no_raw_text_in_filterd_check_logs() -> None:
    r = _check([TEXT])
    assert r.returncode == 0, r.stderr
    jsonl = "\n".join([
        json.dumps({"id": "a", "text": TEXT, "conversation_id": "c"}),
        json.dumps({"id": "b", "txt": TEXT}),  # missing field: an error line
        "{" + TEXT,  # not JSON
    ]) + "\n"
    r2 = _check(["--jsonl", "-"], stdin=jsonl)
    assert r2.returncode == 1
    for out in (r, r2):
        _assert_clean(out.stderr.splitlines(), "filterd check (stderr)")
        # the verdicts on stdout carry masked text: the marker, never the raw values
        assert MARKER in out.stdout
        leaks = list(lines_containing(out.stdout.splitlines(), RAW))
        assert not leaks, leaks

