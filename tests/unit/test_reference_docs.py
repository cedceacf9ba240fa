"""The generated campaign reference and JSON Schema in docs/ are in step with the schema."""

from __future__ import annotations

from pathlib import Path

from engine.campaigns.reference import reference_markdown, schema_json

DOCS = Path(__file__).resolve().parents[2] / "docs"
REGENERATE = "regenerate with: python -m engine.campaigns.reference docs"


def test_campaign_reference_is_current() -> None:
    assert (DOCS / "campaigns.md").read_text() == reference_markdown(), REGENERATE


def test_campaign_json_schema_is_current() -> None:
    assert (DOCS / "campaign.schema.json").read_text() == schema_json(), REGENERATE


def test_the_reference_names_every_step_and_trigger() -> None:
    text = reference_markdown()
    for name in (
        "EmailSend",
        "AdsSend",
        "CallSend",
        "WebhookSend",
        "WaitStep",
        "IfStep",
        "SplitStep",
        "UpdateStep",
        "EventTrigger",
        "ScheduleTrigger",
        "SegmentTrigger",
    ):
        assert f"## {name}" in text
