"""Lexicon.find(): obfuscations hit at original offsets, innocent words stay untouched."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from filterd.detect.lexicon import KINDS, Lexicon
from filterd.errors import ConfigError, InputError


@pytest.fixture(scope="module")
def lex() -> Lexicon:
    return Lexicon.default()


def hits(lex: Lexicon, text: str) -> list[tuple[str, str]]:
    return [(text[s.start : s.end], s.kind) for s in lex.find(text)]


OBFUSCATED = [
    # (text, the original characters the span must cover, kind)
    ("fuck off", "fuck", "profanity"),  # plain
    ("FUCK OFF", "FUCK", "profanity"),  # upper case
    ("oh f4ck", "f4ck", "profanity"),  # leet digit
    ("this sh!t again", "sh!t", "profanity"),  # leet punctuation
    ("5h1t service", "5h1t", "profanity"),  # leet digits only
    ("you a$$hole", "a$$hole", "profanity"),  # leet $
    ("well f.u.c.k that", "f.u.c.k", "profanity"),  # dotted
    ("s h i t happens", "s h i t", "profanity"),  # spaced
    ("f-u-c-k this", "f-u-c-k", "profanity"),  # hyphenated
    ("what a b i t c h", "b i t c h", "profanity"),  # spaced, after the word "a"
    ("look at ur avi u f a g", "f a g", "identity_attack"),  # spaced, after "u"
    ("s h i t i said", "s h i t", "profanity"),  # spaced, before "i"
    ("you f u c k i n g m o r o n", "m o r o n", "insult"),  # two spaced words touching
    ("you f u c k i n g m o r o n", "f u c k i n g", "profanity"),
    ("f.u.c.k y.o.u", "f.u.c.k", "profanity"),  # dotted, and so is the word after it
    ("s h i t y o u", "s h i t", "profanity"),  # spaced word then spaced "you"
    ("f*u*c*k this", "f*u*c*k", "profanity"),  # starred
    ("fuuuuck!", "fuuuuck", "profanity"),  # repeated letters
    ("shiiiiit", "shiiiiit", "profanity"),  # repeated vowel
    ("fuckkkk", "fuckkkk", "profanity"),  # repeated last letter, all covered
    ("asssss", "asssss", "profanity"),  # run of a real double
    ("ＦＵＣＫ", "ＦＵＣＫ", "profanity"),  # fullwidth
    ("fu\u200bck you", "fu\u200bck", "profanity"),  # zero-width space inside
    ("fuсk", "fuсk", "profanity"),  # Cyrillic с
    ("what the fück", "fück", "profanity"),  # diacritic
    ("this f*cking phone", "f*cking", "profanity"),  # self-censored
    ("**fuck**", "fuck", "profanity"),  # markdown bold around it
    ("fucking", "fucking", "profanity"),  # inflection
    ("fucked up", "fucked", "profanity"),  # inflection
    ("you fucker", "fucker", "profanity"),  # inflection
    ("a shitty phone", "shitty", "profanity"),  # inflection
    ("you idiot", "idiot", "insult"),  # insult
    ("idiots, all of you", "idiots", "insult"),  # plural
    ("what a moron", "moron", "insult"),  # baseline word, curated as insult
    ("scumbag", "scumbag", "insult"),  # insult
    ("incompetent fool", "incompetent fool", "insult"),  # phrase
    ("you f4ggot", "f4ggot", "identity_attack"),  # slur with leet
    ("send nudes", "send nudes", "sexual_harassment"),  # request
    ("you\u2019re sexy", "you\u2019re sexy", "sexual_harassment"),  # curly apostrophe
]


@pytest.mark.parametrize(("text", "covered", "kind"), OBFUSCATED)
def test_obfuscations_hit_original_offsets(
    lex: Lexicon, text: str, covered: str, kind: str
) -> None:
    assert (covered, kind) in hits(lex, text)


SCUNTHORPE = [
    # innocent words that contain an offensive one
    "Scunthorpe",
    "assess",
    "cocktail",
    "Essex",
    "class",
    "hello",
    "therapist",
    "grape",
    "Dickens",
    "Sussex",
    "analysis",
    "button",
    "passion",
    "shitake",  # has "shit" inside, but no word boundary after it
    "cumulative",
    "document",
    "assassin",
    "classic",
    "bassist",
    "night and knight",  # "nig"
    "title",  # "tit"
    "shell",  # "hell"
    "peacock",  # "cock"
    "pass the glass",  # "ass"
    "please a s s e s s it",  # spaced: "a" + "ssess" is no split into words
    "c l a s s act",  # spaced "class"
    "a t i t l e",  # spaced "a title": "tit" + "le" is no split
    "U S A",  # spaced letters that are no word
    "a s s u m e",  # spaced "assume": "ass" + "u" + "me" is no split ("me" is no filler)
    "t h e r a p i s t",  # spaced: "the" + "rapist" is no split ("the" is no filler)
    "y o u a r e w e l c o m e",  # filler words alone are no hit
]


@pytest.mark.parametrize("text", SCUNTHORPE)
def test_scunthorpe_safe(lex: Lexicon, text: str) -> None:
    assert lex.find(text) == []


CLEAN = [
    # ordinary customer-service messages with nothing to mask
    "I was charged $40 twice in 2024, order #12345",  # prices and years are not leet
    "my gay brother and I share a plan",  # identity term used neutrally (exclude.txt)
    "the volume knob fell off",  # excluded baseline word
    "I switched to Virgin Mobile",  # brand (exclude.txt)
    "please screw the cover back on",  # excluded baseline word
    "a b test is fine",  # two single letters are not glued
    "oh my god, thank you",  # excluded baseline word
    "the pump flange leaks",  # excluded baseline word
    "[profanity] [insult] [identity_attack] [sexual_harassment] [phone]",  # mask tags
    "f*** that, it's s*** service",  # first_letter masks never match
]


@pytest.mark.parametrize("text", CLEAN)
def test_clean_messages(lex: Lexicon, text: str) -> None:
    assert lex.find(text) == []


def test_phrase_and_word_inside_both_reported(lex: Lexicon) -> None:
    assert hits(lex, "suck my dick") == [
        ("suck my dick", "sexual_harassment"),
        ("dick", "profanity"),
    ]


def test_spans_are_sorted_and_sourced(lex: Lexicon) -> None:
    spans = lex.find("you fucking idiot, shit")
    assert [(s.start, s.end) for s in spans] == [(4, 11), (12, 17), (19, 23)]
    assert {s.source for s in spans} == {"lexicon"}


ALLOW = [
    # (allow list, text, what must not be hit)
    (["crap"], "what a crap phone", "crap"),  # a word
    (["Dick Smith Electronics"], "I bought it at Dick Smith Electronics", "Dick"),  # phrase
    (["hell"], "what the h3ll", "h3ll"),  # obfuscated form of an allowed word
]


@pytest.mark.parametrize(("allow", "text", "kept"), ALLOW)
def test_allow_list(allow: list[str], text: str, kept: str) -> None:
    lex = Lexicon(allow=allow)
    assert kept not in [text[s.start : s.end] for s in lex.find(text)]
    assert Lexicon.default().find(text)  # the default lexicon does hit it


def test_allow_list_keeps_other_hits() -> None:
    lex = Lexicon(allow=["Dick Smith Electronics"])
    assert hits(lex, "Dick Smith Electronics, fuck") == [("fuck", "profanity")]


BUILTIN_ALLOW = [
    # innocent phrases with a lexicon word inside (lexicon/allow.txt)
    "I bought it at Dick's Sporting Goods",  # brand
    "a bottle of Spic and Span",  # brand with a slur inside
    "graduated magna cum laude",  # academia
    "homo sapiens",  # science
    "a knee-jerk reaction",  # idiom
    "tit for tat",  # idiom
    "dinner at Hell's Kitchen",  # place
]


@pytest.mark.parametrize("text", BUILTIN_ALLOW)
def test_builtin_allow_phrases(lex: Lexicon, text: str) -> None:
    assert lex.find(text) == []


def test_allowed_phrase_does_not_hide_the_word_elsewhere(lex: Lexicon) -> None:
    assert hits(lex, "tit for tat, you tit") == [("tit", "profanity")]


def test_extra_terms() -> None:
    lex = Lexicon(extra={"tosspot": "insult", "crap": "insult"})
    assert hits(lex, "you t0sspot") == [("t0sspot", "insult")]
    assert hits(lex, "crap") == [("crap", "insult")]  # extra overrides the built-in kind


@pytest.mark.parametrize(
    "extra",
    [
        {"tosspot": "rude"},  # unknown kind
        {"!": "insult"},  # folds to nothing
    ],
)
def test_extra_rejects_bad_terms(extra: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Lexicon(extra=extra)


def test_default_is_cached_and_every_kind_present() -> None:
    assert Lexicon.default() is Lexicon.default()
    assert len(Lexicon.default()) > 500
    for kind, word in zip(KINDS, ["shit", "idiot", "nudes", "faggot"], strict=True):
        assert hits(Lexicon.default(), word) == [(word, kind)]


def test_rejects_non_str(lex: Lexicon) -> None:
    with pytest.raises(InputError):
        lex.find(None)  # type: ignore[arg-type]


def test_one_megabyte_and_control_chars(lex: Lexicon) -> None:
    text = ("fine \x00\x1b[0m f.u.c.k \ud800 \U0001f4a9 hello " * 30000)[:1_000_000]
    spans = lex.find(text)
    assert spans and all(text[s.start : s.end] == "f.u.c.k" for s in spans)


@given(st.text())
def test_spans_in_bounds(text: str) -> None:
    for s in Lexicon.default().find(text):
        assert 0 <= s.start < s.end <= len(text)
        assert s.kind in KINDS


@given(
    st.lists(
        st.sampled_from(["fuck", "f.u.c.k", "idiot", "hello", "sh!t", "class", " ", "\u200b", "4"])
    )
)
def test_spans_in_bounds_on_wordy_text(parts: list[str]) -> None:
    text = " ".join(parts)
    for s in Lexicon.default().find(text):
        assert 0 <= s.start < s.end <= len(text)


def test_many_allowed_phrases_and_hits_stay_fast(lex: Lexicon) -> None:
    # Each hit is checked against the allowed phrases by bisection, not by a scan of them all.
    text = "tit for tat, you tit. " * 40_000
    spans = lex.find(text)
    assert len(spans) == 40_000
    assert all(text[s.start : s.end] == "tit" for s in spans)
