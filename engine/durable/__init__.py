"""The durable runtime: the journey engine over the database, exactly once.

Events are logged by ingest with a row in ``journey_inbox``; the runtime
(:mod:`engine.durable.runtime`, the driver of :mod:`engine.drive` over the SQL store of
:mod:`engine.durable.sql_store`) takes them in event order, loads the customers they touch
(journeys, timers, entries, send history) into a :class:`~engine.journeys.runtime.JourneyEngine`,
lets it decide, and writes back in one transaction what changed: journeys, timers, outbox rows
keyed by (journey, step), decisions, and the inbox rows it consumed. A crash before the commit
replays the events; after it, nothing is decided twice. The dispatcher of
:mod:`engine.drive.dispatcher` then carries each outbox row to its channel provider, over the
outbox store of :mod:`engine.durable.sql_outbox`.
"""
