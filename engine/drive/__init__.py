"""One driver over one store: the loop that feeds the journey engine, whatever keeps its data.

- :mod:`engine.journeys` is the engine: events and the time in, decisions out; no clock, no
  storage.
- :mod:`engine.drive.port` is the store port, :class:`~engine.drive.port.JourneyStore`: hand
  out work (customers with their due events and timers), load them into an engine, keep what
  it decided.
- Its two stores: :class:`~engine.drive.memory_store.MemoryStore` (``simulate``: every
  customer in one engine for the whole run, nothing written) and
  :class:`~engine.durable.sql_store.SqlJourneyStore` (``tick``, ``run``, the Celery workers:
  SQLite or PostgreSQL, batches claimed and committed exactly once).
- :class:`~engine.drive.driver.Driver` is the one pass loop over either: every due event in
  order, the timers due before and after each, then the rest due by ``now``.
- The ticks of scheduled campaigns and the segment sweeps come from a clock:
  :class:`~engine.journeys.virtual_clock.VirtualClock` books them on the engine for ``simulate``
  (every tick, none missed); :class:`~engine.drive.stored_schedules.StoredSchedules` runs them
  first in each durable pass, from the store's schedule rows (missed ticks coalesce,
  APScheduler's model).
- :mod:`engine.drive.outbox_port` is the outbox port,
  :class:`~engine.drive.outbox_port.OutboxStore`: the channel actions decided wait there; a page of due rows, claims, outcomes, retakes of
  what a dead dispatch left. Its stores: :class:`~engine.drive.memory_outbox.MemoryOutbox` and
  :class:`~engine.durable.sql_outbox.SqlOutboxStore`. The
  :class:`~engine.drive.dispatcher.OutboxDispatcher` carries the rows to the providers over
  either.
"""
