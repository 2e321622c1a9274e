"""apply_masks(): styles, merging, PII, routing-only kinds, idempotence."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from filterd.detect.lexicon import Lexicon
from filterd.errors import ConfigError, InputError
from filterd.mask import MaskStyle, apply_masks
from filterd.types import Span

TEXT = "you fucking idiot"
SPANS = [Span(4, 11, "profanity"), Span(12, 17, "insult")]

STYLES = [
    # (style, masked)
    ("stars", "you ******* *****"),  # same length
    ("first_letter", "you f****** i****"),  # first letter kept
    ("tag", "you [profanity] [insult]"),  # kind as a tag
]


@pytest.mark.parametrize(("style", "masked"), STYLES)
def test_styles(style: MaskStyle, masked: str) -> None:
    assert apply_masks(TEXT, SPANS, style) == masked


CASES = [
    # (text, spans, style, masked)
    ("call 555-123-4567 ok", [Span(5, 17, "pii:phone")], "stars", "call [phone] ok"),  # PII tag
    ("a@b.co", [Span(0, 6, "pii:email")], "first_letter", "[email]"),  # PII ignores style
    ("id 123", [Span(3, 6, "pii")], "tag", "id [pii]"),  # bare pii kind
    (
        "card 4111 shit 1111",
        [Span(5, 19, "pii:card"), Span(10, 14, "profanity")],
        "tag",
        "card [card]",
    ),  # PII beats the profanity inside it
    (
        "suck my dick",
        [Span(0, 12, "sexual_harassment"), Span(8, 12, "profanity")],
        "tag",
        "[sexual_harassment]",
    ),  # the wider span wins
    ("fuckshit", [Span(0, 4, "profanity"), Span(4, 8, "insult")], "tag", "[insult]"),  # adjacent,
    # equally wide: the graver kind wins
    ("abcdef", [Span(0, 4, "insult"), Span(2, 6, "profanity")], "stars", "******"),  # overlap
    ("I will kill you", [Span(7, 11, "threat")], "stars", "I will kill you"),  # not masked
    ("I want to die", [Span(2, 13, "self_harm")], "tag", "I want to die"),  # not masked
    ("@ss", [Span(0, 3, "profanity")], "first_letter", "***"),  # non-letter first char
    ("fine", [], "tag", "fine"),  # nothing to do
    ("x", [Span(0, 0, "profanity")], "stars", "x"),  # empty span ignored
    (
        "b fuck a",
        [Span(2, 6, "profanity"), Span(2, 6, "profanity")],
        "tag",
        "b [profanity] a",
    ),  # duplicates applied once
]


@pytest.mark.parametrize(("text", "spans", "style", "masked"), CASES)
def test_cases(text: str, spans: list[Span], style: MaskStyle, masked: str) -> None:
    assert apply_masks(text, spans, style) == masked


def test_unsorted_spans_are_fine() -> None:
    assert apply_masks(TEXT, list(reversed(SPANS)), "tag") == "you [profanity] [insult]"


def test_pii_stars() -> None:
    text = "call 555-123-4567"
    assert apply_masks(text, [Span(5, 17, "pii:phone")], "tag", pii_style="stars") == (
        "call ************"
    )


@pytest.mark.parametrize(
    ("style", "pii_style"),
    [
        ("bold", "tag"),  # unknown mask style
        ("stars", "hash"),  # unknown PII style
    ],
)
def test_bad_style(style: str, pii_style: str) -> None:
    with pytest.raises(ConfigError):
        apply_masks("x", [], style, pii_style)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "span",
    [
        Span(0, 9, "profanity"),  # past the end
        Span(-1, 2, "profanity"),  # negative
        Span(3, 2, "profanity"),  # reversed
    ],
)
def test_bad_span(span: Span) -> None:
    with pytest.raises(InputError):
        apply_masks("hello", [span], "stars")


@pytest.mark.parametrize("style", ["stars", "first_letter", "tag"])
def test_masking_twice_finds_nothing_new(style: MaskStyle) -> None:
    lex = Lexicon.default()
    text = "you f.u.c.k1ng idiot, sh!t, send nudes, f4ggot, suck my dick"
    once = apply_masks(text, lex.find(text), style)
    assert lex.find(once) == []
    assert apply_masks(once, lex.find(once), style) == once


def test_one_megabyte() -> None:
    text = "x fuck y " * 120_000
    spans = Lexicon.default().find(text)
    masked = apply_masks(text, spans, "stars")
    assert len(masked) == len(text) and "fuck" not in masked


@st.composite
def text_and_spans(draw: st.DrawFn) -> tuple[str, list[Span]]:
    text = draw(st.text(max_size=60))
    kinds = st.sampled_from(["profanity", "insult", "pii:phone", "threat", "identity_attack"])
    spans = []
    for _ in range(draw(st.integers(0, 6))):
        a = draw(st.integers(0, len(text)))
        b = draw(st.integers(a, len(text)))
        spans.append(Span(a, b, draw(kinds)))
    return text, spans


@given(text_and_spans(), st.sampled_from(["stars", "first_letter", "tag"]))
def test_never_crashes(case: tuple[str, list[Span]], style: MaskStyle) -> None:
    text, spans = case
    assert isinstance(apply_masks(text, spans, style), str)


@given(text_and_spans())
def test_stars_keep_length(case: tuple[str, list[Span]]) -> None:
    text, spans = case
    masked = apply_masks(text, spans, "stars", pii_style="stars")
    assert len(masked) == len(text)
    for s in spans:  # every maskable span ends up all stars
        if s.start < s.end and s.kind != "threat":
            assert set(masked[s.start : s.end]) == {"*"}


@given(st.text())
def test_lexicon_then_mask_keeps_length(text: str) -> None:
    masked = apply_masks(text, Lexicon.default().find(text), "first_letter")
    assert len(masked) == len(text)
