"""Offensive words -> spans on the original text.

The baseline vocabulary is better-profanity's word list, read from the installed package
(not its matcher, which costs ~12 ms a message), minus the entries in ``lexicon/exclude.txt``,
plus the curated lists in ``lexicon/<kind>.txt``; phrases in ``lexicon/allow.txt`` hide the hits
inside them. Matching runs on :func:`normalize`'d text
with one Aho-Corasick automaton, whole words only, and maps every hit back to the original
offsets, so ``f.u.c.k``, ``ｆｕｃｋ`` or ``fu\\u200bck`` yield a span over the characters the
customer typed.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache
from importlib import resources
from itertools import accumulate
from typing import Any

import ahocorasick

from filterd.errors import ConfigError, InputError
from filterd.normalize import Normalized, normalize
from filterd.types import Span

__all__ = ["KINDS", "Lexicon", "baseline_terms"]

# The kinds a term may have, weakest first: when one term is listed under two kinds, the later
# one wins (a slur that is also in the baseline list is an identity_attack, not profanity).
KINDS: tuple[str, ...] = ("profanity", "insult", "sexual_harassment", "identity_attack")
_RANK = {kind: i for i, kind in enumerate(KINDS)}
_ALLOW = "allow"  # automaton value for an allowed phrase: it hides the hits inside it
_SOURCE = "lexicon"
_DATA = "filterd.detect"
_KEY_EDGE = re.compile(r"^[^a-z0-9]+|[^a-z0-9]+$")
_DOUBLES = re.compile(r"([a-z])\1+")


def _read_lines(text: str) -> Iterator[str]:
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()  # no term contains '#'
        if line:
            yield line


def _expand(line: str) -> Iterator[str]:
    """``"stem | s ed"`` -> ``stem``, ``stems``, ``stemed``; a plain line is itself."""
    stem, bar, suffixes = line.partition(" | ")
    stem = stem.strip()
    yield stem
    if bar:
        for suffix in suffixes.split():
            yield stem + suffix


def _key(term: str) -> str:
    """The automaton key for a term: folded like the text it will be compared with.

    Runs are shortened to two, not one, so an entry keeps its real doubles (``ass``, ``boobs``).
    Edge punctuation goes (``p.u.s.s.y.`` -> ``pussy``, ``masterbat*`` -> ``masterbat``).
    """
    return _KEY_EDGE.sub("", normalize(term, max_repeat=2).text)


def _star_key_is_safe(key: str) -> bool:
    # A key with '*' must keep two letters and a letter after a star, or it could match the
    # first_letter mask of another word ("f***") and masking would no longer be idempotent.
    head, _, tail = key.partition("*")
    return sum(c.isalpha() for c in key) >= 2 and any(c.isalpha() for c in tail) and bool(head)


def _package_text(package: str, name: str) -> str:
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


def baseline_terms() -> list[str]:
    """better-profanity's words that filterd keeps (exclusions applied), as the package spells
    them; the benchmark measures every tool's recall on these."""
    excluded = _excluded()
    baseline = _package_text("better_profanity", "profanity_wordlist.txt")
    return [t for t in _read_lines(baseline) if _key(t) not in excluded]


@lru_cache(maxsize=1)
def _excluded() -> frozenset[str]:
    return frozenset(_key(t) for t in _read_lines(_package_text(_DATA, "lexicon/exclude.txt")))


@lru_cache(maxsize=1)
def _builtin_terms() -> tuple[tuple[str, str], ...]:
    """(key, kind) pairs from the baseline and the curated lists, exclusions applied."""
    excluded = _excluded()
    terms: dict[str, str] = {}

    def add(term: str, kind: str) -> None:
        key = _key(term)
        if len(key) < 2 or key in excluded or ("*" in key and not _star_key_is_safe(key)):
            return
        old = terms.get(key)
        if old is None or _RANK[kind] > _RANK[old]:
            terms[key] = kind

    baseline = _package_text("better_profanity", "profanity_wordlist.txt")
    for term in _read_lines(baseline):
        add(term, "profanity")
    for kind in KINDS:
        for line in _read_lines(_package_text(_DATA, f"lexicon/{kind}.txt")):
            for term in _expand(line):
                add(term, kind)
    return tuple(sorted(terms.items()))


@lru_cache(maxsize=1)
def _builtin_allow() -> tuple[str, ...]:
    """Innocent phrases with a lexicon word inside ("spic and span", "cum laude")."""
    return tuple(_read_lines(_package_text(_DATA, "lexicon/allow.txt")))


