"""A plan in figures: per campaign, who entered, what was sent, skipped and converted."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.journeys.plan import PlanAction, PlanLine


@dataclass
class CampaignFigures:
    """What one campaign did in a plan."""

    entered: int = 0
    held_out: int = 0
    sent: Counter[str] = field(default_factory=Counter)  # by channel, or audience_add/_remove
    skipped: Counter[str] = field(default_factory=Counter)  # by reason
    exited: Counter[str] = field(default_factory=Counter)  # by reason
    converted: int = 0  # journeys with at least one conversion
    revenue: float = 0.0  # the value of every conversion


def summarize(lines: Iterable[PlanLine]) -> dict[str, CampaignFigures]:
    """The figures of every campaign that appears in ``lines``, by campaign id."""
    figures: dict[str, CampaignFigures] = {}
    converted: set[str] = set()  # a journey converts at each goal event: counted once
    for line in lines:
        campaign = figures.setdefault(line.campaign, CampaignFigures())
        if line.action is PlanAction.ENTER:
            campaign.entered += 1
            campaign.held_out += bool(line.fields.get("holdout"))
        elif line.action is PlanAction.EXIT:
            campaign.exited[str(line.reason or "-")] += 1
        elif line.action is PlanAction.CONVERT:
            if line.journey not in converted:
                converted.add(line.journey)
                campaign.converted += 1
            value = line.fields.get("value")
            if isinstance(value, int | float) and not isinstance(value, bool):
                campaign.revenue += value
        elif line.status == "sent":
            what = line.channel if line.action is PlanAction.SEND else line.action.value
            campaign.sent[what or "-"] += 1
        else:
            campaign.skipped[str(line.reason or "-")] += 1
    return dict(sorted(figures.items()))
