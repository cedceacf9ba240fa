"""Every rule of CAMPAIGN_FORMAT.md's journey semantics, on the virtual clock."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

from engine.events import parse_message
from engine.journeys.plan import plan_text
from engine.journeys.summary import summarize
from tests.journeys.scenario import RETARGET, T0, Scenario, brief, within

CART = """
campaign: cart
trigger: {event: Product Added}
audience: customer.email and customer.consent.email
entry: {while_active: restart}
exit: [{event: Order Completed}]
goal: {event: Order Completed, within: 7d, value: event.properties.revenue}
steps:
  - wait: 1h
  - send: email
    template: cart.html
    subject: "{{ customer.first_name or 'Hi' }}, {{ customer.cart.items | length }} items"
  - wait: 1d
  - if: customer.cart.value >= 200
    then:
      - send: call
        list: high-value
        priority: high
    else:
      - send: ads
        audience: cart-abandoners
"""

DAY = 24 * 60


def added(s: Scenario, minutes: float, price: float = 50, **kw: object) -> None:
    s.event("Product Added", minutes, properties={"product_id": "p1", "price": price}, **kw)


def test_abandoned_cart_full_path(scenario: Scenario) -> None:
    scenario.campaign(CART)
    scenario.customer(first_name="Ann")
    added(scenario, 0)
    lines = scenario.plan()
    assert brief(lines) == [
        (0, "enter", None, None),
        (60, "send", "1", "sent"),
        (60 + DAY, "audience_add", "3.else.0", "sent"),
    ]
    assert lines[1].fields == {"template": "cart.html", "subject": "Ann, 1 items"}
    assert lines[1].channel == "email"
    assert lines[2].fields == {"audience": "cart-abandoners"}
    assert lines[0].customer.email == "u1@example.com"


def test_high_value_cart_goes_to_the_call_list(scenario: Scenario) -> None:
    scenario.campaign(CART)
    scenario.customer()
    added(scenario, 0, price=250)
    lines = scenario.plan()
    assert brief(lines)[-1] == (60 + DAY, "send", "3.then.0", "sent")
    assert lines[-1].fields == {"list": "high-value", "priority": "high"}


def test_restart_debounces_the_cart(scenario: Scenario) -> None:
    scenario.campaign(CART)
    scenario.customer()
    added(scenario, 0)
    added(scenario, 30)
    got = brief(scenario.plan())
    assert [g for g in got if g[1] != "audience_add"] == [
        (0, "enter", None, None),
        (30, "exit", None, ":restarted"),
        (30, "enter", None, None),
        (90, "send", "1", "sent"),  # one email, an hour after the last add
    ]


def test_restart_debounces_within_the_cooldown(scenario: Scenario) -> None:
    """The format's own example: ``while_active: restart`` with ``cooldown: 7d``. A restart is
    not a re-entry; the cooldown keeps out a new journey once the last one has ended."""
    scenario.campaign(
        CART.replace(
            "entry: {while_active: restart}", "entry: {while_active: restart, cooldown: 7d}"
        )
    )
    scenario.customer()
    added(scenario, 0)
    added(scenario, 30)
    added(scenario, 3 * DAY)  # the journey has ended: a re-entry, within the cooldown
    added(scenario, 9 * DAY)  # 7 days after the last entry (the restart at 30)
    got = [g for g in brief(scenario.plan()) if g[1] in ("enter", "exit", "send")]
    assert got[:4] == [
        (0, "enter", None, None),
        (30, "exit", None, ":restarted"),
        (30, "enter", None, None),
        (90, "send", "1", "sent"),  # one email, an hour after the last add
    ]
    assert [g[0] for g in got if g[1] == "enter"] == [0, 30, 9 * DAY]  # none at 3 days


def test_once_allows_no_restart(scenario: Scenario) -> None:
    scenario.campaign(
        CART.replace("entry: {while_active: restart}", "entry: {while_active: restart, once: true}")
    )
    scenario.customer()
    added(scenario, 0)
    added(scenario, 30)
    got = brief(scenario.plan())
    assert [g[1] for g in got if g[1] in ("enter", "exit")] == ["enter"]
    assert got[1][0] == 60  # the email an hour after the first add


def test_ignore_leaves_the_running_journey_alone(scenario: Scenario) -> None:
    scenario.campaign(CART.replace("while_active: restart", "while_active: ignore"))
    scenario.customer()
    added(scenario, 0)
    added(scenario, 30)
    got = brief(scenario.plan())
    assert [g[1] for g in got] == ["enter", "send", "audience_add"]
    assert got[1][0] == 60


def test_exit_and_goal_count_only_after_entry(scenario: Scenario) -> None:
    scenario.campaign(CART)
    scenario.customer()
    scenario.event("Order Completed", -10, properties={"order_id": "o0", "revenue": 10})
    added(scenario, 0)
    scenario.event("Order Completed", 120, properties={"order_id": "o1", "revenue": 80})
    lines = scenario.plan()
    assert brief(lines) == [
        (0, "enter", None, None),
        (60, "send", "1", "sent"),
        (120, "convert", None, None),
        (120, "exit", None, ":exit_event"),
    ]
    assert lines[2].fields == {"event": "Order Completed", "value": 80}


def test_a_journey_converts_at_every_goal_event_in_its_window(scenario: Scenario) -> None:
    """REPORTS.md: a conversion per goal event (after entry, within ``goal.within``), a
    converted journey one with at least one, its value the sum of its conversions'. Each goal
    event goes to the latest entry whose window holds it; none after the window."""
    scenario.campaign("""
