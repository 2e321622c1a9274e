"""/metrics in Prometheus multiprocess mode (``filterd serve --workers N``).

prometheus-client chooses file-backed values when it is first imported, so the app runs in
a fresh interpreter with ``PROMETHEUS_MULTIPROC_DIR`` set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

_SCRIPT = """
import asyncio, sys
from filterd.api.app import create_app
from filterd.classify.fake import KeywordClassifier
from filterd.config import load_settings
from filterd.pipeline import Filter
from tests.service import client, message

async def main() -> None:
    settings = load_settings(database_url=sys.argv[1], delivery_worker=False)
    app = create_app(settings, Filter(settings, classifier=KeywordClassifier()))
    async with client(app) as c:
        r = await c.post("/v1/messages", json=message("c1", "m1", "you idiot"))
        assert r.status_code == 200, r.text
        print((await c.get("/metrics")).text)

asyncio.run(main())
"""


def test_metrics_aggregate_worker_files_in_multiprocess_mode(tmp_path: Path) -> None:
    mp = tmp_path / "prom"
    mp.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(mp),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    r = subprocess.run([sys.executable, "-c", _SCRIPT, f"sqlite:///{tmp_path}/m.db"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any(x.startswith("filterd_messages_total{") and x.endswith(" 1.0") for x in lines)
    assert any(x.startswith('filterd_flags_total{flag="insult"}') for x in lines)
    assert any(x.startswith("filterd_outbox_depth ") for x in lines)
    assert any(x.startswith("filterd_ingest_seconds_count") for x in lines)
    assert list(mp.glob("counter_*.db")) and list(mp.glob("gauge_mostrecent_*.db"))


def _sample(text: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


@pytest.mark.anyio
async def test_http_answers_counted_by_route_template_and_status(make_app) -> None:  # type: ignore[no-untyped-def]
    from tests.service import client, message

    async with client(make_app()) as c:
        assert (await c.post("/v1/messages", json=message("c9", "m1", "hello"))).status_code == 200
        assert (await c.get("/v1/conversations/c9")).status_code == 200
        assert (await c.get("/v1/conversations/nope")).status_code == 404
        assert (await c.post("/v1/messages", json={"text": 1})).status_code == 422
        assert (await c.get("/no/such/route")).status_code == 404
        text = (await c.get("/metrics")).text
    total = "filterd_http_requests_total"
    assert _sample(text, total, method="POST", route="/v1/messages", status="200") == 1
    assert _sample(text, total, method="POST", route="/v1/messages", status="422") == 1
    assert _sample(text, total, route="/v1/conversations/{conversation_id}", status="200") == 1
    assert _sample(text, total, route="/v1/conversations/{conversation_id}", status="404") == 1
    assert _sample(text, total, route="unmatched", status="404") == 1
    assert "/v1/conversations/c9" not in text and "/no/such/route" not in text  # templates only
    assert _sample(text, "filterd_http_request_seconds_count", route="/v1/messages") == 2
