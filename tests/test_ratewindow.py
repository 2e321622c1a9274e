"""The sliding-window counter behind the rate limits, on a fake clock (no sleeping)."""

from __future__ import annotations

import pytest

from filterd.api.ratewindow import SlidingWindows, Window


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_a_burst_passes_then_the_next_is_refused_and_nothing_is_counted() -> None:
    clock = Clock()
    sw = SlidingWindows(clock)
    w = Window(5, 1)
    assert [sw.hit(w, "k") for _ in range(6)] == [True] * 5 + [False]
    assert not sw.test(w, "k")
    assert sw.test(w, "other")  # keys are independent
    assert sw.hit(w, "other", cost=5) and not sw.hit(w, "other", cost=1)


def test_the_previous_window_fades_by_its_overlap() -> None:
    clock = Clock(1000.0)  # the start of a 10 s window
    sw = SlidingWindows(clock)
    w = Window(10, 10)
    assert sw.hit(w, "k", cost=10)
    clock.t = 1012.5  # a quarter into the next window: 10 * 0.75 = 7.5 still counts
    assert sw.test(w, "k", cost=2) and not sw.test(w, "k", cost=3)
    assert sw.hit(w, "k", cost=2) and not sw.hit(w, "k", cost=1)  # 9.5 + 1 > 10
    clock.t = 1017.5  # 10 * 0.25 + 2 = 4.5: 5 more fit, 6 do not
    assert sw.test(w, "k", cost=5) and not sw.test(w, "k", cost=6)
    clock.t = 1030.0  # both windows over: a full burst again
    assert sw.hit(w, "k", cost=10)


def test_sustained_rate_is_amount_per_window() -> None:
    """Hitting as fast as allowed for a long time passes about amount/seconds per second (a
    little under: the counter is an approximation that errs on the strict side)."""
    clock = Clock(0.0)
    sw = SlidingWindows(clock)
    w = Window(20, 4)  # 5/s sustained, bursts of 20
    passed = 0
    for step in range(4000):  # 400 s in steps of 0.1 s, 3 tries a step
        clock.t = step / 10
        passed += sum(sw.hit(w, "k") for _ in range(3))
    assert 5 * 400 * 0.93 <= passed <= 5 * 400 + 20


@pytest.mark.parametrize("start", [0.0, 0.3, 3.7])
def test_retry_after_is_when_one_more_would_pass(start: float) -> None:
    clock = Clock(100.0 + start)
    sw = SlidingWindows(clock)
    w = Window(8, 4)
    while sw.hit(w, "k"):
        clock.t += 0.05
    wait = sw.retry_after(w, "k")
    assert wait > 0
    clock.t += wait - 0.02
    assert not sw.test(w, "k")  # not a moment before
    clock.t += 0.04
    assert sw.test(w, "k")  # and room just after
    assert sw.retry_after(w, "k") == 0.0


def test_idle_keys_are_swept_and_busy_ones_kept() -> None:
    clock = Clock(0.0)
    sw = SlidingWindows(clock)
    w = Window(3, 1)
    for n in range(1000):
        sw.hit(w, f"c{n}")
    sw.hit(w, "busy")
    assert len(sw) == 1001
    clock.t = 1.5  # previous window of every key: nothing swept yet
    sw.hit(w, "busy")
    assert len(sw) == 1001
    clock.t = 2.6  # the idle keys' windows are both over; "busy" was hit at 1.5
    sw.hit(w, "x")
    assert len(sw) == 2 and sw.test(w, "busy", cost=2)


def test_bad_windows_are_refused_with_what_was_wrong() -> None:
    with pytest.raises(ValueError, match="amount >= 1"):
        Window(0, 1)