campaign: welcome
trigger: {event: Subscribed}
entry: {while_active: restart}
goal: {event: Order Completed, within: 7d, value: event.properties.revenue}
steps:
  - wait: 1h
""")
    scenario.customer()
    scenario.event("Subscribed", 0)
    for day, revenue in ((1, 5), (2, 7)):
        order = {"order_id": f"o{day}", "revenue": revenue}
        scenario.event("Order Completed", day * DAY, properties=order)
    scenario.event("Subscribed", 3 * DAY)  # a second journey: later orders are its own
    scenario.event("Order Completed", 4 * DAY, properties={"order_id": "o4", "revenue": 11})
    scenario.event("Order Completed", 11 * DAY, properties={"order_id": "o11", "revenue": 13})
    lines = scenario.plan()
    converts = [
        (line.journey, line.fields["value"], (line.at - T0) / timedelta(days=1))
        for line in lines
        if line.action.value == "convert"
    ]
    first, second = (line.journey for line in lines if line.action.value == "enter")
    assert converts == [(first, 5, 1), (first, 7, 2), (second, 11, 4)]  # day 11: past both
    figures = summarize(lines)["welcome"]
    assert (figures.entered, figures.converted, figures.revenue) == (2, 2, 23)


def test_a_cooldown_lets_in_at_its_end_and_a_goal_window_holds_its_last_instant(
    scenario: Scenario,
) -> None:
    """docs/simulate.md: a trigger exactly ``cooldown`` after the last entry enters (a weekly
    schedule with ``cooldown: 7d`` enters every week); a goal event exactly ``within`` after the
    entry converts, one a microsecond later does not."""
    scenario.campaign("""
campaign: welcome
trigger: {event: Subscribed}
entry: {cooldown: 1d}
goal: {event: Order Completed, within: 1d, value: event.properties.revenue}
steps:
  - wait: 1h
""")
    scenario.customer()
    scenario.event("Subscribed", 0)
    scenario.event("Order Completed", DAY, properties={"order_id": "o1", "revenue": 5})
    scenario.event("Subscribed", DAY - 1 / 60_000_000)  # a microsecond early: kept out
    scenario.event("Subscribed", DAY)
    scenario.event("Order Completed", 2 * DAY + 1 / 60_000_000, properties={"order_id": "o2"})
    lines = scenario.plan()
    enters = [(line.at - T0) / timedelta(days=1) for line in lines if line.action.value == "enter"]
    assert enters == [0, 1]
    converts = [
        (line.at - T0) / timedelta(days=1) for line in lines if line.action.value == "convert"
    ]
    assert converts == [1]


def test_a_page_of_a_goals_or_exits_name_neither_converts_nor_exits(scenario: Scenario) -> None:
    """Goals, exits and waits name track events, as triggers do: a page named "Order
    Completed" is no order (REPORTS.md counts track events only)."""
    scenario.campaign(CART)
    scenario.customer()
    added(scenario, 0)
    page = {"type": "page", "name": "Order Completed", "userId": "u1", "messageId": "p1"}
    at = (T0 + timedelta(minutes=30)).isoformat()
    scenario.events += parse_message({**page, "timestamp": at, "properties": {"revenue": 80}})
    assert brief(scenario.plan())[:2] == [(0, "enter", None, None), (60, "send", "1", "sent")]


