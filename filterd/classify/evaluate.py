"""``filterd eval``: quality on held-out data, side by side with baselines.

Evaluation sets (none is trained on):
- ``valid``: the random validation slice of the built set (in-distribution);
- each held-out *source* (``HOLDOUT_SOURCES``: never seen in training);
- ``airline``: real customer tweets in ``eval_only/airline_tweets`` (evaluation only).
  Its labels are sentiment, not our taxonomy: negative -> frustrated (gold has no
  abusive class; a handful of negative tweets do insult staff), neutral/positive ->
  neutral. We report macro-F1 over the two gold classes, and how often negative
  tweets are called abusive (the frustrated-vs-abusive confusion users care about);
- ``airline:relabelled``: 800 of those tweets labelled by TAXONOMY.md by two blind
  annotators (``AIRLINE_RELABEL``: tweet ids and labels, no text), scored on the rows
  where both agree, with a neutral-vs-negative macro-F1 beside the three-class one.

Baselines on the same texts: better-profanity (abusive iff it finds profanity),
alt-profanity-check (abusive iff predict_prob >= 0.5), and word list + VADER
(profanity -> abusive, VADER compound <= -0.05 -> frustrated, else neutral).
"""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from filterd.classify.data import jsonl_rows
from filterd.classify.onnx import DEFAULT_MODEL_DIR
from filterd.errors import DataError, ModelError
from filterd.types import CATEGORIES

Predictor = Callable[[Sequence[str]], list[tuple[str, float]]]  # -> (category, P(category))


def metrics(gold: Sequence[str], pred: Sequence[str], conf: Sequence[float] | None = None) -> dict[
    str, Any
]:
    """Per-class precision/recall/F1, macro-F1 over the gold classes, confusion, ECE."""
    labels = [c for c in CATEGORIES if c in set(gold)]
    per: dict[str, dict[str, float]] = {}
    for c in CATEGORIES:
        tp = sum(g == c and p == c for g, p in zip(gold, pred, strict=True))
        fp = sum(g != c and p == c for g, p in zip(gold, pred, strict=True))
        fn = sum(g == c and p != c for g, p in zip(gold, pred, strict=True))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per[c] = {"precision": round(prec, 4), "recall": round(rec, 4), "f1": round(f1, 4),
                  "support": sum(g == c for g in gold)}
    confusion = {g: {p: sum(1 for a, b in zip(gold, pred, strict=True) if a == g and b == p)
                     for p in CATEGORIES} for g in labels}
    out: dict[str, Any] = {
        "n": len(gold),
        "accuracy": round(float(np.mean([g == p for g, p in zip(gold, pred, strict=True)])), 4),
        "macro_f1": round(float(np.mean([per[c]["f1"] for c in labels])), 4),
        "per_class": per,
        "confusion": confusion,
    }
    if conf is not None:
        out["ece"] = round(expected_calibration_error(gold, pred, conf), 4)
    return out


def expected_calibration_error(
    gold: Sequence[str], pred: Sequence[str], conf: Sequence[float], bins: int = 10
) -> float:
    """ECE of the top-class confidence over equal-width bins."""
    c = np.asarray(conf)
    correct = np.array([g == p for g, p in zip(gold, pred, strict=True)], dtype=float)
    ece = 0.0
    for lo in np.linspace(0, 1, bins, endpoint=False):
        m = (c >= lo) & (c < lo + 1 / bins)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - c[m].mean())
    return float(ece)


def airline_path(data_root: Path) -> Path:
    """The airline tweets (evaluation only) under a data folder."""
    return data_root / "eval_only/airline_tweets/dev.csv"


def _airline_rows(data_root: Path) -> list[dict[str, str]]:
    with airline_path(data_root).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def airline_set(data_root: Path) -> tuple[list[str], list[str]]:
    rows = _airline_rows(data_root)
    return ([r["text"] for r in rows],
            ["frustrated" if r["airline_sentiment"] == "negative" else "neutral" for r in rows])


AIRLINE_RELABEL = DEFAULT_MODEL_DIR / "airline_relabel.json"


