"""The training-set builder behind ``filterd data build``.

Reads the permissive public sets in ``../shared/data`` (never copied into the repo)
and the team-written text in ``filterd/classify/team/``, maps every row to the
taxonomy with the rules in :mod:`filterd.classify.rules`, cleans channel artifacts,
de-duplicates, caps every source inside every class (so no class is one source's
style), and splits: a random stratified validation slice, plus whole sources held
out for evaluation (``HOLDOUT_SOURCES``) that training never sees.

Each source is one function in the ``SOURCES`` registry; each yields ``Example``s.
A label that a source does not know is left out of ``flags`` (masked in the loss),
rather than guessed.
"""

from __future__ import annotations

import hashlib
import html
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from filterd.classify.rules import emoji_for, without_emoji_suffix
from filterd.errors import DataError, FilterdError
from filterd.normalize import clean_for_model, emoji_words
from filterd.types import CATEGORIES, MODEL_FLAGS

# Sources never used for training by default. Stormfront: CC BY-SA (share-alike might
# reach the weights) and forum prose, a useful unseen-style test of identity hate.
# HatemojiCheck is a functional test suite, meant for testing only.
HOLDOUT_SOURCES = ("stormfront", "hatemoji_check")
# R8 (rules.py): share of train rows given an emoji; HatemojiBuild's emoji are its subject.
EMOJI_FRACTION = 0.1
_EMOJI_SOURCES = ("hatemoji", "hatemoji_check")


@dataclass(slots=True)
class Example:
    text: str
    category: str | None  # None: the source does not say (only flags/intensity learn)
    source: str
    flags: dict[str, int] = field(default_factory=dict)  # known flags only
    intensity: float | None = None
    weight: float = 1.0
    split: str = "train"

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


def _key(text: str) -> str:
    return hashlib.sha1(re.sub(r"\W+", " ", text.lower()).strip().encode()).hexdigest()


VALID_CORE = Path(__file__).parent / "valid_core.txt"


def valid_core(path: Path = VALID_CORE) -> frozenset[str]:
    """Key prefixes of the texts that stay in ``valid`` in every build (see the file)."""
    return frozenset(
        line.strip() for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )


def _hash_unit(seed: int, key: str) -> float:
    """A number in [0, 1) fixed by the seed and the text alone."""
    return int(hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()[:12], 16) / 16**12


