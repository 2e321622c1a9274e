"""A deterministic stand-in classifier for tests and for the model-failure paths.

``KeywordClassifier`` scores from a few keywords so tests of the decision rules,
routing and API do not depend on the trained model's exact numbers.
``FailingClassifier`` raises, to exercise the degraded path; ``FlakyClassifier`` fails while
told to; ``BlockingClassifier`` hangs until released, like a stuck model (time budget,
circuit breaker and overload tests).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

from filterd.errors import ModelError
from filterd.types import MODEL_FLAGS, ModelOutput

_ABUSE = re.compile(r"\b(idiot|moron|stupid|hate you|f\w*ck you|kill you|bitch)\b", re.I)
_FRUSTRATION = re.compile(r"\b(still|again|ridiculous|waiting|hours|unacceptable|worst)\b", re.I)


class KeywordClassifier:
    """Abusive on insult keywords, frustrated on complaint keywords, else neutral."""

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        self.calls += 1
        out = []
        for t in texts:
            if _ABUSE.search(t):
                scores, inten = {"neutral": 0.05, "frustrated": 0.1, "abusive": 0.85}, 0.8
            elif _FRUSTRATION.search(t):
                scores, inten = {"neutral": 0.1, "frustrated": 0.8, "abusive": 0.1}, 0.55
            else:
                scores, inten = {"neutral": 0.9, "frustrated": 0.07, "abusive": 0.03}, 0.05
            flags = dict.fromkeys(MODEL_FLAGS, 0.01)
            if scores["abusive"] > 0.5:
                flags["insult"] = 0.9
            out.append(ModelOutput(scores=scores, flag_scores=flags, intensity=inten))
        return out


class FailingClassifier:
    """Always fails, as a crashed or timed-out model would."""

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        self.calls += 1
        raise ModelError("model unavailable (FailingClassifier)")


class FlakyClassifier(KeywordClassifier):
    """Raises while ``failing`` is true, else scores like :class:`KeywordClassifier`."""

    def __init__(self, failing: bool = True) -> None:
        super().__init__()
        self.failing = failing

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        if self.failing:
            self.calls += 1
            raise RuntimeError("model crashed (FlakyClassifier)")
        return super().predict(texts)


class BlockingClassifier(KeywordClassifier):
    """Blocks every call until :meth:`release` (a hung model), then scores like
    :class:`KeywordClassifier`. ``started`` counts calls that reached the model."""

    def __init__(self) -> None:
        super().__init__()
        self.started = 0
        self._gate = threading.Event()
        self._lock = threading.Lock()

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        with self._lock:
            self.started += 1
        self._gate.wait()
        return super().predict(texts)

    def release(self) -> None:
        self._gate.set()
