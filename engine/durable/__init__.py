"""The durable runtime: the journey engine over the database, exactly once.

Events are logged by ingest with a row in ``journey_inbox``; :class:`DurableRuntime` takes them in
event order, loads the customers they touch (journeys, timers, entries, send history) into a
:class:`~engine.journeys.runtime.JourneyEngine`, lets it decide, and writes back in one
transaction what changed: journeys, timers, outbox rows keyed by (journey, step), decisions, and
the inbox rows it consumed. A crash before the commit replays the events; after it, nothing is
decided twice. :class:`OutboxDispatcher` then carries each outbox row to its channel provider.
"""

from engine.durable.book import CampaignBook
from engine.durable.outbox import OutboxDispatcher
from engine.durable.runtime import DurableRuntime, TickSummary

__all__ = ["CampaignBook", "DurableRuntime", "OutboxDispatcher", "TickSummary"]
