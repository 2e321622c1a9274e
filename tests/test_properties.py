"""Hostile input: property-based tests (hypothesis) over the text path.

Any Unicode string -- every general category, lone surrogates included -- goes through
normalisation, the three detectors, masking and ``Filter.check`` (with the fast keyword
classifier), and the invariants every later stage relies on must hold:

- nothing crashes: a text the pipeline cannot judge is an ``InputError``, never a traceback;
- spans index the original text, in bounds, sorted; merged mask regions are disjoint;
- masking is idempotent: judging the masked text masks nothing more and finds nothing new;
- ``stars`` masking keeps the length; PII placeholders never carry the original digits;
- obfuscated forms of a listed word (leet, separators, repeats, zero-width, homoglyphs,
  fullwidth, case) are still found, over exactly the characters the customer typed.

Examples are bounded (a few hundred per property, no deadline: CI machines are slow) so the
file runs in seconds; ``FILTERD_PROPERTY_EXAMPLES=5000`` runs deeper.
"""

from __future__ import annotations

import os
import re
from functools import cache

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from stdnum import luhn

from filterd.classify.fake import KeywordClassifier
from filterd.config import load_settings
from filterd.detect import pii as pii_module
from filterd.detect.lexicon import KINDS as LEXICON_KINDS
from filterd.detect.lexicon import Lexicon, baseline_terms
from filterd.detect.phrases import PhraseDetector
from filterd.detect.pii import PiiDetector
from filterd.errors import InputError
from filterd.mask import MaskStyle, _merge, apply_masks
from filterd.normalize import clean_for_model, normalize
from filterd.pipeline import Filter
from filterd.types import Span, Verdict

