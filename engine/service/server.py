"""Running the app with uvicorn: in the foreground (``followup serve``) or in a thread beside
the engine (``followup run --serve``, tests). Stopping lets requests in flight finish."""

from __future__ import annotations

import signal
import socket
import threading
import time
from typing import Self

import uvicorn
from fastapi import FastAPI


def _config(app: FastAPI, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # engine.service.logs sets JSON logging up
        access_log=False,  # RequestLogMiddleware logs each request, with its id
        ws="none",
        lifespan="off",
        timeout_graceful_shutdown=30,
    )


def serve(app: FastAPI, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM, then finish the requests in flight and return."""
    # uvicorn raises the signal it caught again once it has shut down, for the handler that was
    # there before; a handler that does nothing makes that a clean return (exit status 0)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: None)
    try:
        uvicorn.Server(_config(app, host, port)).run()
    finally:
        _close(app)


def _close(app: FastAPI) -> None:
    """Stop the app's group writer (nothing is queued once the requests have finished)."""
    service = getattr(app.state, "service", None)
    if service is not None:
        service.close()


class BackgroundServer:
    """The app served from a thread on a bound socket (port 0 picks a free one)."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, port))
        self.host = host
        self.port: int = self.socket.getsockname()[1]
        self.app = app
        self.server = uvicorn.Server(_config(app, host, self.port))
        self.thread = threading.Thread(target=self._run, name="followup-http", daemon=True)

    @property
    def url(self) -> str:
        """``http://host:port``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _run(self) -> None:
        self.server.run(sockets=[self.socket])

    def start(self, timeout: float = 30.0) -> Self:
        """Start serving; returns once the server accepts connections."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the HTTP server did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking connections, finish the requests in flight, and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout)
        self.socket.close()
        _close(self.app)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
