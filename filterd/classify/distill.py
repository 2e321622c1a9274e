"""Soft labels from several trained models, for ``filterd train --soft-labels``.

Knowledge distillation (Hinton et al. 2015) from an ensemble of our own models: the
average of several seeds' outputs is a better classifier than any one of them (model
card, "Session 14": eight models averaged raise about half as many crisis alarms on real
complaints as one, at the same recall of the safety table), but serving several models
costs several times the latency. ``filterd teach`` runs the teachers once over a built
dataset's training rows and writes their averaged category and flag probabilities;
``filterd train --soft-labels`` then trains one model of the shipped size toward them as
well as toward the gold labels.

The file is JSONL: a header ``{"teachers": [{"dir", "sha256"}...], "rows": N}``, then one
``{"key", "category": [3], "flags": [5]}`` per training text, ``key`` being the SHA-1 of
the text exactly as the dataset holds it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from filterd.classify.data import Example, jsonl_rows
from filterd.errors import DataError
from filterd.types import CATEGORIES, MODEL_FLAGS


@dataclass(frozen=True, slots=True)
class SoftLabel:
    category: tuple[float, ...]  # probabilities in CATEGORIES order, summing to 1
    flags: tuple[float, ...]  # probabilities in MODEL_FLAGS order


def text_key(text: str) -> str:
    """The key of a dataset text: SHA-1 of its exact characters."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def teach(
    examples: Sequence[Example], model_dirs: Sequence[Path], progress: bool = True,
    chunk: int = 256,
) -> dict[str, SoftLabel]:
    """The teachers' averaged outputs on every training text (``split == "train"``).

    Each teacher reads the text as serving would (its own ``clean_for_model`` settings),
    one text per run, so a row's soft label does not depend on what shares its call."""
    from filterd.classify.onnx import OnnxClassifier

    if not model_dirs:
        raise DataError("filterd teach needs at least one --teacher model folder")
    texts = sorted({e.text for e in examples if e.split == "train"})
    if not texts:
        raise DataError("No training rows (split == 'train') to label.")
    sums = [[0.0] * (len(CATEGORIES) + len(MODEL_FLAGS)) for _ in texts]
    for d in model_dirs:
        clf = OnnxClassifier(Path(d), threads=1, parallel=0)  # one text a run, all cores
        bar = tqdm(total=len(texts), desc=f"teach {Path(d).name}", disable=not progress,
                   unit="text")
        for i in range(0, len(texts), chunk):
            for j, out in enumerate(clf.predict(texts[i : i + chunk])):
                row = sums[i + j]
                for k, c in enumerate(CATEGORIES):
                    row[k] += out.scores[c]
                for k, f in enumerate(MODEL_FLAGS):
                    row[len(CATEGORIES) + k] += out.flag_scores[f]
            bar.update(min(chunk, len(texts) - i))
        bar.close()
        clf.close()
    n = float(len(model_dirs))
    nc = len(CATEGORIES)
    return {text_key(t): SoftLabel(tuple(round(v / n, 6) for v in s[:nc]),
                                   tuple(round(v / n, 6) for v in s[nc:]))
            for t, s in zip(texts, sums, strict=True)}


def teacher_info(model_dirs: Sequence[Path]) -> list[dict[str, Any]]:
    """Which models taught: each folder and its model file's SHA-256 (its meta file).
    Call it before :func:`teach`: a folder that is not a model is a clear error before
    minutes of the other teachers' work."""
    info = []
    for d in model_dirs:
        meta_path = Path(d) / "filterd_model.json"
        if not meta_path.exists():
            raise DataError(f"--teacher {d}: not a model folder (no filterd_model.json)")
        meta = json.loads(meta_path.read_text())
        info.append({"dir": str(d), "sha256": meta.get("sha256", {}).get("model.onnx")})
    return info


def save(labels: dict[str, SoftLabel], teachers: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        f.write(json.dumps({"teachers": teachers, "rows": len(labels)}) + "\n")
        for key in sorted(labels):
            lab = labels[key]
            f.write(json.dumps({"key": key, "category": list(lab.category),
                                "flags": list(lab.flags)}) + "\n")


def load(path: Path) -> tuple[dict[str, Any], dict[str, SoftLabel]]:
    """(header, labels by text key); a malformed row is a clear error with its line."""
    header: dict[str, Any] | None = None
    labels: dict[str, SoftLabel] = {}
    for n, row in jsonl_rows(path):
        if header is None:
            if not isinstance(row, dict) or "teachers" not in row:
                raise DataError(f"{path} line {n}: the first line must be the header "
                                "{\"teachers\": [...], \"rows\": N} that filterd teach writes")
            header = row
            continue
        try:
            cat = tuple(float(x) for x in row["category"])
            flags = tuple(float(x) for x in row["flags"])
            key = str(row["key"])
        except (TypeError, KeyError, ValueError) as e:
            raise DataError(f"{path} line {n}: a row needs \"key\", \"category\" "
                            f"({len(CATEGORIES)} numbers) and \"flags\" ({len(MODEL_FLAGS)} "
                            f"numbers): {e}") from e
        if len(cat) != len(CATEGORIES) or len(flags) != len(MODEL_FLAGS):
            raise DataError(f"{path} line {n}: expected {len(CATEGORIES)} category and "
                            f"{len(MODEL_FLAGS)} flag probabilities, got {len(cat)} and "
                            f"{len(flags)}")
        if any(not 0.0 <= x <= 1.0 for x in cat + flags) or abs(sum(cat) - 1.0) > 1e-3:
            raise DataError(f"{path} line {n}: probabilities must lie in [0, 1] and the "
                            "category ones sum to 1")
        labels[key] = SoftLabel(cat, flags)
    if header is None:
        raise DataError(f"{path} is empty: expected the output of filterd teach")
    return header, labels
