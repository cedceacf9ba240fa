"""Project policies at send time: consent, address, suppression, quiet/calling hours, caps."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.policies import (
    Policies,
    PolicyDecision,
    PolicyVerdict,
    SendPolicies,
    SkipReason,
    in_window,
    next_local_time,
)
from engine.state.profile import Consent, CustomerState

ALL_CONSENT = Consent(email=True, sms=True, call=True, ads=True)
MONDAY = datetime(2024, 6, 3, 12, tzinfo=UTC)


def customer(
    email: str | None = "ada@example.com",
    phone: str | None = "+14155550100",
    consent: Consent = ALL_CONSENT,
    timezone: str | None = None,
) -> CustomerState:
    traits = {key: value for key, value in (("email", email), ("phone", phone)) if value}
    return CustomerState(user_id="u1", traits=traits, consent=consent, timezone=timezone)


def policies(
    default_timezone: str = "UTC", phone_region: str = "US", **config: Any
) -> SendPolicies:
    return SendPolicies(Policies.model_validate(config), default_timezone, phone_region)


def decide(
    rules: SendPolicies,
    channel: str = "email",
    at: datetime = MONDAY,
    who: CustomerState | None = None,
    sent: Sequence[datetime] = (),
    action: str = "send",
) -> PolicyDecision:
    return rules.decide(channel, action, who or customer(), at, sent)


def assert_skip(decision: PolicyDecision, reason: SkipReason) -> None:
    assert (decision.verdict, decision.reason, decision.until) == (PolicyVerdict.SKIP, reason, None)


def assert_defer(decision: PolicyDecision, until: datetime) -> None:
    assert (decision.verdict, decision.reason) == (PolicyVerdict.DEFER, None)
    assert decision.until == until
    assert decision.until.tzinfo is UTC


def assert_allow(decision: PolicyDecision) -> None:
    assert decision == PolicyDecision(PolicyVerdict.ALLOW)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# --- consent, address, suppression --------------------------------------------------------------


def test_no_policies_allow_a_consented_addressed_send() -> None:
    for channel in ("email", "sms", "ads", "webhook"):
        assert_allow(decide(policies(), channel))
    assert_allow(decide(policies(), "call", at=utc(2024, 6, 3, 12)))


@pytest.mark.parametrize("channel", ["email", "sms", "call", "ads"])
def test_each_channel_needs_its_own_consent(channel: str) -> None:
    others = {name: name != channel for name in ("email", "sms", "call", "ads")}
    decision = decide(policies(), channel, who=customer(consent=Consent(**others)))
    assert_skip(decision, SkipReason.NO_CONSENT)
    assert decision.detail == f"no {channel} consent"


def test_webhook_needs_neither_consent_nor_address() -> None:
    nobody = customer(email=None, phone=None, consent=Consent())
    assert_allow(decide(policies(), "webhook", who=nobody))


@pytest.mark.parametrize(
    ("channel", "email", "phone", "allowed"),
    [
        ("email", None, "+14155550100", False),
        ("email", "ada@example.com", None, True),
        ("call", "ada@example.com", None, False),
        ("sms", "ada@example.com", None, False),
        ("call", None, "+14155550100", True),
        ("ads", None, "+14155550100", True),
        ("ads", "ada@example.com", None, True),
        ("ads", None, None, False),
    ],
)
def test_address_needed_per_channel(
    channel: str, email: str | None, phone: str | None, allowed: bool
) -> None:
    decision = decide(policies(), channel, who=customer(email=email, phone=phone))
    if allowed:
        assert_allow(decision)
    else:
        assert_skip(decision, SkipReason.NO_ADDRESS)


@pytest.mark.parametrize(
    ("listed", "address"),
    [
        ("  Blocked@Example.COM ", "blocked@example.com"),
        ("blocked@example.com", " BLOCKED@example.com"),
        ("+1 (415) 555-0100", "+14155550100"),
        ("415.555.0100", "+1 415 555 0100"),
        ("+15550100", "+1 555-0100"),
    ],
)
def test_suppression_compares_normalised_addresses(listed: str, address: str) -> None:
    who = customer(email=address) if "@" in address else customer(phone=address)
    decision = decide(policies(suppression=[listed]), who=who)
    assert_skip(decision, SkipReason.SUPPRESSED)
    assert address in decision.detail


def test_suppression_of_national_phone_uses_the_project_region() -> None:
    rules = policies(phone_region="FR", suppression=["06 12 34 56 78"])
    assert_skip(decide(rules, "call", who=customer(phone="+33612345678")), SkipReason.SUPPRESSED)
    assert_allow(
        decide(policies(suppression=["06 12 34 56 78"]), who=customer(phone="+33612345678"))
    )


def test_a_suppressed_address_suppresses_the_customer_on_every_channel() -> None:
    rules = policies(suppression=["ada@example.com"])
    for channel in ("email", "call", "ads", "sms", "webhook"):
        assert_skip(decide(rules, channel), SkipReason.SUPPRESSED)
    assert_allow(decide(rules, who=customer(email="grace@example.com")))


# --- order of checks ----------------------------------------------------------------------------

NIGHT = utc(2024, 6, 3, 23)
STRICT: dict[str, Any] = {
    "quiet_hours": {"email": "21:00-08:00", "ads": "21:00-08:00"},
    "frequency_caps": {"email": [{"max": 1, "per": "1d"}], "ads": [{"max": 1, "per": "1d"}]},
    "suppression": ["ada@example.com"],
}


def test_audience_remove_is_never_blocked() -> None:
    nobody = customer(email=None, phone=None, consent=Consent())
    for who in (nobody, customer()):
        decision = decide(policies(**STRICT), "ads", NIGHT, who, [NIGHT], "audience_remove")
        assert_allow(decision)


def test_audience_add_checks_consent_and_counts_for_the_ads_cap() -> None:
    rules = policies(frequency_caps={"ads": [{"max": 1, "per": "1d"}]})
    no_ads = customer(consent=Consent(email=True))
    assert_skip(decide(rules, "ads", who=no_ads, action="audience_add"), SkipReason.NO_CONSENT)
    earlier = [MONDAY - timedelta(hours=1)]
    assert_skip(decide(rules, "ads", sent=earlier, action="audience_add"), SkipReason.FREQUENCY_CAP)
    assert_allow(decide(rules, "ads", action="audience_add"))


def test_consent_comes_before_address_before_suppression() -> None:
    rules = policies(**STRICT)
    nobody = customer(email=None, consent=Consent())
    assert_skip(decide(rules, at=NIGHT, who=nobody, sent=[NIGHT]), SkipReason.NO_CONSENT)
    # Suppressed by email, but a call needs a phone first.
    assert_skip(decide(rules, "call", who=customer(phone=None)), SkipReason.NO_ADDRESS)
    assert_skip(decide(rules, at=NIGHT, sent=[NIGHT]), SkipReason.SUPPRESSED)


def test_quiet_hours_defer_before_the_cap_is_judged() -> None:
    rules = policies(**{**STRICT, "suppression": []})
    sent_last_night = [utc(2024, 6, 2, 23, 30)]
    # At 23:00 the 1/1d cap is reached, but the send cannot go out before 08:00 anyway ...
    assert_defer(decide(rules, at=NIGHT, sent=sent_last_night), utc(2024, 6, 4, 8))
    # ... and at 08:00 the earlier send has left the trailing day: it goes out.
    assert_allow(decide(rules, at=utc(2024, 6, 4, 8), sent=sent_last_night))
    # Still over the cap when it comes due: skipped then, with that reason.
    sent_this_morning = [utc(2024, 6, 3, 9)]
    assert_skip(
        decide(rules, at=utc(2024, 6, 4, 8), sent=sent_this_morning), SkipReason.FREQUENCY_CAP
    )


def test_unknown_channel_action_or_naive_time_raise() -> None:
    with pytest.raises(ValueError, match="channel"):
        decide(policies(), "fax")
    with pytest.raises(ValueError, match="action"):
        decide(policies(), action="enter")
    with pytest.raises(ValueError, match="time zone"):
        decide(policies(), at=datetime(2024, 6, 3, 12))


# --- quiet hours --------------------------------------------------------------------------------


def test_in_window() -> None:
    night, lunch = (time(21), time(8)), (time(12), time(14))
    assert in_window(time(21), night) and in_window(time(23, 59), night)
    assert in_window(time(0), night) and in_window(time(7, 59, 59), night)
    assert not in_window(time(8), night) and not in_window(time(20, 59), night)
    assert in_window(time(12), lunch) and in_window(time(13, 59), lunch)
    assert not in_window(time(14), lunch) and not in_window(time(11, 59), lunch)
    assert not in_window(time(9), (time(9), time(9)))


@pytest.mark.parametrize(
    ("at", "until"),
    [
        (utc(2024, 6, 3, 21), utc(2024, 6, 4, 8)),
        (utc(2024, 6, 3, 23, 17, 5), utc(2024, 6, 4, 8)),
        (utc(2024, 6, 4, 3), utc(2024, 6, 4, 8)),
        (utc(2024, 6, 4, 7, 59, 59), utc(2024, 6, 4, 8)),
        (utc(2024, 6, 3, 20, 59), None),
        (utc(2024, 6, 4, 8), None),
    ],
)
def test_quiet_hours_wrapping_midnight(at: datetime, until: datetime | None) -> None:
    decision = decide(policies(quiet_hours={"email": "21:00-08:00"}), at=at)
    if until is None:
        assert_allow(decision)
    else:
        assert_defer(decision, until)
        assert (
            decision.detail
            == f"email quiet hours 21:00-08:00 in UTC: deferred to {until:%Y-%m-%dT%H:%MZ}"
        )


def test_quiet_hours_within_a_day_and_only_for_their_channel() -> None:
    rules = policies(quiet_hours={"email": "12:00-14:00"})
    assert_defer(decide(rules, at=utc(2024, 6, 3, 13)), utc(2024, 6, 3, 14))
    assert_allow(decide(rules, at=utc(2024, 6, 3, 14)))
    assert_allow(decide(rules, at=utc(2024, 6, 3, 11, 59)))
    assert_allow(decide(rules, "ads", at=utc(2024, 6, 3, 13)))


def test_quiet_hours_in_the_customer_timezone_else_the_project_one() -> None:
    rules = policies("America/New_York", quiet_hours={"email": "21:00-08:00"})
    at = utc(2024, 6, 3, 22)  # 00:00 in Paris, 18:00 in New York
    assert_defer(decide(rules, at=at, who=customer(timezone="Europe/Paris")), utc(2024, 6, 4, 6))
    assert_allow(decide(rules, at=at))
    assert_allow(decide(rules, at=at, who=customer(timezone="Not/AZone")))


@pytest.mark.parametrize(
    ("zone", "at", "until"),
    [
        # Europe/Paris springs forward on 2024-03-31: 08:00 local is 07:00 UTC, then 06:00 UTC.
        ("Europe/Paris", utc(2024, 3, 29, 21), utc(2024, 3, 30, 7)),
        ("Europe/Paris", utc(2024, 3, 30, 21), utc(2024, 3, 31, 6)),
        ("Europe/Paris", utc(2024, 3, 31, 0, 30), utc(2024, 3, 31, 6)),  # 01:30, before the gap
        # ... and falls back on 2024-10-27: 06:00 UTC, then 07:00 UTC.
        ("Europe/Paris", utc(2024, 10, 25, 21), utc(2024, 10, 26, 6)),
        ("Europe/Paris", utc(2024, 10, 26, 21), utc(2024, 10, 27, 7)),
        ("Europe/Paris", utc(2024, 10, 27, 0, 30), utc(2024, 10, 27, 7)),  # 02:30, the first time
        ("Europe/Paris", utc(2024, 10, 27, 1, 30), utc(2024, 10, 27, 7)),  # 02:30, the second time
        # America/New_York springs forward on 2024-03-10: 13:00 UTC, then 12:00 UTC.
        ("America/New_York", utc(2024, 3, 9, 2), utc(2024, 3, 9, 13)),
        ("America/New_York", utc(2024, 3, 10, 3), utc(2024, 3, 10, 12)),
        ("America/New_York", utc(2024, 3, 10, 11, 59), utc(2024, 3, 10, 12)),
    ],
)
def test_quiet_hours_across_dst(zone: str, at: datetime, until: datetime) -> None:
    rules = policies(zone, quiet_hours={"email": "21:00-08:00"})
    assert_defer(decide(rules, at=at), until)


def test_quiet_window_ending_in_the_spring_gap_ends_when_the_gap_does() -> None:
    rules = policies("Europe/Paris", quiet_hours={"email": "22:00-02:30"})
    # 01:30 CET, inside; 02:30 never shows that night, so the window ends at 03:00 CEST.
    assert_defer(decide(rules, at=utc(2024, 3, 31, 0, 30)), utc(2024, 3, 31, 1))
    assert_allow(decide(rules, at=utc(2024, 3, 31, 1)))
    # The night before and after, 02:30 local as usual.
    assert_defer(decide(rules, at=utc(2024, 3, 30, 0, 30)), utc(2024, 3, 30, 1, 30))
    assert_defer(decide(rules, at=utc(2024, 3, 31, 23)), utc(2024, 4, 1, 0, 30))


def test_quiet_window_starting_in_the_spring_gap() -> None:
    rules = policies("Europe/Paris", quiet_hours={"email": "02:30-06:00"})
    assert_allow(decide(rules, at=utc(2024, 3, 31, 0, 59)))  # 01:59 CET
    assert_defer(decide(rules, at=utc(2024, 3, 31, 1)), utc(2024, 3, 31, 4))  # 03:00 CEST


def test_quiet_window_edge_in_the_autumn_fold() -> None:
    rules = policies("Europe/Paris", quiet_hours={"email": "01:00-02:30"})
    # 02:00 CEST, the first pass: ends at the first 02:30, 00:30 UTC.
    assert_defer(decide(rules, at=utc(2024, 10, 27, 0)), utc(2024, 10, 27, 0, 30))
    # 02:40 CEST is outside; 02:10 CET, the second pass, is inside again until 02:30 CET.
    assert_allow(decide(rules, at=utc(2024, 10, 27, 0, 40)))
    assert_defer(decide(rules, at=utc(2024, 10, 27, 1, 10)), utc(2024, 10, 27, 1, 30))


def test_when_the_only_open_slot_falls_in_the_gap_the_next_one_is_taken() -> None:
    rules = policies("Europe/Paris", quiet_hours={"email": "02:45-02:30"})
    # Open only 02:30-02:45, which 2024-03-31 skips: the next open slot is on April 1st.
    assert_defer(decide(rules, at=utc(2024, 3, 31, 0, 30)), utc(2024, 4, 1, 0, 30))


# --- calling hours ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "until"),
    [
        (utc(2024, 6, 3, 11), utc(2024, 6, 3, 12)),  # 07:00 EDT
        (utc(2024, 6, 3, 12), None),  # 08:00 EDT, the start
        (utc(2024, 6, 4, 0, 59), None),  # 20:59 EDT
        (utc(2024, 6, 4, 1), utc(2024, 6, 4, 12)),  # 21:00 EDT, the end
        (utc(2024, 6, 4, 5), utc(2024, 6, 4, 12)),  # 01:00 EDT
    ],
)
def test_calls_default_to_0800_2100_local(at: datetime, until: datetime | None) -> None:
    decision = decide(policies(), "call", at, customer(timezone="America/New_York"))
    if until is None:
        assert_allow(decision)
    else:
        assert_defer(decision, until)
        assert "outside calling hours 08:00-21:00 in America/New_York" in decision.detail


def test_configured_calling_hours_in_the_customer_timezone() -> None:
    rules = policies("America/New_York", calling_hours="10:00-18:00")
    paris = customer(timezone="Europe/Paris")
    assert_defer(decide(rules, "call", utc(2024, 6, 3, 7), paris), utc(2024, 6, 3, 8))
    assert_allow(decide(rules, "call", utc(2024, 6, 3, 8), paris))
    assert_defer(decide(rules, "call", utc(2024, 6, 3, 16), paris), utc(2024, 6, 4, 8))
    # The same instant for a customer in the project's zone: 12:00 EDT, inside.
    assert_allow(decide(rules, "call", utc(2024, 6, 3, 16)))
    # Calling hours bind calls only.
    assert_allow(decide(rules, "email", utc(2024, 6, 3, 7), paris))


def test_call_quiet_hours_and_calling_hours_together() -> None:
    rules = policies(quiet_hours={"call": "07:00-09:00"}, calling_hours="08:00-21:00")
    decision = decide(rules, "call", utc(2024, 6, 3, 22))
    assert_defer(decision, utc(2024, 6, 4, 9))
    assert "calling hours" in decision.detail and "call quiet hours" in decision.detail
    assert_defer(decide(rules, "call", utc(2024, 6, 3, 8, 30)), utc(2024, 6, 3, 9))


def test_empty_calling_window_means_any_time() -> None:
    assert_allow(decide(policies(calling_hours="00:00-00:00"), "call", utc(2024, 6, 3, 3)))


# --- frequency caps -----------------------------------------------------------------------------

CAPS: dict[str, Any] = {
    "frequency_caps": {"email": [{"max": 1, "per": "1d"}, {"max": 3, "per": "7d"}]}
}
DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("ago", "allowed"),
    [
        ([DAY], True),  # exactly one day ago has left the window (at - per < t)
        ([DAY - timedelta(seconds=1)], False),
        ([timedelta(0)], False),  # a send at the same instant counts (t <= at)
        ([-timedelta(hours=1)], True),  # a later send is not counted
        ([2 * DAY, 4 * DAY, 6 * DAY], False),  # 3 per 7d
        ([2 * DAY, 4 * DAY, 7 * DAY], True),  # the oldest exactly 7d ago
        ([2 * DAY, 4 * DAY, 7 * DAY - timedelta(seconds=1)], False),
        ([2 * DAY, 4 * DAY, 8 * DAY, 30 * DAY], True),
    ],
)
def test_frequency_caps_trailing_windows(ago: list[timedelta], allowed: bool) -> None:
    decision = decide(policies(**CAPS), sent=[MONDAY - delta for delta in ago])
    if allowed:
        assert_allow(decision)
    else:
        assert_skip(decision, SkipReason.FREQUENCY_CAP)


def test_frequency_cap_detail_names_the_cap_and_the_sends() -> None:
    daily = decide(policies(**CAPS), at=utc(2024, 5, 2, 9), sent=[utc(2024, 5, 1, 10)])
    assert daily.detail == "email cap 1 per 1d reached: sent 2024-05-01T10:00Z"
    # Sends from several campaigns, unordered, as the caller gathers them.
    sent = [utc(2024, 5, 5, 10), utc(2024, 4, 30, 9, 15, 30), utc(2024, 5, 3, 10)]
    weekly = decide(policies(**CAPS), at=utc(2024, 5, 6, 12), sent=sent)
    assert weekly.detail == (
        "email cap 3 per 1w reached: sent 2024-04-30T09:15:30Z, 2024-05-03T10:00Z, 2024-05-05T10:00Z"
    )


def test_caps_apply_to_their_channel_only() -> None:
    assert_allow(decide(policies(**CAPS), "ads", sent=[MONDAY]))


# --- next_local_time ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "clock", "zone", "expected"),
    [
        (utc(2024, 6, 3, 5), time(9), "Europe/Paris", utc(2024, 6, 3, 7)),
        (utc(2024, 6, 3, 7), time(9), "Europe/Paris", utc(2024, 6, 3, 7)),  # exactly now
        (utc(2024, 6, 3, 7, 0, 1), time(9), "Europe/Paris", utc(2024, 6, 4, 7)),
        (utc(2024, 3, 30, 12), time(9), "Europe/Paris", utc(2024, 3, 31, 7)),
        (utc(2024, 3, 30, 12), time(2, 30), "Europe/Paris", utc(2024, 3, 31, 1)),  # gap
        (utc(2024, 10, 26, 12), time(2, 30), "Europe/Paris", utc(2024, 10, 27, 0, 30)),  # fold
        (utc(2024, 10, 27, 0, 31), time(2, 30), "Europe/Paris", utc(2024, 10, 27, 1, 30)),
        (utc(2024, 10, 27, 1, 31), time(2, 30), "Europe/Paris", utc(2024, 10, 28, 1, 30)),
        (utc(2024, 3, 9, 20), time(9), "America/New_York", utc(2024, 3, 10, 13)),
        (utc(2024, 3, 9, 20), time(2, 15), "America/New_York", utc(2024, 3, 10, 7)),  # gap
        (utc(2024, 11, 2, 20), time(1, 30), "America/New_York", utc(2024, 11, 3, 5, 30)),
        # Lord Howe moves by 30 minutes: 02:00 -> 02:30 on 2024-10-06, 02:00 -> 01:30 on 2024-04-07.
        (utc(2024, 10, 5, 12), time(2, 15), "Australia/Lord_Howe", utc(2024, 10, 5, 15, 30)),
        (utc(2024, 4, 6, 12), time(1, 45), "Australia/Lord_Howe", utc(2024, 4, 6, 14, 45)),
    ],
)
def test_next_local_time(at: datetime, clock: time, zone: str, expected: datetime) -> None:
    assert next_local_time(at, clock, zone) == expected


def test_next_local_time_takes_any_aware_datetime_and_refuses_naive_ones() -> None:
    paris_morning = datetime(2024, 6, 3, 8, tzinfo=ZoneInfo("Europe/Paris"))
    assert next_local_time(paris_morning, time(9), "Europe/Paris") == utc(2024, 6, 3, 7)
    with pytest.raises(ValueError):
        next_local_time(datetime(2024, 6, 3, 8), time(9), "UTC")


# --- property -----------------------------------------------------------------------------------

ZONES = ["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
DAYS = [
    utc(2024, 3, 9),
    utc(2024, 3, 30),
    utc(2024, 4, 6),
    utc(2024, 10, 5),
    utc(2024, 10, 26),
    utc(2024, 11, 2),
    utc(2024, 6, 3),
    utc(2024, 4, 5),
    utc(2024, 10, 4),
]


@st.composite
def quiet_windows(draw: st.DrawFn) -> tuple[time, time]:
    start = draw(st.integers(0, 24 * 60 - 1))
    closed = draw(st.integers(1, 24 * 60 - 61))  # at least 61 open minutes: more than any DST gap
    end = (start + closed) % (24 * 60)
    return time(*divmod(start, 60)), time(*divmod(end, 60))


@given(
    window=quiet_windows(),
    zone=st.sampled_from(ZONES),
    day=st.sampled_from(DAYS),
    seconds=st.integers(0, 3 * 24 * 3600),
)
def test_a_deferral_ends_outside_the_window_after_at_and_within_a_day(
    window: tuple[time, time], zone: str, day: datetime, seconds: int
) -> None:
    text = f"{window[0]:%H:%M}-{window[1]:%H:%M}"
    at = day + timedelta(seconds=seconds)
    decision = decide(policies(zone, quiet_hours={"email": text}), at=at)
    local = at.astimezone(ZoneInfo(zone)).time()
    if decision.verdict is PolicyVerdict.ALLOW:
        assert not in_window(local, window)
        return
    assert decision.verdict is PolicyVerdict.DEFER and decision.until is not None
    assert in_window(local, window)
    assert at < decision.until <= at + timedelta(hours=25)
    assert not in_window(decision.until.astimezone(ZoneInfo(zone)).time(), window)


def test_max_delay_lets_a_send_go_up_to_its_limit_on_its_channel_only() -> None:
    rules = policies(max_delay={"email": "2d"})
    decided = MONDAY
    assert rules.stale("email", decided, decided + timedelta(days=2)) is None
    late = rules.stale("email", decided, decided + timedelta(days=2, microseconds=1))
    assert late is not None and late.startswith("stale: decided for ")
    assert rules.stale("call", decided, decided + timedelta(days=30)) is None  # no limit there
    assert policies().stale("email", decided, decided + timedelta(days=365)) is None
