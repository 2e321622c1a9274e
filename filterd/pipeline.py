"""One message, one way: validate -> detect spans -> classify -> decide -> route -> mask.

:class:`Filter` is the public entry point (``from filterd import Filter``). Stages add
spans and scores; none rewrites the text. Masks are applied once, at the end.
If the model fails, runs past its time budget or is switched off by its circuit breaker
(:mod:`filterd.classify.guard`), the message is still judged, masked and routed from the
detectors alone and the verdict says ``degraded``; ``FILTERD_DEGRADED_POLICY=closed`` sends
such messages to a review queue.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from filterd.classify.base import Classifier
from filterd.classify.guard import CircuitOpenError, GuardedClassifier
from filterd.config import Settings, load_settings
from filterd.detect.lexicon import Lexicon
from filterd.detect.phrases import PhraseDetector
from filterd.detect.pii import PiiDetector
from filterd.errors import FilterdError, InputError, UnavailableError
from filterd.mask import apply_masks
from filterd.normalize import normalize
from filterd.route.conversation import ConversationState
from filterd.route.policy import Policy
from filterd.types import CATEGORIES, FLAGS, MODEL_FLAGS, Category, ModelOutput, Span, Verdict

log = logging.getLogger("filterd.pipeline")

# Span kinds that are words to hide from the agent (threat/self_harm phrases are tags).
_MASKED_KINDS = {"profanity", "insult", "identity_attack", "sexual_harassment"}
# Level 0..4 from intensity, like the graded levels of moderation tools.
_LEVEL_EDGES = (0.2, 0.4, 0.6, 0.8)
_URGENT_QUEUES = frozenset({"crisis", "supervisor", "abuse_review"})


def level_of(intensity: float) -> int:
    return sum(intensity >= edge for edge in _LEVEL_EDGES)


@dataclass(frozen=True, slots=True)
class Judged:
    """A verdict plus the conversation state it left behind."""

    verdict: Verdict
    state: ConversationState


def validate_text(text: object, max_chars: int) -> str:
    """Reject what cannot be judged, with a message that says what was wrong."""
    if not isinstance(text, str):
        raise InputError(f"'text' must be a string, got {type(text).__name__}.")
    if len(text) > max_chars:
        raise InputError(
            f"'text' is {len(text):,} characters; the limit is {max_chars:,} "
            "(FILTERD_MAX_TEXT_CHARS)."
        )
    if not text.strip() or all(
        unicodedata.category(c) in ("Cc", "Cf", "Zs", "Zl", "Zp") for c in text
    ):
        raise InputError("'text' is empty or holds only whitespace/control characters.")
    return text


class Filter:
    """Judges customer messages: ``Filter().check("text")`` -> :class:`Verdict`.

    Loads the model, lexicon and detectors once; reuse one instance.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        classifier: Classifier | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        s = self.settings
        self.policy = policy or Policy.load(s.policy_file)
        self.lexicon = Lexicon(allow=s.allow_words)
        self.pii = PiiDetector(default_region=s.pii_region)
        self.phrases = PhraseDetector()
        if classifier is None:
            from filterd.classify.onnx import OnnxClassifier

            classifier = OnnxClassifier(s.model_dir, threads=s.model_threads,
                                        parallel=s.model_parallel,
                                        emoji_as_words=s.model_emoji_as_words)
        # What the pipeline calls: the model with a time budget and a circuit breaker.
        self.guard = GuardedClassifier.from_settings(classifier, s)

    @property
    def classifier(self) -> Classifier:
        """The model inside the guard. Assigning one (a micro-batcher around the model)
        replaces what the guard wraps; the guard stays."""
        return self.guard.inner

    @classifier.setter
    def classifier(self, classifier: Classifier) -> None:
        self.guard.inner = classifier

    # ------------------------------------------------------------------ public API

    def check(
        self, text: str, id: str | None = None, state: ConversationState | None = None
    ) -> Verdict:
        """Judge one message (optionally inside a conversation) and return the verdict."""
        return self.judge([text], [id], [state or ConversationState()])[0].verdict

    def check_many(self, texts: Sequence[str], ids: Sequence[str | None] | None = None) -> list[
        Verdict
    ]:
        """Judge independent messages in one model call."""
        ids = list(ids) if ids is not None else [None] * len(texts)
        return [j.verdict for j in self.judge(texts, ids, [ConversationState()] * len(texts))]

    def check_conversation(
        self, texts: Iterable[str], ids: Iterable[str | None] | None = None
    ) -> list[Verdict]:
        """Judge the customer messages of one conversation, in order."""
        state = ConversationState()
        out = []
        id_list = list(ids) if ids is not None else None
        for n, text in enumerate(texts):
            j = self.judge([text], [id_list[n] if id_list else None], [state])[0]
            state = j.state
            out.append(j.verdict)
        return out

    def judge(
        self,
        texts: Sequence[str],
        ids: Sequence[str | None],
        states: Sequence[ConversationState],
    ) -> list[Judged]:
        """The pipeline for a batch: each text with the conversation state before it."""
        return self.judge_timed(texts, ids, states)[0]

    def judge_timed(
        self,
        texts: Sequence[str],
        ids: Sequence[str | None],
        states: Sequence[ConversationState],
    ) -> tuple[list[Judged], dict[str, float]]:
        """:meth:`judge`, plus this call's seconds per stage (detect, classify, decide).

        Timings are returned, not kept on the instance, so concurrent callers of one
        shared ``Filter`` need no lock to pair them with their call.
        """
        clean = [validate_text(t, self.settings.max_text_chars) for t in texts]
        t0 = time.perf_counter()
        spans = [self._detect(t) for t in clean]
        t1 = time.perf_counter()
        outputs, degraded = self._classify(
            [model_text(t, sp) for t, sp in zip(clean, spans, strict=True)]
        )
        t2 = time.perf_counter()
        judged = [
            self._decide(t, i, st, sp, out, degraded)
            for t, i, st, sp, out in zip(clean, ids, states, spans, outputs, strict=True)
        ]
        t3 = time.perf_counter()
        return judged, {"detect": t1 - t0, "classify": t2 - t1, "decide": t3 - t2}

    def redact(self, text: str) -> str:
        """``text`` with offensive words masked and personal data redacted, no model call.

        For free text that is not a customer message but may quote one, such as an agent's
        feedback note: it is stored in this form only.
        """
        return self._mask(text, self._detect(text))[1]

    def _mask(self, text: str, spans: list[Span]) -> tuple[list[Span], str]:
        """The spans to hide, in order, and ``text`` with them masked.

        Phrase spans (threat, self-harm, harassment phrases) are tags for routing, not
        words to hide: masking a whole sentence would hide what the agent must act on.
        """
        masked = sorted(
            (s for s in spans
             if s.source != "phrases" and (s.kind in _MASKED_KINDS or s.kind.startswith("pii:"))),
            key=lambda s: (s.start, s.end),
        )
        return masked, apply_masks(text, masked, style=self.settings.mask_style,
                                   pii_style=self.settings.pii_style)

    # ------------------------------------------------------------------ stages

    def _detect(self, text: str) -> list[Span]:
        return [*self.lexicon.find(text), *self.pii.find(text), *self.phrases.find(text)]

    def _classify(self, texts: list[str]) -> tuple[list[ModelOutput | None], bool]:
        """Model outputs, or ``None`` for each text and ``degraded=True`` when the model
        failed, ran out of time or is switched off by its circuit breaker. Overload (a full
        model queue: :class:`~filterd.errors.UnavailableError`) is raised, not degraded."""
        cut = self.settings.model_max_chars
        try:
            outs = self.guard.predict([t[:cut] for t in texts])
            return list(outs), False
        except UnavailableError:
            raise  # the model's queue is full: overload, answered 503 + Retry-After
        except CircuitOpenError:
            log.debug("model circuit open; %d verdict(s) degraded to detectors", len(texts))
        except FilterdError as e:
            log.error("classifier failed (%s); verdicts degraded to detectors", type(e).__name__)
        except Exception as e:  # a broken model must never lose a message
            # Type and stack only: the exception's message may quote the text (issue 6;
            # tests/test_log_privacy.py).
            log.error("classifier crashed (%s); verdicts degraded\n%s", type(e).__name__,
                      "".join(traceback.format_tb(e.__traceback__)))
        return [None] * len(texts), True

    def _calm_category(self, scores: dict[str, float]) -> Category:
        ratio = self.policy.thresholds.frustrated_ratio
        return "frustrated" if scores["frustrated"] >= ratio * scores["neutral"] else "neutral"

    def _decide(
        self,
        text: str,
        id: str | None,
        state: ConversationState,
        spans: list[Span],
        out: ModelOutput | None,
        degraded: bool,
    ) -> Judged:
        th = self.policy.thresholds
        kinds = {s.kind for s in spans}
        phrase = {k: max((s.score for s in spans if s.kind == k and s.source == "phrases"),
                         default=0.0)
                  for k in ("threat", "self_harm", "sexual_harassment")}
        if out is None:
            out = _fallback_output(kinds)
        fs = {f: out.flag_scores.get(f, 0.0) for f in MODEL_FLAGS}
        fs["threat"] = max(fs["threat"], phrase["threat"])
        fs["self_harm"] = max(fs["self_harm"], phrase["self_harm"])
        fs["sexual_harassment"] = max(fs["sexual_harassment"], phrase["sexual_harassment"])
        fs["profanity"] = 1.0 if "profanity" in kinds else 0.0
        fs["pii"] = 1.0 if any(k.startswith("pii:") for k in kinds) else 0.0

        scores = dict(out.scores)
        category: Category = (
            "abusive" if scores["abusive"] >= th.abusive else self._calm_category(scores)
        )

        flags: set[str] = set()
        if fs["self_harm"] >= th.self_harm:
            flags.add("self_harm")
        self_directed = phrase["self_harm"] >= th.self_harm and phrase["threat"] < th.threat
        if fs["threat"] >= th.threat and not self_directed:
            # The model's threat head fires on violent words whoever they aim at ("I'll
            # kill myself"). When a self-harm phrase explains them and no threat phrase
            # aims them at someone else, it is a crisis, not a threat.
            flags.add("threat")
        for f in ("insult", "identity_attack", "sexual_harassment"):
            # A lexicon hit inside an abusive message confirms the flag; a lexicon hit
            # alone (a quoted or reclaimed word) is masked but does not fire it.
            if fs[f] >= th.flag or (f in kinds and category == "abusive"):
                flags.add(f)
        if fs["profanity"]:
            flags.add("profanity")
        if fs["pii"]:
            flags.add("pii")

        aimed = flags & {"insult", "identity_attack", "sexual_harassment"}
        if "threat" in flags or phrase["sexual_harassment"] >= th.flag:
            # TAXONOMY: threats of violence are abusive; sexual harassment counts as abuse.
            category = "abusive"
        elif "self_harm" in flags and category == "abusive" and not aimed:
            # Self-harm is never treated as abuse.
            category = self._calm_category(scores)
        if category != "abusive":
            # Flags that "count as abuse" only fire on abusive messages.
            flags -= {"insult", "identity_attack", "sexual_harassment"}

        intensity = out.intensity
        if flags & {"threat", "self_harm"}:
            intensity = max(intensity, 0.85)
        elif category == "abusive":
            intensity = max(intensity, 0.6)
        elif category == "neutral":
            intensity = min(intensity, 0.3)

        masked_spans, text_masked = self._mask(text, spans)
        new_state = state.after(intensity, category == "abusive", self.policy.frustration.alpha)
        route = self.policy.route(category, flags, new_state, masked=bool(masked_spans))
        if degraded and self.settings.degraded_policy == "closed":
            route = self.policy.degraded_route(route)  # fail-closed: a human reads it
        new_state = new_state.with_escalation(route.queue, _URGENT_QUEUES)
        verdict = Verdict(
            id=id,
            category=category,
            scores={c: scores[c] for c in CATEGORIES},
            flags=tuple(f for f in FLAGS if f in flags),
            flag_scores={f: fs[f] for f in FLAGS},
            intensity=intensity,
            level=level_of(intensity),
            text_masked=text_masked,
            spans=tuple(masked_spans),
            route=route,
            degraded=degraded,
        )
        return Judged(verdict, new_state)