# FILTERD_PROPERTY_EXAMPLES=5000 for a deeper run (the default keeps the file to seconds).
_EXAMPLES = int(os.environ.get("FILTERD_PROPERTY_EXAMPLES", "300"))
FAST = settings(max_examples=_EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=max(1, _EXAMPLES * 2 // 5), deadline=None, database=None,
               suppress_health_check=[HealthCheck.too_slow])

# Every code point hypothesis can draw, lone surrogates (category Cs) included: the API
# accepts JSON "\ud800" escapes and argv carries undecodable bytes as surrogates.
ANY_CHAR = st.characters(exclude_categories=())
ANY_TEXT = st.text(ANY_CHAR, max_size=200)

# Words and pieces that exercise the detectors, mixed with arbitrary characters.
_PIECES = [
    "fuck", "f.u.c.k", "sh!t", "fuuuuck", "idiot", "1d10t", "asssss", "a$$", "moron",
    "you", "are", "a", "the", "class", "hello", "Scunthorpe", "spic and span",
    "kill you", "kill myself", "I will kill you", "I want to die",
    "call me on +1 415 555 0132", "4111 1111 1111 1111", "jo@example.com",
    "GB82 WEST 1234 5698 7654 32", "123-45-6789", "10.0.0.1", "SSN 123456789",
    "account number 12345678", "1600 Pennsylvania Avenue NW", "$40", "2024", "e.g.",
    "\u200b", "\u00ad", "\u202e", "ｆｕｃｋ", "fսck", "\ud800", "\udcff", "\x00",
    " ", ".", "-", "*", "!", "[", "]", "\n", "\t",
]  # fmt: skip
WORDY_TEXT = st.lists(
    st.one_of(st.sampled_from(_PIECES), st.text(ANY_CHAR, max_size=4)), max_size=24
).map(lambda parts: " ".join(parts) if len(parts) % 2 else "".join(parts))
TEXTS = st.one_of(ANY_TEXT, WORDY_TEXT)

STYLES: tuple[MaskStyle, ...] = ("stars", "first_letter", "tag")


@cache
def _filter(style: MaskStyle = "stars", pii_style: str = "tag") -> Filter:
    """One fast Filter per mask style (the keyword classifier: no model to load)."""
    return Filter(load_settings(mask_style=style, pii_style=pii_style),
                  classifier=KeywordClassifier())


def _check(f: Filter, text: str) -> Verdict | None:
    """The verdict, or None where the text is refused with a clear InputError."""
    try:
        return f.check(text)
    except InputError as e:
        assert str(e)  # the refusal says what was wrong
        return None


def _assert_spans(spans: list[Span] | tuple[Span, ...], text: str) -> None:
    for s in spans:
        assert 0 <= s.start < s.end <= len(text), (s, len(text))
    assert [s.start for s in spans] == sorted(s.start for s in spans)


# ------------------------------------------------------------------ normalisation


@FAST
@given(TEXTS, st.sampled_from([1, 2]))
@example("\ud800f\u200bu\udcffck", 1)
@example("ǅ ﬃ ß İ ŉ ẞ", 1)  # characters that fold to several (or fewer) characters
def test_normalize_keeps_a_monotone_in_bounds_offset_map(text: str, max_repeat: int) -> None:
    n = normalize(text, max_repeat=max_repeat)
    assert n.source_len == len(text)
    assert len(n.offsets) == len(n.ends) == len(n.text)
    prev_start = prev_end = 0
    for start, end in zip(n.offsets, n.ends, strict=True):
        assert 0 <= start < end <= len(text)
        assert start >= prev_start and end >= prev_end  # folding never reorders
        prev_start, prev_end = start, end
    for a in range(0, len(n.text), 7):  # any folded span maps to an original span in bounds
        start, end = n.to_original(a, min(len(n.text), a + 5))
        assert 0 <= start < end <= len(text)


@FAST
@given(TEXTS)
def test_to_original_refuses_spans_outside_the_folded_text(text: str) -> None:
    n = normalize(text)
    for bad in ((0, 0), (-1, 1), (0, len(n.text) + 1), (len(n.text), len(n.text) + 1)):
        with pytest.raises(InputError):
            n.to_original(*bad)


@FAST
@given(TEXTS)
def test_clean_for_model_never_crashes(text: str) -> None:
    cleaned = clean_for_model(text)
    assert cleaned == cleaned.strip()
    assert "\u200b" not in cleaned


def test_normalize_refuses_what_is_not_text() -> None:
    with pytest.raises(InputError, match="takes a str"):
        normalize(b"bytes")  # type: ignore[arg-type]


# ------------------------------------------------------------------ detectors


@FAST
@given(TEXTS)
def test_lexicon_spans_in_bounds_sorted_and_known(text: str) -> None:
    spans = Lexicon.default().find(text)
    _assert_spans(spans, text)
    assert [(s.start, -s.end) for s in spans] == sorted((s.start, -s.end) for s in spans)
    assert {s.kind for s in spans} <= set(LEXICON_KINDS)
    assert len({(s.start, s.end) for s in spans}) == len(spans)  # one kind per region


@FAST
@given(TEXTS)
def test_pii_spans_in_bounds_sorted_disjoint(text: str) -> None:
    spans = PiiDetector().find(text)
    _assert_spans(spans, text)
    for a, b in zip(spans, spans[1:], strict=False):
        assert a.end <= b.start, (a, b)
    assert {s.kind for s in spans} <= set(pii_module.KINDS)


@FAST
@given(TEXTS)
def test_phrase_spans_in_bounds_and_disjoint_per_kind(text: str) -> None:
    spans = PhraseDetector().find(text)
    _assert_spans(spans, text)
    by_kind: dict[str, list[Span]] = {}
    for s in spans:
        by_kind.setdefault(s.kind, []).append(s)
    for same in by_kind.values():
        for a, b in zip(same, same[1:], strict=False):
            assert a.end <= b.start, (a, b)


# ------------------------------------------------------------------ masking


@st.composite
def text_and_spans(draw: st.DrawFn) -> tuple[str, list[Span]]:
    text = draw(ANY_TEXT)
    kinds = st.sampled_from(["profanity", "insult", "identity_attack", "sexual_harassment",
                             "threat", "self_harm", "pii:phone", "pii:card", "pii"])
    spans = []
    for _ in range(draw(st.integers(0, 6))):
        a = draw(st.integers(0, len(text)))
        b = draw(st.integers(a, len(text)))
        spans.append(Span(a, b, draw(kinds)))
    return text, spans


@FAST
@given(text_and_spans())
def test_merged_regions_are_sorted_disjoint_and_cover_every_masked_span(
    case: tuple[str, list[Span]],
) -> None:
    text, spans = case
    regions = _merge(spans, len(text))
    for start, end, _kind in regions:
        assert 0 <= start < end <= len(text)
    for (_, end, _), (start, _, _) in zip(regions, regions[1:], strict=False):
        assert end < start  # disjoint and not even touching: touching spans are one region
    for s in spans:
        if s.start < s.end and s.kind not in ("threat", "self_harm"):
            assert any(a <= s.start and s.end <= b for a, b, _ in regions), s


@FAST
@given(text_and_spans())
def test_stars_keep_the_length_and_everything_outside_the_spans(
    case: tuple[str, list[Span]],
) -> None:
    text, spans = case
    masked = apply_masks(text, spans, "stars", "stars")
    assert len(masked) == len(text)
    hidden = {i for a, b, _ in _merge(spans, len(text)) for i in range(a, b)}
    for i, (before, after) in enumerate(zip(text, masked, strict=True)):
        assert after == ("*" if i in hidden else before)


@FAST
@given(text_and_spans(), st.sampled_from(STYLES))
def test_pii_placeholders_never_carry_the_original(case: tuple[str, list[Span]],
                                                   style: MaskStyle) -> None:
    text, spans = case
    masked = apply_masks(text, spans, style, "tag")
    regions = _merge(spans, len(text))
    # Rebuild where each region landed in the masked text and read its placeholder.
    shift = 0
    for start, end, kind in regions:
        if not (kind == "pii" or kind.startswith("pii:")):
            shift += len(apply_masks(text[start:end], [Span(0, end - start, kind)], style)) - (
                end - start)
            continue
        placeholder = f"[{kind.partition(':')[2] or 'pii'}]"
        at = start + shift
        assert masked[at : at + len(placeholder)] == placeholder
        assert not any(c.isdigit() for c in placeholder)
        shift += len(placeholder) - (end - start)
    assert len(masked) - len(text) == shift


_PII_TAGS = "|".join(k[4:] for k in pii_module.KINDS)
_PLACEHOLDER = re.compile(rf"\[(?:{_PII_TAGS}|pii)\]")


def _glued_to_pii(masked: str) -> bool:
    """Whether a PII placeholder (``[phone]``) in ``masked`` touches a character that is
    neither a space nor part of another mask."""
    for m in _PLACEHOLDER.finditer(masked):
        for at in (m.start() - 1, m.end()):
            if 0 <= at < len(masked) and not masked[at].isspace() and masked[at] not in "[]*":
                return True
    return False


@FAST
@given(TEXTS, st.sampled_from(STYLES))
@example("f.u.c.k.idiot", "stars")
@example("call me on +1 415 555 0132fuck", "tag")
def test_masking_is_idempotent(text: str, style: MaskStyle) -> None:
    """Judging the masked text changes nothing and finds nothing new to mask.

    One known exception: text glued to personal data with no space ("0132fuck",
    "fuck!1600 Pennsylvania Avenue", "0132SSN 123456789") folds into one token with the
    digits, so a word in it is no whole word (or a label no label) and stays visible; once
    the data is a placeholder ("[phone]fuck") it is. Only texts where a placeholder touches
    other characters are exempt; anywhere else a new span fails the test.
    """
    f = _filter(style)
    v = _check(f, text)
    if v is None:
        return
    again = f.check(v.text_masked)  # a judged text's masked form is always judgeable
    if again.spans and _glued_to_pii(v.text_masked):
        return  # the known exception above
    assert again.spans == (), (text, v.text_masked, again.spans)
    assert again.text_masked == v.text_masked, (text, v.text_masked)


@FAST
@given(TEXTS)
def test_filter_check_never_crashes_and_keeps_its_invariants(text: str) -> None:
    f = _filter("stars", "stars")
    v = _check(f, text)
    if v is None:
        return
    _assert_spans(v.spans, text)
    assert len(v.text_masked) == len(text)  # stars everywhere: the length is kept
    assert v.category in ("neutral", "frustrated", "abusive")
    assert 0 <= v.level <= 4 and 0.0 <= v.intensity <= 1.0
    assert abs(sum(v.scores.values()) - 1.0) < 1e-6
    for s in v.spans:  # every reported span is masked
        assert set(v.text_masked[s.start : s.end]) == {"*"}


@FEW
@given(TEXTS)
@example("hi \udcff idiot")
def test_the_shipped_model_reads_any_text_without_degrading(real_filter: Filter,
                                                            text: str) -> None:
    """The real classifier (tokenizer and ONNX model) must not fail on odd Unicode: a
    failure would degrade the verdict to the detectors alone."""
    v = _check(real_filter, text)
    if v is not None:
        assert not v.degraded, text


@FAST
@given(st.text(st.sampled_from(" \t\n\r\x0b\x0c\u00a0\u2028\u2029\u200b\u200d\ufeff\x00\x1b"),
               max_size=30))
def test_blank_or_control_only_text_is_refused_clearly(text: str) -> None:
    with pytest.raises(InputError, match="empty|whitespace|control"):
        _filter().check(text)


# ------------------------------------------------------------------ PII placeholders


def _card(draw: st.DrawFn) -> tuple[str, str]:
    body = "4" + "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=14,
                                       max_size=14)))
    digits = body + luhn.calc_check_digit(body)
    sep = draw(st.sampled_from(["", " ", "-"]))
    return sep.join(digits[i : i + 4] for i in range(0, 16, 4)), digits


