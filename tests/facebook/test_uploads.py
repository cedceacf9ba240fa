"""Audiences made when first needed or found by name, users added and removed in batches:
every path, method, API version, parameter, schema and hashed row asserted exactly."""

from __future__ import annotations

import itertools
import json
from urllib.parse import quote

from engine.channels import DeliveryAction, DeliveryStatus, Recipient
from integrations.facebook.provider import FacebookAudiences
from tests.conftest import TickingClock
from tests.facebook.deliveries import JANE, JANE_ROW, audience_change, person, row
from tests.facebook.graph import ACCOUNT, AUTH, SCHEMA, VERSION, MetaStandIn, new_api

REMOVE = DeliveryAction.AUDIENCE_REMOVE


def test_first_add_lists_then_creates_the_audience_then_uploads_the_hashed_row(
    graph: MetaStandIn, provider: FacebookAudiences
) -> None:
    outcome = provider.deliver(audience_change(JANE))

    audience_id = graph.id_of("cart-abandoners")
    assert outcome.status is DeliveryStatus.DELIVERED
    assert outcome.provider_id == audience_id
    assert outcome.detail == "added to Meta audience 'cart-abandoners' (session 1, request 1 of 1)"
    listing, creation, upload = graph.calls
    assert {c.version for c in graph.calls} == {VERSION}
    assert all({k: c.query[k] for k in AUTH} == AUTH for c in graph.calls)
    assert (listing.method, listing.path, listing.params()) == (
        "GET",
        f"/{ACCOUNT}/customaudiences",
        {"fields": "name", "limit": "500", "summary": "true"},
    )
    assert (creation.method, creation.path, creation.query, creation.params()) == (
        "POST",
        f"/{ACCOUNT}/customaudiences",
        AUTH,
        {
            "name": "cart-abandoners",
            "subtype": "CUSTOM",
            "description": "followup audience 'cart-abandoners'",
            "customer_file_source": "USER_PROVIDED_ONLY",
        },
    )
    assert (upload.method, upload.path, upload.query) == ("POST", f"/{audience_id}/users", AUTH)
    assert set(upload.form) == {"payload", "session"}
    assert upload.payload() == {"schema": SCHEMA, "is_raw": True, "data": [JANE_ROW]}
    assert upload.session() == {
        "session_id": 1,
        "batch_seq": 1,
        "last_batch_flag": True,
        "estimated_num_total": 1,
    }
    assert graph.members[audience_id] == {tuple(JANE_ROW)}


def test_an_existing_audience_is_found_by_name_on_any_page_and_not_created_again(
    graph: MetaStandIn, clock: TickingClock
) -> None:
    for n in range(1203):
        graph.add_audience(f"other-{n}")
    existing = graph.add_audience("lapsed-customers")  # on the third page of 500
    counter = itertools.count(1)
    provider = FacebookAudiences(new_api(), ACCOUNT, clock=clock, session_ids=lambda: next(counter))

    first = provider.deliver(audience_change(JANE, "lapsed-customers"))
    second = provider.deliver(audience_change(person(1), "lapsed-customers"))

    assert (first.status, first.provider_id) == (DeliveryStatus.DELIVERED, existing)
    assert (second.status, second.provider_id) == (DeliveryStatus.DELIVERED, existing)
    listings = [c for c in graph.calls if c.path.endswith("/customaudiences")]
    assert [c.method for c in listings] == ["GET", "GET", "GET"]  # no POST: nothing created
    assert [c.params().get("after") for c in listings] == [
        None,
        sorted(graph.names)[499],
        sorted(graph.names)[999],
    ]
    assert [c.path for c in graph.users_calls()] == [f"/{existing}/users"] * 2
    assert [c.session()["session_id"] for c in graph.users_calls()] == [1, 2]
    assert len(graph.names) == 1204