def test_leaving_removes_the_ad_audience(scenario: Scenario) -> None:
    scenario.campaign(CART)
    scenario.customer()
    added(scenario, 0)
    scenario.event("Order Completed", 3 * DAY, properties={"order_id": "o1", "revenue": 80})
    got = brief(scenario.plan())
    assert got[-3:] == [
        (3 * DAY, "convert", None, None),
        (3 * DAY, "exit", None, ":exit_event"),
        (3 * DAY, "audience_remove", "3.else.0", "sent"),
    ]


def test_unsubscribe_takes_effect_for_a_pending_send(scenario: Scenario) -> None:
    scenario.campaign(CART)
    scenario.customer()
    added(scenario, 0)
    scenario.event("Unsubscribed", 30)
    got = brief(scenario.plan())
    assert got[1] == (60, "send", "1", "skipped:no_consent")


def test_wait_for_event_both_ways(scenario: Scenario) -> None:
    scenario.campaign("""
campaign: welcome
trigger: {event: Subscribed}
steps:
  - send: email
    template: w.html
    subject: Welcome
  - wait: {for: Order Completed, timeout: 3d}
    then:
      - send: email
        template: thanks.html
        subject: Thanks
    else:
      - send: email
        template: discount.html
        subject: Discount
  - send: email
    template: last.html
    subject: Last
""")
    scenario.customer(user="buyer")
    scenario.customer(user="browser")
    scenario.event("Subscribed", 0, user="buyer")
    scenario.event("Subscribed", 0, user="browser")
    scenario.event("Order Completed", 2 * DAY, user="buyer", properties={"order_id": "b"})
    lines = scenario.plan()
    by_user = {
        user: [
            (line.step, line.fields.get("subject"), (line.at - T0) / timedelta(minutes=1))
            for line in lines
            if line.customer.user_id == user and line.action.value == "send"
        ]
        for user in ("buyer", "browser")
    }
    assert by_user["buyer"] == [
        ("0", "Welcome", 0),
        ("1.then.0", "Thanks", 2 * DAY),
        ("2", "Last", 2 * DAY),
    ]
    assert by_user["browser"] == [
        ("0", "Welcome", 0),
        ("1.else.0", "Discount", 3 * DAY),
        ("2", "Last", 3 * DAY),
    ]


def test_a_wait_for_branch_sees_the_event_it_waited_for_and_no_step_after_it(
    scenario: Scenario,
) -> None:
    """docs/simulate.md: ``event`` is the triggering event in every later step, but a ``wait
    for``'s branch sees the event it waited for; the steps after the branch (an empty branch
    too) see the trigger again."""
    scenario.campaign("""
campaign: welcome
trigger: {event: Subscribed}
steps:
  - wait: {for: Order Completed, timeout: 3d}
    then:
      - send: email
        template: thanks.html
        subject: "in the branch: {{ event.name }}"
  - send: email
    template: last.html
    subject: "after it: {{ event.name }}"
  - wait: {for: Order Completed, timeout: 3d}
  - send: email
    template: last.html
    subject: "after an empty branch: {{ event.name }}"
""")
    scenario.customer(user="buyer")
    scenario.event("Subscribed", 0, user="buyer")
    scenario.event("Order Completed", DAY, user="buyer", properties={"order_id": "b1"})
    scenario.event("Order Completed", 2 * DAY, user="buyer", properties={"order_id": "b2"})
    sends = [line for line in scenario.plan() if line.action.value == "send"]
    assert [(line.step, line.fields["subject"]) for line in sends] == [
        ("0.then.0", "in the branch: Order Completed"),
        ("1", "after it: Subscribed"),
        ("3", "after an empty branch: Subscribed"),
    ]


