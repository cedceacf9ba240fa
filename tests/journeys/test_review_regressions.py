"""Cases a review of the journey engine found wrong, each pinned by a test."""

from __future__ import annotations

from datetime import timedelta

from tests.journeys.scenario import T0, Scenario, brief

DAY = 24 * 60
ONE_EMAIL = """
campaign: one
trigger: {event: Product Viewed}
entry: {once: true}
steps:
  - send: email
    template: x.html
    subject: one
"""


def sends(scenario: Scenario, until_days: float | None = None) -> list[tuple[object, ...]]:
    until = T0 + timedelta(days=until_days) if until_days is not None else None
    return [
        (line.at, line.step, line.status, line.reason, dict(line.fields))
        for line in scenario.plan(until)
        if line.action.value in ("send", "audience_add", "audience_remove")
    ]


def test_expressions_that_fail_on_a_customer_do_not_stop_the_run(scenario: Scenario) -> None:
    scenario.campaign("""
campaign: fragile
trigger: {event: Product Added}
goal: {event: Order Completed, value: event.properties.revenue * 100}
steps:
  - if: customer.orders.total / customer.orders.count > 10
    then: [{send: email, template: a.html, subject: big}]
  - update: {traits: {score: customer.traits.score + 1}}
  - send: email
    template: b.html
    subject: "{{ '%.2f' | format(event.properties.discount) }}"
""")
    scenario.customer()
    scenario.event("Product Added", 0, properties={"product_id": "p", "price": 1})
    scenario.event("Order Completed", 60, properties={"order_id": "o"})
    got = brief(scenario.plan())
    assert got == [
        (0, "enter", None, None),
        (0, "send", "2", "skipped:render_error"),
        (60, "convert", None, None),
    ]
    assert scenario.plan()[-1].fields["value"] is None


def test_event_still_means_the_trigger_after_a_wait(scenario: Scenario) -> None:
    scenario.campaign("""
campaign: later
trigger: {event: Product Added}
steps:
  - wait: 1h
  - send: email
    template: x.html
    subject: "Still want {{ event.properties.name }}?"
""")
    scenario.customer()
    scenario.event("Product Added", 0, properties={"product_id": "p", "name": "Boots", "price": 1})
    assert scenario.plan()[-1].fields["subject"] == "Still want Boots?"


def test_a_deferred_send_holds_its_journey(scenario: Scenario) -> None:
    scenario.config = {"policies": {"quiet_hours": {"email": "21:00-08:00"}}}
    scenario.campaign("""
campaign: night
trigger: {event: Product Added}
entry: {while_active: restart}
steps:
  - send: email
    template: a.html
    subject: First
  - wait: 1h
  - send: webhook
    url: crm
    body: "x"
""")
    scenario.customer()
    scenario.event("Product Added", 12 * 60, properties={"product_id": "p", "price": 1})  # 22:00
    scenario.event("Product Added", 12 * 60 + 30, properties={"product_id": "p", "price": 1})
    got = brief(scenario.plan())
    next_eight = (T0.replace(hour=8) + timedelta(days=1) - T0) / timedelta(minutes=1)
    assert sorted(got, key=str) == sorted(
        [
            (720, "enter", None, None),
            (750, "exit", None, ":restarted"),  # the parked journey is still active: restarted
            (750, "enter", None, None),
            (next_eight, "send", "0", "skipped:exited"),
            (next_eight, "send", "0", "sent"),
            (next_eight + 60, "send", "2", "sent"),  # the webhook waits for the email
        ],
        key=str,
    )  # at one time, lines sort by journey id


def test_a_merge_keeps_caps_and_once(scenario: Scenario) -> None:
    scenario.config = {"policies": {"frequency_caps": {"email": [{"max": 1, "per": "1d"}]}}}
    scenario.campaign(ONE_EMAIL)
    scenario.campaign(
        ONE_EMAIL.replace("campaign: one", "campaign: two").replace(
            "Product Viewed", "Product Added"
        )
    )
    scenario.customer(user="known")
    scenario.event(
        "identify",
        -30,
        user="",
        anonymousId="a1",
        traits={"email": "a@x.com", "consent": {"email": True}},
    )
    scenario.event("Product Viewed", 0, user="", anonymousId="a1")
    scenario.event("alias", 10, user="known", previousId="a1")
    scenario.event("Product Viewed", 20, user="known")  # once: no second entry
    scenario.event("Product Added", 30, user="known", properties={"product_id": "p"})
    got = brief(scenario.plan())
    assert got == [
        (0, "enter", None, None),
        (0, "send", "0", "sent"),
        (30, "enter", None, None),
        (30, "send", "0", "skipped:frequency_cap"),  # the anonymous email counts for the cap
    ]


def test_one_order_converts_one_journey(scenario: Scenario) -> None:
    scenario.campaign("""
campaign: c
trigger: {event: Product Added}
goal: {event: Order Completed, within: 7d}
steps: [{send: email, template: x.html, subject: s}]
""")
    scenario.customer()
    scenario.event("Product Added", 0, properties={"product_id": "p", "price": 1})
    scenario.event("Product Added", 2 * DAY, properties={"product_id": "p", "price": 1})
    scenario.event("Order Completed", 3 * DAY, properties={"order_id": "o"})
    converts = [line for line in scenario.plan() if line.action.value == "convert"]
    entries = [line.journey for line in scenario.plan() if line.action.value == "enter"]
    assert [line.journey for line in converts] == [entries[-1]]  # the latest entry


