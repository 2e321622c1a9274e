"""The public sets and the team's text, one function per source: rows -> ``Example``s.

Each function applies the relabelling rules of :mod:`filterd.classify.rules` (written out
in the model card) to one data set in ``../shared/data``. ``SOURCES`` is the registry that
:func:`filterd.classify.data.build` walks; ``CAPS`` caps each (source, class).
"""

from __future__ import annotations

import ast
import csv
import functools
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

from filterd.classify import rules
from filterd.classify.data import Example, jsonl_rows
from filterd.errors import DataError
from filterd.types import MODEL_FLAGS

csv.field_size_limit(10_000_000)

TEAM_DIR = Path(__file__).parent / "team"
CANDIDATES_DIR = TEAM_DIR / "candidates"  # not in the default build
DEFAULT_CAP = 3000


def _neutral_flags() -> dict[str, int]:
    # A calm request carries none of the model's flags: all known zeros.
    return dict.fromkeys(MODEL_FLAGS, 0)


def _frustrated_flags(text: str) -> dict[str, int]:
    """Complaints are not abuse. R7: a public complaint with no self-harm word knows
    self_harm = 0; one with such a word ("I want to die", "killing me") leaves it unknown.
    (Left unknown everywhere, the self-harm head learned from team text alone that an
    upset message is often self-harm, and fired on 2% of real airline complaints.)"""
    flags = {"threat": 0, "insult": 0, "identity_attack": 0, "sexual_harassment": 0}
    if not rules.self_harm_cue(text):
        flags["self_harm"] = 0
    return flags


