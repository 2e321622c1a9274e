"""Garbage-collector pauses in ``filterd serve`` under load, with and without ``gc.freeze``.

``filterd serve`` freezes its start-up heap (the model, tokenizer, schemas, routes) out of
the cyclic collector once it is ready (``FILTERD_GC_FREEZE``, on by default; see
``filterd.api.app._freeze_heap``). This measures what that buys: the server runs with a
``sitecustomize`` module (written to a temporary folder put first on ``PYTHONPATH``) that
times every collection with ``gc.callbacks`` and writes them out at exit; the load is the
open-loop generator at ``--rate`` messages/s for ``--seconds``. Reported per setting:
full (generation 2) collections during the load, their longest and median pause, the time
all collections took, and the request latency the generator saw. Both settings run in
turn in this one command, ``--repeat`` times.

Run: ``python benchmarks/bench_gc.py`` -> table, ``benchmarks/results/gc.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from corpus import short_messages  # noqa: E402
from service_util import RESULTS, Server, env_with_repo, loadgen, machine, write_texts  # noqa: E402

# Runs inside the server process: one (generation, start, seconds) per collection.
SITECUSTOMIZE = '''
import atexit, gc, json, os, time
_out = os.environ["FILTERD_BENCH_GC_OUT"]
_events = []
_start = [0.0]
def _cb(phase, info):
    if phase == "start":
        _start[0] = time.monotonic()
    else:
        _events.append((info["generation"], _start[0], time.monotonic() - _start[0]))
gc.callbacks.append(_cb)
def _dump():
    with open(os.path.join(_out, f"gc-{os.getpid()}.json"), "w") as f:
        json.dump({"events": _events, "frozen": gc.get_freeze_count()}, f)
atexit.register(_dump)
'''


def run(freeze: bool, args: argparse.Namespace, texts: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="filterd-gc-") as tmp:
        (Path(tmp) / "sitecustomize.py").write_text(SITECUSTOMIZE)
        env = {"FILTERD_GC_FREEZE": "true" if freeze else "false",
               "FILTERD_BENCH_GC_OUT": tmp,
               "PYTHONPATH": f"{tmp}:{env_with_repo()['PYTHONPATH']}"}
        with Server(workers=1, env=env) as srv:
            loadgen(srv.url, texts, rate=args.rate, seconds=3, tag="w")  # warm-up
            t0 = time.monotonic()
            load = loadgen(srv.url, texts, rate=args.rate, seconds=args.seconds, tag="m")
            t1 = time.monotonic()
        dump = json.loads(next(Path(tmp).glob("gc-*.json")).read_text())
    during = [(g, d) for g, s, d in dump["events"] if t0 <= s <= t1]
    full = [d * 1000 for g, d in during if g == 2]
    return {"gc_freeze": freeze, "frozen_objects": dump["frozen"],
            "full_collections": len(full),
            "full_max_ms": round(max(full), 2) if full else 0.0,
            "full_median_ms": round(statistics.median(full), 2) if full else 0.0,
            "all_collections_ms": round(sum(d for _, d in during) * 1000, 1),
            "load": {k: load[k] for k in ("achieved_messages_per_s", "p50_ms", "p95_ms",
                                          "p99_ms", "max_ms", "errors")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "gc.json"))
    args = ap.parse_args()
    texts = write_texts(Path(tempfile.gettempdir()) / "filterd-gc-texts.jsonl", short_messages())
    info = machine()
    runs = [run(freeze, args, texts) for _ in range(args.repeat) for freeze in (False, True)]
    print(f"{'gc.freeze':10} {'frozen':>8} {'full GCs':>9} {'max ms':>8} {'median':>8} "
          f"{'all GC ms':>10} {'p50':>7} {'p99':>7} {'max':>7}")
    for r in runs:
        ld = r["load"]
        print(f"{str(r['gc_freeze']):10} {r['frozen_objects']:8} {r['full_collections']:9} "
              f"{r['full_max_ms']:8.1f} {r['full_median_ms']:8.1f} "
              f"{r['all_collections_ms']:10.1f} {ld['p50_ms']:7.1f} {ld['p99_ms']:7.1f} "
              f"{ld['max_ms']:7.1f}")
    Path(args.out).write_text(json.dumps({"run": info, "args": vars(args), "runs": runs},
                                         indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
