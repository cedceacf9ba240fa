"""Double opt-in, the pure parts: which signups the consent reducer holds back, the built-in
campaign's trigger agreeing with it, the policy's forms, and the signed confirmation links."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from engine.confirm_links import ConfirmLinks
from engine.double_opt_in import (
    CAMPAIGN_ID,
    confirmation_campaign,
    double_opt_in,
    signups_held_back,
    with_confirmation,
)
from engine.errors import FollowupError
from engine.events import Event, EventInvalid, parse_message
from engine.journeys.context import names
from engine.policies import DoubleOptIn
from engine.state.profile import CustomerState
from engine.state.reducers import StateReducer
from engine.unsubscribe import InvalidToken, UnsubscribeLinks

START = datetime(2024, 5, 1, 10, tzinfo=UTC)
_arrivals = itertools.count(1)


def ev(kind: str, minute: int = 0, **fields: Any) -> Event:
    message: dict[str, Any] = {
        "type": "identify" if kind == "identify" else "track",
        "userId": "u1",
        "timestamp": (START + timedelta(minutes=minute)).isoformat(),
        "messageId": f"{kind}-{minute}-{next(_arrivals)}",
        **fields,
    }
    if kind != "identify":
        message["event"] = kind
    [event] = parse_message(message, arrival=next(_arrivals))
    return event


def reducer(policy: Any = None) -> StateReducer:
    policies = {} if policy is None else {"double_opt_in": policy}
    return StateReducer("US", signups_held_back(policies))


def test_without_the_policy_a_signup_grants_and_a_confirmation_changes_nothing() -> None:
    plain = reducer()
    assert plain.fold([ev("Subscribed", 1)]).consent.email is True
    assert plain.fold([ev("Subscription Confirmed", 1)]).consent.email is False


def test_under_the_policy_only_the_confirmation_grants() -> None:
    held = reducer(["email"])
    signup = ev("Subscribed", 1, properties={"list": "newsletter"})
    assert held.fold([signup]).consent.email is False
    confirmed = ev("Subscription Confirmed", 30, properties={"list": "newsletter"})
    state = held.fold([signup, confirmed])
    assert state.consent.email is True
    later = ev("Unsubscribed", 60)
    assert held.fold([signup, confirmed, later]).consent.email is False
    # folded one at a time (the run of events without traits) the same
    one_by_one = CustomerState()
    for event in (signup, confirmed):
        one_by_one = held.apply(one_by_one, event)
    assert one_by_one.consent == state.consent


def test_the_policy_holds_back_only_its_channels_and_lists() -> None:
    held = reducer({"lists": ["newsletter"]})
    other_list = ev("Subscribed", 1, properties={"list": "offers"})
    assert held.fold([other_list]).consent.email is True
    sms = ev("Subscribed", 1, properties={"channel": "sms", "list": "newsletter"})
    assert held.fold([sms]).consent.sms is True
    listed = ev("Subscribed", 1, properties={"list": "newsletter"})
    assert held.fold([listed]).consent.email is False


def test_a_confirmation_grants_only_what_the_policy_holds_back() -> None:
    """A `Subscription Confirmed` for a channel or list the policy does not confirm grants
    nothing (found by review: any such event granted sms consent)."""
    held = reducer({"lists": ["newsletter"]})
    sms = ev("Subscription Confirmed", 1, properties={"channel": "sms", "list": "newsletter"})
    assert held.fold([sms]).consent.sms is False
    other = ev("Subscription Confirmed", 1, properties={"list": "offers"})
    assert held.fold([other]).consent.email is False
    listed = ev("Subscription Confirmed", 1, properties={"list": "newsletter"})
    assert held.fold([listed]).consent.email is True


def test_consent_from_identify_traits_is_not_held_back() -> None:
    """Traits carry consent the shop already holds (an import), not a signup."""
    held = reducer(["email"])
    state = held.fold([ev("identify", 1, traits={"consent": {"email": True}})])
    assert state.consent.email is True


SIGNUPS = [
    {},
    {"channel": None},
    {"channel": ""},
    {"channel": "email"},
    {"channel": " Email "},
    {"channel": "EMAIL", "list": "newsletter"},
    {"channel": "sms"},
    {"channel": "call", "list": "newsletter"},
    {"list": "newsletter"},
    {"list": "offers"},
    {"list": None},
    {"list": 7},
]


@pytest.mark.parametrize("policy", [["email"], {"lists": ["newsletter"]}])
@pytest.mark.parametrize("properties", SIGNUPS)
def test_the_campaign_trigger_is_the_signup_the_reducer_holds_back(
    policy: Any, properties: dict[str, Any]
) -> None:
    """The built-in campaign sends a confirmation for exactly the signups that wait for one."""
    held = reducer(policy)
    signup = ev("Subscribed", 1, properties=properties)
    unchanged = CustomerState().consent
    # a signup (it grants consent without the policy) that grants none under it
    waits = held.fold([signup]).consent == unchanged != reducer().fold([signup]).consent
    campaign = confirmation_campaign(DoubleOptIn.model_validate(policy))
    where = campaign.trigger.where  # type: ignore[union-attr]
    assert where is not None
    triggers = where.holds(names("u1", CustomerState(), signup, signup.timestamp))
    assert triggers == waits


@pytest.mark.parametrize("channel", [5, True, ["email"], "e-mail", "all"])
def test_a_signup_of_no_consent_channel_is_refused_at_ingest(channel: object) -> None:
    """It would change no consent, nor trigger a confirmation: said, not taken."""
    with pytest.raises(EventInvalid, match="is not a consent channel") as refused:
        ev("Subscribed", 1, properties={"channel": channel, "list": "newsletter"})
    assert refused.value.field == "properties.channel"


def test_the_policy_forms_and_their_errors() -> None:
    short = DoubleOptIn.model_validate(["email"])
    assert short.channels == ("email",) and short.expires == timedelta(days=7)
    long = DoubleOptIn.model_validate({"lists": ["newsletter"], "expires": "3d"})
    assert long.lists == ("newsletter",) and long.expires == timedelta(days=3)
    with pytest.raises(ValidationError):
        DoubleOptIn.model_validate(["sms"])  # a confirmation link goes by email
    with pytest.raises(ValidationError, match="did you mean lists"):
        DoubleOptIn.model_validate({"list": ["newsletter"]})
    assert double_opt_in({}) is None


def test_the_built_in_campaign_is_added_once_and_its_id_is_reserved() -> None:
    policies = {"double_opt_in": ["email"]}
    assert with_confirmation([], {}) == []
    (campaign,) = with_confirmation([], policies)
    assert campaign.id == CAMPAIGN_ID
    assert campaign.goal is not None and campaign.goal.event == "Subscription Confirmed"
    with pytest.raises(FollowupError, match="give your campaign another id"):
        with_confirmation([campaign], policies)


def test_a_confirmation_link_round_trips_until_the_signup_expires() -> None:
    links = ConfirmLinks(b"k" * 32, "https://shop.example.com/")
    url = links.url("cus_1", "email", "newsletter", START, timedelta(days=7))
    assert url.startswith("https://shop.example.com/confirm/")
    token = url.rsplit("/", 1)[1]
    signup = links.verify(token, START + timedelta(days=6, hours=23))
    assert (signup.customer_id, signup.channel, signup.list) == ("cus_1", "email", "newsletter")
    assert signup.signed_up_at == START
    with pytest.raises(InvalidToken, match="confirmation link expired"):
        links.verify(token, START + timedelta(days=7))


def test_one_kind_of_link_never_passes_for_the_other() -> None:
    key = b"k" * 32
    confirm = ConfirmLinks(key, "http://127.0.0.1")
    unsubscribe = UnsubscribeLinks(key, "http://127.0.0.1")
    confirm_token = confirm.token("cus_1", "email", None, START, timedelta(days=7))
    unsubscribe_token = unsubscribe.token("cus_1", "email", START)
    with pytest.raises(InvalidToken, match="another kind of link"):
        unsubscribe.verify(confirm_token, START)
    with pytest.raises(InvalidToken, match="another kind of link"):
        confirm.verify(unsubscribe_token, START)
    other_key = ConfirmLinks(b"x" * 32, "http://127.0.0.1")
    with pytest.raises(InvalidToken, match="signature"):
        other_key.verify(confirm_token, START)