def airline_relabelled_set(data_root: Path, labels: Path = AIRLINE_RELABEL
                           ) -> tuple[list[str], list[str]]:
    """The airline tweets of ``labels`` on whose category both annotators agree, with that
    category as gold. Rows are found by data row and checked by tweet id, so a different
    copy of the tweets fails loudly instead of scoring the wrong texts."""
    path = airline_path(data_root)
    rows = _airline_rows(data_root)
    texts, gold = [], []
    for r in json.loads(labels.read_text(encoding="utf-8"))["rows"]:
        i = r["row"]
        if i >= len(rows) or rows[i]["tweet_id"] != r["tweet_id"]:
            raise DataError(f"{labels.name}: tweet {r['tweet_id']} is not row {i} of {path}; "
                            "these labels belong to another copy of the airline tweets")
        if r["A"] == r["B"]:
            texts.append(rows[i]["text"])
            gold.append(r["A"])
    return texts, gold


# ------------------------------------------------------------------ baselines


def baseline_better_profanity(texts: Sequence[str]) -> list[tuple[str, float]]:
    from better_profanity import profanity

    profanity.load_censor_words()
    return [("abusive", 1.0) if profanity.contains_profanity(t) else ("neutral", 1.0)
            for t in texts]


def baseline_alt_profanity_check(texts: Sequence[str]) -> list[tuple[str, float]]:
    from profanity_check import predict_prob

    probs = predict_prob(list(texts))
    return [("abusive", float(p)) if p >= 0.5 else ("neutral", 1 - float(p)) for p in probs]


def baseline_wordlist_vader(texts: Sequence[str]) -> list[tuple[str, float]]:
    from better_profanity import profanity
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    profanity.load_censor_words()
    va = SentimentIntensityAnalyzer()
    out = []
    for t in texts:
        if profanity.contains_profanity(t):
            out.append(("abusive", 1.0))
        elif va.polarity_scores(t)["compound"] <= -0.05:
            out.append(("frustrated", 1.0))
        else:
            out.append(("neutral", 1.0))
    return out


BASELINES: dict[str, Predictor] = {
    "better_profanity": baseline_better_profanity,
    "alt_profanity_check": baseline_alt_profanity_check,
    "wordlist_vader": baseline_wordlist_vader,
}


def verdicts(filter_: Any, texts: Sequence[str], batch: int = 64) -> Iterator[Any]:
    """Full verdicts for ``texts``, ``batch`` at a time (an empty text is judged as ".").

    A verdict the pipeline degraded to the detectors (the model failed or its circuit is
    open) raises :class:`~filterd.errors.ModelError`: its figures would be the detectors'
    reported as the model's."""
    for i in range(0, len(texts), batch):
        chunk = filter_.check_many([t if t.strip() else "." for t in texts[i : i + batch]])
        if any(v.degraded for v in chunk):
            raise ModelError("the model did not answer (verdicts degraded to the "
                             "detectors); scoring needs the model's outputs")
        yield from chunk


def filterd_predictor(filter_: Any, batch: int = 64) -> Predictor:
    """The full verdict's category (model + detectors + decision rules)."""

    def predict(texts: Sequence[str]) -> list[tuple[str, float]]:
        return [(v.category, v.scores[v.category]) for v in verdicts(filter_, texts, batch)]

    return predict