def _phone(draw: st.DrawFn) -> tuple[str, str]:
    import phonenumbers

    region = draw(st.sampled_from(["US", "GB", "DE", "FR", "IN", "BR", "AU"]))
    number = phonenumbers.example_number_for_type(region,
                                                  phonenumbers.PhoneNumberType.MOBILE)
    assert number is not None
    fmt = draw(st.sampled_from([phonenumbers.PhoneNumberFormat.E164,
                                phonenumbers.PhoneNumberFormat.INTERNATIONAL]))
    shown = phonenumbers.format_number(number, fmt)
    return shown, str(number.national_number)


def _email(draw: st.DrawFn) -> tuple[str, str]:
    user = draw(st.from_regex(r"[a-z][a-z0-9._-]{0,12}[a-z0-9]", fullmatch=True))
    host = draw(st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True))
    tld = draw(st.sampled_from(["com", "org", "co.uk", "de", "info"]))
    return f"{user}{draw(st.sampled_from(['', '7', '42']))}@{host}.{tld}", ""


_CONTEXT = st.lists(st.sampled_from(["please", "call", "me", "my", "is", "thanks", "here",
                                     "you", "idiot", "still", "waiting", "it's", "at", ":"]),
                    max_size=5).map(" ".join)


@st.composite
def text_with_pii(draw: st.DrawFn) -> tuple[str, str, str]:
    """(text, the PII as written, the digits that must not survive masking)."""
    make = draw(st.sampled_from([_card, _phone, _email]))
    shown, digits = make(draw)
    before, after = draw(_CONTEXT), draw(_CONTEXT)
    return f"{before} {shown} {after}".strip(), shown, digits


