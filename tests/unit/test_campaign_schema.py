"""The campaign schema and loader: what a campaign file may say, and where its problems are."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.campaigns import (
    Campaign,
    CampaignError,
    EmailSend,
    EventTrigger,
    IfStep,
    ScheduleTrigger,
    SplitStep,
    WaitForEvent,
    WaitStep,
    WaitUntil,
    campaign_json_schema,
    load_campaigns,
    load_file,
    validate_project,
    walk_steps,
)
from engine.campaigns.durations import parse_clock, parse_duration, parse_percent, parse_window
from engine.campaigns.expressions import sandbox
from engine.campaigns.loader import read_yaml
from engine.campaigns.schema import CallPriority, CampaignStatus, WhileActive
from engine.journeys.context import names
from engine.state.profile import Cart, CartItem, CustomerState

REPO = Path(__file__).resolve().parents[2]
DOC = REPO.parent / "shared" / "design" / "CAMPAIGN_FORMAT.md"

HEAD = "campaign: test\ntrigger:\n  event: Product Added\n"


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def problems_of(path: Path) -> list[str]:
    loaded, problems = load_file(path)
    assert loaded is None
    return [f"{p.line}:{p.column}: {p.message}" for p in problems]


# --- the shipped examples --------------------------------------------------------------------------


def test_every_campaign_in_the_repo_loads_and_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    files = sorted((REPO / "campaigns").glob("*.y*ml"))
    assert files, "campaigns/ has no example"
    for file in files:
        loaded, problems = load_file(file)
        assert problems == [] and loaded is not None, problems
    report = validate_project([REPO / "campaigns"])
    assert report.problems == (), "\n".join(map(str, report.problems))
    assert report.campaigns == len(files) and report.templates >= 1


SUBJECT_LINE = "    subject: "


def _without_subject(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith(SUBJECT_LINE)]


def test_abandoned_cart_is_the_documented_example() -> None:
    """The example is CAMPAIGN_FORMAT.md's, but for its subject, which says "1 item" where the
    document's says "1 items" (issue 15: the examples a shop copies must read right)."""
    if DOC.exists():
        documented = DOC.read_text().split("```yaml\n", 1)[1].split("```", 1)[0]
        example = (REPO / "campaigns" / "abandoned_cart.yaml").read_text()
        assert _without_subject(example) == _without_subject(documented)
    loaded, _ = load_file(REPO / "campaigns" / "abandoned_cart.yaml")
    assert loaded is not None
    c = loaded.campaign
    assert c.id == "abandoned-cart" and c.status is CampaignStatus.ACTIVE
    assert isinstance(c.trigger, EventTrigger) and c.trigger.event == "Product Added"
    assert c.trigger.where is not None and c.trigger.where.source == "event.properties.price > 0"
    assert c.entry.while_active is WhileActive.RESTART and c.entry.cooldown == timedelta(days=7)
    assert [e.event for e in c.exit] == ["Order Completed", "Unsubscribed"]
    assert c.goal is not None and c.goal.within == timedelta(days=7)
    assert c.holdout == pytest.approx(0.1)
    wait, email, _, branch = c.steps
    assert isinstance(wait, WaitStep) and wait.wait == timedelta(hours=1)
    assert isinstance(email, EmailSend) and email.template == "abandoned_cart.html"
    assert isinstance(branch, IfStep)
    assert branch.then[0].priority is CallPriority.HIGH  # type: ignore[union-attr]
    assert branch.else_[0].remove_on_exit is True  # type: ignore[union-attr]
    paths = [path for path, _, _ in walk_steps(c.steps)]
    assert paths == ["0", "1", "2", "3", "3.then.0", "3.else.0"]


def test_round_trip_and_json_schema() -> None:
    loaded, _ = load_file(REPO / "campaigns" / "abandoned_cart.yaml")
    assert loaded is not None
    dumped = loaded.campaign.model_dump_json(by_alias=True)
    assert Campaign.model_validate_json(dumped) == loaded.campaign
    assert len(loaded.version) == 12
    schema = campaign_json_schema()
    assert "campaign" in schema["properties"] and "steps" in schema["required"]
    with pytest.raises(ValidationError):
        loaded.campaign.name = "changed"  # type: ignore[misc]


