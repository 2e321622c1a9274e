"""Sliding-window counters in process memory: the rate limits' bookkeeping.

The algorithm is the ``limits`` library's sliding-window counter (and Cloudflare's): time is
cut into fixed windows of ``seconds``; a key's count is its count in the current window plus
its count in the previous window weighted by how much of that window still overlaps the
last ``seconds``. A request of ``cost`` passes when the count plus ``cost`` stays within
``amount``. Two integers per key, and a key whose two windows have both passed is dropped.

Why not ``limits`` itself (it was used until 23 Nov): its ``MemoryStorage`` expires keys
with a ``threading.Timer`` that it starts anew, on the caller's thread, whenever the
previous one has finished: under load a new thread every ~10 ms, started on the event loop.
``Thread.start`` blocks until the new thread runs, so on a busy 2-core machine each start
cost the event loop a scheduler wait; py-spy put more than half of the request path's
samples on the event-loop thread there (36 of 60, ``RateLimits.check_ingest`` ->
``MemoryStorage.__schedule_expiry`` -> ``Thread.start``), and each timer then walked every
key under the GIL. Here expiry is a sweep done inline at most once a second, and nothing
else starts threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """At most ``amount`` in any ``seconds`` (approximately: see the module docstring)."""

    amount: int
    seconds: int

    def __post_init__(self) -> None:
        if self.amount < 1 or self.seconds < 1:
            raise ValueError(f"a rate window needs amount >= 1 and seconds >= 1, got {self}")


class SlidingWindows:
    """Counts per (window, key). Thread-safe; every call is O(1) except one sweep a second."""

    SWEEP_EVERY = 1.0  # seconds between sweeps of keys whose windows are over

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        # (window, key) -> [index of the current window, previous count, current count]
        self._counts: dict[tuple[Window, Hashable], list[int]] = {}
        self._swept = clock()

    def __len__(self) -> int:
        """Keys held (what memory grows with)."""
        return len(self._counts)

    def _entry(self, w: Window, key: Hashable, now: float) -> list[int]:
        idx = int(now // w.seconds)
        e = self._counts.get((w, key))
        if e is None:
            e = self._counts[(w, key)] = [idx, 0, 0]
        elif e[0] != idx:  # roll forward: the current window becomes the previous one
            e[1:] = [e[2], 0] if e[0] == idx - 1 else [0, 0]
            e[0] = idx
        return e

    @staticmethod
    def _weighted(w: Window, e: list[int], now: float) -> float:
        overlap = 1.0 - (now - e[0] * w.seconds) / w.seconds  # previous window still inside
        return e[1] * overlap + e[2]

    def test(self, w: Window, key: Hashable, cost: int = 1) -> bool:
        """Would ``cost`` more pass now? Counts nothing."""
        with self._lock:
            now = self._clock()
            e = self._counts.get((w, key))
            if e is None:
                return cost <= w.amount
            e = self._entry(w, key, now)
            return self._weighted(w, e, now) + cost <= w.amount

    def hit(self, w: Window, key: Hashable, cost: int = 1) -> bool:
        """Count ``cost`` if it passes; False (and nothing counted) if it does not."""
        with self._lock:
            now = self._clock()
            self._sweep(now)
            e = self._entry(w, key, now)
            if self._weighted(w, e, now) + cost > w.amount:
                return False
            e[2] += cost
            return True

    def retry_after(self, w: Window, key: Hashable, cost: int = 1) -> float:
        """Seconds until ``cost`` more would pass (0 when it would now)."""
        with self._lock:
            now = self._clock()
            e = self._entry(w, key, now)
            room = w.amount - cost
            if self._weighted(w, e, now) <= room:
                return 0.0
            end = (e[0] + 1) * w.seconds  # end of the current window
            if e[2] <= room and e[1] > 0:  # the previous window's share fades in time
                return max(0.0, end - w.seconds * (room - e[2]) / e[1] - now)
            if room < 0:  # more than a window holds: both windows must pass
                return max(0.0, end + w.seconds - now)
            # next window: the current count becomes the previous one and fades from there
            return max(0.0, end + w.seconds * (1 - room / e[2]) - now) if e[2] else 0.0

    def _sweep(self, now: float) -> None:
        if now - self._swept < self.SWEEP_EVERY:
            return
        self._swept = now
        dead = [k for k, e in self._counts.items() if e[0] < int(now // k[0].seconds) - 1]
        for k in dead:
            del self._counts[k]