@FEW
@given(text_with_pii(), st.sampled_from(STYLES), st.sampled_from(["tag", "stars"]))
def test_redacted_pii_leaves_no_trace_in_the_masked_text(case: tuple[str, str, str],
                                                         style: MaskStyle, pii_style: str) -> None:
    text, shown, digits = case
    v = _filter(style, pii_style).check(text)
    assert "pii" in v.flags, (text, v.text_masked)
    assert shown not in v.text_masked
    if digits:
        assert digits not in re.sub(r"\D", "", v.text_masked), (text, v.text_masked)
    if "@" in shown:
        assert "@" not in v.text_masked


# ------------------------------------------------------------------ obfuscated list words

_LEET = {"a": "4@", "e": "3", "i": "1!|", "o": "0", "s": "5$", "t": "7+", "b": "8", "g": "9"}
_HOMOGLYPH = {"a": "аα", "e": "еε", "o": "оο", "c": "с", "p": "рρ", "x": "хχ", "y": "у",
              "i": "іι", "s": "ѕ", "k": "кκ", "m": "м", "t": "тτ", "h": "һ", "j": "ј",
              "d": "ԁ", "w": "ԝ", "q": "ԛ", "v": "ν"}
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\u00ad\ufeff"
_SEPARATORS = [".", "-", "_", "*", " ", ". "]


