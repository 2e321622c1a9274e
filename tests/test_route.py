"""Routing policy: YAML validation and the decision table."""

from __future__ import annotations

from pathlib import Path

import pytest

from filterd.errors import ConfigError
from filterd.route.conversation import ConversationState
from filterd.route.policy import Policy


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy.load()


def test_default_policy_file_is_valid(policy: Policy) -> None:
    assert policy.abuse.strikes_to_review == 2
    assert policy.queues.crisis.name == "crisis"
    assert "respectful" in policy.warn_customer_message


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("thresholds: {abusive: 1.5}", "thresholds.abusive"),  # out of [0, 1]
        ("frustration: {alpha: zero}", "frustration.alpha"),  # not a number
        ("abuse: {strikes: 3}", "abuse.strikes"),  # unknown key (typo of strikes_to_review)
        ("queues: {crisis: {name: '', priority: 0}}", "queues.crisis.name"),  # empty name
    ],
)
def test_bad_policy_names_the_key(tmp_path: Path, yaml_text: str, key: str) -> None:
    p = tmp_path / "policy.yaml"
    p.write_text(yaml_text)
    with pytest.raises(ConfigError, match=rf"key '{key}'"):
        Policy.load(p)


def test_policy_that_is_not_a_mapping(tmp_path: Path) -> None:
    p = tmp_path / "policy.yaml"
    p.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        Policy.load(p)


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        Policy.load(tmp_path / "nope.yaml")


S0 = ConversationState()


@pytest.mark.parametrize(
    ("category", "flags", "state", "queue", "action"),
    [
        # self-harm outranks everything, even abuse in the same message
        ("abusive", {"self_harm", "insult"}, S0, "crisis", "alert_crisis_team"),
        ("frustrated", {"self_harm"}, S0, "crisis", "show_crisis_resources"),
        # self-harm and a threat together: crisis first, and the supervisor is alerted
        ("abusive", {"self_harm", "threat"}, S0, "crisis", "alert_supervisor"),
        # a threat alerts a supervisor and is never a silent mask
        ("abusive", {"threat"}, S0, "supervisor", "alert_supervisor"),
        # first abusive message: warned and masked, stays with a human in priority
        ("abusive", {"insult"}, ConversationState(1, 0.8, 1), "priority", "warn_customer"),
        # second strike goes to abuse review
        ("abusive", {"insult"}, ConversationState(2, 0.8, 2), "abuse_review", "shield_agent"),
        ("frustrated", set(), S0, "priority", None),
        ("neutral", set(), S0, "standard", None),
        # calm message, but frustration built over earlier messages
        ("neutral", set(), ConversationState(3, 0.5, 0), "priority", None),
        # a single message never counts as "building" (min_messages = 2)
        ("neutral", set(), ConversationState(1, 0.9, 0), "standard", None),
    ],
)
def test_route_table(
    policy: Policy,
    category: str,
    flags: set[str],
    state: ConversationState,
    queue: str,
    action: str | None,
) -> None:
    route = policy.route(category, flags, state, masked=False)
    assert route.queue == queue
    if action:
        assert action in route.actions


def test_frustration_builds_and_decays() -> None:
    s = ConversationState()
    for intensity in (0.5, 0.6, 0.7):
        s = s.after(intensity, abusive=False, alpha=0.5)
    built = s.frustration
    assert built > 0.55
    s = s.after(0.0, abusive=False, alpha=0.5)
    assert 0 < s.frustration < built  # decays, not reset
    assert s.customer_messages == 4 and s.strikes == 0


def test_strikes_count_abusive_messages() -> None:
    s = ConversationState().after(0.9, True, 0.5).after(0.1, False, 0.5).after(0.9, True, 0.5)
    assert s.strikes == 2


def test_customer_messages_come_from_the_policy(policy: Policy) -> None:
    warn = policy.route("abusive", {"insult"}, ConversationState(1, 0.8, 1), masked=True)
    assert warn.customer_message is not None and "warning 1 of 2" in warn.customer_message
    assert warn.as_dict()["customer_message"] == warn.customer_message
    crisis = policy.route("frustrated", {"self_harm"}, S0, masked=False)
    assert crisis.customer_message and "team" in crisis.customer_message
    calm = policy.route("neutral", set(), S0, masked=False)
    assert calm.customer_message is None and "customer_message" not in calm.as_dict()


def test_bad_template_placeholder_names_the_key(tmp_path: Path) -> None:
    p = tmp_path / "policy.yaml"
    p.write_text("warn_customer_message: 'stop it {name}'\n")
    with pytest.raises(ConfigError, match="warn_customer_message"):
        Policy.load(p)
