"""Helpers for journey tests: campaigns from YAML text, events from short specs, the plan."""

from __future__ import annotations

import signal
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.campaigns.loader import load_file
from engine.campaigns.schema import Campaign
from engine.config import ProjectConfig
from engine.events import Event, parse_message
from engine.journeys.plan import PlanLine
from engine.journeys.simulate import simulate

T0 = datetime(2024, 5, 6, 10, 0, tzinfo=UTC)  # a Monday
# an ad audience kept after the journey: only an ads opt-out takes the customer out
RETARGET = """campaign: retarget
trigger: {event: Product Added}
exit: [{event: Order Completed}]
steps:
  - send: ads
    audience: past-visitors
    remove_on_exit: false
"""


class Scenario:
    """Campaign files in a folder, events built up in order, the plan on demand."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.campaigns: list[Campaign] = []
        self.events: list[Event] = []
        self.config: dict[str, Any] = {}
        self._count = 0

    def campaign(self, text: str) -> Campaign:
        path = self.folder / f"c{len(self.campaigns)}.yaml"
        path.write_text(text)
        loaded, problems = load_file(path)
        assert not problems, [str(p) for p in problems]
        assert loaded is not None
        self.campaigns.append(loaded.campaign)
        return loaded.campaign

    def event(self, kind: str, minutes: float = 0, *, user: str = "u1", **fields: Any) -> Event:
        self._count += 1
        message: dict[str, Any] = {
            "userId": user,
            "timestamp": (T0 + timedelta(minutes=minutes)).isoformat(),
            "messageId": fields.pop("message_id", f"m{self._count}"),
            **fields,
        }
        if kind in ("identify", "alias"):
            message["type"] = kind
        else:
            message.update(type="track", event=kind)
        if not message["userId"]:
            del message["userId"]
        [event] = parse_message(message)
        self.events.append(event)
        return event

    def customer(self, minutes: float = -60, user: str = "u1", **traits: Any) -> Event:
        """An identify with an email and every consent, unless told otherwise."""
        base = {
            "email": f"{user}@example.com",
            "phone": f"+1415555{zlib.crc32(user.encode()) % 10000:04d}",
            "consent": {"email": True, "call": True, "ads": True},
        }
        return self.event("identify", minutes, user=user, traits={**base, **traits})

    def plan(self, until: datetime | None = None) -> list[PlanLine]:
        config = ProjectConfig.model_validate(self.config)
        return simulate(self.campaigns, self.events, config, until)


def brief(lines: list[PlanLine]) -> list[tuple[Any, ...]]:
    """Each line as (minutes after T0, action, step, status or reason)."""
    return [
        (
            (line.at - T0) / timedelta(minutes=1),
            line.action.value,
            line.step,
            f"{line.status or ''}:{line.reason}"
            if line.reason is not None
            else line.status and str(line.status),
        )
        for line in lines
    ]


@contextmanager
def within(seconds: int) -> Iterator[None]:
    """Fail, rather than hang, when the block takes more than ``seconds``."""

    def expired(_signal: int, _frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
