"""Liveness (/health), readiness (/ready) and Prometheus (/metrics)."""

from typing import Literal

from fastapi import APIRouter, Request, Response

from server.api.deps import EngineDep, get_state
from server.api.ops.protocol import Health, Readiness
from server.core.metrics import metrics_text

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> Health:
    """The process is up and answering; says nothing about the model."""
    return Health()


@router.get("/ready")
async def ready(engine: EngineDep, request: Request) -> Readiness:
    """The engine is loaded and alive: send traffic (503 with the reason otherwise). `history` says whether the
    conversation store answers; without it stateless chat still works, so it does not make the server unready."""
    store = get_state(request).store
    history: Literal["ok", "unavailable"] = "ok" if store is not None and await store.ping() else "unavailable"
    return Readiness(model=engine.model_name, history=history)


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(_: Request) -> Response:
    body, content_type = metrics_text()
    return Response(body, media_type=content_type)
