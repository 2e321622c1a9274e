"""normalize(): folding rules, the offset map back to the original, and clean_for_model()."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from filterd.errors import InputError
from filterd.normalize import clean_for_model, emoji_words, normalize

FOLDING = [
    # (original, folded)
    ("FUCK", "fuck"),  # casefold
    ("ＦＵＣＫ", "fuck"),  # fullwidth, via NFKC
    ("𝐟𝐮𝐜𝐤", "fuck"),  # mathematical bold, via NFKC
    ("fu\u200bck", "fuck"),  # zero-width space removed
    ("fu\u00adck", "fuck"),  # soft hyphen removed
    ("f\u2060u\ufeffck", "fuck"),  # word joiner and BOM removed
    ("fuсk", "fuck"),  # Cyrillic с
    ("ѕһіt", "shit"),  # Cyrillic ѕ һ і
    ("ιdιοt", "idiot"),  # Greek ι ο
    ("fück", "fuck"),  # diacritic stripped
    ("f\u0301u\u0308ck", "fuck"),  # combining marks stripped
    ("Straße", "strasse"),  # casefold expands ß
    ("you\u2019re", "you're"),  # curly apostrophe
    ("f4ck", "fack"),  # leet 4 -> a (better-profanity lists "fack")
    ("sh!t", "shit"),  # leet ! inside a word
    ("5h1t", "shit"),  # leet digits
    ("a$$hole", "asshole"),  # leet $
    ("@ss", "ass"),  # leet @ at the start of a word
    ("sh!+", "shit"),  # leet + -> t
    ("f.u.c.k", "fuck"),  # dotted letters
    ("s h i t", "shit"),  # spaced letters
    ("f-u-c-k", "fuck"),  # hyphenated letters
    ("f*u*c*k", "fuck"),  # starred letters
    ("f_u_c_k", "fuck"),  # underscored letters
    ("f. u. c. k", "fuck"),  # separator plus a space
    ("f u c k you", "fuck you"),  # the run stops at a real word
    ("fuuuuck", "fuck"),  # run of 3+ letters shortened
    ("shiiiiit", "shit"),  # run of 3+ letters shortened
    ("hello", "hello"),  # a double stays
    ("assess", "assess"),  # doubles stay
    ("$40", "$40"),  # a price is not a word
    ("2024", "2024"),  # a year is not a word
    ("$40 for 2 months", "$40 for 2 months"),  # numbers beside words stay numbers
    ("hello!", "hello!"),  # trailing ! is punctuation
    ("wow!!!", "wow!!!"),  # so is a run of them
    ("a b test", "a b test"),  # two single letters are not glued
    ("e.g. this", "e.g. this"),  # nor an abbreviation
    ("", ""),  # empty
    ("한국어", "한국어"),  # Hangul is not split into jamo
]


@pytest.mark.parametrize(("original", "folded"), FOLDING)
def test_folding(original: str, folded: str) -> None:
    assert normalize(original).text == folded


OFFSETS = [
    # (original, folded span, original span it maps to)
    ("say f.u.c.k now", (4, 8), (4, 11)),  # dotted word covers its dots
    ("s h i t", (0, 4), (0, 7)),  # spaced word covers its spaces
    ("fuuuuck", (0, 4), (0, 7)),  # shortened run covers the whole run
    ("fuckkkk!", (0, 4), (0, 7)),  # a run at the end too, not the "!"
    ("fu\u200bck", (0, 4), (0, 5)),  # zero-width char inside is covered
    ("ＦＵＣＫ off", (0, 4), (0, 4)),  # fullwidth keeps one-to-one offsets
    ("ﬁne", (0, 2), (0, 1)),  # both letters of a ligature map to it
    ("xﬁne", (1, 5), (1, 4)),  # and the word after it lines up
    ("Straße ok", (0, 7), (0, 6)),  # ß -> ss maps back to one char
]


@pytest.mark.parametrize(("original", "folded_span", "original_span"), OFFSETS)
def test_offsets_map_back(
    original: str, folded_span: tuple[int, int], original_span: tuple[int, int]
) -> None:
    n = normalize(original)
    assert n.to_original(*folded_span) == original_span


def test_max_repeat_two_keeps_real_doubles() -> None:
    n = normalize("asssss", max_repeat=2)
    assert n.text == "ass"
    assert n.collapsed_runs
    assert n.to_original(0, 3) == (0, 6)


@pytest.mark.parametrize(
    "bad",
    [
        (3, 2),  # reversed
        (0, 0),  # empty
        (0, 99),  # past the end
        (-1, 2),  # negative
    ],
)
def test_to_original_rejects_bad_spans(bad: tuple[int, int]) -> None:
    with pytest.raises(InputError):
        normalize("hello").to_original(*bad)


def test_rejects_non_str() -> None:
    with pytest.raises(InputError):
        normalize(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        normalize("x", max_repeat=3)


def test_one_megabyte_and_control_chars() -> None:
    text = ("f.u.c.k \x00\x07\x1b[31m sh!t fuuuck \u200b\ud7ff\U0010ffff " * 20000)[:1_000_000]
    n = normalize(text)
    assert len(n.offsets) == len(n.ends) == len(n.text)
    assert n.offsets[-1] < len(text)


def test_long_single_token_is_linear() -> None:
    # A regex that backtracks would take minutes here; this must take milliseconds.
    n = normalize("a" * 200_000 + "b" * 200_000)
    assert n.text == "ab"


@given(st.text())
def test_offset_map_is_consistent(text: str) -> None:
    n = normalize(text)
    assert len(n.offsets) == len(n.ends) == len(n.text)
    for start, end in zip(n.offsets, n.ends, strict=True):
        assert 0 <= start < end <= len(text)
    assert list(n.offsets) == sorted(n.offsets)  # folding never reorders
    if n.text:
        a, b = n.to_original(0, len(n.text))
        assert 0 <= a < b <= len(text)


CLEAN = [
    # (raw, cleaned)
    ("RT @bob: my bill is wrong", "my bill is wrong"),  # retweet marker dropped
    ("RT my bill", "my bill"),  # bare RT dropped
    ("ART class", "ART class"),  # RT only as a leading word
    ("hey @alice_99 help", "hey @user help"),  # handle neutralised
    ("mail me at jo@example.com", "mail me at jo@example.com"),  # e-mail is not a handle
    ("see https://x.co/a?b=1 now", "see http now"),  # URL
    ("see www.example.com/x", "see http"),  # URL without scheme
    ("#refund please", "refund please"),  # hashtag keeps its word
    ("order #12345", "order #12345"),  # an order number is not a hashtag
    ("fish &amp; chips &lt;3", "fish & chips <3"),  # HTML entities
    ("fu\u200bck", "fuck"),  # zero-width removed
    ("  too\t\n many   spaces ", "too many spaces"),  # whitespace collapsed
    ("", ""),  # empty
    ("thanks 🙏", "thanks 🙏"),  # emoji stay, for models trained on a plain build (v7)
]

EMOJI_NAMES = [
    # (raw, cleaned with emoji_as_words: an --emoji-names build and its models)
    ("thanks 🙏", "thanks folded hands"),
    ("still down 😡😡😡", "still down enraged face"),  # a run of one emoji counts once
    ("ok 👍 ok 👍", "ok thumbs up ok thumbs up"),  # repeats apart from each other stay
    ("👳🏿\u200d♂️ out", "man wearing turban dark skin tone out"),  # a ZWJ sequence is one emoji
    ("café ☕", "café hot beverage"),  # other non-ASCII text untouched
    ("plain text", "plain text"),
]


@pytest.mark.parametrize(("raw", "cleaned"), EMOJI_NAMES)
def test_clean_for_model_with_emoji_names(raw: str, cleaned: str) -> None:
    assert clean_for_model(raw, emoji_as_words=True) == cleaned


@pytest.mark.parametrize(("raw", "cleaned"), CLEAN)
def test_clean_for_model(raw: str, cleaned: str) -> None:
    assert clean_for_model(raw) == cleaned


@given(st.text())
def test_clean_for_model_is_deterministic_and_stable(text: str) -> None:
    once = clean_for_model(text)
    assert clean_for_model(text) == once
    assert once == once.strip()


@given(st.text())
def test_emoji_words_is_idempotent(text: str) -> None:
    once = emoji_words(text)
    assert emoji_words(once) == once
    named = clean_for_model(text, emoji_as_words=True)
    assert clean_for_model(named, emoji_as_words=True) == named


def test_drop_channel_tokens_takes_out_what_handles_and_urls_leave() -> None:
    from filterd.normalize import drop_channel_tokens

    raw = "@united 3 hours late, ask @JetBlue how it's done http://t.co/abc #fail"
    kept = clean_for_model(raw)
    assert kept == "3 hours late, ask @user how it's done http fail"
    dropped = clean_for_model(raw, drop_handles=True)
    assert dropped == "3 hours late, ask how it's done fail"
    assert drop_channel_tokens(kept) == dropped
    assert clean_for_model(dropped, drop_handles=True) == dropped  # idempotent
    # an address or a word that merely contains the letters stays
    assert drop_channel_tokens("mail a@user.com about https") == "mail a@user.com about https"
