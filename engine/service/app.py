"""The ASGI app: Segment-shaped ingest, unsubscribe links, webhooks, operations endpoints and the
read-only dashboard behind a login.

``create_app(followup)`` builds it for one project's engine; ``followup serve`` runs it with
uvicorn (see :mod:`engine.service.server`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from engine.api import Followup
from engine.confirm_links import ConfirmLinks
from engine.service import confirm_page, ops, tracking, unsubscribe_page, webhooks
from engine.service.context import ServiceContext
from engine.service.dashboard import login as dashboard_login
from engine.service.dashboard import pages as dashboard
from engine.service.errors import ApiError
from engine.service.logs import LOGGER, RequestLogMiddleware
from engine.service.models import REQUEST_MODELS, Problem
from engine.service.writer import WriteConflict
from engine.unsubscribe import UnsubscribeLinks, signing_key

API_VERSION = "1"


def _answer(
    status: int, problem: Problem, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(problem.model_dump(), status_code=status, headers=headers)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    ctx: ServiceContext = request.app.state.service
    for problem in exc.problems:
        ctx.metrics.event_rejects.labels(problem.reason).inc()
    return _answer(exc.status, Problem.of(exc.error, exc.message, exc.problems), exc.headers)


async def _conflict(_request: Request, exc: Exception) -> JSONResponse:
    return _answer(503, Problem.of("busy", str(exc)), {"Retry-After": "1"})


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return _answer(exc.status_code, Problem.of(code, str(exc.detail)), exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _answer(400, Problem.of("invalid", "the request does not match the API"))


async def _internal_error(_request: Request, exc: Exception) -> JSONResponse:
    """A fault of ours, never of the body: a 500, which the clients retry, still with a code."""
    LOGGER.error("internal error", exc_info=exc)
    return _answer(500, Problem.of("internal", "an internal error; retry later"))


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the request schemas the raw-body routes refer to."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        models: list[type[BaseModel]] = [*REQUEST_MODELS.values(), webhooks.CallOutcome]
        for model in models:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
        components = document["components"]
        components["securitySchemes"] = {
            "writeKey": {
                "type": "http",
                "scheme": "basic",
                "description": "the write key as user name, an empty password",
            }
        }
        for path, operations in document["paths"].items():
            if path.startswith("/v1/"):
                for operation in operations.values():
                    operation["security"] = [{"writeKey": []}]
        app.openapi_schema = document
    return app.openapi_schema


def create_app(
    followup: Followup,
    *,
    environ: Mapping[str, str] | None = None,
    links: UnsubscribeLinks | None = None,
) -> FastAPI:
    """The service of ``followup``'s project; webhook secrets are read from ``environ``."""
    project = followup.project
    key, base_url = signing_key(project.root), project.config.server.base_url
    if links is None:
        links = UnsubscribeLinks(key, base_url)
    environ = dict(os.environ if environ is None else environ)
    ctx = ServiceContext(followup, links, ConfirmLinks(key, base_url), environ, key)
    app = FastAPI(
        title="followup",
        version=API_VERSION,
        description="Segment-shaped event ingest, unsubscribe and confirmation links and webhooks "
        "of followup.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = ctx
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(WriteConflict, _conflict)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _internal_error)
    routers = (tracking, unsubscribe_page, confirm_page, webhooks, ops, dashboard_login, dashboard)
    for router in (module.router for module in routers):
        app.include_router(router)
    app.add_middleware(RequestLogMiddleware, metrics=ctx.metrics)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app
