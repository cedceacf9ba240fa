"""``no_full_collections`` holds back full collections for a run and restores the thresholds."""

from __future__ import annotations

import gc

import pytest

from engine.gc_pauses import NO_FULL, no_full_collections


def test_inside_only_young_collections_then_the_thresholds_come_back() -> None:
    before = gc.get_threshold()
    with no_full_collections():
        young, middle, oldest = gc.get_threshold()
        assert (young, middle) == before[:2] and oldest == NO_FULL
    assert gc.get_threshold() == before


def test_the_thresholds_come_back_after_an_error() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), no_full_collections():
        raise RuntimeError("the run failed")
    assert gc.get_threshold() == before
