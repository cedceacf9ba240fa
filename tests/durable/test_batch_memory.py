"""A durable batch's engine (its journeys, states and plan) is freed by reference counting
when the batch ends: left in a cycle, every batch's objects waited for the collector's full
collections, which walked the whole heap (a fifth of a pass over 20,000 customers)."""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.durable.project import DurableProject
from engine.gc_pauses import frozen_heap
from engine.journeys.runtime import JourneyEngine
from engine.state.profile import CustomerState
from tests.durable.harness import STORIES, Clock, ingest_file, make_project, open_followup


def _alive(kind: type) -> int:
    return sum(1 for found in gc.get_objects() if isinstance(found, kind))


def test_passes_leave_no_engine_and_no_state_behind(tmp_path: Path) -> None:
    clock = Clock(datetime(2024, 1, 1, tzinfo=UTC))
    followup = open_followup(make_project(tmp_path), f"sqlite:///{tmp_path / 'f.db'}", clock)
    try:
        for stream in ("events.jsonl", "win_back_events.jsonl"):  # every example campaign
            ingest_file(followup, STORIES / stream)
        durable = DurableProject(followup)
        durable.runtime.batch_size = 2  # many batches a pass
        gc.collect()
        before = _alive(CustomerState)
        gc.disable()
        try:
            decided, states = 0, 0
            for day in range(0, 200, 5):  # events, timers, schedule ticks and segment sweeps
                clock.now = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=day)
                decided += sum(durable.run_once().engine.decisions.values())
                assert _alive(JourneyEngine) == 0, f"an engine left after the pass of day {day}"
                states = max(states, _alive(CustomerState))
        finally:
            gc.enable()
        assert decided > 20
        assert states == before, "the body check kept a batch's states after it"
    finally:
        followup.close()


def test_a_pass_leaves_a_heap_the_process_froze_itself_frozen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server that preloads, freezes and forks keeps its frozen objects out of collections
    after a pass: the pass neither freezes nor unfreezes. (The count of frozen objects is no
    witness: another thread, pytest-xdist's own, may free a frozen object meanwhile.)"""
    calls: list[str] = []
    gc.freeze()
    try:
        with monkeypatch.context() as patched:
            patched.setattr(gc, "freeze", lambda: calls.append("freeze"))
            patched.setattr(gc, "unfreeze", lambda: calls.append("unfreeze"))
            with frozen_heap():
                pass
        assert calls == []
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    with frozen_heap():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
