"""The decision rules of the pipeline, with a deterministic fake classifier.

The real shipped model is tested in test_model.py; here the model's scores are fixed
so each row tests one rule of TAXONOMY.md.
"""

from __future__ import annotations

import pytest

from filterd.classify.fake import FailingClassifier, KeywordClassifier
from filterd.config import load_settings
from filterd.errors import InputError
from filterd.pipeline import Filter, level_of
from filterd.types import FLAGS


@pytest.fixture(scope="module")
def filt() -> Filter:
    return Filter(load_settings(), classifier=KeywordClassifier())


@pytest.mark.parametrize(
    ("text", "category", "flags_in", "flags_out", "queue"),
    [
        # plain request
        ("Can I add a second line to my plan?", "neutral", set(), {"profanity"}, "standard"),
        # profanity at a thing: frustrated, masked, profanity flag, never insult
        ("this fucking router is still down again", "frustrated", {"profanity"}, {"insult"},
         "priority"),
        # insult at the agent: abusive with insult
        ("you are an idiot", "abusive", {"insult"}, set(), "priority"),
        # a threat phrase makes it abusive and alerts a supervisor, whatever the model says
        ("I know where you live and I'm coming for you", "abusive", {"threat"}, set(),
         "supervisor"),
        # self-harm goes to crisis and is never abuse
        ("if they cut my power I want to kill myself", None, {"self_harm"}, set(), "crisis"),
        # a weapon the writer holds against themself: crisis, not a threat, never abuse
        ("I've got a knife in my hand and I keep thinking about using it on myself", None,
         {"self_harm"}, {"threat"}, "crisis"),
        # a return and a delivery that name a knife and a car park: no alert
        ("I'll bring the knife set back to the store for a refund", "neutral", set(),
         {"threat"}, "standard"),
        # (the fake model calls any "waiting" frustrated: priority, not supervisor)
        ("I'll be waiting in the car park for the delivery driver at 5", "frustrated", set(),
         {"threat"}, "priority"),
        # PII is flagged and redacted
        ("my number is +1 415 555 0132, call me", "neutral", {"pii"}, set(), "standard"),
    ],
)
def test_decision_table(
    filt: Filter,
    text: str,
    category: str | None,
    flags_in: set[str],
    flags_out: set[str],
    queue: str,
) -> None:
    v = filt.check(text, id="x")
    if category:
        assert v.category == category
    assert flags_in <= set(v.flags), v.flags
    assert not (flags_out & set(v.flags)), v.flags
    assert v.route.queue == queue
    if "self_harm" in flags_in:
        assert v.category != "abusive"


def test_verdict_shape_matches_interface(filt: Filter) -> None:
    d = filt.check("you fucking idiot", id="m-42").as_dict()
    assert set(d) >= {"id", "category", "scores", "flags", "flag_scores", "intensity", "level",
                      "text_masked", "spans", "route"}
    assert d["id"] == "m-42"
    assert set(d["scores"]) == {"neutral", "frustrated", "abusive"}
    assert set(d["flag_scores"]) == set(FLAGS)
    assert all(0.0 <= x <= 1.0 for x in d["flag_scores"].values())
    assert 0 <= d["level"] <= 4 and 0.0 <= d["intensity"] <= 1.0
    assert set(d["route"]) >= {"queue", "priority", "actions"}
    # spans index the original text and are masked in text_masked
    for s in d["spans"]:
        assert 0 <= s["start"] < s["end"] <= len("you fucking idiot")
    assert "fucking" not in d["text_masked"] and "idiot" not in d["text_masked"]


def test_pii_is_redacted_not_starred(filt: Filter) -> None:
    v = filt.check("card 4111 1111 1111 1111 and mail jo@example.com")
    assert "4111" not in v.text_masked and "jo@example.com" not in v.text_masked
    assert {s.kind for s in v.spans} >= {"pii:card", "pii:email"}


def test_model_failure_degrades_but_still_masks_and_routes() -> None:
    f = Filter(load_settings(), classifier=FailingClassifier())
    v = f.check("you are a fucking idiot")
    assert v.degraded is True
    assert v.as_dict()["degraded"] is True
    assert "fucking" not in v.text_masked
    assert v.category == "abusive"
    assert f.check("I will kill you").route.queue == "supervisor"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("\x00\x01\x02", "empty"),
        ("\u200b\u200b", "empty"),
        ("x" * 100_001, "limit"),
    ],
)
def test_bad_input_is_a_clear_error(filt: Filter, text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        filt.check(text)


def test_non_string_input_is_a_clear_error(filt: Filter) -> None:
    with pytest.raises(InputError, match="must be a string"):
        filt.check(123)  # type: ignore[arg-type]


def test_control_characters_inside_text_are_judged(filt: Filter) -> None:
    v = filt.check("hello\x00 there\x07, my bill is wrong")
    assert v.category in ("neutral", "frustrated")


def test_conversation_frustration_builds_to_priority(filt: Filter) -> None:
    vs = filt.check_conversation(
        ["still waiting for my refund", "this is ridiculous, hours on hold", "ok what now"]
    )
    assert [v.route.queue for v in vs] == ["priority", "priority", "priority"]
    assert vs[-1].category == "neutral"  # the message is calm; the conversation is not


def test_repeated_abuse_strikes_out(filt: Filter) -> None:
    vs = filt.check_conversation(["you idiot", "you stupid moron"])
    assert vs[0].route.queue != "abuse_review"
    assert vs[1].route.queue == "abuse_review"
    assert "warn_customer" in vs[0].route.actions


@pytest.mark.parametrize(("intensity", "level"), [(0.0, 0), (0.19, 0), (0.2, 1), (0.5, 2),
                                                  (0.7, 3), (0.95, 4), (1.0, 4)])
def test_level_of(intensity: float, level: int) -> None:
    assert level_of(intensity) == level


def test_check_many_calls_the_model_once(filt: Filter) -> None:
    clf = KeywordClassifier()
    f = Filter(load_settings(), classifier=clf)
    vs = f.check_many(["a", "b", "you idiot"], ids=["1", "2", "3"])
    assert [v.id for v in vs] == ["1", "2", "3"]
    assert clf.calls == 1
