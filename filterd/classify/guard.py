"""A classifier that cannot hang the pipeline: a time budget and a circuit breaker.

:class:`GuardedClassifier` wraps any :class:`~filterd.classify.base.Classifier` (the ONNX
model, a micro-batcher, a fake) and keeps its one verb, ``predict(texts)``. It adds:

- **a time budget** per call (``timeout_seconds + per_text_seconds * len(texts)``): the
  inner call runs on a model thread and the caller stops waiting when the budget is spent.
  An ONNX call cannot be cancelled, so the thread runs on; at most ``concurrency`` model
  threads exist (a call waits for a free one within its budget), so a stuck model pins at
  most that many, never an unbounded pile. Model threads are daemons: a hung model never
  keeps the process from exiting.
- **a circuit breaker**: after ``failures`` consecutive errors or timeouts the circuit opens
  and calls fail at once, without touching the model; after ``reset_seconds`` one trial
  call is let through (half-open): success closes the circuit, failure opens it again.

Every failure raises a :class:`~filterd.errors.ModelError`; :class:`filterd.pipeline.Filter`
then judges from the detectors alone and marks the verdict ``degraded``. Listeners (the
service's Prometheus metrics) hear each failure and each state change.

Why not pybreaker: its breaker counts exceptions around a call, but here the budget, the
"no free model thread" case (busy, which is load and not a model fault unless a running
call is overdue) and the half-open single trial have to be decided together under one lock;
the state machine is ~60 lines.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from filterd.classify.base import Classifier
from filterd.config import Settings
from filterd.errors import ModelError, UnavailableError
from filterd.types import ModelOutput

log = logging.getLogger("filterd.classify.guard")

BreakerState = Literal["closed", "half_open", "open"]
# error: the model raised; timeout: a call ran past its budget; busy: no model thread came
# free within the budget, or the inner classifier's queue was full (UnavailableError, which
# is raised on as it is: overload, not a model fault); circuit_open: the breaker refused
# the call without trying.
FailureReason = Literal["error", "timeout", "busy", "circuit_open"]
FAILURE_REASONS: tuple[FailureReason, ...] = ("error", "timeout", "busy", "circuit_open")


class ModelTimeoutError(ModelError):
    """The model did not answer within its time budget."""


class ModelBusyError(ModelError):
    """Every model thread was taken for the whole time budget."""


class CircuitOpenError(ModelError):
    """The circuit breaker is open: the model is not called until it is retried."""


class GuardListener(Protocol):
    """Told of failures and breaker state changes (called from the calling thread)."""

    def model_failed(self, reason: FailureReason) -> None: ...

    def circuit_changed(self, state: BreakerState) -> None: ...


class CircuitBreaker:
    """closed -> open after ``failures`` consecutive failures; open -> half_open after
    ``reset_seconds`` (one trial call); the trial's success closes, its failure reopens.

    ``failures=0`` disables the breaker (it stays closed). Thread-safe.
    """

    def __init__(self, failures: int = 5, reset_seconds: float = 30.0, *,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[BreakerState], None] | None = None) -> None:
        self.failures = failures
        self.reset_seconds = reset_seconds
        self.on_change = on_change  # told of every state change (under the breaker's lock)
        self._clock = clock
        self._lock = threading.Lock()
        self._state: BreakerState = "closed"
        self._consecutive = 0
        self._opened_at = 0.0
        self._trial = False  # half-open: the one trial call is in flight

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state

    def retry_in(self) -> float:
        """Seconds until an open circuit lets a trial call through (0 if not open)."""
        with self._lock:
            if self._state != "open":
                return 0.0
            return max(0.0, self._opened_at + self.reset_seconds - self._clock())

    def allow(self) -> bool:
        """May a call go to the model now? In half-open, only the one trial call may."""
        with self._lock:
            if self._state == "open":
                if self._clock() - self._opened_at < self.reset_seconds:
                    return False
                self._set("half_open")
            if self._state == "half_open":
                if self._trial:
                    return False
                self._trial = True
            return True

    def record_success(self) -> None:
        with self._lock:
            self._consecutive = 0
            self._trial = False
            self._set("closed")

    def record_failure(self) -> None:
        with self._lock:
            self._consecutive += 1
            if self._state == "half_open" or (
                    self.failures > 0 and self._consecutive >= self.failures):
                self._open()

    def record_inconclusive(self) -> None:
        """A call that told nothing about the model (it never ran): a trial reopens."""
        with self._lock:
            if self._state == "half_open":
                self._open()

    def _open(self) -> None:
        self._trial = False
        self._opened_at = self._clock()
        self._set("open")

    def _set(self, state: BreakerState) -> None:
        if state == self._state:
            return
        self._state = state
        if state == "open":
            log.warning("model circuit open after %d consecutive failure(s); retrying the "
                        "model in %.0f s", self._consecutive, self.reset_seconds)
        else:
            log.warning("model circuit %s", state.replace("_", "-"))
        if self.on_change is not None:
            self.on_change(state)


@dataclass(eq=False)
class _Call:
    """One inner call on a model thread; the caller waits on ``done``."""

    deadline: float
    texts: list[str]
    done: threading.Event = field(default_factory=threading.Event)
    result: list[ModelOutput] | None = None
    error: BaseException | None = None


class _Busy(Exception):
    def __init__(self, stalled: bool) -> None:
        self.stalled = stalled  # a running call is past its deadline: the model is stuck


class GuardedClassifier:
    """``predict(texts)`` with a time budget and a circuit breaker; see the module doc.

    ``timeout_seconds=0`` removes the budget (the inner call runs on the caller's thread).
    """

    def __init__(self, inner: Classifier, *, timeout_seconds: float = 0.25,
                 per_text_seconds: float = 0.01, concurrency: int = 32,
                 breaker: CircuitBreaker | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.timeout_seconds = timeout_seconds
        self.per_text_seconds = per_text_seconds
        self.concurrency = concurrency
        self.breaker = breaker or CircuitBreaker(clock=clock)
        self.breaker.on_change = self._changed  # the guard's listeners hear state changes
        self._clock = clock
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._running: set[_Call] = set()
        self._calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._threads = 0  # model threads started (they live on, parked when idle)
        self._idle = 0  # of those, parked and not yet claimed by a caller
        self._listeners: list[GuardListener] = []

    @classmethod
    def from_settings(cls, inner: Classifier, settings: Settings) -> GuardedClassifier:
        s = settings
        return cls(inner, timeout_seconds=s.model_timeout_ms / 1000,
                   per_text_seconds=s.model_timeout_per_text_ms / 1000,
                   concurrency=s.model_concurrency,
                   breaker=CircuitBreaker(s.breaker_failures, s.breaker_reset_seconds))

    # ------------------------------------------------------------------ listeners

    def add_listener(self, listener: GuardListener) -> None:
        """Subscribe (the service's metrics); the listener hears the current state at once."""
        with self._lock:
            self._listeners.append(listener)
        listener.circuit_changed(self.breaker.state)

    def remove_listener(self, listener: GuardListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _each_listener(self, tell: Callable[[GuardListener], None]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                tell(listener)
            except Exception:  # a metrics hiccup must not fail a message
                log.exception("guard listener failed")

    def _failed(self, reason: FailureReason) -> None:
        self._each_listener(lambda x: x.model_failed(reason))

    def _changed(self, state: BreakerState) -> None:
        self._each_listener(lambda x: x.circuit_changed(state))

    # ------------------------------------------------------------------ the verb

    def budget(self, n_texts: int) -> float | None:
        """Seconds a call with ``n_texts`` texts may take (None: no budget)."""
        if self.timeout_seconds <= 0:
            return None
        return self.timeout_seconds + self.per_text_seconds * n_texts

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        if not self.breaker.allow():
            self._failed("circuit_open")
            raise CircuitOpenError(
                f"The model circuit is open after repeated failures; the model is retried "
                f"in {self.breaker.retry_in():.0f} s (FILTERD_BREAKER_RESET_SECONDS).")
        try:
            outs = self._call(list(texts))
        except _Busy as e:
            self._failed("busy")
            if e.stalled:
                self.breaker.record_failure()
            else:
                self.breaker.record_inconclusive()
            raise ModelBusyError(
                f"No model thread came free within the time budget (all "
                f"{self.concurrency} busy; FILTERD_MODEL_CONCURRENCY).") from None
        except UnavailableError:  # a full queue inside (a micro-batcher): load, not a fault
            self._failed("busy")
            self.breaker.record_inconclusive()
            raise
        except ModelTimeoutError:
            self._failed("timeout")
            self.breaker.record_failure()
            raise
        except Exception:
            self._failed("error")
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        return outs

    def _call(self, texts: list[str]) -> list[ModelOutput]:
        budget = self.budget(len(texts))
        if budget is None:
            return list(self.inner.predict(texts))
        start = self._clock()
        if not self._slots.acquire(timeout=budget):
            raise _Busy(stalled=self._overdue())
        call = _Call(deadline=start + budget, texts=texts)
        try:
            self._submit(call)
        except BaseException:
            self._finish(call)
            raise
        if not call.done.wait(max(0.0, call.deadline - self._clock())):
            raise ModelTimeoutError(
                f"The model did not answer {len(texts)} text(s) within {budget * 1000:.0f} ms "
                "(FILTERD_MODEL_TIMEOUT_MS + FILTERD_MODEL_TIMEOUT_PER_TEXT_MS per text).")
        if call.error is not None:
            raise call.error
        assert call.result is not None
        return call.result

    def _submit(self, call: _Call) -> None:
        """Hand ``call`` to an idle model thread, or start one. The caller holds a slot, so
        calls in flight never outnumber ``concurrency`` and neither do the threads; a thread
        stuck in the model keeps its slot, so the next callers find none (busy)."""
        with self._lock:
            self._running.add(call)
            if self._idle > 0:
                self._idle -= 1  # claimed: that thread takes this call (or an equal one)
                spawn = False
            else:
                self._threads += 1
                spawn = True
        if spawn:
            threading.Thread(target=self._serve, daemon=True, name="filterd-model").start()
        self._calls.put(call)

    def _serve(self) -> None:
        """A model thread: threads are kept, since a fresh thread per call costs ONNX
        Runtime ~0.5 ms of per-thread set-up."""
        while True:
            call = self._calls.get()
            try:
                call.result = list(self.inner.predict(call.texts))
            except BaseException as e:  # handed to the waiting caller
                call.error = e
            finally:
                self._finish(call)
                call.done.set()
            with self._lock:
                self._idle += 1

    def _finish(self, call: _Call) -> None:
        with self._lock:
            self._running.discard(call)
        self._slots.release()

    def _overdue(self) -> bool:
        now = self._clock()
        with self._lock:
            return any(c.deadline <= now for c in self._running)
