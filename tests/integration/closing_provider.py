"""A provider test double that records, in a file, each process that built it and each that
closed it: registered as ``closing`` through a ``followup.providers`` entry point by the tests
that need it, exactly as a third-party provider would be."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.channels import (
    ChannelProvider,
    Delivery,
    DeliveryOutcome,
    DeliveryStatus,
    ProviderContext,
)

ENTRY_POINTS = (
    "[followup.providers]\nclosing = tests.integration.closing_provider:closing_provider\n"
)


class ClosingProvider:
    """Delivers everything; appends ``opened <pid>`` when built and ``closed <pid>`` when
    closed to the file ``record``."""

    name = "closing"
    idempotent = True

    def __init__(self, record: Path) -> None:
        self.record = record
        self._write("opened")

    def deliver(self, delivery: Delivery) -> DeliveryOutcome:
        return DeliveryOutcome(DeliveryStatus.DELIVERED)

    def close(self) -> None:
        self._write("closed")

    def _write(self, what: str) -> None:
        with self.record.open("a") as out:
            out.write(f"{what} {os.getpid()}\n")


def closing_provider(settings: Mapping[str, Any], context: ProviderContext) -> ChannelProvider:
    """``provider: closing`` with ``record: FILE`` (relative to the project)."""
    return ClosingProvider(context.root / str(settings["record"]))


def install_entry_point(folder: Path) -> Path:
    """A distribution in ``folder`` that registers ``closing``; put ``folder`` on PYTHONPATH."""
    info = folder / "followup_closing_provider-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: followup-closing-provider\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return folder
