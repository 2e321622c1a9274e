"""Fold obfuscated text into a canonical form for matching, keeping a map back to the original.

``normalize`` is what the lexicon matches against; ``clean_for_model`` is what the classifier
reads. Neither rewrites the message: spans found on the folded text are mapped back to the
*original* text with :meth:`Normalized.to_original`, and masks are applied to the original.

Folding, in order (each step keeps, for every folded character, the original range it came from):

1. per character: NFKC, casefold, diacritics stripped, format characters (zero-width, soft
   hyphen, bidi controls) dropped, Cyrillic/Greek lookalikes mapped to Latin;
2. letters spread out by single separators glued back: ``f.u.c.k``, ``s h i t`` -> ``fuck``;
3. leetspeak inside word-like tokens: ``f4ck``, ``sh!t``, ``a$$`` (never ``$40`` or ``2024``);
4. runs of three or more equal letters shortened: ``fuuuuck`` -> ``fuck`` (doubles stay).

Everything is a regex pass or ``str.translate`` over the text, so the cost is O(n).
"""

from __future__ import annotations

import html
import re
import unicodedata
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from filterd.errors import InputError

__all__ = ["Normalized", "clean_for_model", "emoji_words", "normalize"]

# Lookalikes that NFKC leaves alone (it maps fullwidth and math letters, not other scripts).
# Keys are lowercase because casefolding runs first.
_HOMOGLYPHS: dict[str, str] = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "з": "3", "и": "u", "к": "k", "м": "m", "н": "h",
    "о": "o", "п": "n", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ь": "b", "і": "i",
    "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w",
    # Greek
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ς": "s", "γ": "y", "μ": "u",
    # curly apostrophes, so "you’re" is "you're"
    "\u2019": "'", "\u2018": "'", "ʼ": "'",
    # Latin letters without a decomposition, so stripping marks misses them
    "ɡ": "g", "ı": "i", "ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ŀ": "l", "ƒ": "f",
}  # fmt: skip

# Leetspeak, applied only inside tokens that also contain a letter (see _leet_token).
_LEET = str.maketrans({
    "4": "a", "@": "a", "3": "e", "1": "i", "!": "i", "|": "i", "0": "o", "$": "s", "5": "s",
    "7": "t", "+": "t", "8": "b", "9": "g",
})  # fmt: skip
_LEET_CHARS = "0-9@$!|+"
# A token that contains at least one leet character. The look-behind anchors it at a token
# start and the possessive quantifiers stop backtracking, so a long token costs O(length).
_LEET_TOKEN = re.compile(rf"(?<![a-z{_LEET_CHARS}])[a-z]*+[{_LEET_CHARS}][a-z{_LEET_CHARS}]*+")
_HAS_LETTER = re.compile(r"[a-z]")
_TRAILING_PUNCT = "!|"  # "hello!" is punctuation, not "helloi"

# Single glyphs split by one separator ("f.u.c.k", "s h i t", "f. u. c. k"), three or more.
# Three, so "a b test" and "e.g." stay as they are. A "!" right after the last glyph is
# punctuation, not a glued glyph: "f.u.c.k!" must fold like "f.u.c.k." (found by a
# property test; the chain used to be rejected and it folded to "fuc.k!").
_GLYPH = "a-z0-9@$!"
_AFTER = "a-z0-9@$"  # what may not follow the last glyph
_COLLAPSE = re.compile(
    rf"(?<![{_GLYPH}])[{_GLYPH}](?:(?:[.\-_*/|~+:,] ?| )[{_GLYPH}]){{2,}}(?![{_AFTER}])"
)
_GLYPH_SET = frozenset("abcdefghijklmnopqrstuvwxyz0123456789@$!")

