"""``filterd calibrate``: fit the policy's two category thresholds to a deployment's traffic.

How often customers complain differs between deployments (an airline's public mentions
are two-thirds complaints; a bank's chat is mostly requests), and the model's
probabilities carry the prevalence of its training set. An operator who has labelled a
sample of their own messages can move the two thresholds that turn probabilities into
categories:

- ``thresholds.frustrated_ratio``: frustrated wins when P(frustrated) >= ratio x
  P(neutral); chosen to maximise macro-F1 over the categories present;
- ``thresholds.abusive``: the lowest P(abusive) threshold whose abusive precision reaches
  ``min_abusive_precision`` (a wrong "abusive" costs a customer), when the sample has
  enough abusive rows.

Every candidate is judged by the real decision rules (:meth:`Filter.check_many` with a
modified policy; model outputs are computed once and reused), not by a re-implementation.
The labelled rows are split by a hash of the text: thresholds are chosen on one part and
measured on the other, so the report's "held-out" numbers are not the fit's own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filterd.classify.data import jsonl_rows
from filterd.classify.evaluate import filterd_predictor, metrics
from filterd.errors import InputError
from filterd.pipeline import Filter
from filterd.route.policy import Policy
from filterd.types import CATEGORIES, ModelOutput

RATIOS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5,
          2.0, 3.0)
ABUSIVE = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)
MIN_ABUSIVE_ROWS = 20


@dataclass(frozen=True, slots=True)
class Labelled:
    text: str
    category: str


def load_labelled(path: Path) -> list[Labelled]:
    """JSONL rows ``{"text": ..., "category": "neutral" | "frustrated" | "abusive"}``."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    rows = []
    for n, obj in jsonl_rows(path, InputError):
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise InputError(f"{path.name} line {n}: needs a string 'text'")
        if not obj["text"].strip():
            raise InputError(f"{path.name} line {n}: 'text' is empty")
        if obj.get("category") not in CATEGORIES:
            raise InputError(f"{path.name} line {n}: 'category' must be one of "
                             f"{', '.join(CATEGORIES)}, got {obj.get('category')!r}")
        rows.append(Labelled(obj["text"], obj["category"]))
    if len(rows) < 20:
        raise InputError(f"{path.name}: {len(rows)} labelled rows; calibration needs at least 20")
    if len({r.category for r in rows}) < 2:
        raise InputError(f"{path.name}: every row has the same category; nothing to calibrate")
    return rows


def _fit_part(text: str) -> bool:
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16) % 2 == 0


