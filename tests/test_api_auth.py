"""The interim API-key check: FILTERD_API_KEYS maps key -> role; none configured: open."""

from __future__ import annotations

import pytest

from filterd.config import load_settings
from filterd.errors import ConfigError
from tests.service import client, message

pytestmark = pytest.mark.anyio

KEY = "k" * 24


@pytest.mark.parametrize("headers, status", [
    ({}, 401),  # no key
    ({"Authorization": "Bearer " + "x" * 24}, 401),  # unknown key
    ({"Authorization": "Basic " + KEY}, 401),  # not a bearer token
    ({"Authorization": "Bearer " + KEY}, 200),
    ({"Authorization": "bearer " + KEY}, 200),  # the scheme is case-insensitive
    ({"X-API-Key": KEY}, 200),
])
async def test_api_keys_are_checked(make_app, headers: dict[str, str], status: int) -> None:  # type: ignore[no-untyped-def]
    async with client(make_app(api_keys={KEY: "agent"})) as c:
        r = await c.get("/v1/conversations", headers=headers)
        assert r.status_code == status, r.text
        if status == 401:
            assert r.json()["error"]["code"] == "unauthorized"
            assert r.headers["WWW-Authenticate"] == "Bearer"
            assert "x" * 24 not in r.text
        # probes and scrapes need no key
        assert (await c.get("/healthz")).status_code == 200
        assert (await c.get("/metrics")).status_code == 200


async def test_without_keys_the_service_stays_open(make_app) -> None:  # type: ignore[no-untyped-def]
    async with client(make_app()) as c:
        r = await c.post("/v1/messages", json=message("c1", "m1", "hello"),
                         headers={"X-API-Key": "anything at all"})
        assert r.status_code == 200


@pytest.mark.parametrize("value", [
    '{"short": "admin"}',  # under 16 characters
    '{"' + "k" * 20 + '": "root"}',  # not a role
])
def test_bad_api_keys_setting_names_it_but_hides_the_keys(
        monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("FILTERD_API_KEYS", value)
    with pytest.raises(ConfigError, match="FILTERD_API_KEYS") as e:
        load_settings()
    assert "short" not in str(e.value) and "k" * 20 not in str(e.value)
