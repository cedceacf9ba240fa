"""Deciding a due send: the project policies at that moment, caps counted across campaigns.

A send is checked when it is due, not when its journey started: consent withdrawn overnight
skips it, quiet hours defer it to the end of the window (and it is checked again then), a send
whose journey exited in the meantime is skipped with the reason ``exited``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.journeys.outcomes import SendStatus, SkipReason
from engine.policies import CHANNELS, PolicyVerdict, SendPolicies
from engine.state.profile import CustomerState
from engine.values import quick_init

# once: on Python 3.11 each PolicyVerdict.X goes through EnumType.__getattr__
_DEFER, _SKIP = PolicyVerdict.DEFER, PolicyVerdict.SKIP


@quick_init
@dataclass(frozen=True, slots=True)
class PendingSend:
    """A channel action a journey step took, waiting to be delivered."""

    journey: str
    step: str
    channel: str
    action: str
    fields: Mapping[str, Any]
    due: datetime
    holds_audience: bool = False  # an ads step the journey leaves the audience of on exit


@quick_init
@dataclass(frozen=True, slots=True)
class DispatchOutcome:
    """``sent`` or ``skipped`` (with the reason), or deferred to ``defer_until``."""

    status: SendStatus | None = None
    reason: SkipReason | None = None
    defer_until: datetime | None = None


_SKIPPED = SendStatus.SKIPPED
# the outcomes without a detail of their own, made once (frozen values)
_SENT = DispatchOutcome(SendStatus.SENT)
_EXITED = DispatchOutcome(_SKIPPED, SkipReason.EXITED)
_RENDER_ERROR = DispatchOutcome(_SKIPPED, SkipReason.RENDER_ERROR)


class Dispatcher:
    """Applies the policies to due sends and remembers what was sent, per customer and channel."""

    def __init__(self, policies: SendPolicies) -> None:
        self.policies = policies
        self._sent: dict[tuple[str, str], list[datetime]] = {}

    def remember(self, customer_id: str, channel: str, times: list[datetime]) -> None:
        """Earlier sends of the customer on the channel (from the durable outbox), for the caps."""
        joined = self._sent.setdefault((customer_id, channel), [])
        joined.extend(times)
        joined.sort()

    def merge(self, merged_id: str, survivor_id: str) -> None:
        """Two profiles became one: their send histories count together for the caps."""
        for channel in CHANNELS:  # by key: a merge must not cost a scan of every customer
            times = self._sent.pop((merged_id, channel), None)
            if times:
                self.remember(survivor_id, channel, times)

    def decide(
        self,
        pending: PendingSend,
        customer_id: str,
        state: CustomerState,
        at: datetime,
        journey_exited: bool = False,
        renders: Callable[[], bool] | None = None,
        transactional: bool = False,
    ) -> DispatchOutcome:
        """What happens to ``pending`` now. A journey that exited meanwhile skips its sends
        (audience removals go on). ``renders`` says whether the content renders, asked only of
        a send the policies let through: one that cannot is skipped (``render_error``) and
        not counted by the caps. A ``transactional`` send (a double opt-in confirmation)
        needs only an address that is not suppressed, and is not counted by the caps."""
        if journey_exited and pending.action != "audience_remove":
            return _EXITED
        if transactional:
            unreachable = self.policies.unreachable(pending.channel, state)
            if unreachable is not None and unreachable.reason is not None:
                return DispatchOutcome(_SKIPPED, unreachable.reason)
            if renders is not None and not renders():
                return _RENDER_ERROR
            return _SENT
        history = self._sent.setdefault((customer_id, pending.channel), [])
        decision = self.policies.decide(pending.channel, pending.action, state, at, history)
        if decision.verdict is _DEFER:
            return DispatchOutcome(defer_until=decision.until)
        if decision.verdict is _SKIP:
            return DispatchOutcome(_SKIPPED, decision.reason or SkipReason.POLICY)
        if renders is not None and not renders():
            return _RENDER_ERROR
        if pending.action != "audience_remove":
            history.append(at)
        return _SENT