def test_frequency_caps_across_campaigns(scenario: Scenario) -> None:
    scenario.config = {"policies": {"frequency_caps": {"email": [{"max": 1, "per": "1d"}]}}}
    for name in ("one", "two"):
        scenario.campaign(f"""
campaign: {name}
trigger: {{event: Product Viewed}}
steps:
  - send: email
    template: x.html
    subject: {name}
""")
    scenario.customer()
    scenario.event("Product Viewed", 0)
    got = sorted(
        (line.campaign, line.status, line.reason)
        for line in scenario.plan()
        if line.action.value == "send"
    )  # campaigns run in id order at a tie
    assert got == [("one", "sent", None), ("two", "skipped", "frequency_cap")]


def test_holdout_is_stable_and_about_its_share(scenario: Scenario) -> None:
    scenario.campaign("""
campaign: held
trigger: {event: Product Viewed}
holdout: 20%
goal: {event: Order Completed}
steps:
  - send: email
    template: x.html
    subject: Hi
""")
    for number in range(500):
        user = f"u{number}"
        scenario.customer(user=user)
        scenario.event("Product Viewed", 0, user=user)
    first = scenario.plan()
    held = {line.customer.user_id for line in first if line.reason == "holdout"}
    assert 0.15 < len(held) / 500 < 0.25
    assert all(
        line.status == "skipped"
        for line in first
        if line.customer.user_id in held and line.action.value == "send"
    )
    assert plan_text(scenario.plan()) == plan_text(first)  # same input, same bytes


def test_split_is_stable_and_names_the_variant(scenario: Scenario) -> None:
    scenario.campaign("""
campaign: ab
trigger: {event: Product Viewed}
steps:
  - split:
      - {name: A, weight: 50%, steps: [{send: email, template: a.html, subject: A}]}
      - {name: B, weight: 50%, steps: [{send: email, template: b.html, subject: B}]}
""")
    for number in range(200):
        scenario.customer(user=f"u{number}")
        scenario.event("Product Viewed", 0, user=f"u{number}")
    sends = [line for line in scenario.plan() if line.action.value == "send"]
    variants = {line.fields["variant"] for line in sends}
    assert variants == {"A", "B"}
    assert all(line.step == f"0.{line.fields['variant']}.0" for line in sends)
    share_a = sum(line.fields["variant"] == "A" for line in sends) / len(sends)
    assert 0.4 < share_a < 0.6


def test_identity_merge_mid_journey_keeps_one_journey(scenario: Scenario) -> None:
    scenario.campaign(CART)
    scenario.customer(user="known")
    scenario.event(
        "identify",
        -5,
        user="",
        anonymousId="anon-1",
        traits={"email": "anon@example.com", "consent": {"email": True}},
    )
    scenario.event(
        "Product Added",
        0,
        user="",
        anonymousId="anon-1",
        properties={"product_id": "p", "price": 10},
    )
    added(scenario, 10, user="known")
    scenario.event("alias", 20, user="known", previousId="anon-1")
    lines = scenario.plan()
    entered = [line.journey for line in lines if line.action.value == "enter"]
    assert len(entered) == 2
    exits = [(line.reason, line.journey) for line in lines if line.action.value == "exit"]
    assert exits == [("merged", entered[1])]  # the later entry gives way
    sends = [line for line in lines if line.action.value == "send"]
    assert len(sends) == 1 and sends[0].journey == entered[0]
    assert len({line.customer.id for line in lines if line.at >= T0 + timedelta(minutes=20)}) == 1


def test_duplicate_and_out_of_order_events_give_the_same_plan(scenario: Scenario) -> None:
    scenario.campaign(CART)
    scenario.customer()
    added(scenario, 0, message_id="same")
    reference = plan_text(scenario.plan())
    added(scenario, 0, message_id="same")  # a resend
    scenario.events.reverse()  # and a file out of order
    assert plan_text(scenario.plan()) == reference


