"""The training-set builder: relabelling rules and leakage-free splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from filterd.classify import data, rules, sources
from filterd.errors import DataError
from filterd.normalize import clean_for_model, emoji_words

from .conftest import SHARED_DATA

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data not present")


@pytest.mark.parametrize(
    ("text", "aimed"),
    [
        ("you are an idiot", True),  # R1 insult word
        ("fuck you", True),  # R2 profanity aimed at "you"
        ("you fucking moron", True),
        ("this fucking phone won't connect", False),  # R3 profanity at a thing
        ("your service is garbage", False),  # a verdict on a service
        ("this stupid router again", False),  # soft insult at a thing
        ("you are so stupid", True),  # soft insult at a person
        ("what the hell is this bill", False),
    ],
)
def test_aimed_abuse_rule(text: str, aimed: bool) -> None:
    assert rules.is_aimed_abuse(text) is aimed


@pytest.mark.parametrize(
    ("text", "threat", "abuse"),
    [
        ("I'll kill you.", True, True),  # R6 threat at a person
        ("kill 'em all", True, True),
        ("makes me want to slap her", True, True),
        ("Just piss off", False, True),  # R6 dismissive imperative
        ("Shut up, nobody asked", False, True),
        ("You are disgusting.", False, True),  # R6 "you are <verdict>"
        ("you're still being childish", False, True),
        ("Imagine being that much of a useless parasite", False, True),  # R1 word
        ("I'd kill for a coffee right now", False, False),  # idiom, no person hit
        ("my mum will kill me when she sees the bill", False, False),
        ("Shut up and take my money!", False, False),  # the meme, not a rebuke
        ("I wish they would shut up about it", False, False),
        ("this app is disgusting, crashed again", False, False),
    ],
)
def test_person_abuse_rule(text: str, threat: bool, abuse: bool) -> None:
    """R6: threats, dismissals and character verdicts that R1/R2's word lists miss."""
    assert rules.threat_at_person(text) is threat
    assert rules.is_person_abuse(text) is abuse


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("I am still waiting on my card", "frustrated"),  # R5 complaint cue
        ("My card still hasn't arrived after 2 weeks", "frustrated"),
        ("Can I still use my card abroad?", "neutral"),  # "still" without a complaint
        ("I tried the wrong PIN too many times", "neutral"),  # self-reported, no complaint
        ("How do I top up?", "neutral"),
    ],
)
def test_support_query_rule(text: str, category: str) -> None:
    assert sources._support_query(text, "banking77").category == category


@pytest.mark.parametrize(
    ("text", "violent"),
    [
        ("Repent for your sins or burn in the hellfire", True),
        ("i want to \U0001F525\U0001F30F", True),  # fire emoji: drawn, not spelled
        ("I would love to \U0001F52A some of them", True),  # knife emoji
        ("they should all be deported", True),
        ("all people are powerful", False),
        ("my shell script keeps failing", False),  # "hell" only as a word
        ("women deserve equal pay", False),
    ],
)
def test_violence_rule(text: str, violent: bool) -> None:
    """R4b: the hate sets' 'not hate' rows with violence do not teach `neutral`."""
    assert rules.violent(text) is violent


def test_violent_not_hate_rows_are_not_neutral(tmp_path: Path) -> None:
    """HatemojiBuild calls 'burn in the hellfire' not hate (no protected group); R4b keeps it
    out of `neutral`, while a calm rewrite and the hateful row keep their classes."""
    d = tmp_path / "hatemoji/HatemojiBuild"
    d.mkdir(parents=True)
    head = "entry_id,text,type,target,round.base,round.set,set,split,label_gold\n"
    rows = ["1,Repent for your sins or burn in the hellfire,none,['none'],5,5a,original,train,0",
            "2,all \U0001F476\U0001F3FF people are powerful,none,['none'],5,5a,original,train,0",
            "3,I want to \U0001F52A all of them,threateninglanguage,['bla'],5,5a,original,train,1"]
    (d / "train.csv").write_text(head + "\n".join(rows) + "\n", encoding="utf-8")
    for split in ("validation", "test"):
        (d / f"{split}.csv").write_text(head, encoding="utf-8")
    out = {e.text: e.category for e in sources.hatemoji(tmp_path, __import__("random").Random(0))}
    assert "Repent for your sins or burn in the hellfire" not in out
    assert out["all \U0001F476\U0001F3FF people are powerful"] == "neutral"
    assert out["I want to \U0001F52A all of them"] == "abusive"


