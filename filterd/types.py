"""The data that flows through filterd: frozen dataclasses, no logic.

A message flows one way: ``normalize -> detect spans -> classify -> route -> mask``.
Each stage adds spans and scores; none rewrites the text. Offsets always index the
*original* text, ``[start, end)`` in Python string positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Category = Literal["neutral", "frustrated", "abusive"]
CATEGORIES: tuple[Category, ...] = ("neutral", "frustrated", "abusive")

# Every flag of TAXONOMY.md, in the order the verdict reports them.
FLAGS: tuple[str, ...] = (
    "threat",
    "self_harm",
    "insult",
    "profanity",
    "identity_attack",
    "sexual_harassment",
    "pii",
)
# The flags the transformer predicts (profanity and pii come from the detectors).
MODEL_FLAGS: tuple[str, ...] = (
    "threat",
    "self_harm",
    "insult",
    "identity_attack",
    "sexual_harassment",
)


@dataclass(frozen=True, slots=True)
class Span:
    """A detected region of the original text.

    ``kind`` is a flag name (``"profanity"``, ``"insult"``, ``"identity_attack"``,
    ``"sexual_harassment"``, ``"threat"``, ``"self_harm"``) or ``"pii:<type>"``
    (``"pii:phone"``, ``"pii:email"``, ``"pii:card"``, ...).
    ``source`` names the detector that found it; ``score`` is its confidence.
    """

    start: int
    end: int
    kind: str
    score: float = 1.0
    source: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "kind": self.kind}


@dataclass(frozen=True, slots=True)
class Route:
    queue: str
    priority: int
    actions: tuple[str, ...] = ()
    reason: str = ""
    # Text for the chat platform to show the customer (the warning, crisis resources).
    customer_message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "queue": self.queue,
            "priority": self.priority,
            "actions": list(self.actions),
            "reason": self.reason,
        }
        if self.customer_message:
            d["customer_message"] = self.customer_message
        return d


@dataclass(frozen=True, slots=True)
class ModelOutput:
    """What the classifier says about one text (probabilities in [0, 1])."""

    scores: dict[str, float]  # category -> probability, sums to 1
    flag_scores: dict[str, float]  # MODEL_FLAGS -> probability
    intensity: float


@dataclass(frozen=True, slots=True)
class Verdict:
    """The stable output of INTERFACE.md. Field names are a contract: extend, never rename."""

    id: str | None
    category: Category
    scores: dict[str, float]
    flags: tuple[str, ...]
    flag_scores: dict[str, float]
    intensity: float
    level: int
    text_masked: str
    spans: tuple[Span, ...]
    route: Route
    degraded: bool = False

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "category": self.category,
            "scores": {k: round(v, 4) for k, v in self.scores.items()},
            "flags": list(self.flags),
            "flag_scores": {k: round(v, 4) for k, v in self.flag_scores.items()},
            "intensity": round(self.intensity, 4),
            "level": self.level,
            "text_masked": self.text_masked,
            "spans": [s.as_dict() for s in self.spans],
            "route": self.route.as_dict(),
        }
        if self.degraded:
            d["degraded"] = True
        return d
