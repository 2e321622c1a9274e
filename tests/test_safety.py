"""Threats, self-harm and sexual harassment on a held-out table.

tests/data/safety_cases.jsonl was written by an author who saw neither the phrase
patterns, the training text nor the other test table. The target floors were fixed
before the first run: a missed threat is a silent mask, a missed crisis is a person
left alone. A target the shipped model does not meet is a strict xfail with the measured
value (it turns into a failure once met, so the guard gets raised), and a regression guard
at the measured level keeps a broken model from passing.

Two rows are no longer blind for the phrase table: session 16 rewrote its weapon and
waiting rows after s005 ("bringing my gun down there") was known to be missed and s144
("waiting outside the house for the engineer") known to raise an alarm. The rows were
written against their own look-alikes in tests/test_phrases.py, not these texts, but the
gain on s005 and s144 (threat 39 of 42, hard negatives 2 of 58 with v21) is not evidence
the way the rest of the table is; the guards below stay at the model's own level.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import SHARED_DATA

CASES = [
    json.loads(line)
    for line in (Path(__file__).parent / "data" / "safety_cases.jsonl").read_text().splitlines()
    if line.strip()
]


@pytest.fixture(scope="module")
def verdicts(real_filter):  # type: ignore[no-untyped-def]
    return {c["id"]: real_filter.check(c["text"]) for c in CASES}


@pytest.mark.parametrize(("flag", "floor"), [
    ("threat", 0.85),
    ("self_harm", 0.9),
    ("sexual_harassment", 0.8),  # met since model v7 (v7 24 of 26, v21 23, v17 24, v14 22; v5: 18)
    # regression guards under the measured level of the shipped model (v21: threat 38 of
    # 42 before the session-16 phrase rows, 39 after; sexual harassment 23 of 26; its recipe
    # 37.8 and 23.2 over six seeds; v17 39 and 24; v14 38 and 22, v7 40 and 24; model card,
    # "Session 10", "Session 12", "Session 15")
    ("threat", 0.9),
    ("sexual_harassment", 0.84),
])
def test_flag_recall(verdicts, flag: str, floor: float) -> None:  # type: ignore[no-untyped-def]
    rows = [c for c in CASES if c["flag"] == flag]
    assert len(rows) >= 20
    missed = [c["text"][:80] for c in rows if flag not in verdicts[c["id"]].flags]
    recall = 1 - len(missed) / len(rows)
    assert recall >= floor, f"{flag} recall {recall:.3f}; missed: {missed}"


def _alarm_rate(verdicts) -> tuple[float, list[object]]:  # type: ignore[no-untyped-def]
    rows = [c for c in CASES if c["flag"] == "none"]
    alarms = [(c["text"][:70], verdicts[c["id"]].flags) for c in rows
              if {"threat", "self_harm", "sexual_harassment"} & set(verdicts[c["id"]].flags)]
    return len(alarms) / len(rows), alarms


def test_hard_negatives_raise_few_alarms(verdicts) -> None:  # type: ignore[no-untyped-def]
    # the brain issue's target; met since model v17 (3 of 58), strict xfail until then
    # (v14 8 of 58, v7 7, v5 8, v3 12)
    rate, alarms = _alarm_rate(verdicts)
    assert rate <= 0.1, alarms


def test_hard_negative_alarms_do_not_regress(verdicts) -> None:  # type: ignore[no-untyped-def]
    # a guard just above the shipped model's level (v21: 3 of 58, 2 with the session-16
    # phrase rows (see the module docstring); its recipe's six seeds 3-5,
    # model card "Session 15"; v17 3, its recipe's two seeds 3 and 7)
    rate, alarms = _alarm_rate(verdicts)
    assert rate <= 4 / 58, alarms


def test_routes_follow_the_flags(verdicts) -> None:  # type: ignore[no-untyped-def]
    for c in CASES:
        v = verdicts[c["id"]]
        if "self_harm" in v.flags:
            assert v.route.queue == "crisis", c["text"]
            if "threat" in v.flags:  # both: the threat is abuse and a supervisor is alerted
                assert "alert_supervisor" in v.route.actions, c["text"]
            else:  # self-harm alone is never abuse
                assert v.category != "abusive", c["text"]
        elif "threat" in v.flags:
            assert v.route.queue == "supervisor" and v.category == "abusive", c["text"]


_AIRLINE = SHARED_DATA / "eval_only/airline_tweets/dev.csv"


@pytest.mark.skipif(not _AIRLINE.is_file(), reason="../shared/data/eval_only not present")
def test_real_complaints_rarely_raise_a_safety_flag(real_filter) -> None:  # type: ignore[no-untyped-def]
    """A quarter of the real airline tweets (chosen by a hash of the text): complaints,
    with all but no threats, self-harm or harassment among them, so a flag is a false
    alarm: a customer sent to the crisis route or a supervisor paged. The shipped model
    (v21) raises self_harm on 0.58%, threat on 0.28%, sexual_harassment on 0.14% of them;
    v17 0.69%, 0.47% and 0.17%; v14 1.30%, 0.47% and 0.25%; v7 0.94%, 0.69% and 0.19%;
    v5, before rule R7, raised self_harm on 2.33%. (Seeds of one recipe differ by a factor
    of two on self_harm here: model card, "Seed noise".)"""
    import hashlib

    from filterd.classify.evaluate import airline_set, safety_alarms

    texts, _ = airline_set(SHARED_DATA)
    sample = [t for t in texts if int(hashlib.sha1(t.encode()).hexdigest()[:8], 16) % 4 == 0]
    assert len(sample) > 3000
    report = safety_alarms(real_filter, sample)
    assert report["self_harm"]["rate"] <= 0.015, report
    assert report["threat"]["rate"] <= 0.01, report
    assert report["sexual_harassment"]["rate"] <= 0.004, report
