"""The model guard: a time budget, a circuit breaker, and fail-open / fail-closed routing.

Real threads and a real (blocked) fake model; the breaker's clock is a fake one, so reset
times are exact without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from filterd.classify.fake import (
    BlockingClassifier,
    FailingClassifier,
    FlakyClassifier,
    KeywordClassifier,
)
from filterd.classify.guard import (
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    FailureReason,
    GuardedClassifier,
    ModelBusyError,
    ModelTimeoutError,
)
from filterd.config import load_settings
from filterd.errors import ModelError, OverloadedError
from filterd.pipeline import Filter
from filterd.types import ModelOutput


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Heard:
    """A guard listener that writes down what it hears."""

    def __init__(self) -> None:
        self.failures: list[FailureReason] = []
        self.states: list[BreakerState] = []

    def model_failed(self, reason: FailureReason) -> None:
        self.failures.append(reason)

    def circuit_changed(self, state: BreakerState) -> None:
        self.states.append(state)


def state(breaker: CircuitBreaker | GuardedClassifier) -> BreakerState:
    """Read through a call: mypy would narrow ``b.state`` from an earlier assert."""
    b = breaker.breaker if isinstance(breaker, GuardedClassifier) else breaker
    return b.state


@pytest.fixture
def blocking() -> Iterator[BlockingClassifier]:
    clf = BlockingClassifier()
    yield clf
    clf.release()  # let the stuck model threads finish


# ------------------------------------------------------------------ the breaker


def test_breaker_opens_after_n_failures_half_opens_after_reset_and_closes_on_success() -> None:
    clock = Clock()
    b = CircuitBreaker(failures=3, reset_seconds=30, clock=clock)
    for _ in range(2):
        assert b.allow()
        b.record_failure()
    assert state(b) == "closed"
    assert b.allow()
    b.record_failure()
    assert state(b) == "open" and not b.allow()
    assert b.retry_in() == 30
    clock.now += 29.9
    assert not b.allow()
    clock.now += 0.1
    assert b.allow() and state(b) == "half_open"  # the one trial call
    assert not b.allow()  # no second caller while the trial runs
    b.record_success()
    assert state(b) == "closed" and b.allow()


def test_a_failed_trial_opens_the_breaker_again_for_a_full_reset() -> None:
    clock = Clock()
    b = CircuitBreaker(failures=1, reset_seconds=10, clock=clock)
    b.record_failure()
    clock.now += 10
    assert b.allow()
    b.record_failure()
    assert state(b) == "open" and b.retry_in() == 10


def test_success_resets_the_consecutive_count() -> None:
    b = CircuitBreaker(failures=2, reset_seconds=10, clock=Clock())
    b.record_failure()
    b.record_success()
    b.record_failure()
    assert state(b) == "closed"


def test_zero_failures_switches_the_breaker_off() -> None:
    b = CircuitBreaker(failures=0, reset_seconds=10, clock=Clock())
    for _ in range(50):
        b.record_failure()
    assert state(b) == "closed" and b.allow()


# ------------------------------------------------------------------ the guard


def test_an_open_circuit_stops_calling_the_model_then_retries_it_later() -> None:
    clock = Clock()
    inner = FlakyClassifier(failing=True)
    guard = GuardedClassifier(inner, timeout_seconds=1.0, clock=clock,
                              breaker=CircuitBreaker(3, 30, clock=clock))
    heard = Heard()
    guard.add_listener(heard)
    for _ in range(3):
        with pytest.raises(RuntimeError):
            guard.predict(["hello"])
    assert inner.calls == 3 and state(guard) == "open"
    for _ in range(5):
        with pytest.raises(CircuitOpenError):
            guard.predict(["hello"])
    assert inner.calls == 3  # not called while open
    clock.now += 30
    inner.failing = False
    [out] = guard.predict(["you idiot"])  # the half-open trial reaches the model
    assert out.scores["abusive"] > 0.5
    assert state(guard) == "closed"
    assert heard.failures == ["error"] * 3 + ["circuit_open"] * 5
    assert heard.states == ["closed", "open", "half_open", "closed"]


def test_a_call_past_its_budget_raises_timeout_and_counts_as_a_failure(
        blocking: BlockingClassifier) -> None:
    guard = GuardedClassifier(blocking, timeout_seconds=0.05, per_text_seconds=0.0,
                              breaker=CircuitBreaker(failures=5))
    heard = Heard()
    guard.add_listener(heard)
    t0 = time.monotonic()
    with pytest.raises(ModelTimeoutError, match="within 50 ms"):
        guard.predict(["hello"])
    assert time.monotonic() - t0 < 5  # gave up instead of waiting for the stuck model
    assert heard.failures == ["timeout"]


def test_a_stuck_model_pins_at_most_concurrency_threads_and_opens_the_breaker(
        blocking: BlockingClassifier) -> None:
    guard = GuardedClassifier(blocking, timeout_seconds=0.05, per_text_seconds=0.0,
                              concurrency=2, breaker=CircuitBreaker(failures=4))
    heard = Heard()
    guard.add_listener(heard)
    threads_before = threading.active_count()
    for _ in range(2):
        with pytest.raises(ModelTimeoutError):
            guard.predict(["hello"])
    for _ in range(2):  # both model threads are stuck past their deadline: a stall
        with pytest.raises(ModelBusyError):
            guard.predict(["hello"])
    assert state(guard) == "open"
    with pytest.raises(CircuitOpenError):
        guard.predict(["hello"])
    assert blocking.started == 2  # the model was entered twice, never more
    assert threading.active_count() - threads_before <= 2
    assert heard.failures == ["timeout", "timeout", "busy", "busy", "circuit_open"]


def test_busy_with_healthy_work_degrades_but_does_not_trip_the_breaker(
        blocking: BlockingClassifier) -> None:
    # One model thread, held by a big call still inside its (long) budget.
    guard = GuardedClassifier(blocking, timeout_seconds=0.05, per_text_seconds=5.0,
                              concurrency=1, breaker=CircuitBreaker(failures=1))
    results: list[list[ModelOutput]] = []
    big = threading.Thread(target=lambda: results.append(guard.predict(["a", "b"])),
                           daemon=True)
    big.start()
    deadline = time.monotonic() + 5
    while blocking.started == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    with pytest.raises(ModelBusyError):
        guard.predict([])  # budget 50 ms, no thread free, nothing overdue
    assert state(guard) == "closed"
    blocking.release()
    big.join(5)
    assert len(results) == 1 and len(results[0]) == 2  # the big call finished in budget
    assert state(guard) == "closed"


def test_a_full_queue_inside_is_raised_as_overload_and_not_a_model_fault() -> None:
    class Full:
        def predict(self, texts: object) -> list[ModelOutput]:
            raise OverloadedError("queue full", retry_after=1.0)

    guard = GuardedClassifier(Full(), breaker=CircuitBreaker(failures=1))
    heard = Heard()
    guard.add_listener(heard)
    for _ in range(3):
        with pytest.raises(OverloadedError):
            guard.predict(["x"])
    assert state(guard) == "closed" and heard.failures == ["busy"] * 3


def test_no_budget_calls_the_model_on_the_callers_thread() -> None:
    seen: list[str] = []

    class Where(KeywordClassifier):
        def predict(self, texts: object) -> list[ModelOutput]:
            seen.append(threading.current_thread().name)
            return super().predict(["x"])

    GuardedClassifier(Where(), timeout_seconds=0).predict(["x"])
    GuardedClassifier(Where(), timeout_seconds=1).predict(["x"])
    assert seen == [threading.current_thread().name, "filterd-model"]


def test_the_budget_grows_with_the_texts_in_a_call() -> None:
    guard = GuardedClassifier(KeywordClassifier(), timeout_seconds=0.25, per_text_seconds=0.01)
    assert guard.budget(1) == pytest.approx(0.26)
    assert guard.budget(500) == pytest.approx(5.25)
    assert GuardedClassifier(KeywordClassifier(), timeout_seconds=0).budget(10) is None


# ------------------------------------------------------------------ through the Filter


def test_a_hung_model_gives_a_degraded_verdict_within_the_budget(
        blocking: BlockingClassifier) -> None:
    f = Filter(load_settings(model_timeout_ms=50, model_timeout_per_text_ms=0),
               classifier=blocking)
    t0 = time.monotonic()
    v = f.check("you are a fucking idiot, call me on 415 555 0134")
    assert time.monotonic() - t0 < 5  # a stuck model would block forever
    assert v.degraded and v.category == "abusive"
    assert "fucking" not in v.text_masked and "555" not in v.text_masked


def test_assigning_a_classifier_keeps_the_guard() -> None:
    f = Filter(load_settings(), classifier=KeywordClassifier())
    failing = FailingClassifier()
    f.classifier = failing  # as the service does with its micro-batcher
    assert f.guard.inner is failing and f.classifier is failing
    assert f.check("hello").degraded and failing.calls == 1


@pytest.mark.parametrize(
    ("text", "open_queue", "closed_queue"),
    [
        # row: profanity aimed at nobody is not abuse; open routes on the detectors alone
        ("this is fucking ridiculous", "priority", "degraded"),
        ("hello, where is my parcel?", "standard", "degraded"),
        ("you are a stupid idiot", "priority", "degraded"),  # first strike: not yet review
        # threats and self-harm phrases take their urgent routes in both modes
        ("I will kill you", "supervisor", "supervisor"),
        ("I want to kill myself", "crisis", "crisis"),
    ],
)
def test_fail_open_and_fail_closed_routes(text: str, open_queue: str,
                                          closed_queue: str) -> None:
    opened = Filter(load_settings(degraded_policy="open"), classifier=FailingClassifier())
    closed = Filter(load_settings(degraded_policy="closed"), classifier=FailingClassifier())
    vo, vc = opened.check(text), closed.check(text)
    assert vo.degraded and vc.degraded
    assert vo.route.queue == open_queue
    assert vc.route.queue == closed_queue
    assert vc.text_masked == vo.text_masked  # masking does not depend on the mode
    if closed_queue == "degraded":
        assert vc.route.priority == 1 and vc.route.reason.startswith("degraded")
        assert vc.route.actions == vo.route.actions


def test_fail_closed_keeps_abuse_review_for_repeat_abuse() -> None:
    f = Filter(load_settings(degraded_policy="closed"), classifier=FailingClassifier())
    verdicts = f.check_conversation(["you idiot", "you stupid moron"])
    assert [v.route.queue for v in verdicts] == ["degraded", "abuse_review"]


def test_a_healthy_model_is_not_rerouted_in_fail_closed_mode() -> None:
    f = Filter(load_settings(degraded_policy="closed"), classifier=KeywordClassifier())
    v = f.check("hello, where is my parcel?")
    assert not v.degraded and v.route.queue == "standard"


def test_model_errors_still_degrade_when_raised_as_plain_exceptions() -> None:
    f = Filter(load_settings(), classifier=FlakyClassifier(failing=True))
    assert f.check("you idiot").degraded
    with pytest.raises(ModelError):
        GuardedClassifier(FailingClassifier()).predict(["x"])
