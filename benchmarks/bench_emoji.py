"""What reading emoji as their names costs a verdict (model v8, ``normalize.emoji_words``).

One process, one core, the shipped model. The same messages with one emoji appended are
judged with the classifier's ``emoji_as_words`` on and off in alternating rounds (the
machine's speed drifts between minutes, so each round is a paired A/B), and the plain
messages once more as a reference: only messages with an emoji pay the cost, plain ASCII
text skips the emoji pass.

Run: ``python benchmarks/bench_emoji.py`` -> table on stdout, figures in
``benchmarks/results/emoji.json``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_check import timed  # noqa: E402
from corpus import short_messages  # noqa: E402

EMOJI = ["🙂", "🙏", "👍", "😂", "❤️", "😡", "🤷\u200d♀️", "🆘🆘🆘"]


def p50(fn, texts: list[str]) -> float:  # type: ignore[no-untyped-def]
    return timed(fn, texts, warmup=0)["p50_ms"]  # warm-up is done once, in main()


def main() -> None:
    from filterd import Filter
    from filterd.normalize import emoji_words

    base = short_messages(200)
    with_emoji = [f"{t} {EMOJI[i % len(EMOJI)]}" for i, t in enumerate(base)]
    filt = Filter()
    clf = filt.classifier
    for t in with_emoji[:30]:
        filt.check(t)
    rounds: list[dict[str, float]] = []
    for _ in range(5):
        r: dict[str, float] = {}
        clf.emoji_as_words = True
        r["emoji as names"] = p50(filt.check, with_emoji)
        clf.emoji_as_words = False
        r["emoji as [UNK]"] = p50(filt.check, with_emoji)
        clf.emoji_as_words = True
        r["no emoji"] = p50(filt.check, base)
        rounds.append(r)
    names = p50(emoji_words, with_emoji * 5)
    ratios = [r["emoji as names"] / r["emoji as [UNK]"] for r in rounds]
    result = {
        "messages": len(base), "rounds": rounds,
        "check_p50_ratio_names_vs_unk": round(statistics.median(ratios), 3),
        "emoji_words_p50_ms": round(names, 4),
    }
    print(f"{'round':<7}{'names ms':>10}{'[UNK] ms':>10}{'no emoji ms':>13}{'ratio':>8}")
    for i, (r, q) in enumerate(zip(rounds, ratios, strict=True)):
        print(f"{i:<7}{r['emoji as names']:>10.3f}{r['emoji as [UNK]']:>10.3f}"
              f"{r['no emoji']:>13.3f}{q:>8.3f}")
    print(f"median ratio (names / [UNK]) {result['check_p50_ratio_names_vs_unk']}; "
          f"emoji_words alone p50 {names * 1000:.1f} us")
    out = Path(__file__).parent / "results" / "emoji.json"
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