@cache
def _plain_words() -> tuple[str, ...]:
    """Listed words a plain-text lookup finds whole: the ground truth for the variants."""
    lex = Lexicon.default()
    words = sorted({t.lower() for t in baseline_terms() if t.isalpha() and t.isascii()
                    and 4 <= len(t) <= 10})
    return tuple(w for w in words
                 if any((s.start, s.end) == (4, 4 + len(w)) for s in lex.find(f"you {w} now")))


@st.composite
def obfuscated(draw: st.DrawFn) -> tuple[str, str]:
    """(a listed word, one obfuscated spelling of it)."""
    word = draw(st.sampled_from(_plain_words()))
    separated = draw(st.booleans())
    glyphs: list[str] = []
    plain_letters = 0
    for n, c in enumerate(word):
        trick = draw(st.sampled_from(["plain", "upper", "leet", "homoglyph", "fullwidth"]))
        leets = _LEET.get(c, "")
        if separated:
            leets = leets.replace("|", "").replace("+", "")  # those two are separators too
        if n == len(word) - 1:
            leets = leets.replace("!", "").replace("|", "")  # "hello!" is punctuation
        if trick == "leet" and leets:
            g = draw(st.sampled_from(leets))
        elif trick == "homoglyph" and c in _HOMOGLYPH:
            g = draw(st.sampled_from(_HOMOGLYPH[c]))
            plain_letters += 1
        elif trick == "fullwidth":
            g = chr(ord(c) + 0xFEE0)
            plain_letters += 1
        else:
            g = c.upper() if trick == "upper" else c
            plain_letters += 1
        repeat = draw(st.sampled_from([1, 1, 1, 3, 5])) if g.isalpha() else 1
        glyphs.extend([g] * repeat)
    if plain_letters == 0:  # all digits and signs: a number, not a word ("455")
        glyphs[0] = word[0]
    if separated:
        sep = draw(st.sampled_from(_SEPARATORS))
        variant = sep.join(glyphs)
    else:
        gaps = [draw(st.sampled_from(["", "", ""] + list(_ZERO_WIDTH))) for _ in glyphs]
        variant = "".join(g + z for g, z in zip(glyphs, gaps, strict=True))
    return word, variant


@FAST
@given(obfuscated(), st.sampled_from(["you {} now", "{}", "{}!", "total {}, honestly"]))
def test_obfuscated_list_words_are_still_found(case: tuple[str, str], frame: str) -> None:
    word, variant = case
    text = frame.format(variant)
    at = text.index(variant)
    spans = Lexicon.default().find(text)
    covering = [s for s in spans if s.start <= at and at + len(variant.rstrip(_ZERO_WIDTH))
                <= s.end]
    assert covering, (word, variant, spans)
    # The mask covers what the customer typed and nothing of the frame around it.
    assert all(s.start >= at and s.end <= at + len(variant) for s in covering)


# ------------------------------------------------------------------ regressions found here


