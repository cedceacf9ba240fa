"""``followup serve``: the HTTP service alone (ingest, unsubscribe links, webhooks, metrics).

It listens on ``server.host``/``server.port`` of ``followup.yaml`` unless ``--host``/``--port``
say otherwise, logs JSON lines on stderr, and on SIGINT or SIGTERM stops taking connections and
finishes the requests in flight.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from engine.cli.context import ConfigOption, config_path, fail
from engine.errors import FollowupError

if TYPE_CHECKING:
    from engine.config import Project

HostOption = Annotated[
    str | None, typer.Option(help="The address to listen on (default: server.host).")
]
PortOption = Annotated[
    int | None, typer.Option(help="The port to listen on (default: server.port).")
]


def listen_address(project: Project, host: str | None, port: int | None) -> tuple[str, int]:
    """``--host``/``--port``, else ``server:`` of the config."""
    server = project.config.server
    return host or server.host, server.port if port is None else port


def serve(
    ctx: typer.Context,
    host: HostOption = None,
    port: PortOption = None,
    config: ConfigOption = None,
) -> None:
    """Serve the HTTP API until stopped (Ctrl-C or SIGTERM finish the requests in flight)."""
    from engine.api import Followup
    from engine.config import load_project
    from engine.service.app import create_app
    from engine.service.logs import configure_logging
    from engine.service.server import serve as run_server

    try:
        followup = Followup(load_project(config_path(ctx)))
    except FollowupError as exc:
        raise fail(str(exc)) from exc
    configure_logging()
    try:
        bind_host, bind_port = listen_address(followup.project, host, port)
        run_server(create_app(followup), bind_host, bind_port)
    finally:
        followup.close()
