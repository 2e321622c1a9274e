"""/metrics in Prometheus multiprocess mode (``filterd serve --workers N``).

prometheus-client chooses file-backed values when it is first imported, so the app runs in
a fresh interpreter with ``PROMETHEUS_MULTIPROC_DIR`` set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
