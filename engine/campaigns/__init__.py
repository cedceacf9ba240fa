"""Campaigns: the file format, its loader and ``followup validate`` (CAMPAIGN_FORMAT.md).

:mod:`~engine.campaigns.schema` is the one source of truth for what a campaign file may say;
:func:`load_campaigns` reads files and folders into :class:`Campaign` values, and every problem,
wherever found, is a :class:`Problem` printed as ``path:line:column: message``.

Importing the package imports none of them: each name is imported from its module on first use, so
the engine's pass (which needs the schema and loader) does not pay for ``followup validate``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.lazy_exports import lazy_attribute

if TYPE_CHECKING:
    from engine.campaigns.expressions import Expression, ExpressionError, compile_expression
    from engine.campaigns.loader import (
        CampaignError,
        CampaignSet,
        LoadedCampaign,
        Problem,
        load_campaigns,
        load_file,
    )
    from engine.campaigns.schema import (
        AdsSend,
        CallSend,
        Campaign,
        CampaignStatus,
        EmailSend,
        Entry,
        EventTrigger,
        ExitRule,
        Goal,
        IfStep,
        ScheduleTrigger,
        SegmentTrigger,
        SplitStep,
        UpdateStep,
        Variant,
        WaitForEvent,
        WaitStep,
        WaitUntil,
        WebhookSend,
        WhileActive,
        campaign_json_schema,
        walk_steps,
    )
    from engine.campaigns.validate import ValidationReport, validate_project

_MODULES = {
    "AdsSend": "engine.campaigns.schema",
    "CallSend": "engine.campaigns.schema",
    "Campaign": "engine.campaigns.schema",
    "CampaignError": "engine.campaigns.loader",
    "CampaignSet": "engine.campaigns.loader",
    "CampaignStatus": "engine.campaigns.schema",
    "EmailSend": "engine.campaigns.schema",
    "Entry": "engine.campaigns.schema",
    "EventTrigger": "engine.campaigns.schema",
    "ExitRule": "engine.campaigns.schema",
    "Expression": "engine.campaigns.expressions",
    "ExpressionError": "engine.campaigns.expressions",
    "Goal": "engine.campaigns.schema",
    "IfStep": "engine.campaigns.schema",
    "LoadedCampaign": "engine.campaigns.loader",
    "Problem": "engine.campaigns.loader",
    "ScheduleTrigger": "engine.campaigns.schema",
    "SegmentTrigger": "engine.campaigns.schema",
    "SplitStep": "engine.campaigns.schema",
    "UpdateStep": "engine.campaigns.schema",
    "ValidationReport": "engine.campaigns.validate",
    "Variant": "engine.campaigns.schema",
    "WaitForEvent": "engine.campaigns.schema",
    "WaitStep": "engine.campaigns.schema",
    "WaitUntil": "engine.campaigns.schema",
    "WebhookSend": "engine.campaigns.schema",
    "WhileActive": "engine.campaigns.schema",
    "campaign_json_schema": "engine.campaigns.schema",
    "compile_expression": "engine.campaigns.expressions",
    "load_campaigns": "engine.campaigns.loader",
    "load_file": "engine.campaigns.loader",
    "validate_project": "engine.campaigns.validate",
    "walk_steps": "engine.campaigns.schema",
}


def __getattr__(name: str) -> Any:
    """``name`` from the module that defines it, imported now."""
    return lazy_attribute(__name__, _MODULES, name)


__all__ = [
    "AdsSend",
    "CallSend",
    "Campaign",
    "CampaignError",
    "CampaignSet",
    "CampaignStatus",
    "EmailSend",
    "Entry",
    "EventTrigger",
    "ExitRule",
    "Expression",
    "ExpressionError",
    "Goal",
    "IfStep",
    "LoadedCampaign",
    "Problem",
    "ScheduleTrigger",
    "SegmentTrigger",
    "SplitStep",
    "UpdateStep",
    "ValidationReport",
    "Variant",
    "WaitForEvent",
    "WaitStep",
    "WaitUntil",
    "WebhookSend",
    "WhileActive",
    "campaign_json_schema",
    "compile_expression",
    "load_campaigns",
    "load_file",
    "validate_project",
    "walk_steps",
]
