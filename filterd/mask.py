"""Apply spans to the original text once, end to start, so every offset stays valid.

This is the last stage of the flow; detectors only report spans. One operator per rewrite:

- ``stars``: same length, all ``*`` ("fucking" -> ``*******``);
- ``first_letter``: first character kept, the rest ``*`` (``f******``);
- ``tag``: the kind in brackets (``[profanity]``, ``[insult]``).

PII (kind ``pii:<type>``) becomes ``[<type>]`` (``pii:phone`` -> ``[phone]``) unless
``pii_style="stars"``. Spans of kind ``threat`` and ``self_harm`` are never masked: they mark
a message for routing (a supervisor, a crisis line), and hiding the words would hide from the
human exactly what they are called in to read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

from filterd.errors import ConfigError, InputError
from filterd.types import Span

__all__ = ["NOT_MASKED", "MaskStyle", "PiiStyle", "apply_masks"]

MaskStyle = Literal["stars", "first_letter", "tag"]
PiiStyle = Literal["tag", "stars"]

NOT_MASKED: frozenset[str] = frozenset({"threat", "self_harm"})

# When spans overlap or touch they become one region with one kind. PII wins outright: the
# region must read as redacted data. Otherwise the widest span wins, then the graver kind.
_GRAVITY = {"profanity": 1, "insult": 2, "sexual_harassment": 3, "identity_attack": 4}


def _is_pii(kind: str) -> bool:
    return kind == "pii" or kind.startswith("pii:")


def _rank(span: Span) -> tuple[bool, int, int]:
    return (_is_pii(span.kind), span.end - span.start, _GRAVITY.get(span.kind, 0))


def _merge(spans: Sequence[Span], length: int) -> list[tuple[int, int, str]]:
    """Overlapping or adjacent spans -> disjoint ``(start, end, kind)`` regions, in order."""
    todo: list[Span] = []
    for s in spans:
        if not (0 <= s.start <= s.end <= length):
            raise InputError(
                f"Span [{s.start}, {s.end}) of kind {s.kind!r} is outside the text of length "
                f"{length}; spans must index the original text."
            )
        if s.start < s.end and s.kind not in NOT_MASKED:
            todo.append(s)
    todo.sort(key=lambda s: (s.start, -s.end))
    regions: list[tuple[int, int, str]] = []
    if not todo:
        return regions
    start, end, best = todo[0].start, todo[0].end, todo[0]
    for s in todo[1:]:
        if s.start <= end:  # overlapping or adjacent: one region
            end = max(end, s.end)
            if _rank(s) > _rank(best):
                best = s
        else:
            regions.append((start, end, best.kind))
            start, end, best = s.start, s.end, s
    regions.append((start, end, best.kind))
    return regions


def _render(original: str, kind: str, style: MaskStyle, pii_style: PiiStyle) -> str:
    if _is_pii(kind):
        if pii_style == "stars":
            return "*" * len(original)
        return f"[{kind.partition(':')[2] or 'pii'}]"
    if style == "stars":
        return "*" * len(original)
    if style == "first_letter":
        first = original[0] if original[0].isalnum() else "*"
        return first + "*" * (len(original) - 1)
    return f"[{kind}]"


def apply_masks(
    text: str,
    spans: Sequence[Span],
    style: MaskStyle = "stars",
    pii_style: PiiStyle = "tag",
) -> str:
    """Return ``text`` with every span masked once (see the module docstring for styles).

    Spans index the original ``text``; overlapping or adjacent ones are merged first, PII
    winning, else the wider span. ``threat`` and ``self_harm`` spans are left visible.
    With ``style="stars"`` and ``pii_style="stars"`` the length never changes.
    """
    if style not in get_args(MaskStyle):
        raise ConfigError(f"Mask style has value {style!r}. Use one of {get_args(MaskStyle)}.")
    if pii_style not in get_args(PiiStyle):
        raise ConfigError(f"PII style has value {pii_style!r}. Use one of {get_args(PiiStyle)}.")
    if not isinstance(text, str):
        raise InputError(f"apply_masks() takes a str, got {type(text).__name__}.")
    regions = _merge(spans, len(text))
    if not regions:
        return text
    pieces: list[str] = []
    tail = len(text)
    for start, end, kind in reversed(regions):  # end to start: earlier offsets stay valid
        pieces.append(text[end:tail])
        pieces.append(_render(text[start:end], kind, style, pii_style))
        tail = start
    pieces.append(text[:tail])
    return "".join(reversed(pieces))
