"""The decision words are enums that read, store and print as the plain words they were."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from engine.durable.explain_text import EXIT_REASONS, NOT_ENTERED_REASONS, SKIP_REASONS
from engine.journeys.outcomes import ExitReason, NotEntered, SendStatus, SkipReason
from engine.journeys.plan import CustomerRef, PlanAction, PlanLine
from engine.journeys.summary import summarize


@pytest.mark.parametrize(
    ("reasons", "texts"),
    [(SkipReason, SKIP_REASONS), (ExitReason, EXIT_REASONS), (NotEntered, NOT_ENTERED_REASONS)],
)
def test_every_reason_has_its_plain_english_text(reasons: type, texts: dict[str, str]) -> None:
    assert set(texts) == {member.value for member in reasons}


def test_a_skipped_line_prints_and_counts_its_reason_as_a_plain_word() -> None:
    line = PlanLine(
        at=datetime(2024, 6, 1, 10, tzinfo=UTC),
        campaign="cart",
        journey="j1",
        action=PlanAction.SEND,
        customer=CustomerRef("c1", "u1", None, None),
        sequence=1,
        step="0",
        channel="email",
        status=SendStatus.SKIPPED,
        reason=SkipReason.NO_CONSENT,
    )
    printed = orjson.loads(orjson.dumps(line.to_json()))
    assert (printed["status"], printed["reason"]) == ("skipped", "no_consent")
    skipped = summarize([line])["cart"].skipped
    assert type(next(iter(skipped))) is str  # orjson refuses an enum member as a key
    assert orjson.loads(orjson.dumps(skipped)) == {"no_consent": 1}