class Lexicon:
    """Whole-word matcher for offensive terms; each hit is a :class:`Span` on the original text.

    ``allow``: terms or phrases never masked, added to the built-in ``lexicon/allow.txt``
    (an allowed phrase also hides the hits inside it: ``"Dick Smith"`` hides ``dick``).
    ``extra``: added terms -> kind, one of :data:`KINDS`; they win over the built-in kind of
    the same term. Build once and share: matching is read-only.
    """

    __slots__ = ("_automaton", "_size", "_squeezed")

    def __init__(self, allow: Iterable[str] = (), extra: Mapping[str, str] | None = None) -> None:
        terms = dict(_builtin_terms())
        for term, kind in (extra or {}).items():
            if kind not in _RANK:
                raise ConfigError(
                    f"Lexicon extra term {term!r} has kind {kind!r}. Use one of {', '.join(KINDS)}."
                )
            key = _key(term)
            if len(key) < 2:
                raise ConfigError(
                    f"Lexicon extra term {term!r} folds to {key!r}; give a word of 2+ letters."
                )
            terms[key] = kind
        automaton: Any = ahocorasick.Automaton()
        for key, kind in terms.items():
            automaton.add_word(key, (len(key), kind))
        for term in (*_builtin_allow(), *allow):
            key = _key(term)
            if key:
                # Overwrites the term's own entry, so an allowed word is never a hit.
                automaton.add_word(key, (len(key), _ALLOW))
        self._size = len(automaton)
        if self._size:
            automaton.make_automaton()
        self._automaton = automaton
        self._squeezed = _squeezed_automaton(terms, (*_builtin_allow(), *allow))

    @classmethod
    def default(cls) -> Lexicon:
        """The built-in lexicon, built on first use and shared afterwards."""
        return _default_lexicon()

    def __len__(self) -> int:
        return self._size

    def find(self, text: str) -> list[Span]:
        """Every whole-word lexicon hit in ``text``, as spans on the original offsets.

        Sorted by start, longest first. A phrase and a word inside it (``suck my dick`` and
        ``dick``) are both reported: they carry different kinds, hence different flags.
        """
        if not isinstance(text, str):
            raise InputError(f"Lexicon.find() takes a str, got {type(text).__name__}.")
        if not self._size or not text:
            return []
        hits: dict[tuple[int, int], str] = {}
        allowed: list[tuple[int, int]] = []
        folded = normalize(text)
        self._match(folded, hits, allowed)
        if folded.spaced:
            self._match_spaced(folded, hits, allowed)
        if folded.collapsed_runs:
            # "asssss" folds to "as" with runs cut to one letter; cut to two it is "ass".
            self._match(normalize(text, max_repeat=2), hits, allowed)
            if self._squeezed is not None:
                # "asssshooole" needs one run cut to two and another to one: neither pass
                # finds it, so match every run cut to one against the squeezed keys.
                self._match_squeezed(normalize(text, squeeze=True), hits, allowed)
        outside = _outside_all(allowed)
        spans = [
            Span(start, end, kind, 1.0, _SOURCE)
            for (start, end), kind in hits.items()
            if outside(start, end)
        ]
        spans.sort(key=lambda s: (s.start, -s.end))
        return spans

    def _match(
        self,
        folded: Normalized,
        hits: dict[tuple[int, int], str],
        allowed: list[tuple[int, int]],
    ) -> None:
        t = folded.text
        n = len(t)
        for last, (length, kind) in self._automaton.iter(t):
            first = last - length + 1
            # Whole words only: "ass" in "class", "cum" in "document", "hell" in "hello".
            if (first and t[first - 1].isalnum()) or (last + 1 < n and t[last + 1].isalnum()):
                continue
            _record(hits, allowed, folded.to_original(first, last + 1), kind)

    def _match_spaced(
        self,
        folded: Normalized,
        hits: dict[tuple[int, int], str],
        allowed: list[tuple[int, int]],
    ) -> None:
        """Spaced-out words that share their run with a neighbour: "a b i t c h", "u f a g",
        "f u c k i n g m o r o n". The run joins into one folded word ("abitch"), which the
        whole-word match misses. Here a run counts only if all of it splits into lexicon
        words and the one-letter words "a", "i", "u"; so spaced "a s s e s s" or
        "c l a s s" (no such split) stay untouched."""
        t = folded.text
        for start, end in folded.spaced:
            run = t[start:end]
            # A run the whole-word pass matched already (plain "s h i t") needs no split.
            if len(run) > _MAX_SPACED_RUN or folded.to_original(start, end) in hits:
                continue
            pieces = self._split_run(run)
            if pieces is None:
                continue
            for a, b, kind in pieces:
                _record(hits, allowed, folded.to_original(start + a, start + b), kind)

    def _split_run(self, run: str) -> list[tuple[int, int, str]] | None:
        """The split of ``run`` into lexicon keys and fillers with the fewest fillers, as
        (start, end, kind) of its lexicon pieces; None when there is no split or no piece."""
        n = len(run)
        # best[i]: (fillers used, pieces) for the prefix run[:i]
        best: list[tuple[int, list[tuple[int, int, str]]] | None] = [None] * (n + 1)
        best[0] = (0, [])
        for i in range(n):
            here = best[i]
            if here is None:
                continue
            for word in _FILLERS:
                if run.startswith(word, i):
                    j = i + len(word)
                    prev = best[j]
                    if prev is None or here[0] + 1 < prev[0]:
                        best[j] = (here[0] + 1, here[1])
            for j in range(i + 2, min(n, i + _MAX_KEY) + 1):
                entry = self._automaton.get(run[i:j], None)
                if entry is None:
                    continue
                prev = best[j]
                if prev is None or here[0] < prev[0]:
                    best[j] = (here[0], [*here[1], (i, j, entry[1])])
        final = best[n]
        if final is None or not any(kind != _ALLOW for _, _, kind in final[1]):
            return None
        return final[1]

    def _match_squeezed(
        self,
        folded: Normalized,
        hits: dict[tuple[int, int], str],
        allowed: list[tuple[int, int]],
    ) -> None:
        """Whole-word hits of squeezed keys, kept only where the customer typed each of the
        word's real doubles at least twice: "asssshooole" is "asshole", but "consss" is not
        "coons" and "Bobbbs" is not "boobs"."""
        t = folded.text
        n = len(t)
        for last, (length, readings) in self._squeezed.iter(t):
            first = last - length + 1
            if (first and t[first - 1].isalnum()) or (last + 1 < n and t[last + 1].isalnum()):
                continue
            span = folded.to_original(first, last + 1)
            for kind, doubles in readings:
                if any(folded.ends[first + k] - folded.offsets[first + k] < 2 for k in doubles):
                    continue
                _record(hits, allowed, span, kind)


