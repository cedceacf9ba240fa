"""The Python API of the embedded engine: send events in, read unified profiles out.

::

    from engine.api import Followup

    followup = Followup.open()                    # ./followup.yaml, or the embedded defaults
    followup.identify(user_id="u1", traits={"email": "Ann@Example.com"})
    followup.track("Product Added", user_id="u1", properties={"product_id": "p1", "price": 30})
    followup.profile("ann@example.com").state.cart.value   # 30.0

Each call returns once its events are durable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.clock import Clock, utc_now
from engine.config import Project, load_project
from engine.double_opt_in import signups_held_back
from engine.events import EventInvalid, Rejection, parse_message
from engine.ingest.pipeline import Accepted, Ingestor, IngestSummary
from engine.profiles import (
    CustomerProfile,
    RebuildSummary,
    find_customer_id,
    load_profile,
    rebuild_states,
)
from engine.state.reducers import StateReducer
from engine.storage.database import open_database


class Followup:
    """One project's engine: its database, reducers and ingest, built from its configuration."""

    def __init__(self, project: Project, clock: Clock = utc_now) -> None:
        self.project = project
        self.clock = clock
        self.phone_region = project.config.phone_region
        self.engine: sa.Engine = open_database(project.database_url)
        held = signups_held_back(project.config.policies)
        self.reducer = StateReducer(self.phone_region, held)
        self.ingestor = Ingestor(self.engine, self.reducer, self.phone_region, clock)

    @classmethod
    def open(cls, config_path: Path | None = None, clock: Clock = utc_now) -> Followup:
        """The engine for ``config_path`` (default ``./followup.yaml`` or the built-in defaults)."""
        return cls(load_project(config_path), clock)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    # --- events in ---------------------------------------------------------------------------

    def ingest_messages(
        self, messages: Iterable[Mapping[str, Any]], source: str = "api"
    ) -> IngestSummary:
        """Ingest Segment messages; a message without a timestamp happens now."""
        records: list[Accepted | Rejection] = []
        for index, message in enumerate(messages, start=1):
            try:
                events = parse_message(
                    dict(message), default_timestamp=self.clock(), phone_region=self.phone_region
                )
            except EventInvalid as exc:
                raw = repr(message)
                records.append(Rejection(source, index, exc.reason, exc.field, exc.message, raw))
                continue
            records.append(Accepted(events, f"{source}:{index}"))
        return self.ingestor.ingest(records)

    def _call(self, message: dict[str, Any], timestamp: datetime | None) -> IngestSummary:
        message["timestamp"] = (timestamp or self.clock()).isoformat()
        return self.ingest_messages([{k: v for k, v in message.items() if v is not None}])

    def track(
        self,
        event: str,
        *,
        user_id: str | None = None,
        anonymous_id: str | None = None,
        properties: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        channel: str | None = None,
        timestamp: datetime | None = None,
        message_id: str | None = None,
    ) -> IngestSummary:
        """Record that the customer did ``event``."""
        message = {
            "type": "track",
            "event": event,
            "userId": user_id,
            "anonymousId": anonymous_id,
            "properties": dict(properties) if properties else None,
            "context": dict(context) if context else None,
            "channel": channel,
            "messageId": message_id,
        }
        return self._call(message, timestamp)

    def identify(
        self,
        *,
        user_id: str | None = None,
        anonymous_id: str | None = None,
        traits: Mapping[str, Any] | None = None,
        timestamp: datetime | None = None,
        message_id: str | None = None,
    ) -> IngestSummary:
        """Record who the customer is (traits, consent)."""
        message = {
            "type": "identify",
            "userId": user_id,
            "anonymousId": anonymous_id,
            "traits": dict(traits) if traits else None,
            "messageId": message_id,
        }
        return self._call(message, timestamp)

    def alias(
        self,
        *,
        user_id: str,
        previous_id: str,
        timestamp: datetime | None = None,
        message_id: str | None = None,
    ) -> IngestSummary:
        """Link an earlier id (userId or anonymousId) to ``user_id``."""
        message = {
            "type": "alias",
            "userId": user_id,
            "previousId": previous_id,
            "messageId": message_id,
        }
        return self._call(message, timestamp)

    # --- profiles out ------------------------------------------------------------------------

    def customer_id(self, reference: str) -> str | None:
        """The live customer behind an id, userId, email, phone or anonymousId."""
        with self.engine.connect() as conn:
            return find_customer_id(conn, self.ingestor.store, reference, self.phone_region)

    def profile(self, reference: str, recent: int = 20) -> CustomerProfile | None:
        """The unified profile behind ``reference``, with its ``recent`` latest events."""
        with self.engine.connect() as conn:
            store = self.ingestor.store
            customer_id = find_customer_id(conn, store, reference, self.phone_region)
            if customer_id is None:
                return None
            return load_profile(conn, store, customer_id, recent)

    def rebuild_states(self) -> RebuildSummary:
        """Recompute every profile from the event log."""
        return rebuild_states(self.engine, self.reducer, self.clock)
