"""`filterd serve`: a real uvicorn process on a free port, talked to over TCP.

It judges with the shipped model, stores in SQLite, and delivers a supervisor alert to a
tiny webhook server running in this test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Hook(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], dict[str, Any]]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_filterd_serve_answers_over_http(tmp_path: Path) -> None:
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    port = _free_port()
    env = {**os.environ,
           "FILTERD_DATABASE_URL": f"sqlite:///{tmp_path}/serve.db",
           "FILTERD_ALERT_WEBHOOK_URL": f"http://127.0.0.1:{hook.server_port}/alerts",
           "FILTERD_DELIVERY_POLL_SECONDS": "0.2",
           # this checkout's package, whatever the environment's install points at
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "filterd.cli", "serve", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as c:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, proc.communicate()[0]
                try:
                    if c.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "filterd serve did not become ready"
                time.sleep(0.1)
            msg = {"conversation_id": "c1", "message_id": "m1", "channel": "chat",
                   "sender": {"role": "customer", "id": "u1"},
                   "text": "I know where you live and I'm coming for you"}
            r = c.post("/v1/messages", json=msg)
            assert r.status_code == 200, r.text
            assert r.json()["route"]["queue"] == "supervisor"
            again = c.post("/v1/messages", json=msg)
            assert again.json() == r.json() and again.headers["Idempotent-Replayed"] == "true"
            bad = c.post("/v1/messages", content=b"{oops", headers={
                "content-type": "application/json"})
            assert bad.status_code == 400 and bad.json()["error"]["code"] == "malformed_json"
            assert c.get("/v1/conversations/c1").json()["state"]["escalated"] == "supervisor"
            assert "filterd_messages_total" in c.get("/metrics").text
            for _ in range(100):  # the background deliverer posts the alert
                if _Hook.received:
                    break
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out = proc.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            out = proc.communicate()[0]
        hook.shutdown()
    assert proc.returncode == 0, out
    assert "Traceback" not in out, out
    assert "coming for you" not in out  # no customer text in the service's logs
    [(headers, payload)] = _Hook.received
    assert payload["event"] == "alert" and payload["message_id"] == "m1"
    assert len(headers["Idempotency-Key"]) == 32