# --- values ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("1h", timedelta(hours=1)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("45s", timedelta(seconds=45)),
        ("PT1H", timedelta(hours=1)),
        ("PT90M", timedelta(minutes=90)),
        ("P1DT12H", timedelta(days=1, hours=12)),
        ("P2W", timedelta(weeks=2)),
        ("PT1.5H", timedelta(minutes=90)),  # ISO 8601: a fraction in the smallest unit
        ("P1DT0,5H", timedelta(days=1, minutes=30)),
        ("PT0.5S", timedelta(milliseconds=500)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("3 days", "unknown duration '3 days'; write e.g. 30m, 1h, 2d, 1w or PT1H"),
        ("1 hour", "unknown duration"),
        (30, "unknown duration '30'"),
        ("", "unknown duration"),
        ("PT", "unknown duration"),
        ("P1M", "no fixed length"),
        ("P1Y", "no fixed length"),
        ("PT1.5H30M", "unknown duration"),  # only the smallest unit may have a fraction
        ("0m", "longer than zero"),
        (None, "missing"),
    ],
)
def test_bad_durations(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        parse_duration(value)


def test_percent_clock_and_window() -> None:
    assert parse_percent("10%") == pytest.approx(0.1)
    assert parse_percent("33.5%") == pytest.approx(0.335)
    for bad in (10, "10", "0.1", "150%"):
        with pytest.raises(ValueError):
            parse_percent(bad)
    assert parse_clock("09:00") == time(9) and parse_clock("7:30") == time(7, 30)
    for bad in ("25:00", "9", 540, "09:60"):
        with pytest.raises(ValueError, match="time of day"):
            parse_clock(bad)
    assert parse_window("21:00-08:00") == (time(21), time(8))
    with pytest.raises(ValueError, match="time window"):
        parse_window("21:00-8")


# --- steps and triggers ----------------------------------------------------------------------------


def test_every_step_kind(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
steps:
  - wait: PT30M
  - wait: {until: 09:00}
  - wait: {for: Order Completed, timeout: 2d}
    then:
      - update: {traits: {won_back: true, tier: "'gold'"}}
    else:
      - send: webhook
        url: crm
        body: '{"email": "{{ customer.email }}"}'
  - split:
      - name: A
        weight: 50%
        steps:
          - send: email
            template: a.html
            subject: Hello
            from: Shop <shop@example.com>
            tags: [cart]
      - {name: B, weight: 50%}
  - send: ads
    audience: cart-abandoners
    remove_on_exit: false
  - send: call
    list: callbacks
    reason: big cart
""",
    )
    loaded, problems = load_file(path)
    assert problems == [] and loaded is not None
    steps = loaded.campaign.steps
    assert isinstance(steps[1], WaitStep) and steps[1].wait == WaitUntil(until=time(9))
    assert isinstance(steps[2], WaitStep) and isinstance(steps[2].wait, WaitForEvent)
    assert steps[2].wait.event == "Order Completed"
    assert isinstance(steps[3], SplitStep) and steps[3].split[1].steps == ()
    paths = [p for p, _, _ in walk_steps(steps)]
    assert "2.then.0" in paths and "2.else.0" in paths and "3.A.0" in paths
    [(_, loc, _)] = [entry for entry in walk_steps(steps) if entry[0] == "3.A.0"]
    assert loc == ("steps", 3, "split", 0, "steps", 0)


def test_schedule_and_segment_triggers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
campaign: weekly-digest
trigger: {schedule: "0 9 * * 1", timezone: Europe/Paris}
audience: customer.consent.email
steps: [{send: email, template: digest.html, subject: Your week}]
""",
    )
    loaded, problems = load_file(path)
    assert problems == [] and loaded is not None
    assert isinstance(loaded.campaign.trigger, ScheduleTrigger)
    segment = write(
        tmp_path,
        "campaign: win-back\ntrigger:\n  segment: customer.orders.last_at and "
        "customer.orders.last_at < now - days(90)\nsteps: [{wait: 1d}]\n",
        "s.yaml",
    )
    assert load_file(segment)[1] == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HEAD + "steps:\n  - wait: 1h\n  - sned: email\n",
         "6:5: unknown step 'sned'; expected one of send, wait, if, split, update"),
        (HEAD + "steps:\n  - wait: 3 days\n",
         "5:11: unknown duration '3 days'; write e.g. 30m, 1h, 2d, 1w or PT1H"),
        (HEAD + "audience: customer.emial\nsteps: [{wait: 1h}]\n",
         "4:11: customer.emial is not a profile field; did you mean customer.email?"),
        (HEAD + "steps:\n  - send: sms\n", "5:11: unknown channel 'sms'"),
        (HEAD + "steps:\n  - send: email\n    template: a.html\n    subjet: Hi\n",
         "7:5: unknown field 'subjet' in send: email; did you mean subject?"),
        (HEAD + "steps:\n  - send: email\n    template: a.html\n", "5:5: missing field 'subject'"),
        (HEAD + "steps:\n  - wait: 1h\n    send: email\n",
         "5:5: a step has exactly one of send, wait, if, split, update, but this one has send"),
        (HEAD + "steps:\n  - wait: 1h\n    then: [{wait: 1h}]\n",
         "6:5: then/else go only with wait: {for: EVENT, timeout: DURATION}"),
        (HEAD + "steps:\n  - wait: {for: Order Completed}\n", "missing field 'timeout'"),
        (HEAD + "steps:\n  - wait: {until: '25:00'}\n", "unknown time of day '25:00'"),
        (HEAD + "steps:\n  - if: customer.cart.value > 1\n", "missing field 'then'"),
        (HEAD + "steps:\n  - split:\n      - {name: A, weight: 50%}\n      - {name: B, weight: 40%}\n",
         "6:7: split weights add up to 90%; they must add up to 100%"),
        (HEAD + "steps:\n  - split:\n      - {name: A, weight: 50%}\n      - {name: A, weight: 50%}\n",
         "variant names must differ"),
        (HEAD + "steps:\n  - split:\n      - {name: A, weight: 50}\n      - {name: B, weight: 50%}\n",
         "unknown percentage 50; write e.g. 10% or 50%"),
        (HEAD + "steps:\n  - update: {traits: {tier: gold}}\n", "unknown name 'gold'"),
        (HEAD + "steps: []\n", "4:8: steps needs at least 1 item"),
        (HEAD + "steps:\n  - send: call\n    list: x\n    priority: urgent\n",
         "unknown value 'urgent' for priority"),
        (HEAD + "holdout: 100%\nsteps: [{wait: 1h}]\n", "holdout must be under 100%"),
        (HEAD + "status: live\nsteps: [{wait: 1h}]\n", "unknown value 'live' for status"),
        (HEAD + "entry: {while_active: restrat}\nsteps: [{wait: 1h}]\n", "for while_active"),
        (HEAD + "goal: {event: X, within: soon}\nsteps: [{wait: 1h}]\n", "unknown duration 'soon'"),
        ("campaign: Abandoned Cart\ntrigger: {event: X}\nsteps: [{wait: 1h}]\n",
         ("1:11: campaign id 'Abandoned Cart' may hold only lowercase letters, digits and '-', "
         "and starts with a letter or digit; write e.g. abandoned-cart")),
        (HEAD + "steps:\n  - send: email\n    template: t.html\n    subject: Hi\n    from: Shop\n",
         "'Shop' is not one email address; write e.g. shop@example.com or Shop <shop@example.com>"),
        (HEAD + "steps:\n  - send: email\n    template: t.html\n    subject: Hi\n"
         "    reply_to: '{{ customer.traits.rep }} <a@b.co>'\n", "(it is not a template)"),
        ("campaign: '-cart'\ntrigger: {event: X}\nsteps: [{wait: 1h}]\n",
         "and starts with a letter or digit; write e.g. cart"),
        ("campaign: x\ntrigger: {event: X, segment: customer.email}\nsteps: [{wait: 1h}]\n",
         "2:10: a trigger has exactly one of event, schedule, segment"),
        ("campaign: x\ntrigger: {evnt: X}\nsteps: [{wait: 1h}]\n", "unknown trigger 'evnt'"),
        ("campaign: x\ntrigger: {schedule: '0 9 * * 1'}\nsteps: [{wait: 1h}]\n",
         "2:10: a schedule trigger needs audience"),
        ("campaign: x\ntrigger: {schedule: '0 25 * * *'}\naudience: 'true'\nsteps: [{wait: 1h}]\n",
         "2:21: schedule '0 25 * * *' is not a cron expression"),
        (("campaign: x\ntrigger: {schedule: '0 9 * * 1', timezone: Mars/Olympus}\n"
         "audience: 'true'\nsteps: [{wait: 1h}]\n"), "'Mars/Olympus' is not an IANA time zone"),
        ("campaign: x\ntrigger: {event: X}\nsteps: [{wait: 1h}]\nstep: []\n",
         "4:1: unknown field 'step' in a campaign; did you mean steps?"),
        ("- just\n- a list\n", "1:1: a campaign file is a mapping"),
        ("", "1:1: the file is empty"),
        ("campaign: x\n  bad: [\n", "2:6: not valid YAML: mapping values are not allowed here"),
        ("campaign: x\ncampaign: y\n", "2:1: duplicate key 'campaign'"),
    ],
)  # fmt: skip
def test_bad_campaigns_say_where_and_what(tmp_path: Path, text: str, expected: str) -> None:
    found = problems_of(write(tmp_path, text))
    assert any(expected in line for line in found), found
    assert not any("Input should" in line or "pydantic" in line for line in found), found


