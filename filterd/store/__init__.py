"""Storage: the :class:`~filterd.store.base.Store` protocol and its SQL implementation."""

from __future__ import annotations

from filterd.store.base import Store
from filterd.store.sql import SqlStore

__all__ = ["SqlStore", "Store", "open_store"]


def open_store(url: str) -> SqlStore:
    """The store for a database URL (``sqlite:///file.db`` or ``postgresql://...``)."""
    return SqlStore(url)