def test_until_cuts_the_replay(scenario: Scenario) -> None:
    scenario.campaign(ONE_EMAIL.replace("entry: {once: true}", ""))
    scenario.customer()
    scenario.event("Product Viewed", 0)
    scenario.event("Product Viewed", 5 * DAY)
    assert [line.at for line in scenario.plan(T0 + timedelta(days=1))] == [T0, T0]


def test_an_exit_in_the_same_second_after_the_entry_counts(scenario: Scenario) -> None:
    scenario.campaign("""
campaign: c
trigger: {event: Product Added}
exit: [{event: Order Completed}]
steps:
  - wait: 1h
  - send: email
    template: x.html
    subject: s
""")
    scenario.customer()
    scenario.event("Product Added", 0, properties={"product_id": "p"}, message_id="a")
    scenario.event("Order Completed", 0, properties={"order_id": "o"}, message_id="b")
    assert brief(scenario.plan()) == [(0, "enter", None, None), (0, "exit", None, ":exit_event")]


def test_ads_leave_on_withdrawn_consent_and_only_when_no_journey_holds_them(
    scenario: Scenario,
) -> None:
    for name, trigger in (("a", "Product Added"), ("b", "Product Viewed")):
        scenario.campaign(f"""
campaign: {name}
trigger: {{event: {trigger}}}
exit: [{{event: Order Completed}}]
steps:
  - send: ads
    audience: shared
  - wait: 30d
""")
    scenario.customer()
    scenario.event("Product Added", 0, properties={"product_id": "p"})
    scenario.event("Product Viewed", 1)
    scenario.event("Unsubscribed", 60, properties={"channel": "ads"})
    got = sends(scenario)
    removes = [line for line in scenario.plan() if line.action.value == "audience_remove"]
    assert len(removes) == 1 and removes[0].at == T0 + timedelta(minutes=60)
    assert len(got) == 3


def test_a_deferred_audience_add_is_not_removed_before_it_happens(scenario: Scenario) -> None:
    scenario.config = {"policies": {"quiet_hours": {"ads": "21:00-08:00"}}}
    scenario.campaign("""
campaign: c
trigger: {event: Product Added}
exit: [{event: Order Completed}]
steps:
  - send: ads
    audience: aud
  - wait: 30d
""")
    scenario.customer()
    scenario.event("Product Added", 12 * 60, properties={"product_id": "p"})
    scenario.event("Order Completed", 13 * 60, properties={"order_id": "o"})
    actions = [(line.action.value, line.status, line.reason) for line in scenario.plan()]
    assert ("audience_remove", "sent", None) not in actions
    assert ("audience_add", "skipped", "exited") in actions


def test_a_schedule_ticks_once_the_night_the_clocks_go_back(scenario: Scenario) -> None:
    scenario.campaign("""
campaign: nightly
trigger: {schedule: "30 2 * * *", timezone: Europe/Paris}
audience: customer.consent.email
steps: [{send: email, template: n.html, subject: n}]
""")
    scenario.customer(minutes=(T0.replace(month=10, day=25) - T0) / timedelta(minutes=1))
    lines = scenario.plan(T0.replace(month=10, day=29))
    ticks = [line.at for line in lines if line.action.value == "send"]
    assert [t.isoformat() for t in ticks] == [
        "2024-10-26T00:30:00+00:00",  # 02:30 summer time
        "2024-10-27T00:30:00+00:00",  # 02:30 happens twice that night: once here
        "2024-10-28T01:30:00+00:00",  # 02:30 winter time
        "2024-10-29T01:30:00+00:00",
    ]


def test_a_call_steps_reason_never_stands_for_the_skip_reason(scenario: Scenario) -> None:
    scenario.campaign("""
campaign: callback
trigger: {event: Callback Requested}
steps:
  - send: call
    list: callbacks
    reason: callback_requested
""")
    scenario.customer(user="ann")
    scenario.event("identify", -60, user="bob", traits={"consent": {"call": True}})
    scenario.event("Callback Requested", 0, user="ann")
    scenario.event("Callback Requested", 0, user="bob")
    got = sorted(
        (line.customer.user_id, line.status, line.reason, dict(line.fields))
        for line in scenario.plan()
        if line.action.value == "send"
    )
    assert got == [
        ("ann", "sent", None, {"list": "callbacks", "priority": "normal"}),
        ("bob", "skipped", "no_address", {"list": "callbacks", "priority": "normal"}),
    ]


def test_an_audience_removal_names_the_split_variant_that_added_it(scenario: Scenario) -> None:
    scenario.campaign("""
campaign: nested
trigger: {event: Product Added}
steps:
  - wait: {for: Checkout Started, timeout: 1h}
    else:
      - if: "true"
        then:
          - split:
              - name: ads-first
                weight: 100%
                steps: [{send: ads, audience: carts}, {send: ads, audience: lapsed}]
              - {name: control, weight: 0%}
""")
    scenario.customer()
    scenario.event("Product Added", 0, properties={"product_id": "p", "price": 1})
    scenario.event("Unsubscribed", 120, properties={"channel": "ads"})
    ads = [
        (line.action.value, line.step, line.fields.get("variant"))
        for line in scenario.plan()
        if line.channel == "ads"
    ]
    assert ads == [
        ("audience_add", "0.else.0.then.0.ads-first.0", "ads-first"),
        ("audience_add", "0.else.0.then.0.ads-first.1", "ads-first"),
        ("audience_remove", "0.else.0.then.0.ads-first.0", "ads-first"),
        ("audience_remove", "0.else.0.then.0.ads-first.1", "ads-first"),
    ]
