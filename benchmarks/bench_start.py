"""Start-up time and memory: from process start to ``/readyz`` 200, and peak RSS per worker.

Measured in one run, each start ``--repeat`` times (median):

- ``python -c "import fastapi"`` and an empty FastAPI app on uvicorn (``empty_app.py``,
  ``/readyz`` answering at once): the baselines -- what any FastAPI service pays;
- ``filterd serve`` with 1 and 2 workers (fresh SQLite, so the migrations run, and the
  shipped model, whose files are hashed before loading): to the first ``/readyz`` 200 and,
  with 2 workers, to the last worker's "Application startup complete";
- where filterd's start goes, in-process: imports, loading the model (SHA-256 check +
  ONNX session), the detectors, the migrations of a fresh database;
- peak RSS (VmHWM) of every worker after a load that reaches the largest requests the
  service accepts: single messages, ``:batch`` of 20, and ``:batch`` of 500 texts of
  2,000 characters (FILTERD_BATCH_MAX_MESSAGES, FILTERD_MODEL_MAX_CHARS).

Run: ``python benchmarks/bench_start.py`` -> table, ``benchmarks/results/start.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from corpus import short_messages  # noqa: E402
from service_util import (  # noqa: E402
    BENCH,
    RESULTS,
    Server,
    env_with_repo,
    free_port,
    machine,
    status_kb,
    write_texts,
    wrk,
)

TARGETS = {"ready_seconds": 5.0, "peak_rss_mb_per_worker": 600}


def time_import_fastapi() -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", "import fastapi"], check=True)
    return time.monotonic() - t0


def empty_app() -> tuple[float, float]:
    """Seconds to the empty app's first /readyz 200, and its peak RSS (MB)."""
    port = free_port()
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "empty_app:app", "--port",
                             str(port), "--log-level", "warning"], cwd=BENCH,
                            env=env_with_repo(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(timeout=2) as c:
            while True:
                try:
                    if c.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() - t0 > 30:
                    raise RuntimeError("the empty app did not start")
                time.sleep(0.01)
        ready = time.monotonic() - t0
        return ready, status_kb(proc.pid, "VmHWM") / 1024
    finally:
        proc.terminate()
        proc.wait(10)


def breakdown() -> dict[str, float]:
    """Where start-up goes, measured in a fresh interpreter (seconds)."""
    code = r"""
import json, sys, tempfile, time
t = {}
t0 = time.perf_counter()
import fastapi, uvicorn  # noqa
t["import fastapi+uvicorn"] = time.perf_counter() - t0
t0 = time.perf_counter()
import filterd.api.app  # noqa
t["import filterd (service modules)"] = time.perf_counter() - t0
from filterd.classify.onnx import OnnxClassifier, default_model_dir
from filterd.classify.hashing import sha256
t0 = time.perf_counter()
for name in ("model.onnx", "tokenizer.json"):
    sha256(default_model_dir() / name)
t["hash the model files"] = time.perf_counter() - t0
t0 = time.perf_counter()
clf = OnnxClassifier(verify=False)
t["load tokenizer + ONNX session"] = time.perf_counter() - t0
t0 = time.perf_counter()
clf.predict(["first call"])
t["first model call"] = time.perf_counter() - t0
from filterd.config import load_settings
from filterd.pipeline import Filter
t0 = time.perf_counter()
Filter(load_settings(), classifier=clf)
t["detectors, policy (Filter without the model)"] = time.perf_counter() - t0
from filterd.store.sql import SqlStore
with tempfile.TemporaryDirectory() as d:
    store = SqlStore(f"sqlite:///{d}/s.db")
    t0 = time.perf_counter()
    store.upgrade()
    t["migrations, fresh SQLite"] = time.perf_counter() - t0
    store.close()
print(json.dumps(t))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env_with_repo(), check=True)
    return {k: round(v, 3) for k, v in json.loads(out.stdout.splitlines()[-1]).items()}


def big_batch(url: str, n: int = 500, chars: int = 2000) -> int:
    """One :batch of ``n`` long messages (the most the service takes at once); status."""
    text = ("My internet has been down since Monday and nobody calls back. " * 40)[:chars]
    body = {"messages": [{"conversation_id": f"big{i}", "message_id": f"m{time.time_ns()}",
                          "channel": "chat", "sender": {"role": "customer", "id": "u"},
                          "text": text} for i in range(n)]}
    return httpx.post(f"{url}/v1/messages:batch", json=body, timeout=120).status_code


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(RESULTS / "start.json"))
    a = ap.parse_args()
    where = machine()
    texts = write_texts(Path(tempfile.gettempdir()) / "filterd-start-texts.jsonl",
                        short_messages(1000))
    runs: dict[str, list[float]] = {"python -c 'import fastapi'": [],
                                    "empty FastAPI app, /readyz": []}
    rss: dict[str, list[float]] = {}
    for _ in range(a.repeat):
        runs["python -c 'import fastapi'"].append(time_import_fastapi())
        ready, hwm = empty_app()
        runs["empty FastAPI app, /readyz"].append(ready)
        rss["empty FastAPI app"] = [round(hwm, 1)]
        for workers in (1, 2):
            with Server(workers=workers) as srv:
                name = f"filterd serve, {workers} worker{'s' if workers > 1 else ''}"
                runs.setdefault(f"{name}: first /readyz", []).append(srv.ready_seconds or 0)
                if workers > 1:
                    runs.setdefault(f"{name}: every worker started", []).append(
                        max(srv.startup_times()))
                wrk(srv.url, texts, connections=8, seconds=5, tag="s")
                wrk(srv.url, texts, connections=2, seconds=3, batch=20, tag="b")
                statuses = [big_batch(srv.url) for _ in range(2 * workers)]
                if any(s != 200 for s in statuses):
                    print(f"warning: :batch of 500 answered {statuses}", file=sys.stderr)
                rss[name] = srv.peak_rss_mb()
    parts = breakdown()
    summary = {k: round(statistics.median(v), 3) for k, v in runs.items()}
    base = summary["empty FastAPI app, /readyz"]
    print(f"{'start to ready':<48}{'seconds':>9}{'vs empty app':>14}")
    for k, v in summary.items():
        print(f"{k:<48}{v:>9.2f}{v / base:>13.1f}x")
    print(f"\n{'where filterd start-up goes (in-process)':<48}{'seconds':>9}")
    for k, v in parts.items():
        print(f"{k:<48}{v:>9.3f}")
    print(f"\n{'peak RSS per worker (VmHWM, after load)':<48}{'MB':>9}")
    for k, v in rss.items():
        print(f"{k:<48}{', '.join(f'{x:.0f}' for x in v):>9}")
    where["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report: dict[str, Any] = {"run": where, "targets": TARGETS, "repeat": a.repeat,
                              "ready_seconds_median": summary, "ready_seconds_all": runs,
                              "startup_breakdown_seconds": parts, "peak_rss_mb": rss,
                              "baseline": "empty FastAPI app, /readyz"}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
