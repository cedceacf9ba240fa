"""Errors the HTTP layer answers with a :class:`~engine.service.models.Problem` body."""

from __future__ import annotations

from engine.service.models import FieldProblem


class ApiError(Exception):
    """An HTTP error: ``status``, a short ``error`` code, a message, per-event problems and
    headers (``Retry-After``, ``WWW-Authenticate``)."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        problems: list[FieldProblem] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.problems = problems or []
        self.headers = headers or {}
