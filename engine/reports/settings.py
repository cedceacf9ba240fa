"""``reports:`` in ``followup.yaml``: which event is an order, what it is worth, and how orders
are attributed to touches (../shared/design/REPORTS.md). Every key is optional."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal, get_args

from pydantic import Field, field_validator

from engine.campaigns.durations import Duration, Span
from engine.campaigns.expressions import Expression, ExpressionField
from engine.campaigns.schema import StrictModel, Text
from engine.reports.attribution import DEFAULT_HALF_LIFE, DEFAULT_WINDOWS, Model

DEFAULT_CONVERSION = "Order Completed"
DEFAULT_VALUE = "event.properties.revenue"  # as REPORTS.md shows the default
# the channels a window may name (REPORTS.md): a typo is refused, not a window of no channel
WindowChannel = Literal["email", "sms", "call", "ads", "webhook"]


class ReportSettings(StrictModel):
    """``reports:``."""

    what = "reports"
    conversion: Text = Field(default=DEFAULT_CONVERSION, description="the event that is an order")
    value: ExpressionField | None = Field(
        default=None,
        description="an order's value (default event.properties.revenue, else total, else 0)",
    )
    model: Model = Model.LAST_TOUCH
    windows: dict[WindowChannel, Span] = Field(
        default_factory=lambda: _default_windows(),
        description="how long after a touch on each channel an order is credited to it (0d: "
        "never); channels left out keep their default",
    )
    half_life: Duration = Field(default=DEFAULT_HALF_LIFE, description="time_decay only")

    @field_validator("value")
    @classmethod
    def _default_written_out(cls, value: Expression | None) -> Expression | None:
        """The default written out (REPORTS.md shows it so) is the default, with its own
        fallbacks: ``total``, then 0."""
        if value is not None and "".join(value.source.split()) == DEFAULT_VALUE:
            return None
        return value

    def channel_windows(self) -> dict[str, timedelta]:
        """The windows of every channel: the defaults, with the configured ones over them."""
        configured: dict[str, timedelta] = {str(c): span for c, span in self.windows.items()}
        return {**DEFAULT_WINDOWS, **configured}


def _default_windows() -> dict[WindowChannel, timedelta]:
    """REPORTS.md's windows, each channel's."""
    return {channel: DEFAULT_WINDOWS[channel] for channel in get_args(WindowChannel)}


def report_settings(reports: Mapping[str, Any]) -> ReportSettings:
    """The settings of ``reports:`` as ``followup.yaml`` has it (validated)."""
    return ReportSettings.model_validate(dict(reports))
