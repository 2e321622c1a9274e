"""Threats, self-harm and sexual harassment on a held-out table.

tests/data/safety_cases.jsonl was written by an author who saw neither the phrase
patterns, the training text nor the other test table. The target floors were fixed
before the first run: a missed threat is a silent mask, a missed crisis is a person
left alone. Two targets are not met by the shipped model; they are strict xfails with
the measured value (they turn into failures once met, so the guard gets raised), and a
regression guard at the measured level keeps a broken model from passing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CASES = [
    json.loads(line)
    for line in (Path(__file__).parent / "data" / "safety_cases.jsonl").read_text().splitlines()
    if line.strip()
]


@pytest.fixture(scope="module")
def verdicts(real_filter):  # type: ignore[no-untyped-def]
    return {c["id"]: real_filter.check(c["text"]) for c in CASES}


_MISSED = pytest.mark.xfail(strict=True, reason="target not met: shipped model measured 0.692 "
                            "(indirect innuendo is missed); see the model card")


@pytest.mark.parametrize(("flag", "floor"), [
    ("threat", 0.85),
    ("self_harm", 0.9),
    pytest.param("sexual_harassment", 0.8, marks=_MISSED),
    # regression guard just under the measured level of the shipped model (18 of 26)
    ("sexual_harassment", 0.65),
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


@pytest.mark.xfail(strict=True, reason="target not met: shipped model raises a safety flag on "
                   "0.138 (8 of 58) of hard negatives (\"I'm done. Cancel it.\"); "
                   "model card")
def test_hard_negatives_raise_few_alarms(verdicts) -> None:  # type: ignore[no-untyped-def]
    rate, alarms = _alarm_rate(verdicts)
    assert rate <= 0.1, alarms


def test_hard_negative_alarms_do_not_regress(verdicts) -> None:  # type: ignore[no-untyped-def]
    # the shipped model raises 8 of 58; the one before it 12 (0.207)
    rate, alarms = _alarm_rate(verdicts)
    assert rate <= 10 / 58, alarms


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
