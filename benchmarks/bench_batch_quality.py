"""Does sharing model calls change the verdicts? Macro-F1 by how texts are grouped into calls.

The served model is int8 with *dynamic* quantization: each call scales its activations by
that call's own range, and padding adds positions, so the same text can score a little
differently alone than beside others. The quality figures of the model card were taken in
calls of 64 texts (``filterd eval``). Rows, same texts, same run (full verdicts):

- ``64 per call, padded to the longest``: the model card's condition (``filterd eval`` before
  the ONNX classifier grouped by length) -- the baseline every delta is against;
- ``64 per call, length runs``: ``filterd eval`` and ``:batch`` requests now: the ONNX
  classifier sorts a call's texts by token length and pads each run of similar length;
- ``one text per call``: the service without micro-batching (each request its own call);
- ``micro-batched``: what :class:`~filterd.classify.batching.BatchingClassifier` does under
  full load: 32 concurrent messages, sorted by length and cut into runs of similar length.

Sets: the validation split of the built data set and the airline tweets (evaluation only).
Run: ``python benchmarks/bench_batch_quality.py [--dataset runs/dataset.jsonl] [--limit N]``
-> table, ``benchmarks/results/batch_quality.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from filterd.classify.base import Classifier  # noqa: E402
from filterd.classify.batching import length_runs  # noqa: E402
from filterd.types import ModelOutput  # noqa: E402

BASELINE = "64 per call, padded to longest"


class Grouped:
    """Calls the inner model with the texts of one ``predict`` regrouped by ``plan``."""

    def __init__(self, inner: Classifier, plan: Callable[[Sequence[str]], list[list[int]]]):
        self.inner = inner
        self.plan = plan

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        out: list[ModelOutput | None] = [None] * len(texts)
        for run in self.plan(texts):
            for i, o in zip(run, self.inner.predict([texts[i] for i in run]), strict=True):
                out[i] = o
        return [o for o in out if o is not None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default=str(REPO / "runs" / "dataset.jsonl"),
                    help="built data set (filterd data build); its valid rows are used")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--limit", type=int, default=None, help="first N texts of each set")
    args = ap.parse_args()

    from filterd.classify import data, evaluate
    from filterd.classify.onnx import OnnxClassifier
    from filterd.config import load_settings
    from filterd.pipeline import Filter

    sets: dict[str, tuple[list[str], list[str], list[str]]] = {}
    if Path(args.dataset).exists():
        rows = list(data.load(Path(args.dataset)))
        valid = [e for e in rows if e.split == "valid" and e.category]
        # Only the build the shipped model was trained on keeps its valid rows unseen: a
        # later build re-splits, and its valid rows include the model's training rows.
        meta = json.loads((OnnxClassifier(verify=False).model_dir / "filterd_model.json")
                          .read_text())
        n_train = sum(e.split == "train" for e in rows)
        if (n_train, len(valid)) != (meta["train_examples"], meta["valid_examples"]):
            sys.exit(f"{args.dataset} has {n_train} train / {len(valid)} valid rows; the "
                     f"shipped model was trained on a build with {meta['train_examples']} / "
                     f"{meta['valid_examples']}. Its valid rows may be the model's training "
                     "rows: give the build the model was trained on (--dataset).")
        sets["valid"] = ([e.text for e in valid], [str(e.category) for e in valid],
                         [e.source for e in valid])
    if (Path(args.data) / "eval_only/airline_tweets/dev.csv").exists():
        texts, gold = evaluate.airline_set(Path(args.data))
        sets["airline"] = (texts, gold, ["airline"] * len(texts))
    if not sets:
        sys.exit("no evaluation data: give --dataset (filterd data build) and/or --data")
    if args.limit:
        sets = {k: (t[: args.limit], g[: args.limit], s[: args.limit])
                for k, (t, g, s) in sets.items()}

    model = OnnxClassifier(threads=1, max_run=64)  # runs of similar length
    padded = OnnxClassifier(threads=1, max_padding=None)  # one run, padded to the longest
    settings = load_settings()

    def whole(t: Sequence[str]) -> list[list[int]]:
        return [list(range(len(t)))]

    plans: dict[str, tuple[Classifier, int, Callable[[Sequence[str]], list[list[int]]]]] = {
        BASELINE: (padded, 64, whole),
        "64 per call, length runs": (model, 64, whole),
        "one text per call": (model, 64, lambda t: [[i] for i in range(len(t))]),
        "micro-batched (32, length runs)": (model, 32, lambda t: length_runs(t, 32, 1.3)),
    }
    report: dict[str, dict[str, dict[str, float]]] = {}
    for name, (clf, batch, plan) in plans.items():
        filt = Filter(settings, classifier=Grouped(clf, plan))
        t0 = time.perf_counter()
        res = evaluate.evaluate({"filterd": evaluate.filterd_predictor(filt, batch)}, sets)
        secs = time.perf_counter() - t0
        report[name] = {s: {"macro_f1": r["filterd"]["macro_f1"],
                            "accuracy": r["filterd"]["accuracy"]} for s, r in res.items()}
        report[name]["_seconds"] = {"total": round(secs, 1)}
    base = report[BASELINE]
    print(f"{'model calls':<34}" + "".join(f"{s + ' F1':>16}{'delta':>8}" for s in sets)
          + f"{'seconds':>9}")
    for name, r in report.items():
        for s in sets:
            r[s]["macro_f1_delta_points"] = round(100 * (r[s]["macro_f1"]
                                                         - base[s]["macro_f1"]), 2)
        print(f"{name:<34}" + "".join(f"{r[s]['macro_f1']:>16.4f}"
                                      f"{r[s]['macro_f1_delta_points']:>+8.2f}" for s in sets)
              + f"{r['_seconds']['total']:>9.1f}")
    out = REPO / "benchmarks" / "results" / "batch_quality.json"
    out.write_text(json.dumps({"sets": {k: len(v[0]) for k, v in sets.items()},
                               "baseline": BASELINE, "results": report},
                              indent=1) + "\n")


if __name__ == "__main__":
    main()
