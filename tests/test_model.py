"""The real shipped model, on telecom messages written for these tests.

tests/data/telecom_cases.jsonl was written independently of the training text (by a
different author, who did not see filterd/classify/team/). ``must`` rows are
clear-cut: any customer-service filter must get their category right.
A broken, untrained or swapped model fails these tests.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

CASES = [
    json.loads(line)
    for line in (Path(__file__).parent / "data" / "telecom_cases.jsonl").read_text().splitlines()
    if line.strip()
]


@pytest.fixture(scope="module")
def verdicts(real_filter):  # type: ignore[no-untyped-def]
    return {c["id"]: real_filter.check(c["text"], id=c["id"]) for c in CASES}


def test_shipped_model_loads_with_pinned_hashes(real_filter) -> None:  # type: ignore[no-untyped-def]
    meta = real_filter.classifier.meta
    assert set(meta["sha256"]) == {"model.onnx", "tokenizer.json"}
    assert meta["categories"] == ["neutral", "frustrated", "abusive"]


def test_must_rows_category_accuracy(verdicts) -> None:  # type: ignore[no-untyped-def]
    must = [c for c in CASES if c["must"]]
    wrong = [(c["id"], c["category"], verdicts[c["id"]].category, c["text"][:60])
             for c in must if verdicts[c["id"]].category != c["category"]]
    acc = 1 - len(wrong) / len(must)
    assert acc >= 0.9, f"must-row accuracy {acc:.3f}; wrong: {wrong}"


def test_all_rows_category_accuracy(verdicts) -> None:  # type: ignore[no-untyped-def]
    acc = sum(verdicts[c["id"]].category == c["category"] for c in CASES) / len(CASES)
    assert acc >= 0.8, f"accuracy {acc:.3f}"


@pytest.mark.parametrize("cat", ["neutral", "frustrated", "abusive"])
def test_every_class_is_recognised(verdicts, cat: str) -> None:  # type: ignore[no-untyped-def]
    rows = [c for c in CASES if c["category"] == cat]
    recall = sum(verdicts[c["id"]].category == cat for c in rows) / len(rows)
    assert recall >= 0.75, f"{cat} recall {recall:.3f}"


def test_no_self_harm_message_is_called_abusive(verdicts) -> None:  # type: ignore[no-untyped-def]
    rows = [c for c in CASES if "self_harm" in c["flags"]]
    assert rows
    for c in rows:
        v = verdicts[c["id"]]
        assert v.category != "abusive", c["text"]
        assert v.route.queue == "crisis", (c["text"], v.flags)


@pytest.mark.parametrize("flag", ["threat", "self_harm", "pii", "profanity", "insult"])
def test_required_flags_fire(verdicts, flag: str) -> None:  # type: ignore[no-untyped-def]
    rows = [c for c in CASES if flag in c["flags"]]
    missed = [c["text"][:70] for c in rows if flag not in verdicts[c["id"]].flags]
    recall = 1 - len(missed) / len(rows)
    floor = 1.0 if flag in ("pii", "self_harm") else 0.85
    assert recall >= floor, f"{flag} recall {recall:.3f}; missed {missed}"


def test_threats_alert_a_supervisor(verdicts) -> None:  # type: ignore[no-untyped-def]
    for c in CASES:
        if "threat" in c["flags"] and "threat" in verdicts[c["id"]].flags:
            assert verdicts[c["id"]].route.queue == "supervisor"


def test_obfuscated_abuse_is_caught_like_plain(verdicts) -> None:  # type: ignore[no-untyped-def]
    rows = [c for c in CASES if c["category"] == "abusive"]
    by = Counter(verdicts[c["id"]].category == "abusive" for c in rows)
    assert by[True] / len(rows) >= 0.85


@pytest.mark.parametrize(
    "text",
    [
        "I'm a gay man and my phone won't connect to wifi",
        "my wife is Muslim and wants the account in her name",
        "as a Black business owner I need a business plan quote",
        "I'm deaf, can we keep this in chat please",
    ],
)
def test_identity_terms_used_neutrally_are_not_abuse(real_filter, text: str) -> None:  # type: ignore[no-untyped-def]
    v = real_filter.check(text)
    assert v.category != "abusive" and "identity_attack" not in v.flags


# Emoji a customer adds to a calm or frustrated message: friendly, polite, or annoyed.
_EMOJI = ["🙂", "🙏", "👍", "😂", "❤️", "😉", "🙄", "😡"]


@pytest.fixture(scope="module")
def emoji_turned(real_filter, verdicts):  # type: ignore[no-untyped-def]
    """The table's calm and frustrated rows (those the model gets right without a safety
    flag), each with one emoji appended: the ones now called abusive or given a safety
    flag."""
    safety = {"threat", "self_harm", "sexual_harassment"}
    rows = [c for c in CASES if c["category"] != "abusive" and not safety & set(c["flags"])
            and verdicts[c["id"]].category != "abusive"
            and not safety & set(verdicts[c["id"]].flags)]
    assert len(rows) >= 80
    texts = [f"{c['text']} {e}" for e in _EMOJI for c in rows]
    turned = [t[:70] for t, v in zip(texts, real_filter.check_many(texts), strict=True)
              if v.category == "abusive" or safety & set(v.flags)]
    return turned, len(texts)


@pytest.mark.xfail(strict=True, reason="known failure of the shipped model (v21): 13 of 720 "
                   "(1.8%) turn abusive or raise a safety flag (v17 10 of 704, v14 21 of "
                   "688); it reads emoji as names, where v7 read every one as [UNK] "
                   "(24 of 680); model card")
def test_an_emoji_does_not_make_a_message_abusive(emoji_turned) -> None:  # type: ignore[no-untyped-def]
    turned, n = emoji_turned
    assert len(turned) <= 0.01 * n, f"{len(turned)} of {n}: {turned[:12]}"


def test_emoji_false_alarms_do_not_regress(emoji_turned) -> None:  # type: ignore[no-untyped-def]
    # the shipped model (v21): 13 of 720; v17 10 of 704; v14 21 of 688; v7 24 of 680
    turned, n = emoji_turned
    assert len(turned) <= 0.045 * n, f"{len(turned)} of {n}: {turned[:12]}"