def _record(
    hits: dict[tuple[int, int], str], allowed: list[tuple[int, int]], span: tuple[int, int],
    kind: str,
) -> None:
    """Note one match: an allowed phrase hides what lies inside it; for a hit, the
    highest-ranked kind of the span wins."""
    if kind == _ALLOW:
        allowed.append(span)
        return
    old = hits.get(span)
    if old is None or _RANK[kind] > _RANK[old]:
        hits[span] = kind


# Words a spaced-out or dotted run may share with a lexicon word, each counted as one
# filler: one-letter words ("a b i t c h", "u f a g") and words spelled out after one
# ("f.u.c.k y.o.u", "p i s s o f f"). None of them with a lexicon word spells an innocent
# word spaced out (tests/test_lexicon.py, SCUNTHORPE); "the" and "me" would ("t h e r a p
# i s t", "a s s u m e"), so they are not here.
_FILLERS = ("a", "i", "u", "you", "off")
_MAX_SPACED_RUN = 200  # longer runs of single letters are not words; skip the split
_MAX_KEY = 40


def _squeeze(key: str) -> tuple[str, tuple[int, ...]]:
    """``"asshole"`` -> ``("ashole", (1,))``: every run cut to one letter, and the positions
    in the squeezed key that stood for a double."""
    doubles: list[int] = []
    out: list[str] = []
    pos = 0
    for m in _DOUBLES.finditer(key):  # runs of two or more
        out.append(key[pos : m.start()])
        doubles.append(sum(map(len, out)))
        out.append(m.group(1))
        pos = m.end()
    out.append(key[pos:])
    return "".join(out), tuple(doubles)


def _squeezed_automaton(terms: Mapping[str, str], allow: Iterable[str]) -> Any:
    """Keys with a real double, every run cut to one letter ("asshole" -> "ashole"), for
    the squeezed pass of :meth:`Lexicon.find`; None when no key has a double. Each entry
    holds every reading (kind, positions of the doubles) of the squeezed form."""
    readings: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
    for key, kind in terms.items():
        squeezed, doubles = _squeeze(key)
        if doubles:
            readings.setdefault(squeezed, []).append((kind, doubles))
    if not readings:
        return None
    for term in allow:  # allowed phrases hide hits in this pass too, however typed
        squeezed, _ = _squeeze(_key(term))
        if squeezed:
            readings.setdefault(squeezed, []).insert(0, (_ALLOW, ()))
    automaton: Any = ahocorasick.Automaton()
    for squeezed, options in readings.items():
        automaton.add_word(squeezed, (len(squeezed), tuple(options)))
    automaton.make_automaton()
    return automaton


def _outside_all(allowed: list[tuple[int, int]]) -> Callable[[int, int], bool]:
    """A test "is [start, end) inside none of the allowed spans", by bisection over the spans
    sorted by start with a running max of their ends: O(log n) a hit, so a long text full of
    allowed phrases and hits does not go quadratic."""
    if not allowed:
        return lambda start, end: True
    allowed.sort()
    starts = [a for a, _ in allowed]
    reach = list(accumulate((b for _, b in allowed), max))

    def outside(start: int, end: int) -> bool:
        i = bisect_right(starts, start)
        return i == 0 or reach[i - 1] < end

    return outside


@lru_cache(maxsize=1)
def _default_lexicon() -> Lexicon:
    return Lexicon()
