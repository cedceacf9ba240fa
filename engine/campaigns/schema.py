"""The campaign file format (CAMPAIGN_FORMAT.md) as frozen pydantic models: the one source of truth.

Keys are the file's own (``if``, ``else``, ``from`` and ``list`` are aliases of ``if_``, ``else_``,
``from_`` and ``list_``). Triggers, steps, send channels and wait forms are discriminated unions
whose errors say what to write instead; :func:`campaign_json_schema` is the schema editors use.
"""

from __future__ import annotations

import difflib
import enum
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import PurePosixPath
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    model_validator,
)
from pydantic_core import PydanticCustomError

from engine.campaigns.durations import ClockTime, Cron, Duration, Percent, TimeZone
from engine.campaigns.expressions import ExpressionField, TemplateText

STEP_KINDS = ("send", "wait", "if", "split", "update")
TRIGGER_KINDS = ("event", "schedule", "segment")
CHANNELS = ("email", "ads", "call", "webhook")


SCHEDULE_NEEDS_AUDIENCE = (
    "a schedule trigger needs audience: the condition for entering at each tick, "
    "e.g. audience: customer.consent.email"
)


def rule_error(message: str, at: str | int | None = None, key: bool = False) -> PydanticCustomError:
    """A validation error with a ready message; ``at`` names the key it is about, if any, and
    ``key`` points at that key itself rather than its value."""
    return PydanticCustomError("followup", "{message}", {"message": message, "at": at, "key": key})


@dataclass(frozen=True, slots=True)
class UnknownKey:
    """Stands in for the value of an unknown key, so its ``extra_forbidden`` error carries a
    message with a suggestion (pydantic itself knows only that the key is extra)."""

    message: str


class StrictModel(BaseModel):
    """Frozen, and strict about keys: each unknown key fails with a suggestion. ``what`` names
    the mapping in messages ("unknown field 'subjet' in send: email; did you mean subject?")."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    what: ClassVar[str] = "this mapping"

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        allowed = [field.alias or name for name, field in cls.model_fields.items()]
        if all(key in allowed for key in data):
            return data
        return {
            key: value if key in allowed else cls._unknown(key, allowed)
            for key, value in data.items()
        }

    @classmethod
    def _unknown(cls, key: object, allowed: list[str]) -> UnknownKey:
        close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else f"expected {_one_of(allowed)}"
        return UnknownKey(f"unknown field {key!r} in {cls.what}; {hint}")


def _one_of(choices: list[str] | tuple[str, ...]) -> str:
    return choices[0] if len(choices) == 1 else "one of " + ", ".join(choices)


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def _template_name(value: str) -> str:
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts or "\\" in value:
        raise ValueError(
            f"template {value!r} must name a file inside templates/, e.g. abandoned_cart.html"
        )
    return value


TemplateName = Annotated[Text, AfterValidator(_template_name)]


_ADDR_SPEC = re.compile(r"[^@\s<>()\[\],;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


def _mailbox(value: str) -> str:
    """An address a From or Reply-To header holds: ``shop@example.com`` or ``Shop
    <shop@example.com>`` (a bare name made a From with no address, refused by relays)."""
    from email.utils import getaddresses

    found = getaddresses([value])
    name, address = found[0] if len(found) == 1 else ("", "")
    if "{" in value or not _ADDR_SPEC.fullmatch(address) or (name and "<" not in value):
        raise ValueError(
            f"{value!r} is not one email address; write e.g. shop@example.com or "
            "Shop <shop@example.com> (it is not a template)"
        )
    return value


Mailbox = Annotated[Text, AfterValidator(_mailbox)]


CAMPAIGN_ID = re.compile(r"[a-z0-9][a-z0-9-]*")


def _campaign_id(value: str) -> str:
    if not CAMPAIGN_ID.fullmatch(value):
        slug = re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-") or "my-campaign"
        raise ValueError(
            f"campaign id {value!r} may hold only lowercase letters, digits and '-', "
            f"and starts with a letter or digit; write e.g. {slug}"
        )
    return value


CampaignId = Annotated[str, AfterValidator(_campaign_id)]


def _variant_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", value):
        raise ValueError(
            f"variant name {value!r} may hold only letters, digits, '_' and '-' "
            "(it appears in plan step paths such as 2.A.0)"
        )
    return value


class CampaignStatus(enum.StrEnum):
    """Whether a campaign takes new entries; a draft is only validated and simulated."""

    ACTIVE = "active"
    PAUSED = "paused"
    DRAFT = "draft"


class WhileActive(enum.StrEnum):
    """What a new trigger does to a customer's running journey."""

    IGNORE = "ignore"
    RESTART = "restart"


