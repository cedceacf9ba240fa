"""``followup validate`` with sample data: ``warning:`` lines for names no event or trait in the
sample sets, which leave the exit code alone unless ``--strict``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson

from tests.e2e.cli import run_followup

REPO = Path(__file__).resolve().parents[2]

CART = """\
campaign: cart
trigger:
  event: Product Added
  where: event.properties.price > 0 and event.properties.colour
exit:
  - event: Order Complete
steps:
  - wait: 1h
  - send: email
    template: cart.html
    subject: "Hi {{ customer.traits.nickname or customer.first_name }}"
"""

CART_HTML = """\
<p>{{ customer.cart.value }}</p>
<p>{{ event.properties.product_id }} {{ event.properties.sku }}</p>
"""

EVENTS: list[dict[str, Any]] = [
    {
        "type": "identify",
        "userId": "u1",
        "timestamp": "2024-05-01T09:00:00Z",
        "traits": {"email": "ann@example.com", "firstName": "Ann"},
    },
    {
        "type": "track",
        "event": "Product Added",
        "userId": "u1",
        "timestamp": "2024-05-01T10:00:00Z",
        "properties": {"product_id": "p1", "price": 20, "color": "red"},
    },
    {
        "type": "track",
        "event": "Order Completed",
        "userId": "u1",
        "timestamp": "2024-05-01T11:00:00Z",
        "properties": {"order_id": "o1", "revenue": 20},
    },
]

WARNINGS = [
    (
        "campaigns/cart.yaml:4:10: warning: event.properties.colour: no 'Product Added' event in "
        "{sample} has this property; did you mean event.properties.color?"
    ),
    (
        "campaigns/cart.yaml:6:12: warning: no event named 'Order Complete' in {sample}; "
        "did you mean Order Completed?"
    ),
    (
        "campaigns/cart.yaml:11:14: warning: customer.traits.nickname: no event in {sample} "
        "sets this trait, nor does an update step"
    ),
    (
        "templates/cart.html:2:1: warning: event.properties.sku: no 'Product Added' event in "
        "{sample} has this property"
    ),
]


run = run_followup


def project(tmp_path: Path, campaigns: dict[str, str]) -> Path:
    (tmp_path / "campaigns").mkdir(parents=True)
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "cart.html").write_text(CART_HTML)
    for name, text in campaigns.items():
        (tmp_path / "campaigns" / name).write_text(text)
    return tmp_path


def write_jsonl(path: Path, messages: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in messages))
    return path


def lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return result.stdout.splitlines()


def warnings(sample: str) -> list[str]:
    return [line.format(sample=sample) for line in WARNINGS]


def test_warnings_leave_the_exit_code_alone(tmp_path: Path) -> None:
    project(tmp_path, {"cart.yaml": CART})
    write_jsonl(tmp_path / "events.jsonl", EVENTS)
    result = run(tmp_path, "validate", "--events", "events.jsonl")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    assert lines(result) == [
        *warnings("events.jsonl"),
        "ok: 1 campaign, 1 template are valid; 4 warnings",
    ]


def test_strict_makes_warnings_count(tmp_path: Path) -> None:
    project(tmp_path, {"cart.yaml": CART})
    write_jsonl(tmp_path / "events.jsonl", EVENTS)
    result = run(tmp_path, "validate", "--strict", "--events", "events.jsonl")
    assert result.returncode == 1
    assert lines(result) == warnings("events.jsonl")
    clean = CART.replace(" and event.properties.colour", "").replace(
        "Order Complete", "Order Completed"
    )
    clean = clean.replace("customer.traits.nickname or ", "")
    (tmp_path / "campaigns" / "cart.yaml").write_text(clean)
    (tmp_path / "templates" / "cart.html").write_text(
        CART_HTML.replace(" {{ event.properties.sku }}", "")
    )
    strict_ok = run(tmp_path, "validate", "--strict", "--events", "events.jsonl")
    assert strict_ok.returncode == 0, strict_ok.stdout
    assert lines(strict_ok) == ["ok: 1 campaign, 1 template are valid"]


def test_problems_and_warnings_in_file_order(tmp_path: Path) -> None:
    broken = "campaign: broken\ntrigger:\n  event: Product Added\nsteps:\n  - wait: soon\n"
    project(tmp_path, {"cart.yaml": CART, "broken.yaml": broken})
    write_jsonl(tmp_path / "events.jsonl", EVENTS)
    result = run(tmp_path, "validate", "--events", "events.jsonl")
    assert result.returncode == 1
    assert lines(result) == [
        "campaigns/broken.yaml:5:11: unknown duration 'soon'; write e.g. 30m, 1h, 2d, 1w or PT1H",
        *warnings("events.jsonl"),
    ]


def test_the_project_database_is_the_sample_without_events(tmp_path: Path) -> None:
    project(tmp_path, {"cart.yaml": CART})
    no_sample = run(tmp_path, "validate")
    assert lines(no_sample) == ["ok: 1 campaign, 1 template are valid"]
    assert not (tmp_path / "followup.db").exists()  # validate never creates the database

    write_jsonl(tmp_path / "events.jsonl", EVENTS)
    assert run(tmp_path, "ingest", "events.jsonl").returncode == 0
    result = run(tmp_path, "validate")
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines(result) == [
        *warnings("followup.db"),
        "ok: 1 campaign, 1 template are valid; 4 warnings",
    ]
    assert run(tmp_path, "validate", "--strict").returncode == 1

    # --events takes the place of the database
    other = write_jsonl(tmp_path / "other.jsonl", [{**EVENTS[1], "event": "Order Completed"}])
    only_file = run(tmp_path, "validate", "campaigns/cart.yaml", "--events", str(other))
    assert lines(only_file) == [
        # no property warnings for an event the sample lacks: its name is the warning
        "campaigns/cart.yaml:3:10: warning: no event named 'Product Added' in other.jsonl",
        (
            "campaigns/cart.yaml:6:12: warning: no event named 'Order Complete' in other.jsonl; "
            "did you mean Order Completed?"
        ),
        (
            "campaigns/cart.yaml:11:14: warning: customer.traits.nickname: no event in "
            "other.jsonl sets this trait, nor does an update step"
        ),
        "ok: 1 campaign, 1 template are valid; 3 warnings",
    ]


def test_an_unusable_events_file(tmp_path: Path) -> None:
    project(tmp_path, {"cart.yaml": CART})
    missing = run(tmp_path, "validate", "--events", "nope.jsonl")
    assert missing.returncode == 1 and missing.stderr == ""
    assert lines(missing) == ["nope.jsonl:1:1: no such events file"]

    path = tmp_path / "events.jsonl"
    path.write_bytes(b"{oops\n" + b"".join(orjson.dumps(m) + b"\n" for m in EVENTS))
    rejected = run(tmp_path, "validate", "--events", "events.jsonl")
    assert rejected.returncode == 0
    found = lines(rejected)
    assert found[3].startswith(  # in file order: after campaigns/, before templates/
        "events.jsonl:1:1: warning: this line is not a valid event; the sample leaves it out "
        "(not valid JSON: "
    )
    assert found[:3] + found[4:] == [
        *warnings("events.jsonl"),
        "ok: 1 campaign, 1 template are valid; 5 warnings",
    ]


def test_the_repository_examples_against_the_stories(tmp_path: Path) -> None:
    shutil.copytree(REPO / "campaigns", tmp_path / "campaigns")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    stories = REPO / "docs" / "examples" / "stories" / "events.jsonl"
    result = run(tmp_path, "validate", "--events", str(stories))
    assert result.returncode == 0, result.stdout + result.stderr
    found = lines(result)
    assert found[-1].startswith("ok: ") and found[-1].endswith(" warnings")
    assert (
        f"campaigns/welcome_series.yaml:13:12: warning: no event named 'Unsubscribed' in {stories}"
    ) in found
    assert (
        "templates/call_follow_up.html:9:1: warning: event.properties.notes: no 'Call Completed' "
        f"event in {stories} has this property"
    ) in found
    assert all(": warning: " in line for line in found[:-1])
    assert run(tmp_path, "validate", "--events", str(stories), "--strict").returncode == 1
