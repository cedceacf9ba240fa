"""The ``scenario`` fixture of the journey tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.journeys.scenario import Scenario


@pytest.fixture
def scenario(tmp_path: Path) -> Scenario:
    return Scenario(tmp_path)
