"""Micro-batching: concurrent callers share model calls.

:class:`BatchingClassifier` wraps any :class:`~filterd.classify.base.Classifier` and keeps its
one verb, ``predict(texts)``. Request handlers (FastAPI's thread pool) put their texts on a
bounded queue and wait; one model thread takes what has queued up -- up to ``max_texts``
texts, waiting at most ``wait_ms`` after the first arrival -- runs the inner model, and
hands each caller its own slice, in its own order.

Why it is shaped like this (figures in ``benchmarks/results/service.json``):

- The served model's cost grows with the number of *padded* tokens of a call, plus a fixed
  ~0.4 ms per call. Batching saves the fixed part but pads every text to the longest one in
  the call, and a batch of chat messages padded blindly costs *more* per message than
  single calls. So a taken batch is sorted by length and cut into runs whose padding stays
  within ``max_padding`` of their real length; each run is one inner call.
- The queue is bounded in texts (a ``:batch`` request of 500 messages weighs 500): when it
  is full, :class:`~filterd.errors.OverloadedError` sheds the load at once instead of
  letting every request wait behind a pile it cannot get through. A call that finds the
  queue empty is always taken, however large.
- An error of the inner model reaches every caller whose texts were in that batch, as the
  error it was: the caller (``Filter`` degrades to the detectors, or a guard wrapper) decides.
- ``wait_ms=0`` batches greedily: a lone caller runs at once, and only what arrives while
  the model is busy shares the next call (no added latency at low load).

Written by hand rather than with a batching library: the serving libraries that do dynamic
batching (Ray Serve, Triton, TorchServe) are servers of their own; what is needed here is
~100 lines around one ``threading.Condition``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from filterd.classify.base import Classifier
from filterd.errors import ModelError, OverloadedError
from filterd.types import ModelOutput

log = logging.getLogger("filterd.classify.batching")

# Length proxy for padding: characters, capped (the model truncates long texts anyway), plus
# a constant for the special tokens and the per-call work every text carries.
_LEN_CAP = 512
_LEN_FLOOR = 12


@dataclass(slots=True)
class _Job:
    texts: Sequence[str]
    arrived: float
    future: Future[list[ModelOutput]] = field(default_factory=Future)


@dataclass(slots=True)
class BatchStats:
    """Counters since start (read without a lock: for benchmarks and debugging)."""

    calls: int = 0  # predict() calls taken
    texts: int = 0
    batches: int = 0  # batches taken off the queue
    inner_calls: int = 0  # calls of the inner model (a batch may be several runs)
    overloaded: int = 0  # calls refused because the queue was full
    max_batch_texts: int = 0


def wait_for_batch(cond: threading.Condition, jobs: deque[Any], wait: float,
                   full: Callable[[], bool], closed: Callable[[], bool]) -> bool:
    """With ``cond`` held: wait for a first job (False: closed with nothing queued), then
    until ``full()``, ``closed()`` or ``wait`` seconds after that job arrived (jobs have an
    ``arrived`` monotonic time). True: take what is queued now. Shared by the model
    batcher and the ingest coalescer (filterd/coalesce.py)."""
    while not jobs:
        if closed():
            return False
        cond.wait()
    deadline = jobs[0].arrived + wait
    while not full() and not closed():
        left = deadline - time.monotonic()
        if left <= 0:
            break
        cond.wait(left)
    return True


def size_runs(sizes: Sequence[int], max_texts: int, max_padding: float) -> list[list[int]]:
    """Indices of ``sizes`` in runs of similar size, each at most ``max_texts`` long.

    Sorted by size, a run grows while ``largest * count <= max_padding * total size`` (the
    padded work of the run against its real work), so a short text never pays for a long
    one's padding. Used by the batcher (sizes in characters) and by the ONNX classifier
    (sizes in tokens).
    """
    order = sorted(range(len(sizes)), key=sizes.__getitem__)
    runs: list[list[int]] = []
    run: list[int] = []
    total = 0
    for i in order:
        n = sizes[i]  # the largest so far: sizes ascend
        if run and (len(run) >= max_texts or n * (len(run) + 1) > max_padding * (total + n)):
            runs.append(run)
            run, total = [], 0
        run.append(i)
        total += n
    if run:
        runs.append(run)
    return runs


def length_runs(texts: Sequence[str], max_texts: int, max_padding: float) -> list[list[int]]:
    """:func:`size_runs` on character lengths (capped: the model truncates long texts)."""
    return size_runs([min(len(t), _LEN_CAP) + _LEN_FLOOR for t in texts], max_texts,
                     max_padding)


class BatchingClassifier:
    """A :class:`Classifier` whose concurrent callers share the inner model's calls.

    Thread-safe. The model thread starts on the first call; :meth:`close` lets it finish
    what is queued and joins it (the service's lifespan calls it at shut-down).
    """

    def __init__(
        self,
        inner: Classifier,
        *,
        max_texts: int = 32,
        wait_ms: float = 2.0,
        queue_texts: int = 1024,
        max_padding: float = 1.3,
        name: str = "filterd-batcher",
    ) -> None:
        if max_texts < 1 or queue_texts < 1 or wait_ms < 0 or max_padding < 1:
            raise ValueError("max_texts and queue_texts must be >= 1, wait_ms >= 0, "
                             "max_padding >= 1")
        self.inner = inner
        self.max_texts = max_texts
        self.wait = wait_ms / 1000.0
        self.queue_texts = queue_texts
        self.max_padding = max_padding
        self.name = name
        self.stats = BatchStats()
        self._jobs: deque[_Job] = deque()
        self._pending = 0  # texts in _jobs
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ callers

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        """One output per text, in order, from a model call shared with other callers."""
        if not texts:
            return []
        job = _Job(list(texts), time.monotonic())
        with self._cond:
            if self._closed:
                raise ModelError("The classifier is shut down (the service is stopping).")
            if self._pending and self._pending + len(texts) > self.queue_texts:
                self.stats.overloaded += 1
                raise OverloadedError(
                    f"The model queue holds {self._pending} texts (FILTERD_BATCH_QUEUE_TEXTS="
                    f"{self.queue_texts}); retry shortly or add workers.",
                    retry_after=1.0)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._jobs.append(job)
            self._pending += len(job.texts)
            self._cond.notify()
        return job.future.result()

    def close(self, timeout: float | None = 10.0) -> None:
        """Refuse new calls, let the model thread finish the queued ones, and join it."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("model thread still busy after %.0f s at shut-down", timeout or 0)
        st = self.stats
        if st.batches:
            log.info("micro-batching: %d calls, %d texts in %d batches (%.1f texts a batch, "
                     "at most %d), %d model calls, %d refused (queue full)", st.calls, st.texts,
                     st.batches, st.texts / st.batches, st.max_batch_texts, st.inner_calls,
                     st.overloaded)

    def __enter__(self) -> BatchingClassifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ model thread

    def _take(self) -> list[_Job] | None:
        """Wait for work; then up to ``max_texts`` texts (at least one job). None: stop."""
        with self._cond:
            if not wait_for_batch(self._cond, self._jobs, self.wait,
                                  lambda: self._pending >= self.max_texts,
                                  lambda: self._closed):
                return None
            taken = [self._jobs.popleft()]
            count = len(taken[0].texts)
            while self._jobs and count + len(self._jobs[0].texts) <= self.max_texts:
                job = self._jobs.popleft()
                taken.append(job)
                count += len(job.texts)
            self._pending -= count
        return taken

    def _run(self) -> None:
        try:
            while (jobs := self._take()) is not None:
                self._serve(jobs)
        finally:  # a bug here must not leave callers waiting forever
            with self._cond:
                self._closed = True
                left = list(self._jobs)
                self._jobs.clear()
                self._pending = 0
            for job in left:
                job.future.set_exception(ModelError("The model thread stopped."))

    def _serve(self, jobs: list[_Job]) -> None:
        texts = [t for job in jobs for t in job.texts]
        st = self.stats
        st.calls += len(jobs)
        st.texts += len(texts)
        st.batches += 1
        st.max_batch_texts = max(st.max_batch_texts, len(texts))
        outputs: list[ModelOutput | None] = [None] * len(texts)
        try:
            for run in length_runs(texts, self.max_texts, self.max_padding):
                got = self.inner.predict([texts[i] for i in run])
                st.inner_calls += 1
                if len(got) != len(run):
                    raise ModelError(f"The model answered {len(got)} outputs for {len(run)} "
                                     "texts.")
                for i, out in zip(run, got, strict=True):
                    outputs[i] = out
        except BaseException as e:  # every caller of this batch gets the model's error
            for job in jobs:
                job.future.set_exception(e)
            if not isinstance(e, Exception):
                raise
            return
        done = [o for o in outputs if o is not None]  # every index is in exactly one run
        start = 0
        for job in jobs:
            end = start + len(job.texts)
            job.future.set_result(done[start:end])
            start = end