def test_all_problems_of_a_file_at_once(tmp_path: Path) -> None:
    found = problems_of(
        write(tmp_path, HEAD + "steps:\n  - wait: 3 days\n  - sned: x\n  - if: custmer.email\n")
    )
    assert [line.split(":")[0] for line in found] == ["5", "6", "7", "7"]
    assert any("unknown name 'custmer'; did you mean customer?" in line for line in found)
    assert any("missing field 'then'" in line for line in found)


def test_sexagesimal_and_dates_stay_text(tmp_path: Path) -> None:
    data, _, problems = read_yaml(write(tmp_path, "a: 09:00\nb: 2024-05-01\nc: 10%\nd: 3\n"))
    assert problems == [] and data == {"a": "09:00", "b": "2024-05-01", "c": "10%", "d": 3}


def test_folders_duplicates_and_missing_paths(tmp_path: Path) -> None:
    one = "campaign: same\ntrigger: {event: X}\nsteps: [{wait: 1h}]\n"
    write(tmp_path, one, "campaigns/a.yaml")
    write(tmp_path, one, "campaigns/nested/b.yml")
    write(tmp_path, "not: [valid", "campaigns/.hidden/c.yaml")
    write(tmp_path, "ignored", "campaigns/notes.txt")
    result = load_campaigns([tmp_path / "campaigns", tmp_path / "nope.yaml"])
    assert result.files == 2 and list(result.campaigns) == ["same"]
    messages = [p.message for p in result.problems]
    assert any(m == "no such file or folder" for m in messages)
    [duplicate] = [p for p in result.problems if "duplicate" in p.message]
    assert duplicate.path.endswith("b.yml") and (duplicate.line, duplicate.column) == (1, 11)
    assert "a.yaml:1:11" in duplicate.message
    with pytest.raises(CampaignError, match="duplicate campaign id 'same'"):
        result.require()
    assert load_campaigns([tmp_path / "campaigns" / "a.yaml"]).require()["same"].id == "same"


