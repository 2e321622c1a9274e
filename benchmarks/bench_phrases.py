"""The phrase tables at two git revisions, one process: ``PhraseDetector().find`` per message.

The threat, self-harm and harassment tables run on every message, beside the model. A change
to them (a new row, a wider lookahead) must not slow the hot path. This loads
``filterd/detect/phrases.py`` as it was at ``--base`` (default ``HEAD``) next to the working
copy, times both on the same messages in alternating rounds, and reports the median ratio of
their mean and p99 per-message times (never an absolute time: the machine's speed drifts).
It also counts how many messages each version finds a span in, as a sanity check.

Run: ``python benchmarks/bench_phrases.py [--base REV] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_check import timed  # noqa: E402
from corpus import REPO, short_messages  # noqa: E402

MODULE = "filterd/detect/phrases.py"


def load_at(rev: str) -> ModuleType:
    """``filterd.detect.phrases`` as committed at ``rev``, as a module of its own."""
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:{MODULE}"], check=True,
                            capture_output=True, text=True).stdout
    module = ModuleType(f"phrases_at_{rev}")
    exec(compile(source, f"{rev}:{MODULE}", "exec"), module.__dict__)
    return module


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="HEAD", help="git revision to compare against")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    from filterd.detect import phrases

    texts = short_messages(args.messages)
    finders = {"base": load_at(args.base).PhraseDetector().find,
               "work": phrases.PhraseDetector().find}
    for find in finders.values():
        timed(find, texts[:200], warmup=0)
    runs: dict[str, dict[str, list[float]]] = {k: {"mean_ms": [], "p99_ms": []} for k in finders}
    for r in range(args.rounds):
        for k in (("base", "work") if r % 2 == 0 else ("work", "base")):
            t = timed(finders[k], texts, warmup=0)
            runs[k]["mean_ms"].append(t["mean_ms"])
            runs[k]["p99_ms"].append(t["p99_ms"])
    out = {
        "what": f"PhraseDetector().find per message, {args.rounds} alternating rounds of the "
                f"same {len(texts)} short messages (benchmarks/corpus.py), one process",
        "base": args.base, "work": "working copy",
        **{f"{m[:-3]}_ratio_work_over_base": round(statistics.median(
            w / b for b, w in zip(runs["base"][m], runs["work"][m], strict=True)), 3)
           for m in ("mean_ms", "p99_ms")},
        "messages_with_a_span": {k: sum(bool(f(t)) for t in texts) for k, f in finders.items()},
        "runs": runs,
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
