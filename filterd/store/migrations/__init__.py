"""Alembic migrations of filterd's schema, shipped in the package (``filterd db upgrade``)."""