class _Memo:
    """The model's outputs, computed once per text and replayed for every candidate."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.cache: dict[str, ModelOutput] = {}

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if todo:
            self.cache.update(zip(todo, self.inner.predict(todo), strict=True))
        return [self.cache[t] for t in texts]


def _with(policy: Policy, **thresholds: float) -> Policy:
    return policy.model_copy(update={
        "thresholds": policy.thresholds.model_copy(update=thresholds)})


@contextmanager
def _replaying(flt: Filter) -> Iterator[Callable[[Policy, Sequence[str]], list[str]]]:
    """Install a memo of the model's outputs on ``flt`` and yield ``predict(policy,
    texts)``: the categories ``flt``'s real decision rules give under ``policy``. The
    model runs once per text however many policies are tried; ``flt``'s policy and
    classifier are put back afterwards."""
    base = flt.policy
    memo = _Memo(flt.classifier)
    flt.classifier = memo
    try:
        categories = filterd_predictor(flt)

        def predict(policy: Policy, texts: Sequence[str]) -> list[str]:
            flt.policy = policy
            return [c for c, _ in categories(texts)]

        yield predict
    finally:
        flt.policy = base
        flt.classifier = memo.inner


def _abusive_curve(predict: Callable[[Policy, Sequence[str]], list[str]], policy: Policy,
                   texts: Sequence[str], gold: Sequence[str]) -> list[dict[str, float]]:
    """Abusive precision and recall at every threshold of ``ABUSIVE``, the rest of
    ``policy`` as it is."""
    curve = []
    for t in ABUSIVE:
        m = metrics(gold, predict(_with(policy, abusive=t), texts))["per_class"]["abusive"]
        curve.append({"threshold": t, "precision": m["precision"], "recall": m["recall"]})
    return curve


def calibrate(
    flt: Filter, rows: Sequence[Labelled], min_abusive_precision: float = 0.85
) -> dict[str, Any]:
    """Choose the thresholds on the fit part; report both parts before and after."""
    base = flt.policy
    with _replaying(flt) as predict:
        fit = [r for r in rows if _fit_part(r.text)]
        held = [r for r in rows if not _fit_part(r.text)]
        if len(fit) < 10 or len(held) < 10:
            raise InputError("too few rows on one side of the fit/check split; add more rows")
        fit_texts = [r.text for r in fit]
        gold_fit = [r.category for r in fit]

        ratio_scores = {r: metrics(gold_fit, predict(_with(base, frustrated_ratio=r), fit_texts))
                        ["macro_f1"] for r in RATIOS}
        # The best ratio; ties go to the one nearest 1.0 (the plain argmax).
        ratio = max(RATIOS, key=lambda r: (ratio_scores[r], -abs(r - 1.0)))
        chosen = _with(base, frustrated_ratio=ratio)

        abusive_note = None
        n_abusive = gold_fit.count("abusive")
        curve: list[dict[str, float]] = []
        if n_abusive >= MIN_ABUSIVE_ROWS:
            curve = _abusive_curve(predict, chosen, fit_texts, gold_fit)
            ok = [c for c in curve if c["precision"] >= min_abusive_precision]
            if ok:
                chosen = _with(chosen, abusive=min(ok, key=lambda c: c["threshold"])["threshold"])
            else:
                abusive_note = (f"no threshold reaches abusive precision "
                                f"{min_abusive_precision} on the fit part; left as it was")
        else:
            abusive_note = (f"{n_abusive} abusive rows in the fit part (< {MIN_ABUSIVE_ROWS}); "
                            "abusive threshold left as it was")

        report: dict[str, Any] = {
            "rows": {"fit": len(fit), "held_out": len(held)},
            "thresholds_before": {"frustrated_ratio": base.thresholds.frustrated_ratio,
                                  "abusive": base.thresholds.abusive},
            "thresholds_after": {"frustrated_ratio": chosen.thresholds.frustrated_ratio,
                                 "abusive": chosen.thresholds.abusive},
            "ratio_search_fit_macro_f1": {str(r): s for r, s in ratio_scores.items()},
            "abusive_curve_fit": curve,
            "abusive_note": abusive_note,
        }
        for name, part in (("fit", fit), ("held_out", held)):
            texts, gold = [r.text for r in part], [r.category for r in part]
            report[f"{name}_before"] = metrics(gold, predict(base, texts))
            report[f"{name}_after"] = metrics(gold, predict(chosen, texts))
        return report


def abusive_operating_points(
    flt: Filter, texts: Sequence[str], gold: Sequence[str],
    min_precision: float = 0.85, min_recall: float = 0.90,
) -> dict[str, Any]:
    """Abusive precision and recall at every threshold of the grid, on these rows, through
    the real decision rules (the frustrated ratio as the policy has it), and whether any
    threshold reaches the brain issue's target (recall ``min_recall`` at precision
    ``min_precision``). The threshold is read off the same rows it is measured on, so this
    answers "is there such an operating point here", not "what will a chosen threshold
    do": ``filterd calibrate`` fits on one half and measures on the other."""
    if len(texts) != len(gold):
        raise InputError(f"{len(texts)} texts but {len(gold)} labels")
    base = flt.policy
    with _replaying(flt) as predict:
        curve = _abusive_curve(predict, base, texts, gold)
    ok = [c for c in curve if c["precision"] >= min_precision]
    best = max(ok, key=lambda c: (c["recall"], -c["threshold"])) if ok else None
    return {"n": len(gold), "abusive_rows": sum(g == "abusive" for g in gold),
            "policy_threshold": base.thresholds.abusive, "curve": curve,
            "target": {"min_precision": min_precision, "min_recall": min_recall},
            "best_recall_at_min_precision": best,
            "target_reachable": bool(best and best["recall"] >= min_recall)}


def policy_snippet(report: dict[str, Any]) -> str:
    """The lines to put in a policy file (``FILTERD_POLICY_FILE``)."""
    after = report["thresholds_after"]
    return ("thresholds:\n"
            f"  frustrated_ratio: {after['frustrated_ratio']}\n"
            f"  abusive: {after['abusive']}\n")