def evaluate(
    predictors: dict[str, Predictor],
    sets: dict[str, tuple[list[str], list[str], list[str]]],
) -> dict[str, Any]:
    """Run every predictor on every set; sets are name -> (texts, gold, source)."""
    report: dict[str, Any] = {}
    for set_name, (texts, gold, sources) in sets.items():
        report[set_name] = {}
        for name, predict in predictors.items():
            preds = predict(texts)
            cats = [p for p, _ in preds]
            m = metrics(gold, cats, [c for _, c in preds] if name == "filterd" else None)
            by_src: dict[str, list[bool]] = defaultdict(list)
            for g, p, s in zip(gold, cats, sources, strict=True):
                by_src[f"{s}/{g}"].append(g == p)
            m["accuracy_by_source"] = {k: round(float(np.mean(v)), 4)
                                       for k, v in sorted(by_src.items())}
            if set_name == "airline":
                neg = [p for g, p in zip(gold, cats, strict=True) if g == "frustrated"]
                cnt = Counter(neg)
                m["negative_called_abusive"] = round(cnt["abusive"] / max(1, len(neg)), 4)
                m["negative_recall_any"] = round(
                    (cnt["abusive"] + cnt["frustrated"]) / max(1, len(neg)), 4)
            if set_name == "airline:relabelled":
                # Few tweets are abusive by the taxonomy (5 of 784), so the three-class
                # macro-F1 swings on one row; neutral against anything negative does not.
                # Abusive is folded into frustrated, the one negative class left.
                m["neutral_vs_negative_macro_f1"] = metrics(
                    [c if c == "neutral" else "frustrated" for c in gold],
                    [c if c == "neutral" else "frustrated" for c in cats])["macro_f1"]
            report[set_name][name] = m
    return report


def format_table(report: dict[str, Any]) -> str:
    lines = [f"{'set':<16}{'predictor':<22}{'n':>6}{'acc':>7}{'macroF1':>9}"
             f"{'P(abu)':>8}{'R(abu)':>8}{'R(fru)':>8}{'R(neu)':>8}"]
    for set_name, preds in report.items():
        for name, m in preds.items():
            pc = m["per_class"]
            lines.append(
                f"{set_name:<16}{name:<22}{m['n']:>6}{m['accuracy']:>7.3f}{m['macro_f1']:>9.3f}"
                f"{pc['abusive']['precision']:>8.3f}{pc['abusive']['recall']:>8.3f}"
                f"{pc['frustrated']['recall']:>8.3f}{pc['neutral']['recall']:>8.3f}"
            )
    return "\n".join(lines)


def save_report(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")


# ------------------------------------------------------------------ obfuscation

_LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "$"})
_HOMOGLYPH = str.maketrans({"a": "\u0430", "e": "\u0435", "o": "\u043e", "c": "\u0441",
                            "p": "\u0440"})
OBFUSCATIONS: dict[str, Callable[[str], str]] = {
    "leet": lambda w: w.translate(_LEET),
    "spaced": lambda w: " ".join(w),
    "repeated": lambda w: w[:-1] + w[-1] * 4 if w[-1].isalpha() else w,
    "homoglyph": lambda w: w.translate(_HOMOGLYPH),
    "zero_width": lambda w: "\u200b".join(w),
}


SAFETY_FLAGS = ("self_harm", "threat", "sexual_harassment")


def safety_alarms(filter_: Any, texts: Sequence[str], batch: int = 64) -> dict[str, Any]:
    """How often each safety flag fires on ``texts``, and how many go to the crisis and
    supervisor queues. On real customer complaints (the airline tweets), where threats,
    self-harm and harassment are all but absent, nearly every one is a false alarm: a
    customer sent to the crisis route or a supervisor paged for nothing."""
    counts = dict.fromkeys(SAFETY_FLAGS, 0)
    queues: Counter[str] = Counter()
    for v in verdicts(filter_, texts, batch):
        for f in SAFETY_FLAGS:
            counts[f] += f in v.flags
        queues[v.route.queue] += 1
    n = max(1, len(texts))
    return {"n": len(texts),
            **{f: {"count": c, "rate": round(c / n, 4)} for f, c in counts.items()},
            "crisis_route": queues["crisis"], "supervisor_route": queues["supervisor"]}


def obfuscation_check(filter_: Any, texts: Sequence[str]) -> dict[str, Any]:
    """Abusive recall on ``texts`` (abusive messages) as written and with every lexicon
    word rewritten by each obfuscation, in place."""
    lex = filter_.lexicon
    rows = [(t, lex.find(t)) for t in texts]
    rows = [(t, sp) for t, sp in rows if sp]
    out: dict[str, Any] = {"n": len(rows)}
    if not rows:
        return out
    variants: dict[str, list[str]] = {"plain": [t for t, _ in rows]}
    for name, fn in OBFUSCATIONS.items():
        vs = []
        for t, spans in rows:
            for s in sorted(spans, key=lambda s: -s.start):
                t = t[: s.start] + fn(t[s.start : s.end]) + t[s.end :]
            vs.append(t)
        variants[name] = vs
    for name, vs in variants.items():
        judged = list(verdicts(filter_, vs))
        out[name] = {
            "abusive_recall": round(float(np.mean([v.category == "abusive" for v in judged])), 4),
            "masked_all": round(float(np.mean(
                [len(v.spans) >= len(sp) for v, (_, sp) in zip(judged, rows, strict=True)])), 4),
        }
    return out


