"""Stoplight Prism (``tests/mailchimp/node_modules``, from ``package-lock.json``) serving the
official Mailchimp specs on loopback, each request checked against them (422 when it breaks one).

Two patches, made on temporary copies and nowhere else:

* Transactional: the spec's paths have no ``/api/1.3`` base and no ``.json`` suffix, which the
  SDK always adds (``/api/1.3/messages/send.json``); Prism ignores Swagger's ``basePath``. The copy
  names each path ``/api/1.3<path>.json`` and drops ``basePath``, so the SDK's real URLs resolve.
* Marketing: ``POST /campaigns/{campaign_id}/actions/send`` has no request body, but the SDK sends
  the JSON literal ``null`` (Mailchimp accepts it; Prism answers 415). The copy gives that one
  operation an optional body that may only be ``null`` or an object (see ../shared/specs/README).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from tests.mailchimp.standin import MARKETING_SPEC, TRANSACTIONAL_SPEC

PRISM = Path(__file__).parent / "node_modules" / ".bin" / "prism"
STARTUP = 90.0  # seconds: the Marketing spec (1.6 MB) takes Prism ~15 s to load on 2 cores
SEND_OPERATION = "      operationId: postCampaignsIdActionsSend\n"
NULL_BODY = (
    "      requestBody:\n        required: false\n        content:\n"
    "          application/json:\n            schema:\n              nullable: true\n"
    "              type: object\n"
)


class PrismUnavailable(RuntimeError):
    """Prism could not be started; the message says why."""


@dataclass(frozen=True)
class Prism:
    """Base URLs of the two mocks (the Transactional one includes ``/api/1.3``)."""

    marketing: str
    transactional: str


def patched_specs(folder: Path) -> tuple[Path, Path]:
    """The two specs as Prism is given them (see the module docstring)."""
    marketing = MARKETING_SPEC.read_text()
    if marketing.count(SEND_OPERATION) != 1:
        raise PrismUnavailable("the Marketing spec changed: cannot patch actions/send")
    marketing_copy = folder / "mailchimp-marketing.openapi.yaml"
    marketing_copy.write_text(marketing.replace(SEND_OPERATION, SEND_OPERATION + NULL_BODY))
    spec = json.loads(TRANSACTIONAL_SPEC.read_text())
    base = spec.pop("basePath")
    spec["paths"] = {f"{base}{path}.json": item for path, item in spec["paths"].items()}
    transactional_copy = folder / "mailchimp-transactional.swagger.json"
    transactional_copy.write_text(json.dumps(spec))
    return marketing_copy, transactional_copy


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(process: subprocess.Popen[bytes], port: int, log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PrismUnavailable(f"prism exited ({process.returncode}): {log.read_text()[-500:]}")
        if "Prism is listening" in log.read_text(errors="replace"):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return
        time.sleep(0.2)
    raise PrismUnavailable(f"prism did not answer on port {port} within {STARTUP:.0f} s")


class Mocks:
    """Both Prism processes, started at once; :meth:`wait` until they answer, :meth:`stop`."""

    def __init__(self, folder: Path) -> None:
        if not PRISM.exists():
            raise PrismUnavailable(f"{PRISM} is missing: run `npm ci --prefix tests/mailchimp`")
        self._stack = ExitStack()
        self._started: list[tuple[subprocess.Popen[bytes], int, Path]] = []
        self._deadline = time.monotonic() + STARTUP
        try:
            for spec in patched_specs(folder):
                port = free_port()
                log = folder / f"{spec.stem}.log"
                handle = self._stack.enter_context(log.open("wb"))
                process = subprocess.Popen(
                    [str(PRISM), "mock", "-h", "127.0.0.1", "-p", str(port), str(spec)],
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
                self._stack.callback(_stop, process)
                self._started.append((process, port, log))
        except BaseException:
            self.stop()
            raise

    def wait(self) -> Prism:
        """The mocks' base URLs once both answer; :class:`PrismUnavailable` if one does not."""
        for process, port, log in self._started:
            _wait(process, port, log, self._deadline)
        (_, marketing, _), (_, transactional, _) = self._started
        return Prism(f"http://127.0.0.1:{marketing}", f"http://127.0.0.1:{transactional}/api/1.3")

    def stop(self) -> None:
        """Stop both processes (idempotent)."""
        self._stack.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