@functools.cache
def _vader() -> Callable[[str], float]:
    """VADER's compound score; one analyser shared by every source (it is stateless)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return lambda t: float(analyzer.polarity_scores(t)["compound"])


def _read_csv(path: Path) -> Iterator[dict[str, str]]:
    if not path.exists():
        raise DataError(f"Data file {path} not found. Is ../shared/data beside the repo?")
    with path.open(encoding="utf-8-sig", newline="") as f:
        yield from csv.DictReader(f)


_NAMES = ["Alex", "Sam", "Jordan", "Maria", "Chris", "Priya", "Tom", "Aisha", "Luis", "Emma"]


def _fill_placeholders(text: str, rng: random.Random) -> str:
    text = re.sub(r"\[NAME\]", lambda _: rng.choice(_NAMES), text)
    return text.replace("[RELIGION]", "religion").replace("[USER]", "@user").replace(
        "[URL]", "http"
    )


# --------------------------------------------------------------------------- sources


def goemotions(root: Path, rng: random.Random) -> Iterator[Example]:
    """Reddit comments. anger/annoyance/disappointment -> frustrated (or abusive by
    R1/R2); neutral and positive-only comments -> neutral (R4 filters)."""
    names = (root / "goemotions/data/original/labels.txt").read_text().split()
    neg = {"anger": 0.6, "annoyance": 0.4, "disappointment": 0.35, "disgust": 0.55}
    negative_any = {"anger", "annoyance", "disappointment", "disgust", "disapproval", "fear",
                    "sadness", "grief", "remorse", "embarrassment", "nervousness"}
    vader = _vader()
    for split in ("train", "dev"):
        path = root / f"goemotions/data/original/{split}.tsv"
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) < 2:
                continue
            text = _fill_placeholders(parts[0], rng)
            labels = {names[int(i)] for i in parts[1].split(",") if i}
            hits = [neg[lab] for lab in labels if lab in neg]
            if hits:
                if rules.threat_at_person(text):  # R6
                    yield Example(text, "abusive", "goemotions", {"threat": 1, "self_harm": 0},
                                  0.85)
                elif rules.is_person_abuse(text):  # R1, R2, R6
                    yield Example(text, "abusive", "goemotions",
                                  {"insult": 1, "threat": 0, "self_harm": 0}, 0.75)
                else:
                    yield Example(text, "frustrated", "goemotions", _frustrated_flags(text),
                                  max(hits))
            elif not (labels & negative_any):
                if (rules.unsafe_for_neutral(text) or rules.is_person_abuse(text)
                        or vader(text) <= -0.4):
                    continue  # R4, R6
                yield Example(text, "neutral", "goemotions", _neutral_flags(), 0.05)


def davidson(root: Path, rng: random.Random) -> Iterator[Example]:
    """Tweets: hate -> abusive+identity_attack; offensive with an insult -> abusive;
    offensive without one is ambiguous (dropped); neither -> neutral (R4)."""
    vader = _vader()
    for r in _read_csv(root / "davidson_hate_offensive/data/labeled_data.csv"):
        text = r["tweet"]
        cls = r["class"]
        if cls == "0" and int(r["hate_speech"]) >= 2:
            yield Example(text, "abusive", "davidson", {"identity_attack": 1, "self_harm": 0}, 0.9)
        elif cls == "1" and rules.is_person_abuse(text):  # R1, R2, R6
            yield Example(text, "abusive", "davidson", {"insult": 1, "self_harm": 0}, 0.7)
        elif cls == "2" and int(r["neither"]) == int(r["count"]):
            if rules.unsafe_for_neutral(text) or vader(text) <= -0.4:
                continue
            yield Example(text, "neutral", "davidson", _neutral_flags(), 0.05)


def _annotator_votes(row: dict[str, str]) -> list[dict[str, str]]:
    out = []
    for i in range(1, 9):
        keys = {k[len(f"Annotator{i}_"):]: v for k, v in row.items()
                if k.startswith(f"Annotator{i}_")}
        if any(v.strip() for v in keys.values()):
            out.append(keys)
    return out


def convabuse(root: Path, rng: random.Random) -> Iterator[Example]:
    """Users typing to chatbots. Mean severity over annotators: <= -1 abusive (with the
    voted type and target), all 'not abusive' -> neutral, in between dropped."""
    for name in ("ConvAbuseEMNLPtrain.csv", "ConvAbuseEMNLPvalid.csv"):
        for r in _read_csv(root / "convabuse/2_splits" / name):
            votes = _annotator_votes(r)
            if not votes or not r["user"].strip():
                continue
            sev = []
            for v in votes:
                for level in ("1", "0", "-1", "-2", "-3"):
                    if v.get(f"is_abuse.{level}", "").strip() in ("1", "1.0"):
                        sev.append(int(level))
            if not sev:
                continue
            mean = sum(sev) / len(sev)
            text = r["user"]

            def share(key: str, votes: list[dict[str, str]] = votes) -> float:
                return sum(v.get(key, "").strip() in ("1", "1.0") for v in votes) / len(votes)

            if mean <= -1:
                ident = max(share(k) for k in ("racist", "sexist", "homophobic", "transphobic",
                                               "ableist"))
                sh = share("sex_harassment")
                flags = {"identity_attack": int(ident >= 0.5), "sexual_harassment": int(sh >= 0.5),
                         "self_harm": 0}
                if sh < 0.5 and ident < 0.5:
                    flags["insult"] = 1
                yield Example(text, "abusive", "convabuse", flags, min(1.0, 0.5 - mean / 6))
            elif min(sev) == 1:
                if rules.unsafe_for_neutral(text):
                    continue
                yield Example(text, "neutral", "convabuse", _neutral_flags(), 0.05)


def toxic_spans(root: Path, rng: random.Random) -> Iterator[Example]:
    """Civil Comments with per-annotator typed spans. Abusive when most annotators
    marked Insult / Identity / Threat spans; neutral when most said 'not toxic'."""
    d = root / "toxic_spans/data"
    texts = {r["comment_id"]: r["comment_text"] for r in _read_csv(d / "comments.csv")}
    ann: dict[str, list[str]] = defaultdict(list)
    ann_nontoxic: dict[str, int] = Counter()
    for r in _read_csv(d / "annotations.csv"):
        ann[r["comment_id"]].append(r["annotation"])
        if r["not toxic"] == "True":
            ann_nontoxic[r["comment_id"]] += 1
    types: dict[str, set[str]] = defaultdict(set)
    for r in _read_csv(d / "spans.csv"):
        types[r["annotation"]].add(r["type"].strip())
    vader = _vader()
    for cid, anns in ann.items():
        text = texts.get(cid)
        if not text or len(text) > 600:
            continue
        n = len(anns)

        def votes(kind: str, anns: list[str] = anns) -> int:
            return sum(any(t.startswith(kind) for t in types[a]) for a in anns)

        ins, ide, thr = votes("Insu"), votes("Identity"), votes("Threat")
        if max(ins, ide, thr) * 2 > n:
            flags = {"insult": int(ins * 2 > n), "identity_attack": int(ide * 2 > n),
                     "threat": int(thr * 2 > n), "self_harm": 0}
            yield Example(text, "abusive", "toxic_spans", flags, 0.85 if thr * 2 > n else 0.7)
        elif ann_nontoxic[cid] * 2 > n and not types_any(types, anns):
            if rules.unsafe_for_neutral(text) or vader(text) <= -0.4:
                continue
            yield Example(text, "neutral", "toxic_spans", _neutral_flags(), 0.1)


def types_any(types: dict[str, set[str]], annotations: list[str]) -> bool:
    return any(types[a] for a in annotations)


def _decode_bytes_repr(text: str) -> str:
    if text.startswith(("b'", 'b"')):
        try:
            raw = ast.literal_eval(text)
            if isinstance(raw, bytes):
                return raw.decode("utf-8", errors="replace")
        except (ValueError, SyntaxError):
            return text[2:-1]
    return text


def toxigen(root: Path, rng: random.Random) -> Iterator[Example]:
    """Statements about 13 groups: human toxicity >= 4 -> abusive identity attack;
    <= 2 -> neutral (the hard negatives: benign statements about the same groups)."""
    for r in _read_csv(root / "toxigen_annotated/data/toxigen.csv"):
        text = _decode_bytes_repr(r["text"])
        tox = float(r["toxicity_human"])
        if tox >= 4:
            yield Example(text, "abusive", "toxigen", {"identity_attack": 1, "self_harm": 0},
                          0.6 + (tox - 4) * 0.3)
        elif tox <= 2 and not rules.unsafe_for_neutral(text) and not rules.violent(text):
            yield Example(text, "neutral", "toxigen", {"identity_attack": 0, "threat": 0,
                                                       "self_harm": 0, "sexual_harassment": 0},
                          0.1)
    for r in _read_csv(root / "toxigen_seeds/seed_statements.csv"):
        if r["label"] == "hate":
            yield Example(r["text"], "abusive", "toxigen", {"identity_attack": 1}, 0.8)
        elif r["label"] == "neutral" and not rules.violent(r["text"]):
            yield Example(r["text"], "neutral", "toxigen", {"identity_attack": 0, "threat": 0},
                          0.05)


def edos(root: Path, rng: random.Random) -> Iterator[Example]:
    """Sexism: sexist -> abusive identity attack (threats category adds threat);
    not sexist -> neutral when calm and clean (R4)."""
    vader = _vader()
    for r in _read_csv(root / "edos_sexism/data/edos_labelled_aggregated.csv"):
        text = _fill_placeholders(r["text"], rng)
        if r["label_sexist"] == "sexist":
            threat = r["label_category"].startswith("1.")
            yield Example(text, "abusive", "edos",
                          {"identity_attack": 1, "threat": int(threat), "self_harm": 0},
                          0.85 if threat else 0.7)
        else:
            if rules.unsafe_for_neutral(text) or rules.violent(text) or vader(text) <= -0.4:
                continue  # R4, R4b
            yield Example(text, "neutral", "edos", _neutral_flags(), 0.05)


def hatemoji(root: Path, rng: random.Random) -> Iterator[Example]:
    """Adversarial emoji hate with label-flipping rewrites (HatemojiBuild)."""
    vader = _vader()
    for split in ("train", "validation", "test"):
        for r in _read_csv(root / f"hatemoji/HatemojiBuild/{split}.csv"):
            text = r["text"]
            if r["label_gold"] == "1":
                thr = r["type"] == "threateninglanguage"
                yield Example(text, "abusive", "hatemoji",
                              {"identity_attack": 1, "threat": int(thr)}, 0.85 if thr else 0.7)
            elif not (rules.unsafe_for_neutral(text) or rules.violent(text)
                      or vader(text) <= -0.4):  # R4, R4b
                yield Example(text, "neutral", "hatemoji", {"identity_attack": 0}, 0.1)


def hatemoji_check(root: Path, rng: random.Random) -> Iterator[Example]:
    """HatemojiCheck functional tests: evaluation only (held out)."""
    for r in _read_csv(root / "hatemoji/HatemojiCheck/test.csv"):
        if r.get("included_in_test_suite", "1") != "1":
            continue
        if r["label_gold"] == "1":
            yield Example(r["text"], "abusive", "hatemoji_check", {"identity_attack": 1})
        else:
            yield Example(r["text"], "neutral", "hatemoji_check", {"identity_attack": 0})


def stormfront(root: Path, rng: random.Random) -> Iterator[Example]:
    """Forum sentences, hate / noHate: evaluation only (held out; CC BY-SA)."""
    for r in _read_csv(root / "stormfront_hate/stormfront_sentences.csv"):
        if r["label"] == "hate":
            yield Example(r["text"], "abusive", "stormfront", {"identity_attack": 1})
        elif r["label"] == "noHate":
            yield Example(r["text"], "neutral", "stormfront", {"identity_attack": 0})


def identity_templates(root: Path, rng: random.Random) -> Iterator[Example]:
    """Artificial template sentences ('I am gay' vs 'I hate gay'): down-weighted."""
    for r in _read_csv(root / "jigsaw_identity_templates/sentence_templates/"
                       "en_sentence_templates.csv"):
        text = r["phrase"]
        if r["toxicity"] == "toxic":
            yield Example(text, "abusive", "identity_templates", {"identity_attack": 1}, 0.7,
                          weight=0.5)
        else:
            yield Example(text, "neutral", "identity_templates", {"identity_attack": 0}, 0.05,
                          weight=0.5)


# R5: a support query that complains ("I'm STILL waiting on my card", "why was I charged
# twice?") is mild frustration in TAXONOMY.md, not neutral. Banking77 files such rows
# under neutral intents; left there, they teach "still waiting" = neutral.
_QUERY_COMPLAINT = re.compile(
    r"\b(?:still (?:not|no|hasn'?t|haven'?t|has not|have not|isn'?t|is not|doesn'?t|can'?t|"
    r"won'?t|waiting|pending|missing|nothing|charging|showing)|twice|again|never|yet to|"
    r"not (?:yet|working|arrived|received)|"
    r"(?:doesn'?t|does not|isn'?t|is not|won'?t|wont|didn'?t|did not) (?:work|arrive|come|show)|"
    r"(?:hasn'?t|has not|haven'?t|have not) (?:arrived|come|received|got|been)|"
    r"(?<!i )(?<!i've )(?<!i'm doing )(?<!i am doing )(?:charged|gave me|received|got) "
    r"(?:the )?wrong|wrong (?:amount|charge|fee|rate)|"
    r"ridiculous|unacceptable|frustrat\w*|annoy\w*|angry|upset)\b",
    re.I,
)


def _support_query(text: str, source: str) -> Example:
    if _QUERY_COMPLAINT.search(text):
        return Example(text, "frustrated", source, _frustrated_flags(text), 0.3)
    return Example(text, "neutral", source, _neutral_flags(), 0.05)


def banking77(root: Path, rng: random.Random) -> Iterator[Example]:
    """Single-turn banking support queries: neutral requests; complaints by R5."""
    for name in ("train.csv", "test.csv"):
        for r in _read_csv(root / "banking77/banking_data" / name):
            yield _support_query(r["text"], "banking77")


def clinc150(root: Path, rng: random.Random) -> Iterator[Example]:
    """Assistant queries, small talk, out-of-scope: neutral; complaints by R5."""
    data = json.loads((root / "clinc150/data/data_full.json").read_text())
    for split in ("train", "val", "test", "oos_train", "oos_val", "oos_test"):
        for text, _intent in data.get(split, []):
            yield _support_query(text, "clinc150")


def taskmaster(root: Path, rng: random.Random) -> Iterator[Example]:
    """Customer turns of coffee-ordering dialogues: neutral chat."""
    for r in _read_csv(root / "taskmaster4_coffee/user_turns.csv"):
        if len(r["text"].split()) >= 2:
            yield Example(r["text"], "neutral", "taskmaster", _neutral_flags(), 0.05)


_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_COMPLAINT_CUE = re.compile(
    r"\b(?:still|never|again|no one|nobody|unacceptable|ridiculous|terrible|horrible|worst|"
    r"rude|wait(?:ed|ing)?|hours?|days|weeks|months|refus\w*|overcharg\w*|charg\w*|cancel\w*|"
    r"outage|down|slow|drop\w*|lied|lying|promised|frustrat\w*|angry|fed up|sick of|tired of|"
    r"disconnect\w*|not (?:working|fixed|resolved)|can'?t|won'?t|doesn'?t|didn'?t)\b",
    re.I,
)


def _complaint_chunks(text: str, rng: random.Random, vader: Callable[[str], float]) -> list[str]:
    text = text.split(" - - - - -")[0]
    sents = [s.strip() for s in _SENT_SPLIT.split(re.sub(r"\s+", " ", text)) if s.strip()]
    chunks = []
    i = 0
    while i < len(sents):
        k = rng.choice((1, 1, 2, 3))
        chunk = " ".join(sents[i : i + k])
        i += k
        if not 4 <= len(chunk.split()) <= 60 or "XX" in chunk:
            continue
        # A narrative sentence is frustration only when it complains.
        if _COMPLAINT_CUE.search(chunk) or vader(chunk) <= -0.3:
            chunks.append(chunk)
    return chunks


def fcc(root: Path, rng: random.Random) -> Iterator[Example]:
    """Real ISP complaints to the FCC: short titles and chat-sized narrative chunks."""
    vader = _vader()
    for r in _read_csv(root / "fcc_comcast_complaints/data/Comcast.csv"):
        title = r["Customer Complaint"].strip()
        if len(title.split()) >= 3 and (_COMPLAINT_CUE.search(title) or vader(title) < -0.2):
            yield Example(title, "frustrated", "fcc", _frustrated_flags(title), 0.35)
    for r in _read_csv(root / "fcc_comcast_complaints/data/comcast_fcc_complaints_2015.csv"):
        for chunk in _complaint_chunks(r["Description"], rng, vader)[:3]:
            if rules.is_aimed_abuse(chunk):
                continue  # narratives rarely insult; ambiguous, drop
            yield Example(chunk, "frustrated", "fcc", _frustrated_flags(chunk),
                          0.5 if rules.has_profanity(chunk) else 0.4)


def cfpb(root: Path, rng: random.Random) -> Iterator[Example]:
    """Consumer financial complaints (formal register)."""
    vader = _vader()
    for r in _read_csv(root / "cfpb_complaints_sample/complaints_sample.csv"):
        for chunk in _complaint_chunks(r["Consumer complaint narrative"], rng, vader)[:2]:
            if not rules.is_aimed_abuse(chunk):
                yield Example(chunk, "frustrated", "cfpb", _frustrated_flags(chunk), 0.4)


def team(root: Path, rng: random.Random) -> Iterator[Example]:
    """Text written by the filterd team for what no public set covers."""
    yield from _team_rows(_team_files(TEAM_DIR))


def team_with_candidates(root: Path, rng: random.Random) -> Iterator[Example]:
    """:func:`team` plus the files in ``team/candidates/``: team text written and measured
    for a model that was not shipped (its README says which and why). In file-name order
    across both folders, so the build equals the one that model was trained on."""
    yield from _team_rows(_team_files(TEAM_DIR, CANDIDATES_DIR))


def _team_files(*dirs: Path) -> list[Path]:
    files = sorted((p for d in dirs for p in d.glob("*.jsonl")), key=lambda p: p.name)
    if not files:
        raise DataError(f"No team data in {dirs[0]}")
    return files


def _team_rows(files: list[Path]) -> Iterator[Example]:
    for path in files:
        for _, row in jsonl_rows(path):
            flags = {f: int(f in row.get("flags", [])) for f in MODEL_FLAGS}
            rare = any(flags[f] for f in ("threat", "self_harm", "sexual_harassment"))
            yield Example(row["text"], row["category"], f"team:{path.stem}", flags,
                          float(row.get("intensity", 0.5)), weight=3.0 if rare else 2.0)


SOURCES: dict[str, Callable[[Path, random.Random], Iterator[Example]]] = {
    "goemotions": goemotions,
    "davidson": davidson,
    "convabuse": convabuse,
    "toxic_spans": toxic_spans,
    "toxigen": toxigen,
    "edos": edos,
    "hatemoji": hatemoji,
    "hatemoji_check": hatemoji_check,
    "stormfront": stormfront,
    "identity_templates": identity_templates,
    "banking77": banking77,
    "clinc150": clinc150,
    "taskmaster": taskmaster,
    "fcc": fcc,
    "cfpb": cfpb,
    "team": team,
}

# Per-(source, category) caps. Sources with an outsized class are capped so that
# every class mixes styles (tweets, Reddit, forum, chat, complaint prose).
CAPS: dict[tuple[str, str], int] = {
    ("goemotions", "neutral"): 3500,
    ("goemotions", "frustrated"): 5500,
    ("davidson", "abusive"): 2500,
    ("davidson", "neutral"): 2500,
    ("edos", "neutral"): 2000,
    ("edos", "abusive"): 2000,
    ("toxic_spans", "abusive"): 3000,
    ("toxic_spans", "neutral"): 1200,
    ("identity_templates", "abusive"): 600,
    ("identity_templates", "neutral"): 600,
    ("banking77", "neutral"): 2000,
    ("banking77", "frustrated"): 1200,
    ("clinc150", "neutral"): 2000,
    ("taskmaster", "neutral"): 1200,
    ("fcc", "frustrated"): 5000,
    ("cfpb", "frustrated"): 1500,
    ("toxigen", "neutral"): 1500,
    ("hatemoji", "neutral"): 1500,
}


