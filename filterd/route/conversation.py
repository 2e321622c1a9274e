"""Conversation state across messages: frustration that builds and decays, strikes."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class ConversationState:
    """What filterd remembers of one conversation (customer messages only drive it)."""

    customer_messages: int = 0
    frustration: float = 0.0  # exponentially weighted intensity of customer messages
    strikes: int = 0  # abusive customer messages so far
    escalated: str | None = None  # the most urgent queue the conversation reached

    def after(self, intensity: float, abusive: bool, alpha: float) -> ConversationState:
        """The state once one more customer message of this intensity arrived."""
        ewma = intensity if self.customer_messages == 0 else (
            alpha * intensity + (1 - alpha) * self.frustration
        )
        return replace(
            self,
            customer_messages=self.customer_messages + 1,
            frustration=round(ewma, 4),
            strikes=self.strikes + int(abusive),
        )

    def with_escalation(self, queue: str, urgent: frozenset[str]) -> ConversationState:
        if queue in urgent and self.escalated is None:
            return replace(self, escalated=queue)
        return self

    def as_dict(self) -> dict[str, object]:
        return {
            "customer_messages": self.customer_messages,
            "frustration": self.frustration,
            "strikes": self.strikes,
            "escalated": self.escalated,
        }
