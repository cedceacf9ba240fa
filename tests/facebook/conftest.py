"""The Meta stand-in behind the real SDK, and a provider on it with a clock the test moves."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import responses

from engine.secrets import Redactor
from integrations.facebook.provider import FacebookAudiences
from integrations.facebook.registry import secret_values
from tests.conftest import TickingClock
from tests.facebook.graph import ACCOUNT, SECRET, TOKEN, MetaStandIn, new_api


@pytest.fixture
def graph() -> Iterator[MetaStandIn]:
    """Graph API for ``act_123``; the SDK's HTTP layer goes to it and nowhere else."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield MetaStandIn(mock)


@pytest.fixture
def provider(graph: MetaStandIn, clock: TickingClock) -> FacebookAudiences:
    """The provider on the stand-in: uploads numbered 1, 2, ... so sessions can be asserted."""
    counter = itertools.count(1)
    return FacebookAudiences(
        new_api(),
        ACCOUNT,
        redact=Redactor(secret_values(TOKEN, SECRET)),
        clock=clock,
        session_ids=lambda: next(counter),
    )