def test_example_templates_render() -> None:
    state = CustomerState(
        traits={"first_name": "Ann", "cart_url": "https://shop.example/cart"},
        cart=Cart(
            items=(
                CartItem("p1", "Boots", 120.0, 1, "https://shop.example/p1", "https://img/p1.jpg"),
                CartItem("p2", "Socks", 4.5, 2),
            )
        ),
    )
    text = (REPO / "templates" / "abandoned_cart.html").read_text()
    html = sandbox().from_string(text).render(customer=state, event=None)
    assert "Hi Ann," in html and "2 items" in html
    assert "Boots" in html and 'src="https://img/p1.jpg"' in html and "2 &times; 4.50" in html
    assert "129.00" in html and 'href="https://shop.example/cart"' in html
    anonymous = sandbox().from_string(text).render(customer=CustomerState(), event=None)
    assert "Hi there," in anonymous and "Return to your cart" not in anonymous


@pytest.mark.parametrize(("items", "said"), [(1, "1 item"), (2, "2 items"), (0, "0 items")])
def test_the_example_subject_counts_items_in_plain_english(items: int, said: str) -> None:
    loaded, _ = load_file(REPO / "campaigns" / "abandoned_cart.yaml")
    assert loaded is not None
    email = loaded.campaign.steps[1]
    assert isinstance(email, EmailSend)
    cart = Cart(items=tuple(CartItem(f"p{n}", price=10.0) for n in range(items)))
    state = CustomerState(traits={"first_name": "Ann"}, cart=cart)
    rendered = (
        sandbox()
        .from_string(email.subject)
        .render(**names("c1", state, None, datetime(2024, 5, 1, tzinfo=UTC)))
    )
    assert rendered == f"Ann, you left {said} behind"
