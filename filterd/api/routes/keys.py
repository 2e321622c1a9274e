"""``/v1/keys``: an admin manages its own tenant's API keys (the CLI manages every tenant).

``POST /v1/keys`` answers the new key once (only its digest is stored);
``POST /v1/keys/{id}/revoke`` takes effect at once in this process and within
``FILTERD_KEY_CACHE_SECONDS`` in the others. Another tenant's key id is unknown (404).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from filterd import apikeys
from filterd.api.deps import KeysPrincipalDep, ServicesDep
from filterd.api.schemas import ErrorOut, Id, KeyCreatedOut, KeyIn, KeyListOut, KeyOut
from filterd.store.base import utcnow

router = APIRouter(prefix="/v1", tags=["keys"])
_ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorOut}
                                             for c in (401, 403, 404, 422)}


@router.get("/keys", response_model=KeyListOut, responses=_ERRORS)
def list_keys(services: ServicesDep, principal: KeysPrincipalDep) -> KeyListOut:
    """The tenant's keys, oldest first: ids, roles, names, dates; never a secret."""
    return KeyListOut(keys=[KeyOut.of(k) for k in services.store.api_keys(principal.tenant)])


@router.post("/keys", status_code=201, response_model=KeyCreatedOut, responses=_ERRORS)
def create_key(body: KeyIn, services: ServicesDep, principal: KeysPrincipalDep,
               response: Response) -> KeyCreatedOut:
    """A new key of the caller's tenant; ``key`` is shown in this answer only."""
    key, token = apikeys.issue(services.store, body.role, principal.tenant, body.name)
    response.headers["Cache-Control"] = "no-store"
    return KeyCreatedOut(**KeyOut.of(key).model_dump(), key=token)


@router.post("/keys/{key_id}/revoke", response_model=KeyOut, responses=_ERRORS)
def revoke_key(key_id: Id, services: ServicesDep, principal: KeysPrincipalDep) -> KeyOut:
    """Revoke a key of the caller's tenant (idempotent)."""
    key = services.store.revoke_api_key(apikeys.resolve_id(key_id), utcnow(),
                                        tenant=principal.tenant)
    services.keyring.forget(key.id)
    return KeyOut.of(key)