# Leet folds "4" to "a" ("f4ck" -> "fack"); the model knows the word as it is spelled.
_CANONICAL = re.compile(r"\bfa+ck")


def model_text(text: str, spans: Sequence[Span]) -> str:
    """What the classifier reads: PII as placeholders, offensive words de-obfuscated.

    - PII spans become tags (``[phone]``, ``[email]``): the model never needs a card's
      digits to judge tone, and numbers would otherwise tilt it (complaint narratives are
      full of them).
    - Lexicon spans become their folded spelling ("1d10t" -> "idiot", "f u c k" -> "fuck",
      Cyrillic look-alikes -> Latin), so obfuscated abuse reads like its plain form.

    Training uses the same function, so the model sees what serving gives it.
    """
    edits: list[tuple[int, int, str]] = []
    taken: list[tuple[int, int]] = []
    pii = sorted((s for s in spans if s.kind.startswith("pii:")), key=lambda s: s.start)
    lex = sorted((s for s in spans if s.source == "lexicon"), key=lambda s: (s.start, -s.end))
    for s in [*pii, *lex]:  # PII first: it wins any overlap
        if any(s.start < e and b < s.end for b, e in taken):
            continue
        taken.append((s.start, s.end))
        if s.kind.startswith("pii:"):
            edits.append((s.start, s.end, f"[{s.kind[4:]}]"))
        else:
            word = text[s.start : s.end]
            folded = _CANONICAL.sub("fuck", normalize(word).text)
            if folded != word.lower():
                edits.append((s.start, s.end, folded))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _fallback_output(kinds: set[str]) -> ModelOutput:
    """Scores from the detectors alone, used when the model is unavailable."""
    aimed = bool(kinds & {"insult", "identity_attack", "sexual_harassment"})
    if aimed:
        scores = {"neutral": 0.1, "frustrated": 0.3, "abusive": 0.6}
    elif "profanity" in kinds:
        scores = {"neutral": 0.2, "frustrated": 0.6, "abusive": 0.2}
    else:
        scores = {"neutral": 0.6, "frustrated": 0.3, "abusive": 0.1}
    flag_scores = {f: (0.6 if f in kinds else 0.0) for f in MODEL_FLAGS}
    return ModelOutput(scores=scores, flag_scores=flag_scores, intensity=0.6 if aimed else 0.3)
