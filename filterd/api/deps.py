"""What route handlers receive, as ``Annotated[..., Depends()]`` aliases.

Everything lives in one :class:`Services` built by ``create_app`` and kept on
``app.state``; handlers never read the environment or module globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, cast

from fastapi import Depends, Request

from filterd.config import Settings
from filterd.ingest import Ingestor
from filterd.metrics import Metrics
from filterd.outbox import Deliverer
from filterd.pipeline import Filter
from filterd.store.base import Store


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. API keys and roles come in a later pass; until then, anonymous."""

    id: str = "anonymous"
    roles: frozenset[str] = field(default_factory=frozenset)


ANONYMOUS = Principal()


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    filter: Filter
    store: Store
    ingestor: Ingestor
    metrics: Metrics
    deliverer: Deliverer


def get_services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


ServicesDep = Annotated[Services, Depends(get_services)]


def get_settings(s: ServicesDep) -> Settings:
    return s.settings


def get_store(s: ServicesDep) -> Store:
    return s.store


def get_ingestor(s: ServicesDep) -> Ingestor:
    return s.ingestor


def get_metrics(s: ServicesDep) -> Metrics:
    return s.metrics


def get_deliverer(s: ServicesDep) -> Deliverer:
    return s.deliverer


def current_principal() -> Principal:
    """The caller's identity: the seam where API-key authentication will plug in."""
    return ANONYMOUS


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
IngestorDep = Annotated[Ingestor, Depends(get_ingestor)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
DelivererDep = Annotated[Deliverer, Depends(get_deliverer)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]