def test_paused_campaigns_take_no_one(scenario: Scenario) -> None:
    scenario.campaign(CART.replace("campaign: cart", "campaign: cart\nstatus: paused"))
    scenario.customer()
    added(scenario, 0)
    assert scenario.plan() == []


def test_once_and_cooldown(scenario: Scenario) -> None:
    scenario.campaign(
        CART.replace("campaign: cart", "campaign: cart").replace(
            "entry: {while_active: restart}", "entry: {cooldown: 2d}"
        )
    )
    scenario.customer()
    added(scenario, 0)
    scenario.event("Order Completed", 10, properties={"order_id": "o"})
    added(scenario, DAY)  # within the cooldown: no entry
    added(scenario, 3 * DAY)  # after it: a new journey
    enters = [
        (line.at - T0) / timedelta(minutes=1)
        for line in scenario.plan()
        if line.action.value == "enter"
    ]
    assert enters == [0, 3 * DAY]


def test_quiet_hours_defer_across_a_dst_change(scenario: Scenario) -> None:
    scenario.config = {
        "timezone": "Europe/Paris",
        "policies": {"quiet_hours": {"email": "21:00-08:00"}},
    }
    scenario.campaign("""
campaign: late
trigger: {event: Product Viewed}
steps:
  - send: email
    template: x.html
    subject: Hi
""")
    scenario.customer()
    # Saturday 2024-10-26 21:30 Paris (19:30 UTC, summer time); the clocks go back that night
    minutes = (T0.replace(month=10, day=26, hour=19, minute=30) - T0) / timedelta(minutes=1)
    scenario.event("Product Viewed", minutes)
    send = next(line for line in scenario.plan() if line.action.value == "send")
    assert send.at == T0.replace(month=10, day=27, hour=7, minute=0)  # 08:00 winter time
    assert send.status == "sent"


def test_schedule_trigger_enters_the_audience_at_each_tick(scenario: Scenario) -> None:
    scenario.campaign("""
campaign: weekly
trigger: {schedule: "0 9 * * 1", timezone: Europe/Paris}
audience: customer.consent.email
steps:
  - send: email
    template: n.html
    subject: News
""")
    scenario.customer(user="yes")
    scenario.customer(user="no", consent={"email": False})
    lines = scenario.plan(until=T0 + timedelta(days=14))
    sends = [(line.customer.user_id, line.at) for line in lines if line.action.value == "send"]
    # Mondays 2024-05-13 and 2024-05-20, 09:00 in Paris = 07:00 UTC
    assert sends == [("yes", T0.replace(day=13, hour=7)), ("yes", T0.replace(day=20, hour=7))]


LAPSED = """
campaign: lapsed
trigger:
  segment: customer.orders.last_at and customer.orders.last_at < now - days(90)
steps:
  - send: email
    template: w.html
    subject: We miss you
"""


def test_segment_turns_true_as_time_passes(scenario: Scenario) -> None:
    """The condition turns just after 90 days from the order (20 past the hour): the customer
    enters at the hourly sweep after it, on the hours of UTC."""
    scenario.campaign(LAPSED)
    scenario.customer()
    scenario.event("Order Completed", 20, properties={"order_id": "o", "revenue": 5})
    lines = scenario.plan(until=T0 + timedelta(days=100))
    enters = [line.at for line in lines if line.action.value == "enter"]
    assert enters == [T0 + timedelta(days=90, hours=1)]


def test_a_segment_entry_does_not_hang_on_another_customers_events(tmp_path: Path) -> None:
    """The sweeps fall on the hours of UTC, not on a grid from the file's first event: another
    customer's page view at 09:37:13, earlier than everything else, changes no entry time."""
    plans = []
    for early in (False, True):
        (tmp_path / str(early)).mkdir()
        scenario = Scenario(tmp_path / str(early))
        scenario.campaign(LAPSED)
        if early:
            scenario.event("Page Viewed", -22.78, user="someone-else", type="page")
        scenario.customer(minutes=0)
        scenario.event("Order Completed", 20, properties={"order_id": "o", "revenue": 5})
        lines = scenario.plan(until=T0 + timedelta(days=100))
        plans.append(
            [(line.at, line.action.value) for line in lines if line.customer.user_id == "u1"]
        )
    assert plans[0] == plans[1]
    assert (T0 + timedelta(days=90, hours=1), "enter") in plans[0]