def build(
    data_root: Path,
    *,
    seed: int = 13,
    sources: list[str] | None = None,
    holdout: tuple[str, ...] = HOLDOUT_SOURCES,
    valid_fraction: float = 0.03,
    scale: float = 1.0,
    progress: bool = True,
    keep_splits: Path | None = None,
    emoji_names: bool = True,
    team_candidates: bool = False,
    caps: dict[tuple[str, str], int] | None = None,
) -> list[Example]:
    """Build the labelled set: every row cleaned, de-duplicated, capped and split.

    ``scale`` shrinks every cap (CI trains on a small slice with ``scale=0.02``).
    Rows of ``holdout`` sources get ``split="holdout"``; others ``train`` or ``valid``:
    ``valid`` when the text is in the validation core (``valid_core.txt``), else when a
    hash of the seed and the text falls under ``valid_fraction``. A text's split therefore
    depends on the text and the seed only: changing a source or a rule moves no other text
    between train and valid. Caps keep the rows of smallest hash, and every source has its
    own random generator, so such a change leaves the other rows of the build as they were.
    ``keep_splits``: an earlier build (a JSONL from ``save``); every text it holds keeps its
    split there, and only texts new to it are split by the rule above. Needed to compare
    with a model whose build split differently (another seed, or a build from before
    the hash split): that model has then seen none of this build's validation rows.
    ``emoji_names`` (the default, the shipped model's build; ``False`` is v7's build, the
    CLI's ``--raw-emoji``): emoji become their names
    (:func:`filterd.normalize.emoji_words`) and rule R8 gives one train row in ten an emoji;
    a model trained on such a build reads emoji as names when served (the trainer finds
    no raw emoji in the set and records ``emoji_as_words`` in its meta file). The model
    card's "v8 and v9" section says what it did. Its split is drawn on each text with
    its emoji left as they are, so every text is in the split the default build gives it
    (before session 9 a named build drew it on the named text, and about 260 of v7's
    validation rows went to train in v8-v11's builds; model card, "v8 and v9").
    ``team_candidates``: the team source also reads ``team/candidates/`` (team text
    measured for a model that was not shipped; model card, v11).
    ``caps``: per-(source, category) caps that replace :data:`~filterd.classify.sources.CAPS`
    entries for this build (the CLI's ``--cap edos/abusive=4500``). A cap keeps the rows
    of smallest hash, so a raised cap adds rows and keeps every row the default kept.
    """
    from filterd.classify.sources import CAPS, DEFAULT_CAP, SOURCES, team_with_candidates

    if not data_root.is_dir():
        raise DataError(f"Data folder {data_root} does not exist; pass --data PATH to it.")
    names = sources or list(SOURCES)
    unknown = sorted(set(names) - set(SOURCES))
    if unknown:
        raise DataError(f"Unknown source(s) {unknown}; choose from {sorted(SOURCES)}")
    all_caps = {**CAPS, **(caps or {})}
    for src, cat in caps or {}:
        if src not in SOURCES or cat not in CATEGORIES:
            raise DataError(f"cap {src}/{cat}: source must be one of {sorted(SOURCES)}, "
                            f"category one of {', '.join(CATEGORIES)}")
    seen: set[str] = set()
    out: list[Example] = []
    core = valid_core()
    earlier: dict[str, str] = {}
    if keep_splits is not None:
        # An earlier build's text is cleaned again as this build cleans (an emoji-names
        # build after a plain one) and, on train rows, R8's emoji is taken off again, so
        # that it matches this build's form of the same text.
        for ex in load(keep_splits):
            text = clean_for_model(ex.text, emoji_as_words=emoji_names)
            earlier[_key(text)] = ex.split
            # and as this build draws its split (emoji as they are), for a named text's
            # sibling that the earlier build did not keep
            earlier.setdefault(_key(clean_for_model(ex.text)), ex.split)
            if (emoji_names and ex.split == "train"
                    and (bare := without_emoji_suffix(text)) != text):
                earlier.setdefault(_key(bare), ex.split)
    from tqdm import tqdm

    from filterd.detect.lexicon import Lexicon
    from filterd.detect.pii import PiiDetector
    from filterd.pipeline import model_text

    pii = PiiDetector()
    lexicon = Lexicon.default()

    for name in tqdm(names, desc="sources", disable=not progress):
        # (text key, split key, row)
        rows: dict[str, list[tuple[str, str, Example]]] = defaultdict(list)
        # Each source draws from its own generator, so a change to one source cannot
        # change what another one samples.
        source = team_with_candidates if name == "team" and team_candidates else SOURCES[name]
        for ex in source(data_root, random.Random(f"{seed}:{name}")):
            ex.text = html.unescape(ex.text).strip()
            # The model reads what serving gives it: PII as placeholders, channel
            # artifacts neutralised.
            spans = [*pii.find(ex.text), *lexicon.find(ex.text)]
            plain = model_text(ex.text, spans)
            ex.text = clean_for_model(plain, emoji_as_words=emoji_names)
            if len(ex.text) < 2 or len(ex.text) > 1000:
                continue
            k = _key(ex.text)
            if k in seen:
                continue  # first source wins; no text is in two splits
            seen.add(k)
            # The split is drawn on the text with its emoji left as they are, so naming
            # emoji moves no row between train and valid: every text stays in the split
            # a plain build gives it, and texts that differ only in their emoji share one.
            sk = _key(clean_for_model(plain)) if emoji_names else k
            rows[ex.category or "none"].append((k, sk, ex))
        for cat, keyed in rows.items():
            # A cap keeps the rows with the smallest hash of seed and text: a rule that
            # adds or drops a few rows changes the kept rows by those few (a shuffle
            # would redraw the whole sample).
            keyed.sort(key=lambda kx: _hash_unit(seed, "cap:" + kx[0]))
            cap = all_caps.get((name, cat), DEFAULT_CAP)
            if name in holdout:
                cap = max(cap, 4000)
            if scale < 1 or len(keyed) > cap:
                keyed = keyed[: max(1, int(cap * scale))]
            for key, sk, ex in keyed:
                if name in holdout:
                    ex.split = "holdout"
                elif k_split := earlier.get(key) or earlier.get(sk):
                    ex.split = k_split if k_split != "holdout" else "valid"
                elif sk[:16] in core or _hash_unit(seed, sk) < valid_fraction:
                    ex.split = "valid"
                else:
                    ex.split = "train"
                if (emoji_names and ex.split == "train" and name not in _EMOJI_SOURCES
                        and ex.category
                        and _hash_unit(seed, "emoji:" + key) < EMOJI_FRACTION):
                    # R8: emoji in every class (rules.emoji_for); the valid split keeps
                    # the sources' own text
                    pick = emoji_for(ex.category, _hash_unit(seed, "emoji-pick:" + key))
                    ex.text = ex.text + " " + emoji_words(pick).strip()
                out.append(ex)
    return out


def summary(examples: list[Example]) -> dict[str, Any]:
    """Counts by split, class and source, for the model card and the CLI."""
    by: dict[str, Counter[str]] = defaultdict(Counter)
    for ex in examples:
        by[ex.split][f"{ex.category}"] += 1
        by[f"{ex.split}:source"][f"{ex.source}/{ex.category}"] += 1
    return {k: dict(sorted(v.items())) for k, v in by.items()}


def save(examples: list[Example], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for ex in examples:
            f.write(ex.to_json() + "\n")


def load(path: Path) -> list[Example]:
    if not path.exists():
        raise DataError(f"Training set {path} not found; run `filterd data build` first.")
    out = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            out.append(Example(**json.loads(line)))
    return out


def jsonl_rows(
    path: Path, error: type[FilterdError] = DataError,
) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed value)`` for each non-blank line of a JSONL file; a file
    that cannot be read, or a line that is not JSON, raises ``error`` naming them."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{path}: not a readable JSONL file ({e})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as e:
            raise error(f"{path.name} line {n}: not JSON ({e.msg})") from None


def load_feedback(path: Path) -> list[Example]:
    """Corrections exported by ``filterd feedback export``: one JSON object a line with
    ``text`` (masked), ``category`` and optional ``flags``. They join the train split."""
    if not path.exists():
        raise DataError(f"Feedback file {path} not found.")
    out: list[Example] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text, cat = str(row["text"]), row["category"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DataError(f"{path} line {n}: expected {{text, category, flags?}} ({e})") from e
        if cat not in ("neutral", "frustrated", "abusive"):
            raise DataError(f"{path} line {n}: category {cat!r} is not a filterd category")
        flags = {f: int(f in row.get("flags", [])) for f in MODEL_FLAGS}
        out.append(Example(clean_for_model(text), cat, "feedback", flags, None, weight=2.0))
    return out