def test_unknown_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="Unknown source"):
        data.build(tmp_path, sources=["nope"], progress=False)


def test_missing_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        data.build(tmp_path / "missing", progress=False)


def test_team_data_is_valid() -> None:
    rows = list(sources.team(Path("."), __import__("random").Random(0)))
    assert len(rows) > 1000
    assert {r.category for r in rows} == {"neutral", "frustrated", "abusive"}
    # self-harm is never abuse, in the team's labels too
    assert not [r for r in rows if r.flags["self_harm"] and r.category == "abusive"]


def test_candidate_aimed_vs_self_pairs_the_same_words_both_ways() -> None:
    """team/candidates/aimed_vs_self.jsonl (session 13; model v19, not shipped): death
    and harm words aimed at the agent (abusive, always an insult) next to the same words
    turned on the writer (self_harm, never abusive) and figures of speech (no flag)."""
    path = sources.CANDIDATES_DIR / "aimed_vs_self.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(rows) > 200
    kinds: dict[str, set[str]] = {}
    for r in rows:
        kind, _, family = r["group"].partition(":")
        kinds.setdefault(family, set()).add(kind)
        flags = set(r["flags"])
        if kind == "aim":
            assert r["category"] == "abusive" and "insult" in flags and "self_harm" not in flags, r
        elif kind == "self":
            assert r["category"] != "abusive" and "self_harm" in flags, r
        else:
            assert kind == "fig", r
            assert r["category"] != "abusive" and not flags & {"self_harm", "threat", "insult"}, r
    assert sum({"aim", "self"} <= k for k in kinds.values()) >= 40
    # not in the default build (the shipped model's)
    default = list(sources.team(Path("."), __import__("random").Random(0)))
    assert "team:aimed_vs_self" not in {r.source for r in default}