_RUN = re.compile(r"([a-z])\1{2,}")
_DOUBLE = re.compile(r"([a-z])\1+")  # squeeze=True: doubles shortened too

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True, slots=True)
class Normalized:
    """Folded text plus, for each folded character, the original range ``[start, end)`` it
    stands for (``offsets[i]``, ``ends[i]``). A shortened run ``uuuu`` -> ``u`` stands for the
    whole run, so a masked word never leaves a tail of repeated letters behind."""

    text: str
    offsets: Sequence[int]
    ends: Sequence[int]
    source_len: int
    collapsed_runs: bool = False  # a 3+ run was shortened; see Lexicon.find for why it matters
    # Runs of separated single glyphs ("b i t c h", "f.u.c.k") joined into one folded word,
    # as [start, end) in the folded text; Lexicon.find segments them ("a b i t c h").
    spaced: tuple[tuple[int, int], ...] = ()

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map the folded span ``[start, end)`` to the original span it covers."""
        if not 0 <= start < end <= len(self.text):
            raise InputError(
                f"Folded span [{start}, {end}) is outside the folded text of length "
                f"{len(self.text)}; pass a non-empty span inside it."
            )
        return self.offsets[start], self.ends[end - 1]


@lru_cache(maxsize=8192)
def _fold_char(c: str) -> str:
    """Fold one non-ASCII character. Cached and bounded: arbitrary Unicode cannot grow it."""
    if unicodedata.category(c) == "Cf":  # zero-width, soft hyphen, bidi controls, BOM
        return ""
    s = unicodedata.normalize("NFKC", c).casefold()
    decomposed = unicodedata.normalize("NFD", s)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    # Only recompose when a mark was removed: NFD would otherwise split Hangul into jamo.
    if stripped != decomposed:
        s = unicodedata.normalize("NFC", stripped)
    return "".join(_HOMOGLYPHS.get(ch, ch) for ch in s)


def _fold_chars(text: str) -> tuple[str, Sequence[int], Sequence[int]]:
    n = len(text)
    if text.isascii():  # the common case: casefold == lower, one char in, one char out
        return text.lower(), range(n), range(1, n + 1)
    table: dict[int, str] = {}
    odd: dict[str, int] = {}  # characters that fold to other than exactly one character
    for c in set(text):
        if c.isascii():
            continue
        folded = _fold_char(c)
        table[ord(c)] = folded
        if len(folded) != 1:
            odd[c] = len(folded)
    folded_text = text.translate(table).translate(_ASCII_LOWER)
    if not odd:
        return folded_text, range(n), range(1, n + 1)
    starts: list[int] = []
    ends: list[int] = []
    for i, c in enumerate(text):
        k = odd.get(c, 1)
        if k:
            starts.extend([i] * k)
            ends.extend([i + 1] * k)
    return folded_text, starts, ends


def _collapse_separators(
    text: str, starts: Sequence[int], ends: Sequence[int]
) -> tuple[str, Sequence[int], Sequence[int], list[tuple[int, int]]]:
    """Join separated single glyphs; also return each joined run's original span."""
    matches = list(_COLLAPSE.finditer(text))
    if not matches:
        return text, starts, ends, []
    out: list[str] = []
    new_starts: list[int] = []
    new_ends: list[int] = []
    runs: list[tuple[int, int]] = []
    pos = 0
    for m in matches:
        a, b = m.span()
        out.append(text[pos:a])
        new_starts.extend(starts[pos:a])
        new_ends.extend(ends[pos:a])
        glyphs = [i for i in range(a, b) if text[i] in _GLYPH_SET]
        for i in glyphs:
            out.append(text[i])
            new_starts.append(starts[i])
            new_ends.append(ends[i])
        runs.append((starts[glyphs[0]], ends[glyphs[-1]]))
        pos = b
    out.append(text[pos:])
    new_starts.extend(starts[pos:])
    new_ends.extend(ends[pos:])
    return "".join(out), new_starts, new_ends, runs


def _leet_token(m: re.Match[str]) -> str:
    token = m.group()
    if not _HAS_LETTER.search(token):  # "$40", "2024", "1000!": numbers, not words
        return token
    core = token.rstrip(_TRAILING_PUNCT)
    return core.translate(_LEET) + token[len(core) :]


def _collapse_runs(
    text: str, starts: Sequence[int], ends: Sequence[int], keep: int, squeeze: bool = False
) -> tuple[str, Sequence[int], Sequence[int], bool]:
    matches = list((_DOUBLE if squeeze else _RUN).finditer(text))
    if not matches:
        return text, starts, ends, False
    out: list[str] = []
    new_starts: list[int] = []
    new_ends: list[int] = []
    pos = 0
    for m in matches:
        a, b = m.span()
        out.append(text[pos:a])
        out.append(text[a] * keep)
        new_starts.extend(starts[pos : a + keep])
        new_ends.extend(ends[pos : a + keep - 1])
        new_ends.append(ends[b - 1])  # the last kept letter stands for the rest of the run
        pos = b
    out.append(text[pos:])
    new_starts.extend(starts[pos:])
    new_ends.extend(ends[pos:])
    return "".join(out), new_starts, new_ends, True


def normalize(text: str, *, max_repeat: int = 1, squeeze: bool = False) -> Normalized:
    """Fold ``text`` for matching (see the module docstring) and keep the offset map.

    ``max_repeat`` is how many letters a run of three or more shrinks to: 1 by default
    (``fuuuck`` -> ``fuck``); 2 recovers words with a real double (``asssss`` -> ``ass``).
    ``squeeze`` shortens every run, doubles included, to one letter (``asssshooole`` ->
    ``ashole``): the lexicon's last resort for a word with a real double whose letters are
    also stretched elsewhere, which neither setting of ``max_repeat`` recovers.
    """
    if not isinstance(text, str):
        raise InputError(f"normalize() takes a str, got {type(text).__name__}; decode it first.")
    if max_repeat not in (1, 2):
        raise InputError(f"max_repeat has value {max_repeat!r}; use 1 or 2.")
    folded, starts, ends = _fold_chars(text)
    folded, starts, ends, joined = _collapse_separators(folded, starts, ends)
    folded = _LEET_TOKEN.sub(_leet_token, folded)  # one char for one char: offsets unchanged
    keep = 1 if squeeze else max_repeat
    folded, starts, ends, runs = _collapse_runs(folded, starts, ends, keep, squeeze)
    if not isinstance(starts, range):
        starts, ends = tuple(starts), tuple(ends)
    spaced = tuple(
        (bisect_left(starts, o_start), bisect_left(starts, o_end)) for o_start, o_end in joined
    )
    return Normalized(folded, starts, ends, len(text), runs, spaced)


