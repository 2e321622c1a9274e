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


# ------------------------------------------------------------------ the service


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def keyword_filter():  # type: ignore[no-untyped-def]
    """A Filter with the deterministic KeywordClassifier (fast, exact scores)."""
    from filterd.classify.fake import KeywordClassifier
    from filterd.config import load_settings
    from filterd.pipeline import Filter

    return Filter(load_settings(), classifier=KeywordClassifier())


@pytest.fixture
def make_app(tmp_path: Path, keyword_filter):  # type: ignore[no-untyped-def]
    """``make_app(**settings)``: an app on a fresh SQLite file, judging with the fake."""
    from filterd.api.app import create_app
    from filterd.config import load_settings

    def make(*, filter=None, store=None, transport=None, **overrides):  # type: ignore[no-untyped-def]
        overrides.setdefault("database_url", f"sqlite:///{tmp_path}/filterd.db")
        overrides.setdefault("delivery_worker", False)
        settings = load_settings(**overrides)
        return create_app(settings, filter or keyword_filter, store, transport=transport)

    return make


# ------------------------------------------------------------------ PostgreSQL


def _pg_bindir() -> Path | None:
    import glob
    import shutil

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


@pytest.fixture(scope="session")
def postgres_server():  # type: ignore[no-untyped-def]
    """A throwaway PostgreSQL cluster (initdb + pg_ctl) on a free port; its base URL."""
    import os
    import pwd
    import shutil
    import socket
    import subprocess
    import tempfile

    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found; "
                    "install them with: apt-get install -y postgresql")
    root = Path(tempfile.mkdtemp(prefix="filterd-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def run(*cmd: object) -> None:
        r = subprocess.run([*as_user, *map(str, cmd)], capture_output=True, text=True,
                           timeout=60)
        if r.returncode:
            log = (root / "log").read_text() if (root / "log").exists() else ""
            pytest.fail(f"{cmd[0]} failed ({r.returncode}): {r.stderr}\n{log}")

    run(bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
        "--no-sync", "--no-instructions")
    opts = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    run(bindir / "pg_ctl", "-D", data, "-l", root / "log", "-o", opts, "-w", "-t", "60", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(postgres_server: str):  # type: ignore[no-untyped-def]
    """A fresh, empty database on the throwaway cluster."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{postgres_server}/{name}"
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on a SQLite file and on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/filterd.db"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(db_url: str):  # type: ignore[no-untyped-def]
    from filterd.store.sql import SqlStore

    s = SqlStore(db_url)
    s.upgrade()
    yield s
    s.close()