def test_audiences_are_listed_once_and_each_created_once_per_provider(
    graph: MetaStandIn, provider: FacebookAudiences
) -> None:
    batch = [
        audience_change(person(1), "a"),
        audience_change(person(2), "b"),
        audience_change(person(3), "a"),
    ]
    assert [o.status for o in provider.deliver_batch(batch)] == [DeliveryStatus.DELIVERED] * 3
    assert provider.deliver(audience_change(person(4), "b")).status is DeliveryStatus.DELIVERED

    methods = [(c.method, c.path) for c in graph.calls]
    a, b = graph.id_of("a"), graph.id_of("b")
    assert methods == [
        ("GET", f"/{ACCOUNT}/customaudiences"),
        ("POST", f"/{ACCOUNT}/customaudiences"),
        ("POST", f"/{a}/users"),
        ("POST", f"/{ACCOUNT}/customaudiences"),
        ("POST", f"/{b}/users"),
        ("POST", f"/{b}/users"),
    ]
    uploads = graph.users_calls()
    assert [u.payload()["data"] for u in uploads] == [[row(1), row(3)], [row(2)], [row(4)]]
    assert [u.session()["estimated_num_total"] for u in uploads] == [2, 1, 1]


def test_a_batch_of_exactly_10000_is_one_request(
    graph: MetaStandIn, provider: FacebookAudiences
) -> None:
    batch = [audience_change(person(n)) for n in range(10_000)]
    outcomes = provider.deliver_batch(batch)

    assert [o.status for o in outcomes] == [DeliveryStatus.DELIVERED] * 10_000
    (upload,) = graph.users_calls()
    assert upload.method == "POST"
    assert upload.payload() == {
        "schema": SCHEMA,
        "is_raw": True,
        "data": [row(n) for n in range(10_000)],
    }
    assert upload.session() == {
        "session_id": 1,
        "batch_seq": 1,
        "last_batch_flag": True,
        "estimated_num_total": 10_000,
    }
    assert len(graph.members[graph.id_of("cart-abandoners")]) == 10_000


def test_a_batch_of_10001_is_two_requests_of_one_session(
    graph: MetaStandIn, provider: FacebookAudiences
) -> None:
    batch = [audience_change(person(n)) for n in range(10_001)]
    outcomes = provider.deliver_batch(batch)

    assert [o.status for o in outcomes] == [DeliveryStatus.DELIVERED] * 10_001
    assert outcomes[0].detail.endswith("(session 1, request 1 of 2)")
    assert outcomes[-1].detail.endswith("(session 1, request 2 of 2)")
    first, second = graph.users_calls()
    assert first.payload()["data"] == [row(n) for n in range(10_000)]
    assert second.payload()["data"] == [row(10_000)]
    assert [first.session(), second.session()] == [
        {"session_id": 1, "batch_seq": 1, "last_batch_flag": False, "estimated_num_total": 10_001},
        {"session_id": 1, "batch_seq": 2, "last_batch_flag": True, "estimated_num_total": 10_001},
    ]
    assert len(graph.members[graph.id_of("cart-abandoners")]) == 10_001


def test_removal_is_a_delete_with_the_payload_in_the_query_string(
    graph: MetaStandIn, provider: FacebookAudiences
) -> None:
    provider.deliver_batch([audience_change(JANE), audience_change(person(1))])
    outcome = provider.deliver(audience_change(JANE, action=REMOVE))

    audience_id = graph.id_of("cart-abandoners")
    removal = graph.users_calls()[-1]
    assert outcome.status is DeliveryStatus.DELIVERED
    assert outcome.detail == (
        "removed from Meta audience 'cart-abandoners' (session 2, request 1 of 1)"
    )
    assert (removal.method, removal.path, removal.form) == ("DELETE", f"/{audience_id}/users", {})
    assert set(removal.query) == {"access_token", "appsecret_proof", "payload", "session"}
    assert removal.payload() == {"schema": SCHEMA, "is_raw": True, "data": [JANE_ROW]}
    assert removal.session() == {
        "session_id": 2,
        "batch_seq": 1,
        "last_batch_flag": True,
        "estimated_num_total": 1,
    }
    assert graph.members[audience_id] == {tuple(row(1))}