# ------------------------------------------------------------------ test tables, emoji

def _read_cases(path: Path, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for n, row in jsonl_rows(path):
        if not isinstance(row, dict):
            raise DataError(f"{path} line {n}: a row needs the keys {list(keys)}")
        if missing := [k for k in keys if k not in row]:
            raise DataError(f"{path} line {n}: a row needs the keys {list(keys)}; "
                            f"missing {missing}")
        rows.append(row)
    return rows


def case_tables(filter_: Any, folder: Path) -> dict[str, Any]:
    """The test suite's hand-written tables (``tests/data``), scored the way the tests
    score them, so that two models can be compared on them in one command.

    ``safety_cases.jsonl``: for each safety flag, how many of its rows raise it, and the
    ids of those that do not; how many hard negatives (``flag == "none"``) raise any.
    ``telecom_cases.jsonl``: category accuracy on all rows and on the ``must`` rows.
    A table that is not in ``folder`` is left out of the report."""
    out: dict[str, Any] = {}
    safety_path, telecom_path = folder / "safety_cases.jsonl", folder / "telecom_cases.jsonl"
    if safety_path.exists():
        cases = _read_cases(safety_path, ("id", "text", "flag"))
        judged = dict(zip([c["id"] for c in cases],
                          verdicts(filter_, [c["text"] for c in cases]), strict=True))
        safety: dict[str, Any] = {}
        for flag in SAFETY_FLAGS:
            rows = [c for c in cases if c["flag"] == flag]
            missed = [c["id"] for c in rows if flag not in judged[c["id"]].flags]
            safety[flag] = {"caught": len(rows) - len(missed), "n": len(rows), "missed": missed}
        negatives = [c for c in cases if c["flag"] == "none"]
        alarms = [c["id"] for c in negatives if set(SAFETY_FLAGS) & set(judged[c["id"]].flags)]
        safety["hard_negatives"] = {"alarms": len(alarms), "n": len(negatives), "ids": alarms}
        out["safety_table"] = safety
    if telecom_path.exists():
        cases = _read_cases(telecom_path, ("id", "text", "category", "must"))
        cats = [v.category for v in verdicts(filter_, [c["text"] for c in cases])]
        right = [cat == c["category"] for cat, c in zip(cats, cases, strict=True)]
        must = [r for r, c in zip(right, cases, strict=True) if c["must"]]
        out["telecom_table"] = {"n": len(cases), "accuracy": round(float(np.mean(right)), 4),
                                "must_n": len(must),
                                "must_accuracy": round(float(np.mean(must)), 4) if must else None}
    return out


PROBE_EMOJI = ("🙂", "🙏", "👍", "😂", "❤️", "😉", "🙄", "😡", "😭", "🔥", "💀", "🤷")


def emoji_probe(filter_: Any, calm_texts: Sequence[str]) -> dict[str, Any]:
    """How often calm and frustrated messages are called abusive as written, and with one
    emoji of ``PROBE_EMOJI`` appended (each emoji in turn): what an emoji alone adds."""
    if not calm_texts:
        return {"n": 0}
    plain = [v.category == "abusive" for v in verdicts(filter_, calm_texts)]
    by_emoji = {}
    for e in PROBE_EMOJI:
        judged = verdicts(filter_, [f"{t} {e}" for t in calm_texts])
        by_emoji[e] = round(float(np.mean([v.category == "abusive" for v in judged])), 4)
    return {"n": len(calm_texts), "plain_abusive": round(float(np.mean(plain)), 4),
            "with_emoji_abusive": round(float(np.mean(list(by_emoji.values()))), 4),
            "by_emoji": by_emoji}
