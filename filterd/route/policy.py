"""The routing policy: a YAML file, validated at start-up, and the decision it drives.

The decision is a table read top to bottom; the first row that matches wins:

=====================  ==============  ==========================================
situation              queue           actions
=====================  ==============  ==========================================
self_harm              crisis          alert_crisis_team, show_crisis_resources
                                       (+ alert_supervisor if also a threat)
threat                 supervisor      alert_supervisor, mask, shield_agent
abusive, strikes >= N  abuse_review    mask, warn_customer, shield_agent
abusive                (current)       mask, warn_customer
frustrated / EWMA      priority        (mask if anything was masked)
neutral                standard
=====================  ==============  ==========================================

With ``FILTERD_DEGRADED_POLICY=closed``, a message judged without the model (degraded) that
the table sends to ``priority`` or ``standard`` goes to the ``degraded`` queue instead
(:meth:`Policy.degraded_route`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from filterd.errors import ConfigError
from filterd.route.conversation import ConversationState
from filterd.types import Route

DEFAULT_POLICY_FILE = Path(__file__).with_name("default_policy.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Thresholds(_Strict):
    abusive: float = Field(0.5, ge=0, le=1)
    # frustrated wins over neutral when P(frustrated) >= frustrated_ratio * P(neutral).
    # 1.0 is the plain argmax; lower values send more customers to the priority queue.
    frustrated_ratio: float = Field(1.0, gt=0, le=10)
    flag: float = Field(0.5, ge=0, le=1)
    threat: float = Field(0.5, ge=0, le=1)
    self_harm: float = Field(0.5, ge=0, le=1)


class Frustration(_Strict):
    alpha: float = Field(0.4, gt=0, le=1)
    priority_at: float = Field(0.35, ge=0, le=1)
    min_messages: int = Field(2, ge=1)


class Abuse(_Strict):
    strikes_to_review: int = Field(2, ge=1)


class Queue(_Strict):
    name: str = Field(min_length=1)
    priority: int = Field(ge=0)


class Queues(_Strict):
    standard: Queue = Queue(name="standard", priority=3)
    priority: Queue = Queue(name="priority", priority=2)
    abuse_review: Queue = Queue(name="abuse_review", priority=1)
    supervisor: Queue = Queue(name="supervisor", priority=0)
    crisis: Queue = Queue(name="crisis", priority=0)
    # FILTERD_DEGRADED_POLICY=closed: messages judged without the model wait here for a human.
    degraded: Queue = Queue(name="degraded", priority=1)


class Policy(_Strict):
    """Thresholds, windows, strikes, queues and the customer warning text."""

    thresholds: Thresholds = Thresholds()
    frustration: Frustration = Frustration()
    abuse: Abuse = Abuse()
    queues: Queues = Queues()
    # Templates: {strikes} and {strikes_to_review} are filled in.
    warn_customer_message: str = "Please keep the conversation respectful."
    crisis_message: str = (
        "It sounds like you are going through a lot. A member of our team is joining this "
        "chat now. If you are in danger, please call your local emergency number."
    )

    @model_validator(mode="after")
    def _templates_format(self) -> Policy:
        for key in ("warn_customer_message", "crisis_message"):
            try:
                getattr(self, key).format(strikes=0, strikes_to_review=0)
            except (KeyError, IndexError, ValueError) as e:
                raise ValueError(
                    f"{key} has a placeholder other than {{strikes}} or "
                    f"{{strikes_to_review}}: {e}"
                ) from e
        return self

    def _message(self, template: str, state: ConversationState) -> str:
        return template.format(strikes=state.strikes,
                               strikes_to_review=self.abuse.strikes_to_review)

    @classmethod
    def load(cls, path: Path | None = None) -> Policy:
        """Read and validate a policy file; errors name the key and the bad value."""
        p = Path(path or DEFAULT_POLICY_FILE)
        try:
            raw: Any = yaml.safe_load(p.read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"Policy file {p} cannot be read: {e.strerror}.") from e
        except yaml.YAMLError as e:
            raise ConfigError(f"Policy file {p} is not valid YAML: {e}") from e
        if not isinstance(raw, dict):
            raise ConfigError(
                f"Policy file {p} must hold a mapping of keys, not {type(raw).__name__}."
            )
        try:
            return cls.model_validate(raw)
        except ValidationError as e:
            first = e.errors()[0]
            key = ".".join(str(x) for x in first["loc"])
            value = first.get("input")
            raise ConfigError(
                f"Policy {p}: key '{key}' has value {value!r}. {first['msg']}."
            ) from e

    def route(
        self,
        category: str,
        flags: set[str],
        state: ConversationState,
        masked: bool,
    ) -> Route:
        """Decide where the message goes, given the conversation *after* this message."""
        q = self.queues
        if "self_harm" in flags:
            # A threat in the same message still alerts a supervisor; crisis comes first.
            extra = ("alert_supervisor", "shield_agent") if "threat" in flags else ()
            return Route(q.crisis.name, q.crisis.priority,
                         ("alert_crisis_team", "show_crisis_resources", *extra),
                         "self_harm+threat" if extra else "self_harm",
                         self._message(self.crisis_message, state))
        if "threat" in flags:
            return Route(q.supervisor.name, q.supervisor.priority,
                         ("alert_supervisor", "mask", "shield_agent"), "threat")
        if category == "abusive":
            if state.strikes >= self.abuse.strikes_to_review:
                return Route(q.abuse_review.name, q.abuse_review.priority,
                             ("mask", "warn_customer", "shield_agent"),
                             f"abuse strike {state.strikes}",
                             self._message(self.warn_customer_message, state))
            base = self._calm_or_priority(state, frustrated=True)
            return Route(base.name, base.priority, ("mask", "warn_customer"),
                         f"abuse strike {state.strikes}",
                         self._message(self.warn_customer_message, state))
        actions = ("mask",) if masked else ()
        if category == "frustrated":
            return Route(q.priority.name, q.priority.priority, actions, "frustrated")
        base = self._calm_or_priority(state, frustrated=False)
        reason = "frustration building" if base is q.priority else "neutral"
        return Route(base.name, base.priority, actions, reason)

    def degraded_route(self, route: Route) -> Route:
        """Fail-closed: ``route`` for a message judged without the model goes to the
        ``degraded`` queue so a human reads it. Crisis, threat and abuse-review routes keep
        their queue (the detectors' phrase and lexicon hits decided them); the actions stay,
        so masking and warnings still happen."""
        q = self.queues
        if route.queue in (q.crisis.name, q.supervisor.name, q.abuse_review.name):
            return route
        return replace(route, queue=q.degraded.name,
                       priority=min(route.priority, q.degraded.priority),
                       reason=f"degraded ({route.reason})" if route.reason else "degraded")

    def _calm_or_priority(self, state: ConversationState, frustrated: bool) -> Queue:
        building = (
            state.customer_messages >= self.frustration.min_messages
            and state.frustration >= self.frustration.priority_at
        )
        return self.queues.priority if (frustrated or building) else self.queues.standard
