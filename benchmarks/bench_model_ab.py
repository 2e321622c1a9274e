"""Two models, one process: ``Filter().check`` p50 per message, alternating rounds.

The machine's speed drifts between minutes, so each round times both models on the same
messages, in alternating order, and the result is the median ratio of their p50s (never
an absolute time). Used to check that a new shipped model is as fast as the one before.

Run: ``python benchmarks/bench_model_ab.py OLD_MODEL_DIR NEW_MODEL_DIR [--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_check import timed  # noqa: E402
from corpus import short_messages  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    from filterd import Filter
    from filterd.config import load_settings

    texts = short_messages(300)
    filters = {"old": Filter(load_settings(model_dir=args.old)),
               "new": Filter(load_settings(model_dir=args.new))}
    for f in filters.values():  # warm-up, once
        timed(f.check, texts[:50], warmup=0)
    p50: dict[str, list[float]] = {k: [] for k in filters}
    for r in range(args.rounds):
        for k in (("old", "new") if r % 2 == 0 else ("new", "old")):
            p50[k].append(timed(filters[k].check, texts, warmup=0)["p50_ms"])
    ratios = [n / o for o, n in zip(p50["old"], p50["new"], strict=True)]
    out = {"what": f"Filter().check p50 per message (ms), {args.rounds} alternating rounds of "
                   "the same 300 short messages (benchmarks/corpus.py), one process, 1 thread",
           "old": str(args.old), "new": str(args.new), "p50_ms": p50,
           "p50_ratio_new_over_old": round(statistics.median(ratios), 3),
           "messages_with_emoji": sum(not t.isascii() for t in texts)}
    print(json.dumps(out, indent=1))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