class CallPriority(enum.StrEnum):
    """How urgent a call list entry is."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


def _keyed_union(
    what: str,
    members: dict[str, type[BaseModel] | tuple[type[BaseModel], ...]],
    example: str,
    extra: str = "",
) -> tuple[Callable[[Any], str | None], Callable[[Any], Any]]:
    """A discriminator picking the member by which of ``members`` is a key (or by the type of a
    model), and a check before it that explains a mapping with none or several of them."""
    kinds = tuple(members)

    def tag(value: Any) -> str | None:
        if isinstance(value, BaseModel):
            found = [kind for kind, types in members.items() if isinstance(value, types)]
        else:
            found = [kind for kind in kinds if isinstance(value, dict) and kind in value]
        return f"{what}:{found[0]}" if len(found) == 1 else None

    def check(value: Any) -> Any:
        if isinstance(value, BaseModel):
            return value
        if not isinstance(value, dict) or not value:
            raise ValueError(f"a {what} is a mapping such as '{example}'; got {value!r}")
        present = [kind for kind in kinds if kind in value]
        if not present:
            raise ValueError(
                f"unknown {what} {next(iter(value))!r}; expected one of {', '.join(kinds)}"
            )
        if len(present) > 1:
            raise ValueError(
                f"a {what} has exactly one of {', '.join(kinds)}, but this one has "
                f"{' and '.join(present)}{extra}"
            )
        return value

    return tag, check


# --- triggers ------------------------------------------------------------------------------------


class EventTrigger(StrictModel):
    """A customer enters when an event of this name arrives for them (and ``where`` holds)."""

    what = "an event trigger"
    event: Text
    where: ExpressionField | None = None


class ScheduleTrigger(StrictModel):
    """At each cron tick, every customer matching the campaign's ``audience`` enters."""

    what = "a schedule trigger"
    schedule: Cron
    timezone: TimeZone | None = Field(default=None, description="IANA zone; default the project's")
    misfire_grace: Duration = Field(
        default=timedelta(hours=1),
        description="How late a tick may still run after passes stopped (APScheduler's "
        "misfire_grace_time); missed ticks are coalesced into the latest within it, older "
        "ones are skipped",
    )


class SegmentTrigger(StrictModel):
    """A customer enters when the expression over their state turns from false to true."""

    what = "a segment trigger"
    segment: ExpressionField


_trigger_tag, _trigger_check = _keyed_union(
    "trigger",
    {"event": EventTrigger, "schedule": ScheduleTrigger, "segment": SegmentTrigger},
    "event: Product Added",
)
Trigger = Annotated[
    Annotated[EventTrigger, Tag("trigger:event")]
    | Annotated[ScheduleTrigger, Tag("trigger:schedule")]
    | Annotated[SegmentTrigger, Tag("trigger:segment")],
    Discriminator(_trigger_tag),
    BeforeValidator(_trigger_check),
]


# --- sends ---------------------------------------------------------------------------------------


class EmailSend(StrictModel):
    """``send: email``: a template from ``templates/`` and a subject (a template string)."""

    what = "send: email"
    send: Literal["email"]
    template: TemplateName
    subject: TemplateText
    from_: Mailbox | None = Field(default=None, alias="from")
    reply_to: Mailbox | None = None
    tags: tuple[Text, ...] = ()


class AdsSend(StrictModel):
    """``send: ads``: add the customer to an ad audience, removed on exit unless told otherwise."""

    what = "send: ads"
    send: Literal["ads"]
    audience: Text
    remove_on_exit: bool = True


class CallSend(StrictModel):
    """``send: call``: put the customer on a call list, called inside calling hours."""

    what = "send: call"
    send: Literal["call"]
    list_: Text = Field(alias="list")
    priority: CallPriority | None = None
    reason: Text | None = None
    script: TemplateText | None = Field(
        default=None,
        description="what the agent says, a template rendered for the customer as a subject is",
    )


