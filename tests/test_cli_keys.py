"""`filterd keys create | list | revoke`: keys shown once, stored hashed, revoked for good."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from filterd import apikeys
from filterd.cli import main
from tests.service import bearer, client

pytestmark = pytest.mark.anyio


def _create(capsys: pytest.CaptureFixture[str], db: str, *args: str) -> tuple[str, str]:
    assert main(["keys", "create", "--database-url", db, *args]) == 0
    out, err = capsys.readouterr()
    return out.strip(), err


async def test_create_list_revoke(make_app: Any, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path}/k.db"
    token, err = _create(capsys, db, "--role", "agent", "--tenant", "acme", "--name", "desk 4")
    key_id = apikeys.key_id_of(token)
    assert key_id is not None and f"created key {key_id}" in err
    assert "role agent, tenant acme" in err and token not in err
    ingest, _ = _create(capsys, db, "--role", "ingest")  # the default tenant

    assert main(["keys", "list", "--database-url", db]) == 0
    listing = capsys.readouterr().out
    assert key_id in listing and "acme" in listing and "desk 4" in listing
    assert token not in listing and token.split("_", 2)[2] not in listing
    assert main(["keys", "list", "--database-url", db, "--tenant", "acme", "--json"]) == 0
    [row] = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert (row["id"], row["role"], row["revoked_at"]) == (key_id, "agent", "-")

    app = make_app(database_url=db, key_cache_seconds=0)
    async with client(app) as c:
        me = await c.get("/v1/me", headers=bearer(token))
        assert me.json() == {"role": "agent", "tenant": "acme", "console": True,
                             "dashboard": False, "reveal": False, "originals_kept": False}
        assert main(["keys", "revoke", f"key-{key_id}", "--database-url", db]) == 0
        assert "revoked key" in capsys.readouterr().err
        assert (await c.get("/v1/me", headers=bearer(token))).status_code == 401
        assert (await c.get("/v1/me", headers=bearer(ingest))).status_code == 200
    assert main(["keys", "list", "--database-url", db, "--tenant", "acme", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["revoked_at"] != "-"
    assert token.encode() not in Path(f"{tmp_path}/k.db").read_bytes()


@pytest.mark.parametrize("args, needle", [
    (["create", "--role", "agent", "--tenant", "no spaces"], "not a valid name"),
    (["revoke", "0123456789ab"], "No api_key '0123456789ab'"),
])
def test_bad_input_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    args: list[str], needle: str) -> None:
    db = f"sqlite:///{tmp_path}/k.db"
    assert main(["keys", args[0], "--database-url", db, *args[1:]]) == 2
    assert needle in capsys.readouterr().err


def test_an_unknown_role_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["keys", "create", "--role", "root", "--database-url", f"sqlite:///{tmp_path}/k.db"])
