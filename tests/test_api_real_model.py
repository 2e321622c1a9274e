"""The service with the real shipped model (most API tests use the keyword fake)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.service import client, message

pytestmark = pytest.mark.anyio


async def test_real_model_conversations_route_end_to_end(make_app: Any, real_filter: Any) -> None:
    async with client(make_app(filter=real_filter)) as c:
        async def post(cid: str, mid: str, text: str) -> dict[str, Any]:
            r = await c.post("/v1/messages", json=message(cid, mid, text))
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body

        hold = await post("f", "1", "3 hours on hold and my internet is still down, ridiculous")
        assert (hold["category"], hold["route"]["queue"]) == ("frustrated", "priority")

        first = await post("a", "1", "you are a useless idiot")
        second = await post("a", "2", "shut up you stupid moron")
        assert first["category"] == second["category"] == "abusive"
        assert second["route"]["queue"] == "abuse_review"
        assert second["conversation"]["strikes"] == 2
        assert "idiot" not in first["text_masked"]

        threat = await post("t", "1", "I know where you live and I'm coming for you")
        assert threat["route"]["queue"] == "supervisor"
        ready = await c.get("/readyz")
        assert ready.status_code == 200
