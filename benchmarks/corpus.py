"""A fixed corpus of realistic chat messages for the benchmarks.

Drawn with a fixed seed from the public sets in ../shared/data (customer queries,
Reddit comments, tweets, ISP complaint titles) when present, else from the test table.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def short_messages(n: int = 300, seed: int = 7) -> list[str]:
    """n chat-length messages (mostly 20-200 characters), same every run."""
    texts: list[str] = []
    if DATA.is_dir():
        with (DATA / "banking77/banking_data/test.csv").open(encoding="utf-8") as f:
            texts += [r["text"] for r in csv.DictReader(f)]
        with (DATA / "davidson_hate_offensive/data/labeled_data.csv").open(encoding="utf-8") as f:
            texts += [r["tweet"] for r in csv.DictReader(f)][:3000]
        lines = (DATA / "goemotions/data/original/dev.tsv").read_text(encoding="utf-8")
        texts += [x.split("\t")[0] for x in lines.splitlines()][:3000]
        with (DATA / "fcc_comcast_complaints/data/Comcast.csv").open(encoding="utf-8-sig") as f:
            texts += [r["Customer Complaint"] for r in csv.DictReader(f)]
    else:
        table = REPO / "tests/data/telecom_cases.jsonl"
        texts = [json.loads(x)["text"] for x in table.read_text().splitlines() if x.strip()]
    texts = [t for t in texts if 10 <= len(t) <= 280]
    rng = random.Random(seed)
    rng.shuffle(texts)
    return (texts * (n // max(1, len(texts)) + 1))[:n]