class WebhookSend(StrictModel):
    """``send: webhook``: POST a rendered body to a URL named in the configuration."""

    what = "send: webhook"
    send: Literal["webhook"]
    url: Text = Field(description="the name of a URL in the configuration")
    body: TemplateText


def _channel_tag(value: Any) -> str | None:
    channel = value.get("send") if isinstance(value, dict) else getattr(value, "send", None)
    return f"send:{channel}" if channel in CHANNELS else None


def _channel_check(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value
    channel = value.get("send") if isinstance(value, dict) else None
    if channel not in CHANNELS:
        hint = difflib.get_close_matches(str(channel), CHANNELS, n=1)
        mean = f"did you mean {hint[0]}? " if hint else ""
        raise rule_error(
            f"unknown channel {channel!r}; {mean}expected one of {', '.join(CHANNELS)}", at="send"
        )
    return value


SendStep = Annotated[
    Annotated[EmailSend, Tag("send:email")]
    | Annotated[AdsSend, Tag("send:ads")]
    | Annotated[CallSend, Tag("send:call")]
    | Annotated[WebhookSend, Tag("send:webhook")],
    Discriminator(_channel_tag),
    BeforeValidator(_channel_check),
]


# --- waits ---------------------------------------------------------------------------------------


class WaitUntil(StrictModel):
    """``wait: {until: "09:00"}``: the next such time in the customer's timezone."""

    what = "wait: {until: ...}"
    until: ClockTime


class WaitForEvent(StrictModel):
    """``wait: {for: EVENT, timeout: DURATION}``: whichever comes first."""

    what = "wait: {for: ..., timeout: ...}"
    event: Text = Field(alias="for")
    timeout: Duration


def _wait_tag(value: Any) -> str | None:
    if isinstance(value, WaitUntil | WaitForEvent):
        return "wait:until" if isinstance(value, WaitUntil) else "wait:for"
    if isinstance(value, dict):
        return "wait:until" if "until" in value else "wait:for" if "for" in value else None
    return "wait:duration"


def _wait_check(value: Any) -> Any:
    if isinstance(value, dict) and not ("until" in value) ^ ("for" in value):
        raise ValueError(
            'wait takes a duration (wait: 1h), wait: {until: "09:00"} '
            "or wait: {for: EVENT, timeout: DURATION}"
        )
    return value


WaitSpec = Annotated[
    Annotated[Duration, Tag("wait:duration")]
    | Annotated[WaitUntil, Tag("wait:until")]
    | Annotated[WaitForEvent, Tag("wait:for")],
    Discriminator(_wait_tag),
    BeforeValidator(_wait_check),
]


class WaitStep(StrictModel):
    """``wait:`` a duration, until a time of day, or for an event (then ``then``/``else``)."""

    what = "wait"
    wait: WaitSpec
    then: tuple[Step, ...] = ()
    else_: tuple[Step, ...] = Field(default=(), alias="else")

    @model_validator(mode="after")
    def _branches_need_for(self) -> WaitStep:
        if (self.then or self.else_) and not isinstance(self.wait, WaitForEvent):
            raise rule_error(
                "then/else go only with wait: {for: EVENT, timeout: DURATION}",
                at="then" if self.then else "else",
                key=True,
            )
        return self


# --- other steps ---------------------------------------------------------------------------------


class IfStep(StrictModel):
    """``if: EXPRESSION`` with ``then:`` and optional ``else:`` steps."""

    what = "if"
    if_: ExpressionField = Field(alias="if")
    then: tuple[Step, ...] = Field(min_length=1)
    else_: tuple[Step, ...] = Field(default=(), alias="else")


class Variant(StrictModel):
    """One arm of a split: a name for plan paths, a weight, and its steps (none: a control)."""

    what = "a split variant"
    name: Annotated[Text, AfterValidator(_variant_name)]
    weight: Percent
    steps: tuple[Step, ...] = ()


class SplitStep(StrictModel):
    """``split:`` a stable A/B test per customer; weights add up to 100%."""

    what = "split"
    split: tuple[Variant, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _weights_and_names(self) -> SplitStep:
        names = [variant.name for variant in self.split]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise rule_error(f"split variant names must differ; {repeated[0]!r} is used twice")
        total = sum(variant.weight for variant in self.split)
        if not math.isclose(total, 1.0, abs_tol=1e-9):
            raise rule_error(
                f"split weights add up to {total * 100:g}%; they must add up to 100%", at="split"
            )
        return self


class TraitUpdate(StrictModel):
    """``traits: {KEY: EXPRESSION}``: values computed at the step's time."""

    what = "update"
    traits: dict[Text, ExpressionField] = Field(min_length=1)


class UpdateStep(StrictModel):
    """``update: {traits: {...}}``: write to the customer's profile. Each value is kept as
    JSON data, as the database keeps it: a time as RFC 3339 text, a filter's sequence as a
    list, a value JSON cannot hold as null."""

    what = "update"
    update: TraitUpdate


_step_tag, _step_check = _keyed_union(
    "step",
    {
        "send": (EmailSend, AdsSend, CallSend, WebhookSend),
        "wait": WaitStep,
        "if": IfStep,
        "split": SplitStep,
        "update": UpdateStep,
    },
    "wait: 1h",
    extra="; start a new '- ' item for each step",
)
Step = Annotated[
    Annotated[SendStep, Tag("step:send")]
    | Annotated[WaitStep, Tag("step:wait")]
    | Annotated[IfStep, Tag("step:if")]
    | Annotated[SplitStep, Tag("step:split")]
    | Annotated[UpdateStep, Tag("step:update")],
    Discriminator(_step_tag),
    BeforeValidator(_step_check),
]
AnySend = EmailSend | AdsSend | CallSend | WebhookSend
AnyStep = AnySend | WaitStep | IfStep | SplitStep | UpdateStep


# --- the campaign --------------------------------------------------------------------------------


class Entry(StrictModel):
    """Who may enter again, and when."""

    what = "entry"
    while_active: WhileActive = WhileActive.IGNORE
    cooldown: Duration | None = None
    once: bool = False


class ExitRule(StrictModel):
    """An event that ends the journey at once, when it comes after the entry."""

    what = "an exit"
    event: Text


class Goal(StrictModel):
    """The conversion event, for attribution and holdout lift."""

    what = "goal"
    event: Text
    within: Duration | None = None
    value: ExpressionField | None = None


class Campaign(StrictModel):
    """One campaign file."""

    what = "a campaign"
    campaign: CampaignId
    name: Text | None = None
    status: CampaignStatus = CampaignStatus.ACTIVE
    trigger: Trigger
    audience: ExpressionField | None = None
    entry: Entry = Entry()
    exit: tuple[ExitRule, ...] = ()
    goal: Goal | None = None
    holdout: Percent = 0.0
    steps: tuple[Step, ...] = Field(min_length=1)

    @property
    def id(self) -> str:
        """The campaign id (the file's ``campaign:``)."""
        return self.campaign

    @model_validator(mode="after")
    def _consistent(self) -> Campaign:
        if isinstance(self.trigger, ScheduleTrigger) and self.audience is None:
            raise rule_error(SCHEDULE_NEEDS_AUDIENCE, at="trigger")
        if self.holdout >= 1:
            raise rule_error("holdout must be under 100%", at="holdout")
        return self


for _model in (WaitStep, IfStep, Variant, SplitStep, Campaign):
    _model.model_rebuild()


def walk_steps(
    steps: tuple[AnyStep, ...], path: str = "", loc: tuple[str | int, ...] = ("steps",)
) -> Iterator[tuple[str, tuple[str | int, ...], AnyStep]]:
    """Every step below ``steps``, depth first, with its plan path (``"3.then.0"``,
    ``"2.A.0"``) and its location in the file (``("steps", 3, "then", 0)``)."""
    for index, step in enumerate(steps):
        step_path, step_loc = f"{path}{index}", (*loc, index)
        yield step_path, step_loc, step
        if isinstance(step, IfStep | WaitStep):
            yield from walk_steps(step.then, f"{step_path}.then.", (*step_loc, "then"))
            yield from walk_steps(step.else_, f"{step_path}.else.", (*step_loc, "else"))
        elif isinstance(step, SplitStep):
            for number, variant in enumerate(step.split):
                yield from walk_steps(
                    variant.steps,
                    f"{step_path}.{variant.name}.",
                    (*step_loc, "split", number, "steps"),
                )


def campaign_json_schema() -> dict[str, Any]:
    """The JSON Schema of a campaign file, for editors."""
    return Campaign.model_json_schema(by_alias=True)
