"""``/healthz`` (the process answers), ``/readyz`` (the database answers and its schema is at the
newest migrations) and ``/metrics`` (Prometheus text format)."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from engine.errors import StorageError
from engine.service.context import ServiceContext
from engine.service.models import Health
from engine.storage.database import current_revisions
from engine.storage.schema_head import schema_heads

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


def _readiness(ctx: ServiceContext) -> Health:
    try:
        at = current_revisions(ctx.followup.engine)
    except sa.exc.SQLAlchemyError as exc:
        return Health(status="unavailable", detail=f"database unreachable: {type(exc).__name__}")
    try:
        heads = schema_heads()
    except StorageError as exc:  # an integration's migrations cannot be found
        return Health(status="unavailable", detail=str(exc))
    if at != heads:
        detail = f"schema at {' + '.join(at) or 'nothing'}, code expects {' + '.join(heads)}"
        return Health(status="unavailable", detail=detail)
    return Health(status="ok", detail=f"schema at {' + '.join(heads)}")


@router.get("/readyz", responses={503: {"model": Health}})
async def readyz(request: Request) -> JSONResponse:
    """Ready to take traffic: the database answers and its schema is current."""
    health = await run_in_threadpool(_readiness, request.app.state.service)
    return JSONResponse(health.model_dump(), status_code=200 if health.status == "ok" else 503)


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus metrics."""
    ctx: ServiceContext = request.app.state.service
    text = await run_in_threadpool(generate_latest, ctx.metrics.registry)
    return Response(text, media_type=CONTENT_TYPE_LATEST)
