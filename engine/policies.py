"""Project policies (``policies:`` in ``followup.yaml``, read as :class:`Policies`), applied
when a send is due.

Pure and deterministic: time and earlier sends are passed in, nothing is read or written.
:meth:`SendPolicies.decide` checks, in this order, stopping at the first that applies:

1. ``audience_remove`` is always allowed: taking someone out of an ad audience is never blocked.
2. Consent for the channel (``webhook`` needs none) → skip ``no_consent``.
3. An address for the channel (email; phone for call and sms; either for ads) → skip ``no_address``.
4. Suppression: a customer with *any* address (email or phone) on the list is not contacted on
   any channel, webhooks included → skip ``suppressed``.
5. Quiet hours for the channel, and for calls the time outside calling hours (default 08:00-21:00),
   in the customer's local time → defer to the end of the window.
6. Frequency caps for the channel, across campaigns → skip ``frequency_cap``.

Deferral comes before caps because a skip is final and a deferral is not: a send due at 22:00 that
is over its cap may be under it at 08:00, when an older send has left the trailing window. The cap
is judged at the instant the send would really go out, when the deferred send comes due again.

Windows are half-open ``[start, end)`` in local wall time and may wrap midnight; ``start == end``
is an empty window (so ``calling_hours: "00:00-00:00"`` means calls at any time). A deferral ends
at the next instant the local clock shows the window's end. Across DST: when that wall time occurs
twice (a fold) the first occurrence not before ``at`` is taken; when it does not occur (a gap) the
first instant after the gap, i.e. the transition itself (02:30 on a 02:00→03:00 night is 03:00).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, PositiveInt, field_validator, model_validator

from engine.campaigns.durations import Duration, TimeWindow, format_duration
from engine.campaigns.expressions import TemplateText
from engine.campaigns.schema import StrictModel, TemplateName, Text, rule_error
from engine.contact import normalize_email, normalize_phone
from engine.events import Event
from engine.journeys.outcomes import SkipReason
from engine.state.profile import CustomerState

Channel = Literal["email", "ads", "call", "webhook"]  # the channels ``policies:`` may name
DEFAULT_CALLING_HOURS = (time(8), time(21))
ACTIONS = frozenset({"send", "audience_add", "audience_remove"})
CHANNELS = frozenset({"email", "sms", "call", "ads", "webhook"})


class FrequencyCap(StrictModel):
    """At most ``max`` sends on a channel within any ``per``."""

    what = "a frequency cap"
    max: PositiveInt
    per: Duration


class DoubleOptIn(StrictModel):
    """``policies.double_opt_in``: ``[email]``, or this mapping."""

    what = "double_opt_in"
    channels: tuple[Text, ...] = Field(
        default=("email",), min_length=1, description="the channels a signup must confirm"
    )
    lists: tuple[Text, ...] = Field(
        default=(),
        description="only signups to these lists (properties.list) confirm; default every one",
    )
    template: TemplateName = Field(
        default="confirm_subscription.html", description="the confirmation email's body"
    )
    subject: TemplateText = "Please confirm your subscription"
    expires: Duration = Field(
        default=timedelta(days=7), description="how long the link in the email can be used"
    )

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        """``[email]``: the channels alone."""
        return {"channels": data} if isinstance(data, list | tuple) else data

    @field_validator("channels")
    @classmethod
    def _by_email(cls, channels: tuple[str, ...]) -> tuple[str, ...]:
        for channel in channels:
            if channel != "email":
                raise rule_error(
                    f"double opt-in confirms a signup by a link in an email, so it holds for "
                    f"email only, not {channel!r}; write double_opt_in: [email]"
                )
        return channels

    def holds_back(self, channel: str, event: Event) -> bool:
        """Whether ``event`` (a ``Subscribed`` for ``channel``) waits for its confirmation
        instead of granting consent."""
        if channel not in self.channels:
            return False
        return not self.lists or event.properties.get("list") in self.lists


class Policies(StrictModel):
    """``policies:`` in ``followup.yaml``."""

    what = "policies"
    frequency_caps: dict[Channel, tuple[FrequencyCap, ...]] = Field(default_factory=dict)
    quiet_hours: dict[Channel, TimeWindow] = Field(default_factory=dict)
    calling_hours: TimeWindow | None = None
    suppression: tuple[str, ...] = ()
    double_opt_in: DoubleOptIn | None = None
    max_delay: dict[Channel, Duration] = Field(
        default_factory=dict,
        description="a send still undelivered this long after the time it was decided for is "
        "skipped as stale (a backfill of old events, a week-long outage); none by default",
    )


class PolicyVerdict(enum.StrEnum):
    """What to do with a due send."""

    ALLOW = "allow"
    SKIP = "skip"
    DEFER = "defer"


@dataclass(frozen=True)
class PolicyDecision:
    """A verdict with its reason (``SKIP``), the UTC instant to retry at (``DEFER``) and a
    human-readable ``detail`` for ``followup explain``."""

    verdict: PolicyVerdict
    reason: SkipReason | None = None
    until: datetime | None = None
    detail: str = ""


ALLOWED = PolicyDecision(PolicyVerdict.ALLOW)
# made once: most skips are for consent, and a decision is a frozen value
_NO_CONSENT = {
    channel: PolicyDecision(
        PolicyVerdict.SKIP, SkipReason.NO_CONSENT, detail=f"no {channel} consent"
    )
    for channel in CHANNELS
}


def in_window(local: time, window: tuple[time, time]) -> bool:
    """Whether the wall-clock time ``local`` is in ``[start, end)``, which may wrap midnight."""
    start, end = window
    if start < end:
        return start <= local < end
    if start > end:
        return local >= start or local < end
    return False


def next_local_time(at: datetime, clock: time, timezone: str) -> datetime:
    """The first instant (UTC) not before ``at`` at which the wall clock in ``timezone`` shows
    ``clock``; in a DST gap, the instant the gap ends (see the module docstring)."""
    return _next_local(_utc(at), clock, ZoneInfo(timezone))


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is UTC:
        return moment  # as astimezone(UTC) gives it back; the usual case, checked first
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"datetime {moment.isoformat()} has no time zone; pass tz-aware UTC")
    return moment.astimezone(UTC)


def _next_local(at: datetime, clock: time, zone: ZoneInfo) -> datetime:
    day = at.astimezone(zone).date()
    # The next day always has the clock time or, in a gap, the gap's end, so two days suffice.
    for offset in range(3):
        for instant in _instants(datetime.combine(day + timedelta(days=offset), clock), zone):
            if instant >= at:
                return instant
    raise AssertionError("unreachable: every local day shows every clock time or its gap's end")


def _instants(wall: datetime, zone: ZoneInfo) -> list[datetime]:
    """The UTC instants at which ``zone`` shows the naive ``wall``: one, two (fold), or, when it
    falls in a gap, the end of the gap."""
    found: list[datetime] = []
    for fold in (0, 1):
        instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == wall and instant not in found:
            found.append(instant)
    return sorted(found) if found else [_gap_end(wall, zone)]


def _gap_end(wall: datetime, zone: ZoneInfo) -> datetime:
    # Read with the offsets before and after the transition, a wall time in a gap maps to one
    # instant before the transition and one after it; bisect to the transition, to the second.
    guesses = sorted(wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1))
    low, high = int(guesses[0].timestamp()), int(guesses[1].timestamp())
    after = guesses[1].astimezone(zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == after:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _iso(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    pattern = (
        "%Y-%m-%dT%H:%MZ" if moment.second == moment.microsecond == 0 else "%Y-%m-%dT%H:%M:%SZ"
    )
    return moment.strftime(pattern)


def _window_text(window: tuple[time, time]) -> str:
    return f"{window[0]:%H:%M}-{window[1]:%H:%M}"


def _address_key(raw: str, phone_region: str) -> str:
    if "@" in raw:
        return normalize_email(raw) or raw.strip().lower()
    return normalize_phone(raw, phone_region) or raw.strip()


class SendPolicies:
    """The project's policies, ready to judge due sends (see the module docstring)."""

    def __init__(
        self, policies: Policies, default_timezone: str = "UTC", phone_region: str = "US"
    ) -> None:
        self._default_zone = ZoneInfo(default_timezone)
        self._phone_region = phone_region
        self._suppressed = frozenset(
            _address_key(entry, phone_region) for entry in policies.suppression if entry.strip()
        )
        self._calling_hours = policies.calling_hours or DEFAULT_CALLING_HOURS
        self._quiet_hours: dict[str, tuple[time, time]] = dict(policies.quiet_hours.items())
        self._caps: dict[str, tuple[FrequencyCap, ...]] = dict(policies.frequency_caps.items())
        self._max_delay: dict[str, timedelta] = dict(policies.max_delay.items())
        self.double_opt_in = policies.double_opt_in

    def quiet_until(
        self, channel: str, customer: CustomerState, now: datetime
    ) -> PolicyDecision | None:
        """The deferral of a delivery due ``now`` inside the channel's configured quiet hours in
        the customer's time zone (a retry, or a pass run late: the engine decided the send
        outside them) to the end of the window; ``None`` outside them, or without quiet hours
        for the channel. Calling hours are not checked here: a call list carries its window to
        the dialer."""
        if channel not in self._quiet_hours:
            return None
        return self._deferral(channel, customer, _utc(now), calling_hours=False)

    def stale(self, channel: str, decided_at: datetime, now: datetime) -> str | None:
        """Why a send decided for ``decided_at`` must not go out at ``now``, if it must not:
        it is later than ``policies.max_delay`` allows on ``channel`` (the outbox detail,
        ``stale: …``)."""
        limit, late = self._max_delay.get(channel), now - decided_at
        if limit is None or late <= limit:
            return None
        age = f"{late.days} days" if late >= timedelta(days=2) else format_duration(late)
        return (
            f"stale: decided for {_iso(decided_at)}, {age} before delivery, past "
            f"policies.max_delay {channel} of {format_duration(limit)}"
        )

    @property
    def cap_history(self) -> timedelta | None:
        """How far back before a send its caps look (the longest window); ``None`` without
        caps, when no earlier send matters."""
        windows = [cap.per for caps in self._caps.values() for cap in caps]
        return max(windows) if windows else None

    def decide(
        self,
        channel: str,
        action: str,
        customer: CustomerState,
        at: datetime,
        sent_on_channel: Sequence[datetime],
    ) -> PolicyDecision:
        """Whether the send of ``action`` on ``channel`` due ``at`` goes out now, later or never.

        ``sent_on_channel`` holds the times of the customer's earlier sends on this channel in
        every campaign; those after ``at`` are ignored.
        """
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}; expected one of {sorted(CHANNELS)}")
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; expected one of {sorted(ACTIONS)}")
        at = _utc(at)
        if action == "audience_remove":
            return ALLOWED
        blocked = self.blocked(channel, customer)
        if blocked is not None:
            return blocked
        deferral = self._deferral(channel, customer, at)
        if deferral is not None:
            return deferral
        return self._frequency_cap(channel, at, sent_on_channel) or ALLOWED

    def blocked(self, channel: str, customer: CustomerState) -> PolicyDecision | None:
        """The skip a send on ``channel`` gets now whatever the time: no consent, no address or
        suppressed; ``None`` when none applies. Checked again just before a provider is called,
        so an unsubscribe takes effect at once for every pending send."""
        return self._consent(channel, customer) or self.unreachable(channel, customer)

    def unreachable(self, channel: str, customer: CustomerState) -> PolicyDecision | None:
        """The skip even a transactional send (a double opt-in confirmation) gets: no address
        for ``channel``, or suppressed; ``None`` when neither applies."""
        return self._address(channel, customer) or self._suppression(channel, customer)

    def _consent(self, channel: str, customer: CustomerState) -> PolicyDecision | None:
        consent = customer.consent
        given = {
            "email": consent.email,
            "sms": consent.sms,
            "call": consent.call,
            "ads": consent.ads,
            "webhook": True,
        }[channel]
        if given:
            return None
        return _NO_CONSENT[channel]

    def _address(self, channel: str, customer: CustomerState) -> PolicyDecision | None:
        email, phone = bool(customer.email), bool(customer.phone)
        needed = {
            "email": ("an email address", email),
            "sms": ("a phone number", phone),
            "call": ("a phone number", phone),
            "ads": ("an email address or phone number", email or phone),
            "webhook": ("", True),
        }
        what, present = needed[channel]
        if present:
            return None
        detail = f"{channel} needs {what}"
        return PolicyDecision(PolicyVerdict.SKIP, SkipReason.NO_ADDRESS, detail=detail)

    def _suppression(self, channel: str, customer: CustomerState) -> PolicyDecision | None:
        if not self._suppressed:
            return None  # nothing to normalise the addresses for
        for raw in (customer.email, customer.phone):
            if raw and _address_key(raw, self._phone_region) in self._suppressed:
                detail = f"{raw} is on the suppression list"
                return PolicyDecision(PolicyVerdict.SKIP, SkipReason.SUPPRESSED, detail=detail)
        return None

    def _zone(self, customer: CustomerState) -> ZoneInfo:
        if customer.timezone:
            try:
                return ZoneInfo(customer.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                pass  # an unknown zone in the profile falls back to the project's
        return self._default_zone

    def _deferral(
        self, channel: str, customer: CustomerState, at: datetime, calling_hours: bool = True
    ) -> PolicyDecision | None:
        # Closed windows: the channel's quiet hours and, for calls, the complement of calling hours.
        closed: list[tuple[str, tuple[time, time]]] = []
        quiet = self._quiet_hours.get(channel)
        if quiet is not None:
            closed.append((f"{channel} quiet hours {_window_text(quiet)}", quiet))
        if channel == "call" and calling_hours:
            start, end = self._calling_hours
            closed.append((f"outside calling hours {_window_text((start, end))}", (end, start)))
        zone, until, reasons = self._zone(customer), at, list[str]()
        # Hop from window end to window end until none is closed; the bound only matters when the
        # windows cover the whole day, and then the send is deferred again when it comes due.
        for _ in range(2 * len(closed) + 2):
            local = until.astimezone(zone).time()
            hit = next(((text, w) for text, w in closed if in_window(local, w)), None)
            if hit is None:
                break
            if hit[0] not in reasons:
                reasons.append(hit[0])
            # Strictly later: when the end falls in a DST gap and the window spans the gap's end,
            # the hop lands inside the window again, and the next hop must leave that day.
            until = _next_local(until + timedelta(microseconds=1), hit[1][1], zone)
        if until == at:
            return None
        detail = f"{'; '.join(reasons)} in {zone.key}: deferred to {_iso(until)}"
        return PolicyDecision(PolicyVerdict.DEFER, until=until, detail=detail)

    def _frequency_cap(
        self, channel: str, at: datetime, sent_on_channel: Sequence[datetime]
    ) -> PolicyDecision | None:
        caps = self._caps.get(channel, ())
        for cap in caps:
            counted = sorted(t for t in map(_utc, sent_on_channel) if at - cap.per < t <= at)
            if len(counted) >= cap.max:
                sent = ", ".join(_iso(t) for t in counted[-cap.max :])
                detail = (
                    f"{channel} cap {cap.max} per {format_duration(cap.per)} reached: sent {sent}"
                )
                return PolicyDecision(PolicyVerdict.SKIP, SkipReason.FREQUENCY_CAP, detail=detail)
        return None
