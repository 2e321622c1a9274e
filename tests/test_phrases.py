"""filterd.detect.phrases: threat and self-harm phrase tables, positives and figures of speech."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filterd.detect import phrases
from filterd.detect.phrases import (
    SELF_HARM_PATTERNS,
    THREAT_PATTERNS,
    PhraseDetector,
    find_self_harm,
    find_threats,
)

THREATS = [
    "I will kill you",  # the plainest first-person threat
    "I'm going to find where you work",  # stalking intent
    "I'll come down there and beat you",  # coming to the premises to hurt someone
    "you'd better watch your back",  # veiled threat
    "I know where you live",  # veiled threat
    "someone should shoot the manager",  # incitement against staff
    "I'll burn your store down",  # arson
    "there's a bomb in your store",  # bomb threat
    "I'm gonna fucking kill you",  # profane filler between intent and verb
    "i will hunt you down",  # hunt down
    "I'm going to break your neck",  # bodily harm
    "I'll slit your throat",  # bodily harm
    "I want to strangle you",  # stated wish
    "I could kill you right now",  # conditional, still aimed at a person
    "you're a dead man",  # veiled threat
    "I'll be waiting for you outside after your shift",  # lying in wait
    "I'm going to bring a gun to your store",  # weapon
    "I planted a bomb in the building",  # bomb threat, past tense
    "tell the pilot there has been dynamite placed under seat 14",  # bomb hoax, passive
    "explosives have been planted at your depot",  # passive, plural
    "someone's going to get hurt",  # implicit threat
    "the manager deserves to be shot",  # violence wished on staff
    "I hope you die",  # death wish
    "I'm going to shoot up the place",  # mass-violence wording
    "I will find you.",  # the film line, still a threat
    "I'll smash your face in",  # bodily harm
    "I'll kill every one of you",  # group object
    "I’ll kill u",  # curly apostrophe and "u"
    "IMMA BEAT YOU UP",  # shouting, slang future
    "I know where your manager lives",  # third person, veiled
    "you better sleep with one eye open",  # veiled threat
    "I'm going to hit you",  # hit, not "hit you up"
    "I will end you",  # end + person
    "I'll f***ing kill you",  # masked profanity as filler
    "I'm going to come to your office and shoot everyone",  # premises + mass violence
    "i'll kill whoever is responsible",  # whoever
    "We will find you and hurt you",  # first person plural
    "I'm going to find you and kill you",  # two verbs, the second the harm
    "I'll set fire to your office",  # arson, other wording
    "I know where you live and I'm coming for you",  # veiled threat, twice
    "go kill yourself",  # urging the agent to self-harm is harm aimed at them
]

NOT_THREATS = [
    "this bill is killing me",  # hyperbole about a bill
    "I could kill for a coffee",  # idiom
    "my battery died",  # a device
    "kill the app",  # a process
    "you're killing me with these fees",  # hyperbole aimed at fees
    "I'll kill this subscription",  # object is a thing
    "shoot me an email",  # idiom
    "this deal is a steal",  # idiom
    "I'm dying to know",  # idiom
    "I'll shoot you an email tomorrow",  # idiom with "you"
    "I'll hit you up later",  # idiom with "you"
    "I'll hit you back in an hour",  # idiom with "you"
    "I'm going to beat your competitor's price",  # commercial
    "I'll kill you with kindness",  # idiom
    "the app keeps killing my battery",  # a device
    "I'm not going to hurt you, I just want a refund",  # negated
    "I would never hurt you",  # negated
    "that movie was the bomb",  # slang praise
    "dynamite service today, thank you",  # slang praise
    "the bomb cyclone has grounded every flight",  # weather
    "the explosive growth in your fees is a joke",  # figure of speech
    "I'll blow up your phone until someone answers",  # slang for calling a lot
    "I'd murder a burger right now",  # idiom
    "I'm going to cut my losses",  # idiom
    "I'll end my subscription",  # a contract
    "you're killing it, thanks!",  # praise
    "I'm dead serious about cancelling",  # intensifier
    "Shoot, I forgot my password",  # interjection
    "Killer deal!",  # praise
    "my kids are killing me today",  # hyperbole
    "this update murdered my battery",  # a device
    "I'll beat you to the punch and cancel",  # idiom
    "I'll destroy you in my review",  # harsh, but reputational, not violence
    "I'll sue you",  # legal, not violence
    "you are dead to me",  # relational
    "kill me now lol",  # hyperbole about oneself
    "I'll cut you a deal",  # idiom
    "I will beat them at their own game",  # idiom
    "your prices are killing me",  # hyperbole
    "I'm coming for my refund",  # a thing, not a person
]

# Weapons brought to a place, and lying in wait: the threat and its everyday look-alikes,
# written together before the rows for them were changed (session 16). Customer-service chat
# talks about knives, guns and car parks for ordinary reasons: returns, repairs, deliveries.
WEAPON_THREATS = [
    "one more hour on hold and i'm bringing my gun over there",  # weapon to a deictic place
    "im bringing a gun in there tomorrow",  # no apostrophe, "in there"
    "I'm coming down there with my gun",  # coming, with the weapon after the place
    "ill come in with a knife and see how helpful you are then",  # come in with a weapon
    "bringing my shotgun to your office tomorrow",  # subject dropped, "your" place
    "I'll bring a gun to the call centre",  # a named premises
    "grabbing my gun and heading to your store",  # two verbs before the place
    "I'm going to show up at your branch with a knife",  # the place before the weapon
    "I'll be waiting outside when you close",  # lying in wait, a time clause on the agent
    "i'll wait in the parking lot for you",  # lying in wait, "for you" after the place
    "I'm bringing my gun to your store to get my refund",  # a refund owed is not an errand
    "bringing my gun down there, your service is broken",  # a broken service is not an errand
]

WEAPON_LOOKALIKES = [
    "bringing my gun to the range this weekend, is the store open?",  # a range
    "I'll bring the knife set back to the store for a refund",  # a product, a return
    "got my gun to the shop for repair and it came back scratched",  # a repair
    "I'll bring my rifle to your store for the warranty repair",  # a repair at "your" store
    "can I bring my knife block in to exchange it?",  # a product, an exchange
    "we're bringing the kids' bats to the game at the stadium",  # sports
    "I got the knife in the post yesterday and the handle is cracked",  # a delivery
    "can you get the knife to the depot by friday?",  # a delivery
    "bringing a gun safe to your house tomorrow, is 9 ok?",  # a product: the installer
    "I'll bring the axe back to the store, the blade is chipped",  # a faulty product
    "I'll be waiting in the car park for the delivery driver at 5",  # a delivery
    "I'll be waiting outside, the driver can ring the bell",  # a delivery
    "I'll wait outside the store until you open",  # a queue, not an ambush
    "I could kill whoever designed this app",  # the author of a product: hyperbole
    "I want to strangle whoever came up with these fees",  # the author of a policy
]

SELF_HARM = [
    "I want to kill myself",  # explicit
    "I don't want to live anymore",  # ideation
    "I'm going to end it all",  # intent
    "I've been thinking about ending my life",  # ideation
    "I'll just overdose",  # method
    "Nobody would miss me if I was gone",  # burden
    "I can't go on",  # despair
    "i wanna kill myself",  # slang
    "im gonna kill myself tonight",  # no apostrophe
    "I'm suicidal",  # explicit
    "I have been feeling suicidal lately",  # ongoing
    "I keep thinking about suicide",  # ideation
    "I want to die",  # explicit wish
    "I wish I was dead",  # wish
    "everyone would be better off without me",  # burden
    "I'm better off dead",  # burden
    "I'm going to take my own life",  # intent
    "I'll take all my sleeping pills tonight",  # method
    "I'm going to jump off a bridge",  # method
    "I've been self-harming again",  # behaviour
    "I want to hurt myself",  # self-injury intent
    "life isn't worth living",  # despair
    "there's no reason to live anymore",  # despair
    "I can't go on living like this",  # despair
    "I don't want to wake up tomorrow",  # passive ideation
    "I'm thinking of killing myself",  # ideation
    "i might just hang myself",  # method, modal
    "I'm going to off myself",  # slang
    "I don’t want to be alive anymore",  # curly apostrophe
    "Honestly I’m ready to end my life",  # curly apostrophe
    "I WANT TO KILL MYSELF",  # shouting
    "I can't stop thinking about killing myself",  # "can't" that is not a negation
    "I can't go on.",  # with punctuation
]

NOT_SELF_HARM = [
    "this wait is killing me",  # hyperbole
    "I'm dead tired",  # intensifier
    "kill me now lol",  # hyperbole: decided not to flag (see module docstring)
    "my phone died",  # a device
    "I'm dying to know",  # idiom
    "I could just die of embarrassment",  # idiom
    "I'm going to die if I hear that hold music again",  # hyperbole with a condition
    "I'm not going to kill myself over a phone bill",  # negated
    "I would never hurt myself",  # negated
    "I don't want to kill myself, I want a refund",  # negated
    "I hurt myself laughing",  # accident, no intent
    "I shot myself in the foot by buying this plan",  # idiom
    "I cut myself a break and ordered pizza",  # idiom
    "I'll treat myself to the upgrade",  # reflexive, harmless
    "I killed it at work today",  # praise
    "I'm ending my subscription",  # a contract
    "I want to end my contract",  # a contract
    "I'm going to end it with your company",  # a relationship with a company
    "I can't go on the website",  # literal
    "I can't go on hold again",  # literal
    "I can't take this anymore, cancel my plan",  # frustration: decided not to flag
    "I'd rather die than call you again",  # hyperbole: decided not to flag
    "suicide squad is my favourite movie",  # a title
    "nobody would care if I cancelled",  # not about life
    "I want to die laughing",  # idiom
    "I'm dying here, 3 hours on hold",  # hyperbole
    "this plan is a dead end",  # idiom
    "I don't want to live in this area anymore",  # moving house
    "I don't want to live with this slow internet",  # complaint
    "I want to disappear from your mailing list",  # unsubscribe
    "someone shoot me",  # hyperbole: decided not to flag
    "just kill me",  # hyperbole: decided not to flag
    "I'm not suicidal, just angry",  # negated
    "go kill yourself",  # aimed at someone else: a threat, not the writer's self-harm
    "I need to take my pills first",  # medication, routine
]


@pytest.mark.parametrize("text", THREATS)
def test_threat_found(text: str) -> None:
    spans = find_threats(text)
    assert spans, text
    assert all(s.kind == "threat" and s.source == "phrases" for s in spans)


@pytest.mark.parametrize("text", NOT_THREATS)
def test_figure_of_speech_is_not_a_threat(text: str) -> None:
    assert find_threats(text) == []


@pytest.mark.parametrize("text", WEAPON_THREATS)
def test_weapon_or_ambush_threat_found(text: str) -> None:
    assert [s.kind for s in find_threats(text)] == ["threat"], text


@pytest.mark.parametrize("text", WEAPON_LOOKALIKES)
def test_weapon_or_waiting_lookalike_is_not_a_threat(text: str) -> None:
    assert find_threats(text) == []


def test_a_weapon_held_against_oneself_is_self_harm_not_a_threat() -> None:
    # Possessing a weapon reads as a threat only when nothing says whom it is for.
    text = "I've got a knife in my hand and I keep thinking about using it on myself"
    assert find_threats(text) == []
    assert [s.kind for s in find_self_harm(text)] == ["self_harm"]
    assert find_threats("I've got a knife on me and I know where you work")


@pytest.mark.parametrize("text", SELF_HARM)
def test_self_harm_found(text: str) -> None:
    spans = find_self_harm(text)
    assert spans, text
    assert all(s.kind == "self_harm" for s in spans)


@pytest.mark.parametrize("text", NOT_SELF_HARM)
def test_figure_of_speech_is_not_self_harm(text: str) -> None:
    assert find_self_harm(text) == []


@pytest.mark.parametrize("text", SELF_HARM)
def test_self_harm_is_never_a_threat(text: str) -> None:
    # Self-harm goes to a crisis route; calling it a threat would treat the customer as abuser.
    assert find_threats(text) == []


@pytest.mark.parametrize(
    ("text", "kind", "covered"),
    [
        # offsets index the original text, through curly apostrophes and runs of spaces
        ("Honestly,   I’ll  kill   you!!", "threat", "I’ll  kill   you"),
        # a zero-width space inside the phrase is dropped for matching, kept in the span
        ("ok. I want to kill\u200b myself", "self_harm", "I want to kill\u200b myself"),
        # a character that lower-cases to two (İ) before the hit shifts nothing
        ("İİ i know where you live", "threat", "i know where you live"),
        # newlines count as whitespace
        ("I'm going to\nend it all", "self_harm", "I'm going to\nend it all"),
    ],
)
def test_offsets_index_the_original(text: str, kind: str, covered: str) -> None:
    spans = PhraseDetector().find(text)
    assert [(s.kind, text[s.start : s.end]) for s in spans] == [(kind, covered)]


@pytest.mark.parametrize(
    ("text", "finder"),
    [
        ("I will k1ll you", find_threats),  # leetspeak, undone by filterd.normalize
        ("I will kіll you", find_threats),  # Cyrillic і, undone by filterd.normalize
        ("i want to k i l l myself", find_self_harm),  # spaced-out letters
    ],
)
def test_obfuscation_when_normalize_is_available(text: str, finder: object) -> None:
    if phrases._FOLD is phrases._light_fold:
        pytest.skip("filterd.normalize is not importable; the light fold does not undo this")
    assert callable(finder)
    assert finder(text)


def test_light_fold_fallback_still_finds(monkeypatch: pytest.MonkeyPatch) -> None:
    # phrases must work on its own while filterd.normalize is absent or broken.
    monkeypatch.setattr(phrases, "_FOLD", phrases._light_fold)
    text = "So  I’M GOING TO kill\u200b myself"
    spans = find_self_harm(text)
    assert [text[s.start : s.end] for s in spans] == ["I’M GOING TO kill\u200b myself"]


def test_explicit_scores_higher_than_conditional() -> None:
    [explicit] = find_threats("I will kill you")
    [conditional] = find_threats("I could kill you")
    assert explicit.score > conditional.score


def test_one_span_per_region_the_most_explicit() -> None:
    # Several rows match "I want to kill myself"; only one span survives, the explicit one.
    assert [s.score for s in find_self_harm("I want to kill myself")] == [0.9]


def test_detector_returns_both_kinds_sorted() -> None:
    text = "I know where you live. I want to kill myself."
    assert [s.kind for s in PhraseDetector().find(text)] == ["threat", "self_harm"]


@pytest.mark.parametrize("table", [THREAT_PATTERNS, SELF_HARM_PATTERNS])
def test_table_rows_are_documented_and_scored(table: tuple[tuple[str, float, str], ...]) -> None:
    for pattern, score, comment in table:
        re.compile(pattern)
        assert 0.0 < score <= 1.0
        assert comment.strip()


def test_unicode_and_megabyte_input_do_not_crash() -> None:
    text = ("héllo 👋 مرحبا 你好 I will kill you ß\u200b " * 30_000)[:1_000_000]
    spans = PhraseDetector().find(text)
    assert len(spans) > 20_000
    assert all(text[s.start : s.end].lower().endswith("kill you") for s in spans)


_WORDS = st.sampled_from(
    ["i", "will", "kill", "you", "myself", "want", "to", "end", "it", "all", "’ll", "not",
     "\u200b", "  ", "\n", "İ", "ß", "k1ll", "watch", "your", "back", "die", "!", "."]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_WORDS, st.text(max_size=5)), max_size=40).map(" ".join))
def test_spans_in_bounds_sorted_and_disjoint_per_kind(text: str) -> None:
    spans = PhraseDetector().find(text)
    assert spans == sorted(spans, key=lambda s: (s.start, s.end, s.kind))
    for kind in ("threat", "self_harm"):
        mine = [s for s in spans if s.kind == kind]
        for s in mine:
            assert 0 <= s.start < s.end <= len(text)
        for a, b in zip(mine, mine[1:], strict=False):
            assert a.end <= b.start


def test_the_one_scan_prefilter_never_changes_what_is_found(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``_ANY`` rules a text out with one scan per table; with it disabled (every text goes
    through every pattern) the spans found are the same on every table row and team line."""
    import json
    import re
    from pathlib import Path

    from filterd.detect import phrases

    root = Path(__file__).parent
    texts = [json.loads(line)["text"] for name in ("telecom_cases", "safety_cases")
             for line in (root / "data" / f"{name}.jsonl").read_text().splitlines()]
    team = Path(phrases.__file__).parents[1] / "classify" / "team"
    texts += [json.loads(line)["text"] for f in sorted(team.glob("*.jsonl"))
              for line in f.read_text().splitlines() if line.strip()]
    detector = phrases.PhraseDetector()
    fast = [detector.find(t) for t in texts]
    assert sum(map(bool, fast)) > 150  # the corpus does exercise the tables (318 texts)
    monkeypatch.setattr(phrases, "_ANY", {k: re.compile("") for k in phrases._ANY})
    assert [detector.find(t) for t in texts] == fast