@pytest.mark.parametrize("text", ["f.u.c.k!", "f u c k!!", "i.d.i.o.t!", "s.h.i.t!?"])
def test_separated_word_before_an_exclamation_mark_is_found(text: str) -> None:
    # The separator chain used to be rejected when a "!" followed its last glyph, so
    # "f.u.c.k!" folded to "fuc.k!" and was neither found nor masked.
    spans = Lexicon.default().find(text)
    assert [(s.start, s.end) for s in spans] == [(0, len(text.rstrip("!?")))]


@pytest.mark.parametrize(("text", "end"), [
    ("asssshooole", 11),  # a real double stretched ("ss" -> "ssss") and another letter too
    ("bulllshiiit", 11),
    ("boooobsss", 9),
    ("a.s.s.h.o.o.o.l.e", 17),
])
def test_stretched_word_with_a_real_double_is_found(text: str, end: int) -> None:
    # Runs cut to one letter lost the double ("ashole"); cut to two they kept a stretch
    # ("asshoole"): neither pass found the word until the squeezed pass.
    assert [(s.start, s.end) for s in Lexicon.default().find(text)] == [(0, end)]


@pytest.mark.parametrize("text", ["pros and consss", "Bobbbs", "buuut why", "Niger", "classs"])
def test_squeezed_pass_needs_the_real_doubles(text: str) -> None:
    # "consss" squeezes like "coons" but was typed with one "o": not the slur.
    assert Lexicon.default().find(text) == []


def test_two_ibans_in_a_row_are_both_redacted() -> None:
    # The greedy IBAN candidate swallowed the start of the next IBAN and the scan resumed
    # after it, so the second of two space-separated IBANs was left in the masked text.
    text = "pay GB82 WEST 1234 5698 7654 32 GB82 WEST 1234 5698 7654 32 now"
    spans = PiiDetector().find(text)
    assert [(s.start, s.end, s.kind) for s in spans] == [(4, 31, "pii:iban"),
                                                        (32, 59, "pii:iban")]
    assert _filter().check(text).text_masked == "pay [iban] [iban] now"


def test_account_number_followed_by_a_card_is_redacted_too() -> None:
    # The account pattern ran on into the card; the card won the overlap and the account
    # number was left visible ("account number 12345678 [card]").
    text = "account number 12345678 4111 1111 1111 1111 ok"
    kinds = [(s.start, s.end, s.kind) for s in PiiDetector().find(text)]
    assert kinds == [(15, 23, "pii:account"), (24, 43, "pii:card")]
    assert _filter().check(text).text_masked == "account number [account] [card] ok"


def test_lone_surrogates_reach_the_model_as_replacement_characters() -> None:
    # The tokenizer raised on "\udcff" (an undecodable argv byte) and the verdict was
    # degraded; the model now reads U+FFFD there.
    assert clean_for_model("hi \udcff idiot \ud800") == "hi \ufffd idiot \ufffd"


@pytest.mark.parametrize(("text", "phones"), [
    ("call +1 415 555 0132 24/7", ["+1 415 555 0132"]),
    ("reach me at 415 555 0132 5pm onwards", ["415 555 0132"]),
    ("I paid 20 415 555 0132.", ["415 555 0132"]),
    ("my numbers: 415 555 0132 415 555 0199", ["415 555 0132", "415 555 0199"]),
    ("call me on +1 415 555 0132 123-45-6789", ["+1 415 555 0132"]),  # and an SSN
    ("version 1 2 3 4 5 6 7 8", []),
    ("between 2019 2020 2021 2022 2023", []),
])
def test_phone_glued_to_another_number_is_found(text: str, phones: list[str]) -> None:
    # The matcher read "415 555 0132 24/7" as one (invalid) candidate and found nothing, so
    # a phone followed or preceded by another number with just a space was not redacted.
    found = [text[s.start:s.end] for s in PiiDetector().find(text) if s.kind == "pii:phone"]
    assert found == phones
