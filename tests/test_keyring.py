"""The key ring's cache: which authentications may run on the event loop (no store I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from filterd import apikeys
from filterd.api.access import KeyRing
from filterd.errors import AuthError
from filterd.store.sql import SqlStore


class CountingStore:
    """A real SQLite store that counts the key ring's reads and writes."""

    def __init__(self, path: Path) -> None:
        self.inner = SqlStore(f"sqlite:///{path}")
        self.inner.upgrade()
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name in {"api_key", "has_api_keys", "touch_api_key"}:
            def counted(*a: Any, **kw: Any) -> Any:
                self.calls += 1
                return attr(*a, **kw)
            return counted
        return attr


class Clock:
    t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def store(tmp_path: Path) -> CountingStore:
    return CountingStore(tmp_path / "k.db")


def test_open_mode_is_answered_from_cache_until_it_expires(store: CountingStore) -> None:
    clock = Clock()
    ring = KeyRing(store, ttl_seconds=10, clock=clock)  # type: ignore[arg-type]
    assert not ring.answers_from_cache(None)  # nothing known yet
    assert ring.is_open() and store.calls == 1
    assert ring.answers_from_cache(None) and ring.answers_from_cache("fd_x_y")
    clock.t += 11
    assert not ring.answers_from_cache(None)


def test_a_key_is_answered_from_cache_only_when_resolving_it_needs_no_store(
        store: CountingStore) -> None:
    clock = Clock()
    ring = KeyRing(store, ttl_seconds=10, clock=clock)  # type: ignore[arg-type]
    key, token = apikeys.issue(store.inner, "agent", "acme")
    assert not ring.is_open()
    assert ring.answers_from_cache(None)  # closed, no key: 401 without I/O
    assert ring.answers_from_cache("not-a-key")  # malformed: 401 without I/O
    assert not ring.answers_from_cache(token)  # row not cached yet
    before = store.calls
    assert ring.resolve(token).tenant == "acme"  # reads the row, records last use
    assert store.calls == before + 2
    assert ring.answers_from_cache(token)
    before = store.calls
    for _ in range(5):
        ring.resolve(token)
    assert store.calls == before  # all from cache, as answers_from_cache promised
    # revoked elsewhere: seen once the row's cache expires, never later than the TTL
    store.inner.revoke_api_key(key.id, datetime.now(UTC))
    clock.t += 11
    assert not ring.answers_from_cache(token)
    with pytest.raises(AuthError, match="revoked"):
        ring.resolve(token)


def test_last_use_falling_due_sends_the_key_to_the_store(store: CountingStore) -> None:
    clock = Clock()
    ring = KeyRing(store, ttl_seconds=10_000, clock=clock)  # type: ignore[arg-type]
    _, token = apikeys.issue(store.inner, "ingest", "default")
    ring.is_open()
    ring.resolve(token)
    assert ring.answers_from_cache(token)
    clock.t += 601  # last_used_at is written at most every ten minutes
    assert not ring.answers_from_cache(token)
    before = store.calls
    ring.resolve(token)
    assert store.calls == before + 1  # the touch, and only that
