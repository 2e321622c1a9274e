"""The classifier protocol: one verb."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from filterd.types import ModelOutput


class Classifier(Protocol):
    """Scores texts. Implementations load once and are safe to call from one thread."""

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        """One ``ModelOutput`` per text, in order."""
        ...