def test_segments_turned_by_updates_are_looked_at_boundedly_per_instant(
    scenario: Scenario,
) -> None:
    """Four segment campaigns whose update steps turn each other's segments in a ring: the
    customer's segments are looked at right after an update, as many times per event or
    sweep as there are segment campaigns; then the next turn waits for the next sweep (on the
    hourly grid of the first event), so the run ends instead of looping at one instant."""
    for name, n in (("a-three", 3), ("b-two", 2), ("c-one", 1), ("d-zero", 0)):
        scenario.campaign(f"""
campaign: {name}
trigger: {{segment: "customer.traits.n == {n}"}}
steps:
  - update: {{traits: {{n: "{(n + 1) % 4}"}}}}
""")
    scenario.customer(n=0)
    with within(60):  # it loops forever where a look after an update is not bounded
        lines = scenario.plan(until=T0 + timedelta(hours=2, minutes=30))
    by_instant = Counter(line.at for line in lines if line.action.value == "enter")
    # a look per campaign at most after each look an event or sweep takes: bounded
    assert max(by_instant.values()) <= 4 * (4 + 1)
    assert {line.campaign for line in lines} == {"a-three", "b-two", "c-one", "d-zero"}
    assert len(by_instant) == 4  # the identify's instant, then each hourly sweep


def test_an_exit_event_ends_only_what_still_runs(scenario: Scenario) -> None:
    """A completed journey has nothing left to end, unless it still shows an ad: then the exit
    takes the customer out of the audience."""
    scenario.campaign(CART)
    scenario.customer()
    added(scenario, 0, price=250)  # completes after the call: holds no audience
    added(scenario, 10 * DAY, user="u2")  # completes after the ads step: holds the audience
    scenario.customer(minutes=10 * DAY - 60, user="u2")
    scenario.event("Order Completed", 20 * DAY, properties={"revenue": 10})
    scenario.event("Order Completed", 20 * DAY, user="u2", properties={"revenue": 10})
    actions = [(line.customer.email, line.action.value) for line in scenario.plan()]
    assert ("u1@example.com", "exit") not in actions
    assert ("u2@example.com", "exit") in actions
    assert ("u2@example.com", "audience_remove") in actions


def test_an_ads_opt_out_leaves_even_the_audiences_kept_after_a_journey(
    scenario: Scenario,
) -> None:
    """``remove_on_exit: false`` keeps the customer in the audience after the journey ends (an
    order exits it, and they stay); withdrawing ads consent still takes them out, once."""
    scenario.campaign(RETARGET)
    scenario.customer()
    added(scenario, 0)
    scenario.event("Order Completed", 60, properties={"revenue": 10})
    scenario.customer(minutes=2 * DAY, consent={"ads": False})
    scenario.customer(minutes=3 * DAY, consent={"ads": False})
    got = [
        (minutes, action, status)
        for minutes, action, _step, status in brief(scenario.plan())
        if action.startswith("audience")
    ]
    assert got == [(0, "audience_add", "sent"), (2 * DAY, "audience_remove", "sent")]


def test_a_chain_of_segments_turned_by_updates_enters_at_once(scenario: Scenario) -> None:
    """A segment campaign whose update turns another's segment: the second enters at the same
    instant, whichever id sorts first (the customer is looked at again after the update)."""
    for vip, stage in (("z1-vip", "s2-stage"), ("a1-vip", "s2-stage")):
        chained = Scenario(scenario.folder / vip)
        chained.folder.mkdir()
        chained.campaign(f"""
campaign: {vip}
trigger: {{segment: "customer.traits.vip"}}
steps:
  - update: {{traits: {{stage: "1"}}}}
""")
        chained.campaign(f"""
campaign: {stage}
trigger: {{segment: "customer.traits.stage == 1"}}
steps:
  - update: {{traits: {{staged: "true"}}}}
""")
        chained.customer(vip=True)
        enters = {line.campaign: line.at for line in chained.plan() if line.action.value == "enter"}
        assert enters[stage] == enters[vip], vip
