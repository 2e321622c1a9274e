"""Shared fixtures: one real Filter (the shipped model) for the whole session."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def real_filter():  # type: ignore[no-untyped-def]
    from filterd.pipeline import Filter

    return Filter()