def test_candidate_team_text_is_read_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """team/candidates/ holds team text being measured for a model not yet shipped: the
    default build, the shipped model's, leaves it out; --team-candidates reads it, in
    file-name order among the other team files (that model's build). The shipped model's
    files (harassment_questions, threat_lookalikes, threat_balance) have moved into team/,
    so the candidates here are a stand-in folder."""
    cand_dir = tmp_path / "candidates"
    cand_dir.mkdir()
    rows = [{"text": f"could you send the manual for the router model {i}, please",
             "category": "neutral", "flags": [], "intensity": 0.05, "group": "t"}
            for i in range(5)]
    (cand_dir / "m_candidate.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(sources, "CANDIDATES_DIR", cand_dir)
    rng = __import__("random").Random(0)
    default = list(sources.team(Path("."), rng))
    both = list(sources.team_with_candidates(Path("."), rng))
    assert "team:m_candidate" not in {r.source for r in default}
    extra = [r for r in both if r.source == "team:m_candidate"]
    assert [r.text for r in extra] == [r["text"] for r in rows]
    assert len(both) == len(default) + len(rows)
    assert [r.text for r in both if r.source != "team:m_candidate"] == [r.text for r in default]
    # one file's rows stay together, between the files whose names sort around it
    stems = [r.source for r in both]
    assert stems == sorted(stems, key=lambda s: s.removeprefix("team:"))
    assert stems.index("team:m_candidate") > stems.index("team:harassment_questions")


def test_team_safety_boundary_files_label_one_flag_each_side() -> None:
    """The shipped model's boundary files (sexual harassment without a rude word; threats
    and their non-violent look-alikes): abusive rows carry their safety flag, look-alikes
    none and are never abusive."""
    rows = list(sources.team(Path("."), __import__("random").Random(0)))
    for stem, flag in (("harassment_questions", "sexual_harassment"),
                       ("threat_lookalikes", "threat"), ("threat_balance", "threat")):
        mine = [r for r in rows if r.source == f"team:{stem}"]
        assert len(mine) > 100, stem
        labels = {(r.category, r.flags[flag]) for r in mine}
        assert labels == {("abusive", 1), ("neutral", 0), ("frustrated", 0)}, (stem, labels)
    # the self-harm boundary files (v17): both sides in calm and complaining messages; a
    # self-harm row is never abusive, and a look-alike is abusive only for an insult
    for stem in ("selfharm_lookalikes", "selfharm_means_plans"):
        mine = [r for r in rows if r.source == f"team:{stem}"]
        assert len(mine) > 200, stem
        labels = {(r.category, r.flags["self_harm"]) for r in mine}
        assert {("neutral", 1), ("frustrated", 1), ("neutral", 0), ("frustrated", 0)} <= labels
        assert not {("abusive", 1)} & labels, stem
        assert all(r.flags["insult"] for r in mine if r.category == "abusive"), stem


@needs_data
def test_build_is_deterministic_and_leak_free() -> None:
    kw = {"sources": ["banking77", "goemotions", "stormfront", "team"], "scale": 0.05,
          "progress": False}
    a = data.build(SHARED_DATA, seed=3, **kw)  # type: ignore[arg-type]
    b = data.build(SHARED_DATA, seed=3, **kw)  # type: ignore[arg-type]
    assert [e.to_json() for e in a] == [e.to_json() for e in b]
    by_split: dict[str, set[str]] = {}
    for e in a:
        by_split.setdefault(e.split, set()).add(e.text.lower())
    assert not by_split["train"] & by_split.get("valid", set())
    # held-out sources never reach training
    assert {e.source for e in a if e.split == "train"}.isdisjoint(data.HOLDOUT_SOURCES)
    assert {e.split for e in a if e.source == "stormfront"} == {"holdout"}
    # every class mixes sources
    for cat in ("neutral", "frustrated"):
        assert len({e.source for e in a if e.category == cat and e.split == "train"}) >= 2


def test_a_cap_for_an_unknown_source_or_class_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cap edos/angry"):
        data.build(tmp_path, caps={("edos", "angry"): 10}, progress=False)
    with pytest.raises(DataError, match="cap nope/abusive"):
        data.build(tmp_path, caps={("nope", "abusive"): 10}, progress=False)


@needs_data
def test_a_raised_cap_adds_rows_and_keeps_every_row_the_default_kept() -> None:
    """``caps`` (``--cap``): the rows of smallest hash are kept, so raising one source's cap
    adds rows of that source and class only, each other row in the split it had."""
    kw = {"sources": ["banking77", "team"], "scale": 1.0, "progress": False}
    base = data.build(SHARED_DATA, seed=3, **kw)  # type: ignore[arg-type]
    raised = data.build(SHARED_DATA, seed=3, caps={("banking77", "neutral"): 2600}, **kw)  # type: ignore[arg-type]
    was = {e.text: e.split for e in base}
    now = {e.text: e.split for e in raised}
    assert was.items() <= now.items()
    added = [e for e in raised if e.text not in was]
    assert 400 < len(added) <= 600
    assert {(e.source, e.category) for e in added} == {("banking77", "neutral")}
    lowered = data.build(SHARED_DATA, seed=3, caps={("banking77", "neutral"): 100}, **kw)  # type: ignore[arg-type]
    assert sum(e.source == "banking77" and e.category == "neutral" for e in lowered) == 100


@needs_data
def test_keep_splits_keeps_every_earlier_text_where_it_was(tmp_path: Path) -> None:
    """A later build with other sources and another seed (every random split differs) keeps
    each text of the earlier build in its split, so a model trained on the earlier build has
    seen none of the later validation rows."""
    kw = {"scale": 0.05, "progress": False}
    early = data.build(SHARED_DATA, seed=3, sources=["banking77", "team"], **kw)  # type: ignore[arg-type]
    data.save(early, tmp_path / "early.jsonl")
    later = data.build(SHARED_DATA, seed=4, sources=["banking77", "goemotions", "team"],
                       keep_splits=tmp_path / "early.jsonl", **kw)  # type: ignore[arg-type]
    def key(e: data.Example) -> str:  # a text before R8 appended an emoji to it
        return data._key(rules.without_emoji_suffix(e.text))

    was = {key(e): e.split for e in early}
    kept = [(was[key(e)], e.split) for e in later if key(e) in was]
    assert len(kept) > 50 and all(a == b for a, b in kept)
    assert {e.split for e in later if key(e) not in was} == {"train", "valid"}
    trained_on = {k for k, split in was.items() if split == "train"}
    assert not [e for e in later if e.split == "valid" and key(e) in trained_on]
    # without it the same change reshuffles: some earlier text changes split
    free = data.build(SHARED_DATA, seed=4, sources=["banking77", "goemotions", "team"], **kw)  # type: ignore[arg-type]
    assert any(was[key(e)] != e.split for e in free if key(e) in was)


@needs_data
def test_r8_gives_a_tenth_of_train_rows_an_emoji_and_leaves_the_rest_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """R8 (named-emoji builds, the default): emoji in every class, so that an emoji alone does not
    mean abuse. Only train rows
    change, by one emoji from their class's pool; validation and held-out rows keep the
    sources' text; HatemojiBuild (whose emoji are its subject) is left alone."""
    kw = {"sources": ["banking77", "goemotions", "hatemoji", "team"], "scale": 0.1,
          "progress": False, "emoji_names": True}
    built = data.build(SHARED_DATA, seed=3, **kw)  # type: ignore[arg-type]
    default = data.build(SHARED_DATA, seed=3, **{**kw, "emoji_names": False})  # type: ignore[arg-type]
    # v7's build (--raw-emoji) keeps emoji as they are, and no R8
    assert any(emoji_words(e.text) != e.text for e in default if e.source == "hatemoji")
    assert not [e for e in built if emoji_words(e.text) != e.text]
    monkeypatch.setattr(data, "EMOJI_FRACTION", 0.0)
    plain = data.build(SHARED_DATA, seed=3, **kw)  # type: ignore[arg-type]
    assert len(built) == len(plain)
    changed = [(a, b) for a, b in zip(built, plain, strict=True) if a.text != b.text]
    assert {a.split for a, _ in changed} == {"train"}
    assert "hatemoji" not in {a.source for a, _ in changed}
    assert {a.category for a, _ in changed} == {"neutral", "frustrated", "abusive"}
    train = [b for b in plain if b.split == "train" and b.source != "hatemoji"]
    assert 0.06 < len(changed) / len(train) < 0.14
    for a, b in changed:
        assert (a.category, a.flags, a.intensity) == (b.category, b.flags, b.intensity)
        tail = a.text[len(b.text):]
        assert a.text.startswith(b.text) and tail in {
            " " + emoji_words(e).strip() for e in rules.EMOJI_POOLS[a.category or ""]}
        assert rules.without_emoji_suffix(a.text) == b.text


@needs_data
def test_naming_emoji_moves_no_text_between_train_and_valid() -> None:
    """A named-emoji build (the default) draws each text's split as a raw-emoji build (v7's)
    does, on the text with its emoji as they are, so a model trained on it has seen none of
    v7's validation rows. Before session 9 it drew it on the named text, and most of
    HatemojiBuild's validation rows went to train."""
    kw = {"sources": ["banking77", "hatemoji", "team"], "scale": 0.1, "valid_fraction": 0.2,
          "progress": False}
    default = data.build(SHARED_DATA, seed=3, emoji_names=False, **kw)  # type: ignore[arg-type]
    named = data.build(SHARED_DATA, seed=3, emoji_names=True, **kw)  # type: ignore[arg-type]
    split_of: dict[str, str] = {}
    for e in named:  # a train row may carry R8's emoji; its text without it is the row's
        split_of.setdefault(data._key(e.text), e.split)
        split_of.setdefault(data._key(rules.without_emoji_suffix(e.text)), e.split)
    def named_key(e: data.Example) -> str:
        return data._key(clean_for_model(e.text, emoji_as_words=True))

    pairs = [(e.source, e.split, split_of.get(named_key(e))) for e in default]
    found = [p for p in pairs if p[2] is not None]
    # the caps keep rows by a hash of the text, so where a class has emoji the two builds
    # keep some different rows; a source without emoji keeps the same ones
    assert len(found) > 0.6 * len(pairs)
    assert not [p for p in pairs if p[2] is None and p[0] == "banking77"]
    emoji_valid = [p for p in found if p[0] == "hatemoji" and p[1] == "valid"]
    assert len(emoji_valid) >= 5  # the rows the old split sent to train
    assert [p for p in found if p[1] != p[2]] == []


def test_r8_pools_carry_no_identity_and_share_their_common_emoji() -> None:
    for pool in rules.EMOJI_POOLS.values():
        assert set(rules._EMOJI_COMMON) <= set(pool)
        for e in pool:
            name = emoji_words(e).strip()
            assert name and not any(w in name for w in (
                "skin tone", "flag", "middle finger", "turban", "headscarf", "kiss")), name
    assert rules.emoji_for("neutral", 0.0) == rules.EMOJI_POOLS["neutral"][0]
    assert rules.emoji_for("abusive", 0.999999) == rules.EMOJI_POOLS["abusive"][-1]


@needs_data
def test_a_texts_split_depends_on_the_text_and_seed_only() -> None:
    """Adding a source moves no other text between train and valid (same seed), and the
    validation core (the v3 model's validation rows) is never trained on."""
    kw = {"scale": 0.05, "progress": False}
    small = data.build(SHARED_DATA, seed=3, sources=["banking77", "team"], **kw)  # type: ignore[arg-type]
    big = data.build(SHARED_DATA, seed=3, sources=["goemotions", "banking77", "team"], **kw)  # type: ignore[arg-type]
    was = {data._key(e.text): e.split for e in small}
    common = [(was[data._key(e.text)], e.split) for e in big if data._key(e.text) in was]
    assert len(common) > 50 and all(a == b for a, b in common)
    core = data.valid_core()
    assert len(core) > 2000
    in_core = [e for e in big if data._key(e.text)[:16] in core]
    assert in_core and {e.split for e in in_core} == {"valid"}


def test_feedback_file_errors_name_the_line(tmp_path: Path) -> None:
    p = tmp_path / "fb.jsonl"
    p.write_text(json.dumps({"text": "ok", "category": "neutral"}) + "\n" +
                 json.dumps({"text": "x", "category": "angry"}) + "\n")
    with pytest.raises(DataError, match="line 2"):
        data.load_feedback(p)


@pytest.mark.parametrize(
    ("text", "known_zero"),
    [
        ("still no refund after 3 weeks", True),
        ("I think I left my bag on the plane, who do I call?", True),
        ("this bill is killing me", False),  # hyperbole or not: left to the team rows
        ("I can't take this anymore", False),
        ("my phone is dead again", False),  # a self-harm word, used of a phone
    ],
)
def test_public_complaints_know_self_harm_is_absent_unless_a_cue_word_is_there(
    text: str, known_zero: bool
) -> None:
    """R7: without it the self-harm head learned from team text alone that an upset
    message is often self-harm."""
    flags = sources._frustrated_flags(text)
    assert ("self_harm" in flags and flags["self_harm"] == 0) is known_zero
    assert flags["threat"] == 0 and flags["insult"] == 0
