"""Faults at Meta: rate limits, server errors, timeouts and dropped connections are retried at a
backed-off time (Meta's hint honoured), other Graph errors fail for good with their code; every
delivery ends delivered once or failed with its reason, none lost or doubled."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta

import pytest
import requests
from urllib3.exceptions import ProtocolError

from engine.channels import Delivery, DeliveryAction, DeliveryOutcome, DeliveryStatus
from integrations.facebook.provider import FacebookAudiences
from tests.conftest import FIXED_NOW, TickingClock
from tests.facebook.deliveries import JANE, JANE_ROW, audience_change, person, row
from tests.facebook.graph import (
    ACCOUNT,
    PROOF,
    SECRET,
    TOKEN,
    MetaStandIn,
    Reply,
    graph_error,
    new_api,
)

USERS = "/{}/users"
REMOVE = DeliveryAction.AUDIENCE_REMOVE
MAX_ATTEMPTS = 8  # the dispatcher's


def _error(status: int, code: int, message: str, subcode: int | None = None, **extra: object):
    def reply() -> Reply:
        return status, {}, graph_error(code, message, subcode, **extra)

    return reply


def _raise(error: Exception):
    def reply() -> Exception:
        return error

    return reply


def _reset() -> Exception:
    reason = ConnectionResetError(104, "Connection reset by peer")
    return requests.ConnectionError(ProtocolError("Connection aborted.", reason))


def _users_path(graph: MetaStandIn, audience: str = "cart-abandoners") -> str:
    return USERS.format(graph.id_of(audience))


def _ready(graph: MetaStandIn, audience: str = "cart-abandoners") -> str:
    """The audience made beforehand, so a fault can target its users edge."""
    return USERS.format(graph.add_audience(audience))


def settle(
    provider: FacebookAudiences, clock: TickingClock, deliveries: Sequence[Delivery]
) -> tuple[dict[str, DeliveryOutcome], Counter[str]]:
    """Deliver as the dispatcher would: failed with ``retry_at`` again at that time, up to 8
    attempts. The last outcome of every key, and how often each key was delivered."""
    pending = list(deliveries)
    final: dict[str, DeliveryOutcome] = {}
    delivered: Counter[str] = Counter()
    attempts: Counter[str] = Counter()
    while pending:
        outcomes = provider.deliver_batch(pending)
        assert len(outcomes) == len(pending)
        again = []
        for delivery, outcome in zip(pending, outcomes, strict=True):
            attempts[delivery.key] += 1
            final[delivery.key] = outcome
            if outcome.status is DeliveryStatus.DELIVERED:
                delivered[delivery.key] += 1
            elif outcome.retry_at is not None and attempts[delivery.key] < MAX_ATTEMPTS:
                assert outcome.retry_at > clock.now
                again.append(delivery)
        if again:
            clock.now = max(final[d.key].retry_at or clock.now for d in again)
        pending = again
    return final, delivered


@pytest.mark.parametrize(
    ("code", "subcode", "message"),
    [
        (17, 2446079, "User request limit reached"),
        (613, 1487742, "There have been too many calls from this ad-account."),
        (80003, 2446079, "There have been too many calls to this ad-account."),
        (80004, 2446079, "There have been too many calls to this ad-account."),
        (4, 1504022, "Application request limit reached"),
    ],
)
def test_a_rate_limit_is_retried_after_a_minute_then_delivered_once(
    graph: MetaStandIn,
    provider: FacebookAudiences,
    clock: TickingClock,
    code: int,
    subcode: int,
    message: str,
) -> None:
    users = _ready(graph)
    graph.fail("POST", users, _error(400, code, message, subcode, is_transient=True))

    first = provider.deliver(audience_change(JANE))

    assert first.status is DeliveryStatus.FAILED
    assert first.retry_at == FIXED_NOW + timedelta(minutes=1)
    assert first.detail == (
        f"audience 'cart-abandoners': Meta Graph API error (code {code}, subcode {subcode}): "
        f"{message}"
    )
    clock.now = first.retry_at
    again = provider.deliver(audience_change(JANE))
    assert again.status is DeliveryStatus.DELIVERED
    assert [c.payload()["data"] for c in graph.users_calls()] == [[JANE_ROW], [JANE_ROW]]
    assert graph.members[graph.id_of("cart-abandoners")] == {tuple(JANE_ROW)}


def test_meta_s_wait_hints_are_honoured(
    graph: MetaStandIn, provider: FacebookAudiences, clock: TickingClock
) -> None:
    users = _ready(graph)
    usage = {ACCOUNT[4:]: [{"type": "custom_audience", "estimated_time_to_regain_access": 7}]}
    graph.fail(
        "POST",
        users,
        lambda: (400, {"X-Business-Use-Case-Usage": json.dumps(usage)}, graph_error(80003, "x")),
    )
    graph.fail("POST", users, lambda: (400, {"Retry-After": "600"}, graph_error(17, "y")))

    by_usage = provider.deliver(audience_change(JANE))
    assert by_usage.retry_at == FIXED_NOW + timedelta(minutes=7)
    clock.now = by_usage.retry_at
    by_retry_after = provider.deliver(audience_change(JANE))
    assert by_retry_after.retry_at == clock.now + timedelta(seconds=600)


def test_back_off_doubles_while_meta_keeps_refusing_and_resets_after_a_success(
    graph: MetaStandIn, provider: FacebookAudiences, clock: TickingClock
) -> None:
    users = _ready(graph)
    for _ in range(3):
        graph.fail("POST", users, _error(400, 17, "User request limit reached"))
    waits = []
    for _ in range(3):
        retry_at = provider.deliver(audience_change(JANE)).retry_at
        assert retry_at is not None
        waits.append(retry_at - clock.now)
        clock.now = retry_at
    assert waits == [timedelta(minutes=m) for m in (1, 2, 4)]
    assert provider.deliver(audience_change(JANE)).status is DeliveryStatus.DELIVERED
    graph.fail("POST", users, _error(500, 2, "Service temporarily unavailable"))
    assert provider.deliver(audience_change(JANE)).retry_at == clock.now + timedelta(seconds=30)


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        (_error(500, 1, "An unknown error occurred"), "Meta Graph API error (code 1): An unknown"),
        # the SDK takes these two for success; the provider does not
        (lambda: (502, {}, "<html>Bad Gateway</html>"), "Meta answered without a Graph response"),
        (lambda: (200, {}, "<html>Oops</html>"), "Meta answered without a Graph response"),
        (lambda: (503, {}, ""), "Meta Graph API error (HTTP 503): Call was not successful"),
        (
            _error(400, 100, "Please retry", 1487390, is_transient=True),
            "Meta Graph API error (code 100, subcode 1487390): Please retry",
        ),
        (
            _raise(requests.ReadTimeout("HTTPSConnectionPool: Read timed out.")),
            "the call to Meta timed out (ReadTimeout); safe to retry",
        ),
        (_raise(requests.ConnectTimeout("x")), "the call to Meta timed out (ConnectTimeout)"),
        (_reset, "the call to Meta lost the connection (ConnectionError); safe to retry"),
    ],
)
def test_server_errors_timeouts_and_resets_are_retried_after_30_seconds(
    graph: MetaStandIn, provider: FacebookAudiences, reply: object, detail: str
) -> None:
    users = _ready(graph)
    graph.fail("POST", users, reply)  # type: ignore[arg-type]

    outcome = provider.deliver(audience_change(JANE))

    assert outcome.status is DeliveryStatus.FAILED
    assert outcome.retry_at == FIXED_NOW + timedelta(seconds=30)
    assert outcome.detail.startswith(f"audience 'cart-abandoners': {detail}")


def test_a_timeout_after_meta_acted_is_retried_and_the_audience_holds_the_user_once(
    graph: MetaStandIn, provider: FacebookAudiences, clock: TickingClock
) -> None:
    users = _ready(graph)
    graph.fail("POST", users, _raise(requests.ReadTimeout("read timed out")), after_applying=True)
    assert provider.idempotent is True

    final, delivered = settle(provider, clock, [audience_change(JANE)])

    assert [o.status for o in final.values()] == [DeliveryStatus.DELIVERED]
    assert list(delivered.values()) == [1]
    first, second = graph.users_calls()
    assert first.payload() == second.payload()
    assert graph.members[graph.id_of("cart-abandoners")] == {tuple(JANE_ROW)}


@pytest.mark.parametrize(
    ("code", "subcode", "message"),
    [
        (100, 1713230, "Invalid parameter: this audience is flagged"),
        (190, 463, f"Error validating access token {TOKEN}: Session has expired"),
        (200, None, "Permissions error"),
    ],
)
def test_other_graph_errors_fail_for_good_with_code_and_message_never_the_secrets(
    graph: MetaStandIn,
    provider: FacebookAudiences,
    code: int,
    subcode: int | None,
    message: str,
) -> None:
    users = _ready(graph)
    graph.fail(
        "POST", users, _error(400, code, f"{message} (proof {PROOF}, secret {SECRET})", subcode)
    )

    outcome = provider.deliver(audience_change(JANE))

    assert (outcome.status, outcome.retry_at) == (DeliveryStatus.FAILED, None)
    label = f"code {code}" + (f", subcode {subcode}" if subcode else "")
    assert outcome.detail.startswith(
        f"audience 'cart-abandoners': Meta Graph API error ({label}): "
    )
    assert TOKEN not in outcome.detail and PROOF not in outcome.detail
    assert SECRET not in outcome.detail and "[redacted]" in outcome.detail
    assert graph.members[graph.id_of("cart-abandoners")] == set()


def test_a_throttled_upload_halts_the_batch_and_every_delivery_lands_once(
    graph: MetaStandIn, provider: FacebookAudiences, clock: TickingClock
) -> None:
    a_users = _ready(graph, "a")
    _ready(graph, "b")
    graph.fail("POST", a_users, _error(400, 613, "Too many calls", 1487742))
    batch = [audience_change(person(n), "b" if n % 2 else "a") for n in range(6)]

    first = provider.deliver_batch(batch)

    assert [o.status for o in first] == [DeliveryStatus.FAILED] * 6
    assert {o.retry_at for o in first} == {FIXED_NOW + timedelta(minutes=1)}
    assert first[0].detail.startswith("audience 'a': Meta Graph API error (code 613")
    assert first[1].detail.startswith("not sent after: audience 'a': Meta Graph API error")
    assert [c.path for c in graph.users_calls()] == [a_users]  # b was not tried

    final, delivered = settle(provider, clock, batch)
    assert {k: o.status for k, o in final.items()} == {
        d.key: DeliveryStatus.DELIVERED for d in batch
    }
    assert set(delivered.values()) == {1}
    assert graph.members[graph.id_of("a")] == {tuple(row(n)) for n in (0, 2, 4)}
    assert graph.members[graph.id_of("b")] == {tuple(row(n)) for n in (1, 3, 5)}


def test_a_rate_limit_on_the_second_request_of_a_session_retries_only_its_rows(
    graph: MetaStandIn, provider: FacebookAudiences, clock: TickingClock
) -> None:
    users = _ready(graph)
    graph.fail("POST", users, _error(400, 80003, "too many calls"), skip=1)
    batch = [audience_change(person(n)) for n in range(10_001)]

    outcomes = provider.deliver_batch(batch)

    assert [o.status for o in outcomes[:10_000]] == [DeliveryStatus.DELIVERED] * 10_000
    assert (outcomes[-1].status, outcomes[-1].retry_at) == (
        DeliveryStatus.FAILED,
        FIXED_NOW + timedelta(minutes=1),
    )
    final, delivered = settle(provider, clock, [batch[-1]])
    assert final[batch[-1].key].status is DeliveryStatus.DELIVERED
    assert delivered[batch[-1].key] == 1
    sessions = [c.session() for c in graph.users_calls()]
    assert [(s["session_id"], s["batch_seq"], s["last_batch_flag"]) for s in sessions] == [
        (1, 1, False),
        (1, 2, True),
        (2, 1, True),
    ]
    assert len(graph.members[graph.id_of("cart-abandoners")]) == 10_001


def test_a_permanent_error_fails_only_its_request(graph: MetaStandIn, clock: TickingClock) -> None:
    users = _ready(graph)
    provider = FacebookAudiences(new_api(), ACCOUNT, clock=clock, session_ids=lambda: 9, max_rows=2)
    graph.fail("POST", users, _error(400, 100, "Invalid parameter"))  # the first request of 3
    outcomes = provider.deliver_batch([audience_change(person(n)) for n in range(5)])

    assert [(o.status, o.retry_at) for o in outcomes] == [
        (DeliveryStatus.FAILED, None),
        (DeliveryStatus.FAILED, None),
        (DeliveryStatus.DELIVERED, None),
        (DeliveryStatus.DELIVERED, None),
        (DeliveryStatus.DELIVERED, None),
    ]
    assert [c.session()["batch_seq"] for c in graph.users_calls()] == [1, 2, 3]
    assert graph.members[graph.id_of("cart-abandoners")] == {tuple(row(n)) for n in (2, 3, 4)}


def test_a_rate_limited_audience_lookup_or_creation_is_retried_and_made_once(
    graph: MetaStandIn, provider: FacebookAudiences, clock: TickingClock
) -> None:
    graph.fail("GET", f"/{ACCOUNT}/customaudiences", _error(400, 17, "User request limit reached"))
    graph.fail("POST", f"/{ACCOUNT}/customaudiences", _reset)
    batch = [
        audience_change(person(1)),
        audience_change(person(2), action=DeliveryAction.AUDIENCE_REMOVE),
    ]

    final, delivered = settle(provider, clock, batch)

    assert [o.status for o in final.values()] == [DeliveryStatus.DELIVERED] * 2
    assert set(delivered.values()) == {1}
    creations = [
        c for c in graph.calls if (c.method, c.path) == ("POST", f"/{ACCOUNT}/customaudiences")
    ]
    assert len(creations) == 2  # the reset one (not carried out) and the one that made it
    assert list(graph.names.values()) == ["cart-abandoners"]


def test_a_mixed_run_of_faults_loses_and_doubles_nothing(
    graph: MetaStandIn, provider: FacebookAudiences, clock: TickingClock
) -> None:
    a_users, b_users = _ready(graph, "a"), _ready(graph, "b")
    graph.fail("POST", a_users, _error(400, 17, "User request limit reached"))
    graph.fail("POST", a_users, _raise(requests.ReadTimeout("t")), after_applying=True)
    graph.fail("DELETE", b_users, _reset)
    graph.fail("POST", a_users, _error(503, 2, "Service temporarily unavailable"))
    graph.fail("POST", b_users, _error(400, 190, "Invalid OAuth access token."))
    batch = [
        *[audience_change(person(n), "a") for n in range(4)],
        *[audience_change(person(n), "b", DeliveryAction.AUDIENCE_REMOVE) for n in range(4, 6)],
        *[audience_change(person(n), "b") for n in range(6, 8)],
    ]

    final, delivered = settle(provider, clock, batch)

    statuses = Counter(o.status for o in final.values())
    assert statuses == {DeliveryStatus.DELIVERED: 6, DeliveryStatus.FAILED: 2}
    assert set(delivered.values()) == {1}
    failed = [k for k, o in final.items() if o.status is DeliveryStatus.FAILED]
    assert failed == [d.key for d in batch[6:]]
    assert all("code 190" in final[k].detail and final[k].retry_at is None for k in failed)
    assert graph.members[graph.id_of("a")] == {tuple(row(n)) for n in range(4)}
    assert graph.members[graph.id_of("b")] == set()


def test_while_meta_refuses_nothing_is_sent_until_the_retry_time(
    graph: MetaStandIn, provider: FacebookAudiences, clock: TickingClock
) -> None:
    users = _ready(graph)
    _ready(graph, "other")
    graph.fail("POST", users, _error(400, 17, "User request limit reached"))
    throttled = provider.deliver(audience_change(JANE))

    held = provider.deliver_batch(
        [audience_change(person(1), "other"), audience_change(JANE, action=REMOVE)]
    )

    assert len(graph.users_calls()) == 1  # the throttled one only
    assert [(o.status, o.retry_at) for o in held] == [
        (DeliveryStatus.FAILED, throttled.retry_at)
    ] * 2
    assert held[0].detail == f"not sent after: {throttled.detail}"
    assert throttled.retry_at is not None
    clock.now = throttled.retry_at
    assert provider.deliver(audience_change(JANE)).status is DeliveryStatus.DELIVERED