def test_a_large_removal_is_split_to_keep_each_url_short(
    graph: MetaStandIn, provider: FacebookAudiences
) -> None:
    people = [person(n) for n in range(300)]
    provider.deliver_batch([audience_change(p) for p in people])
    outcomes = provider.deliver_batch([audience_change(p, action=REMOVE) for p in people])

    assert [o.status for o in outcomes] == [DeliveryStatus.DELIVERED] * 300
    removals = [c for c in graph.users_calls() if c.method == "DELETE"]
    assert len(removals) > 1
    assert [r for c in removals for r in c.payload()["data"]] == [row(n) for n in range(300)]
    for seq, call in enumerate(removals, start=1):
        encoded = quote(call.params()["payload"], safe="")
        assert len(encoded) <= 32_000 + 200
        assert call.session() == {
            "session_id": 2,
            "batch_seq": seq,
            "last_batch_flag": seq == len(removals),
            "estimated_num_total": 300,
        }
    assert graph.members[graph.id_of("cart-abandoners")] == set()


def test_outcomes_keep_the_batch_order_across_audiences_and_actions(
    graph: MetaStandIn, provider: FacebookAudiences
) -> None:
    batch = [
        audience_change(person(1), "a"),
        audience_change(person(2), "b", REMOVE),
        audience_change(Recipient("c-nobody", first_name="Nobody"), "a"),
        audience_change(person(3), "a", REMOVE),
        audience_change(person(4), ""),
        audience_change(person(5), "b"),
    ]
    outcomes = provider.deliver_batch(batch)

    a, b = graph.id_of("a"), graph.id_of("b")
    assert [(o.status, o.provider_id) for o in outcomes] == [
        (DeliveryStatus.DELIVERED, a),
        (DeliveryStatus.DELIVERED, b),
        (DeliveryStatus.FAILED, None),
        (DeliveryStatus.DELIVERED, a),
        (DeliveryStatus.FAILED, None),
        (DeliveryStatus.DELIVERED, b),
    ]
    assert outcomes[2].detail == "no email or phone to match the customer on"
    assert outcomes[2].retry_at is None
    assert (outcomes[4].detail, outcomes[4].retry_at) == ("no audience", None)
    assert [(c.method, c.path, c.payload()["data"]) for c in graph.users_calls()] == [
        ("POST", f"/{a}/users", [row(1)]),
        ("DELETE", f"/{b}/users", [row(2)]),
        ("DELETE", f"/{a}/users", [row(3)]),
        ("POST", f"/{b}/users", [row(5)]),
    ]
    assert [c.session()["session_id"] for c in graph.users_calls()] == [1, 2, 3, 4]


def test_a_send_action_is_refused_without_a_call(
    graph: MetaStandIn, provider: FacebookAudiences
) -> None:
    outcome = provider.deliver(audience_change(JANE, action=DeliveryAction.SEND))
    assert (outcome.status, outcome.detail, outcome.retry_at) == (
        DeliveryStatus.FAILED,
        "the facebook provider cannot send",
        None,
    )
    assert graph.calls == []


def test_payload_json_is_what_the_sdk_encodes(
    graph: MetaStandIn, provider: FacebookAudiences
) -> None:
    provider.deliver(audience_change(JANE))
    upload = graph.users_calls()[0]
    # top-level values JSON-encoded with sorted keys, compact separators (the SDK's encoding)
    assert upload.form["payload"] == json.dumps(
        {"data": [JANE_ROW], "is_raw": True, "schema": SCHEMA}, separators=(",", ":")
    )
    assert upload.form["session"] == (
        '{"batch_seq":1,"estimated_num_total":1,"last_batch_flag":true,"session_id":1}'
    )


def test_one_customer_s_changes_in_one_batch_keep_their_order(
    graph: MetaStandIn, provider: FacebookAudiences
) -> None:
    batch = [
        audience_change(JANE, key="1"),
        audience_change(person(1), key="2"),
        audience_change(JANE, action=REMOVE, key="3"),
        audience_change(person(2), key="4"),
        audience_change(person(1), action=REMOVE, key="5"),
        audience_change(JANE, key="6"),
    ]
    outcomes = provider.deliver_batch(batch)

    assert [o.status for o in outcomes] == [DeliveryStatus.DELIVERED] * 6
    audience_id = graph.id_of("cart-abandoners")
    assert [(c.method, c.payload()["data"]) for c in graph.users_calls()] == [
        ("POST", [JANE_ROW, row(1), row(2)]),
        ("DELETE", [JANE_ROW, row(1)]),
        ("POST", [JANE_ROW]),
    ]
    assert graph.members[audience_id] == {tuple(JANE_ROW), tuple(row(2))}