# --- clean_for_model -------------------------------------------------------------------------

_ZERO_WIDTH = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
# Lone surrogates (undecodable bytes from argv, "\ud800" JSON escapes) make the tokenizer
# raise, which degraded the whole verdict; the model reads U+FFFD in their place.
_SURROGATE = re.compile("[\ud800-\udfff]")
_RT = re.compile(r"^\s*RT\b\s*(?:@\w+\s*:?\s*)?")
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)
_HANDLE = re.compile(r"(?<![\w@])@\w+")
_HASHTAG = re.compile(r"(?<![\w#])#([^\W\d_]\w*)")  # "#refund" -> "refund"; "#12345" stays
_SPACE = re.compile(r"\s+")
# Handles that only address the message ("@united my bag...", "... thanks @jo @al"):
# dropped, because which platform a text came from must not decide its class.
_LEADING_HANDLES = re.compile(r"^[\s.]*(?:@\w+[\s,:]*)+")
_TRAILING_HANDLES = re.compile(r"(?:\s+@\w+)+[\s.!]*$")


def emoji_words(text: str) -> str:
    """Each emoji as its English name ("🙏" -> " folded hands "); a run of the same emoji
    counts once ("🆘🆘🆘" -> " SOS button ").

    The base encoder's vocabulary has no emoji: the tokenizer reads every one as ``[UNK]``,
    so a smiley and a hate emoji were the same token to the model, and since most emoji in
    the training data are in Hatemoji's abusive rows, ``[UNK]`` had come to mean abuse
    (model v7: one friendly emoji appended to neutral and frustrated validation messages
    turned 88 of 1,706 of them abusive). Names come from the ``emoji`` package's CLDR data.
    Used by ``filterd data build`` (its default since the shipped model, which was trained
    on emoji names; ``--raw-emoji`` is v7's build) and by serving such a model.
    """
    if text.isascii():
        return text
    import emoji

    found = emoji.emoji_list(text)
    if not found:
        return text
    out: list[str] = []
    pos = 0
    last: str | None = None
    for hit in found:
        start, end, char = hit["match_start"], hit["match_end"], hit["emoji"]
        between = text[pos:start]
        if char == last and not between.strip():
            pos = end  # a repeat of the emoji just named
            continue
        out.append(between)
        name = emoji.EMOJI_DATA.get(char, {}).get("en", "")
        out.append(" " + name.strip(":").replace("_", " ") + " " if name else " ")
        pos, last = end, char
    out.append(text[pos:])
    return "".join(out)


_CHANNEL_TOKENS = re.compile(r"(?<![\w@])@user\b|\bhttp\b")


def drop_channel_tokens(text: str) -> str:
    """Take out the ``@user`` and ``http`` that :func:`clean_for_model` leaves for a handle
    inside a message and a URL. In the training data they come almost only from tweets
    labelled neutral or abusive (``@user`` in 1.5% of neutral and 2.3% of abusive
    training rows, 5 of 14,096 frustrated), so a model learns them as "not a complaint";
    a model trained with ``drop_handles`` (model card, "v16") never sees them."""
    if "@user" not in text and "http" not in text:
        return text
    return _SPACE.sub(" ", _CHANNEL_TOKENS.sub(" ", text)).strip()


def clean_for_model(text: str, *, emoji_as_words: bool = False,
                    drop_handles: bool = False) -> str:
    """Neutralise channel artifacts so the classifier sees the words, not the platform.

    HTML entities unescaped, lone surrogates -> U+FFFD, zero-width characters removed,
    with ``emoji_as_words`` emoji as their names (:func:`emoji_words`; only for a model
    whose meta file asks for it, trained on a named build), a leading
    ``RT``/``RT @x:`` dropped, URLs -> ``http``, addressing handles at the start or end
    dropped, other ``@handles`` -> ``@user``, ``#tag`` -> ``tag``, whitespace collapsed;
    with ``drop_handles`` (only for a model whose meta file asks for it) the ``@user`` and
    ``http`` left by the handles and URLs are dropped too (:func:`drop_channel_tokens`).
    Used for training and serving alike, so it is deterministic and cheap; it is
    idempotent.
    """
    if not isinstance(text, str):
        raise InputError(
            f"clean_for_model() takes a str, got {type(text).__name__}; decode it first."
        )
    if "&" in text:
        text = html.unescape(text)
    if not text.isascii():
        text = _SURROGATE.sub("\ufffd", text)
        if emoji_as_words:
            text = emoji_words(text)
    text = _ZERO_WIDTH.sub("", text)
    text = _RT.sub("", text, count=1)
    text = _URL.sub("http", text)
    text = _LEADING_HANDLES.sub("", text, count=1)
    text = _TRAILING_HANDLES.sub("", text, count=1)
    text = _HANDLE.sub("@user", text)
    text = _HASHTAG.sub(r"\1", text)
    text = _SPACE.sub(" ", text).strip()
    return drop_channel_tokens(text) if drop_handles else text
