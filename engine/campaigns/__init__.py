"""Campaigns: the file format, its loader and ``followup validate`` (CAMPAIGN_FORMAT.md).

:mod:`~engine.campaigns.schema` is the one source of truth for what a campaign file may say;
:func:`load_campaigns` reads files and folders into :class:`Campaign` values, and every problem,
wherever found, is a :class:`Problem` printed as ``path:line:column: message``.
"""

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
