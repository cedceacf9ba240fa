"""The ``followup`` command as a user runs it: a real process, real files, real exit codes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from engine.storage.tables import events
from tests.e2e.cli import run_followup
from tests.service.test_cli import invoke

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


run = run_followup


def write_jsonl(path: Path, messages: list[Any]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in messages))
    return path


CART = [
    {
        "type": "track",
        "event": "Product Added",
        "anonymousId": "a1",
        "messageId": "m1",
        "timestamp": "2024-05-01T10:00:00Z",
        "properties": {"product_id": "p1", "name": "Boots", "price": 120, "quantity": 1},
    },
    {
        "type": "identify",
        "userId": "u1",
        "anonymousId": "a1",
        "messageId": "m2",
        "timestamp": "2024-05-01T10:05:00Z",
        "traits": {"email": "Ann@Example.com", "firstName": "Ann", "consent": {"email": True}},
    },
]


def test_an_opt_out_written_as_text_is_an_opt_out_and_a_garbled_one_is_refused(
    tmp_path: Path,
) -> None:
    """A CSV-minded client writes ``"false"``: the customer stops getting email. One that says
    neither yes nor no, or unsubscribes from a channel no one has, is rejected with its line,
    the rest ingested (exit 1), and kept in the rejects file to fix."""
    at = "2024-05-01T10:{:02d}:00Z".format
    lines = [
        CART[1],
        {"type": "identify", "userId": "u1", "messageId": "m3", "timestamp": at(6),
         "traits": {"consent": {"email": "false", "sms": "yes"}}},
        {"type": "identify", "userId": "u1", "messageId": "m4", "timestamp": at(7),
         "traits": {"consent": {"email": "maybe"}}},
        {"type": "track", "event": "Unsubscribed", "userId": "u1", "messageId": "m5",
         "timestamp": at(8), "properties": {"channel": "e-mail"}},
    ]  # fmt: skip
    events = write_jsonl(tmp_path / "events.jsonl", lines)
    ingested = run(tmp_path, "ingest", str(events))
    assert ingested.returncode == 1, ingested.stderr
    shown = ingested.stdout + ingested.stderr
    assert "events.jsonl:3: traits.consent.email: consent.email must be true or false" in shown
    assert "events.jsonl:4: properties.channel: channel 'e-mail' is not a consent channel" in shown
    profile = orjson.loads(run(tmp_path, "customers", "show", "u1", "--json").stdout)
    assert (profile["state"]["consent"]["email"], profile["state"]["consent"]["sms"]) == (
        False,
        True,
    )
    rejects = (tmp_path / "events.jsonl.rejects.jsonl").read_text().splitlines()
    assert [orjson.loads(line)["line"] for line in rejects] == [3, 4]


def test_ingest_then_show_then_ingest_again(tmp_path: Path) -> None:
    events = write_jsonl(tmp_path / "events.jsonl", CART)
    first = run(tmp_path, "ingest", str(events))
    assert first.returncode == 0, first.stderr
    assert "accepted" in first.stdout and " 2 " in first.stdout
    assert (tmp_path / "followup.db").exists()

    shown = run(tmp_path, "customers", "show", "ann@example.com", "--json")
    assert shown.returncode == 0, shown.stderr
    profile = orjson.loads(shown.stdout)
    assert profile["state"]["cart"]["items"][0]["product_id"] == "p1"
    assert profile["state"]["consent"]["email"] is True
    assert profile["state"]["traits"]["first_name"] == "Ann"
    assert sorted(profile["identities"]) == ["anon:a1", "email:ann@example.com", "user:u1"]

    table = run(tmp_path, "customers", "show", "u1")
    assert table.returncode == 0 and "Boots" in table.stdout and "Product Added" in table.stdout
    listing = run(tmp_path, "customers", "list")
    assert "1 customers from 2 events" in listing.stdout

    again = run(tmp_path, "ingest", str(events))
    assert again.returncode == 0
    assert "duplicates" in again.stdout
    assert orjson.loads(run(tmp_path, "customers", "show", "u1", "--json").stdout) == profile

    rebuilt = run(tmp_path, "state", "rebuild")
    assert rebuilt.returncode == 0 and "0 differed" in rebuilt.stdout


def test_rejects_exit_1_and_are_kept_with_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        orjson.dumps(CART[0])
        + b"\n{oops\n"
        + orjson.dumps({**CART[1], "timestamp": "soon", "messageId": "m9"})
        + b"\n"
    )
    result = run(tmp_path, "ingest", str(path))
    assert result.returncode == 1
    assert f"{path}:2:" in result.stdout
    assert f"{path}:3: timestamp:" in result.stdout
    rejects = [
        orjson.loads(line)
        for line in (tmp_path / "mixed.jsonl.rejects.jsonl").read_bytes().splitlines()
    ]
    assert [(r["line"], r["reason"], r["field"]) for r in rejects] == [
        (2, "invalid_json", ""),
        (3, "bad_timestamp", "timestamp"),
    ]
    assert rejects[0]["raw"] == "{oops"
    assert (
        orjson.loads(run(tmp_path, "customers", "show", "a1", "--json").stdout)["state"][
            "event_count"
        ]
        == 1
    )


def test_pos_csv_with_mapping_joins_the_web_profile(tmp_path: Path) -> None:
    web = write_jsonl(
        tmp_path / "web.jsonl",
        [
            {
                "type": "identify",
                "userId": "web-1",
                "messageId": "w1",
                "timestamp": "2024-05-01T09:00:00Z",
                "traits": {"email": "ann@example.com"},
            },
        ],
    )
    assert run(tmp_path, "ingest", str(web)).returncode == 0
    result = run(
        tmp_path,
        "ingest",
        str(EXAMPLES / "pos_sales.csv"),
        "--mapping",
        str(EXAMPLES / "pos_sales.mapping.yaml"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    profile = orjson.loads(run(tmp_path, "customers", "show", "ann@example.com", "--json").stdout)
    assert profile["state"]["channels"] == ["pos", "web"]
    assert profile["state"]["orders"]["count"] == 1
    assert profile["state"]["orders"]["total"] == 89.9
    assert "user:L-889" in profile["identities"] and "user:web-1" in profile["identities"]
    by_phone = orjson.loads(run(tmp_path, "customers", "show", "+33142685300", "--json").stdout)
    assert by_phone["id"] == profile["id"]


def test_config_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    project = tmp_path / "shop"
    project.mkdir()
    (project / "followup.yaml").write_text(
        "timezone: Europe/Paris\ndatabase_url: sqlite:///data/shop.db\n"
    )
    events = write_jsonl(tmp_path / "events.jsonl", CART)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run(elsewhere, "--config", str(project / "followup.yaml"), "ingest", str(events))
    assert result.returncode == 0, result.stderr
    assert (project / "data" / "shop.db").exists()
    assert not (elsewhere / "followup.db").exists()


def test_the_config_may_follow_the_command_name(tmp_path: Path) -> None:
    """CAMPAIGN_FORMAT.md: every command reads followup.yaml unless --config names another;
    docs/validate.md writes it after the command (``followup validate ... --config FILE``)."""
    project = tmp_path / "shop"
    project.mkdir()
    (project / "followup.yaml").write_text("database_url: sqlite:///data/shop.db\n")
    (project / "campaigns").mkdir()
    events = write_jsonl(tmp_path / "events.jsonl", CART)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = str(project / "followup.yaml")
    for command in (
        ["ingest", str(events)],
        ["validate"],
        ["state", "rebuild"],
        ["customers", "list"],
        ["customers", "show", "ann@example.com"],
    ):
        result = run(elsewhere, *command, "--config", config)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
    assert (project / "data" / "shop.db").exists()
    assert not (elsewhere / "followup.db").exists()


def test_every_command_that_reads_the_project_takes_config() -> None:
    import typer.main

    from engine.cli.app import app

    def leaves(group: Any, context: Any, path: str) -> list[str]:
        found = []
        for name in group.list_commands(context):
            command = group.get_command(context, name)
            if hasattr(command, "list_commands"):  # a group: its commands
                inner = command.context_class(command, parent=context)
                found += leaves(command, inner, f"{path} {name}")
            elif not any("--config" in getattr(p, "opts", ()) for p in command.params):
                found.append(f"{path} {name}".strip())
        return found

    root = typer.main.get_command(app)
    # the samples are built from files named on the command line: no project involved
    assert leaves(root, root.context_class(root), "") == ["samples build", "samples contacts"]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("timezone: Mars/Olympus\n", "followup.yaml: timezone"),
        ("timezon: UTC\n", "timezon: Extra inputs are not permitted"),
        ("timezone: [\n", "followup.yaml:2:1: not valid YAML"),
    ],
)
def test_bad_config_exits_2_naming_the_file(tmp_path: Path, config: str, expected: str) -> None:
    (tmp_path / "followup.yaml").write_text(config)
    result = run(tmp_path, "customers", "list")
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_input_and_csv_without_mapping_exit_2(tmp_path: Path) -> None:
    missing = run(tmp_path, "ingest", "nowhere.jsonl")
    assert missing.returncode == 2 and "nowhere.jsonl: no such file" in missing.stderr
    csv_file = tmp_path / "x.csv"
    csv_file.write_text("a,b\n")
    no_mapping = run(tmp_path, "ingest", str(csv_file))
    assert no_mapping.returncode == 2 and "--mapping" in no_mapping.stderr
    unknown = run(tmp_path, "customers", "show", "nobody@example.com")
    assert unknown.returncode == 2 and "no customer is known" in unknown.stderr


@pytest.mark.external_service
def test_the_database_url_from_the_environment_reaches_postgresql(
    tmp_path: Path, empty_postgres: str
) -> None:
    events = write_jsonl(tmp_path / "events.jsonl", CART)
    env = {"FOLLOWUP_DATABASE_URL": empty_postgres}
    result = run(tmp_path, "ingest", str(events), env=env)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "followup.db").exists()
    shown = run(tmp_path, "customers", "show", "u1", "--json", env=env)
    assert orjson.loads(shown.stdout)["state"]["cart"]["items"][0]["price"] == 120


def test_rejects_that_cannot_be_kept_beside_the_input_land_in_the_working_folder(
    tmp_path: Path,
) -> None:
    data = tmp_path / "shared"
    data.mkdir()
    path = data / "bad.jsonl"
    path.write_bytes(orjson.dumps(CART[0]) + b"\nnot json\n")
    (data / "bad.jsonl.rejects.jsonl").mkdir()  # unwritable as a file, even for root
    work = tmp_path / "work"
    work.mkdir()
    result = run(work, "ingest", str(path))
    assert result.returncode == 1
    kept = (work / "bad.jsonl.rejects.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["raw"] for line in kept] == ["not json"]


def test_preview_renders_a_template_as_the_customer_gets_it(tmp_path: Path) -> None:
    shutil.copytree(Path(__file__).resolve().parents[2] / "templates", tmp_path / "templates")
    events = write_jsonl(tmp_path / "events.jsonl", CART)
    assert run(tmp_path, "ingest", str(events)).returncode == 0
    html = run(tmp_path, "preview", "abandoned_cart.html", "--customer", "ann@example.com")
    assert html.returncode == 0, html.stderr
    assert "Hi Ann," in html.stdout and "Boots" in html.stdout and "120.00" in html.stdout
    # the footer a sent email has, with a link that unsubscribes no one
    assert "Unsubscribe</a> from these emails" in html.stdout
    assert "/unsubscribe/preview-c_" in html.stdout
    text = run(
        tmp_path,
        "preview",
        "abandoned_cart.html",
        "--customer",
        "u1",
        "--text",
        "--subject",
        "{{ customer.first_name }}, {{ customer.cart.items | length }} item",
    )
    assert text.stdout.startswith("Subject: Ann, 1 item\n")
    assert "<" not in text.stdout and "1 × 120.00" in text.stdout
    missing = run(tmp_path, "preview", "nope.html", "--customer", "u1")
    assert missing.returncode == 2 and "no such template" in missing.stderr


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("{% for item in %}", "Expected an expression"),  # syntax
        ("{{ customer.first_name | shout }}", "No filter named 'shout'"),  # compile
        ("{{ customer.cart.items[3].name.upper() }}", "tuple object has no element 3"),
        ("{{ 1 / 0 }}", "ZeroDivisionError: division by zero"),  # a Python error
    ],
)
def test_preview_of_a_broken_template_names_its_line(tmp_path: Path, body: str, error: str) -> None:
    (tmp_path / "templates").mkdir()
    page = tmp_path / "templates" / "broken.html"
    page.write_text(f"<p>Hello</p>\n<p>{body}</p>\n")
    assert run(tmp_path, "ingest", str(write_jsonl(tmp_path / "e.jsonl", CART))).returncode == 0
    result = run(tmp_path, "preview", "broken.html", "--customer", "u1")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    shown = " ".join(result.stderr.split())
    assert f"{page}:2: {error}" in shown and f"<p>{body}</p>" in shown


def test_file_rejects_land_in_the_rejects_store(tmp_path: Path, database_url: str) -> None:
    """``followup rejects list`` is the one place to look: a file's rejects are kept there too
    (and in FILE.rejects.jsonl, with exit code 1 as before), on SQLite and PostgreSQL alike,
    NUL and year-10000 times included."""
    path = tmp_path / "mixed.jsonl"
    nul_event = {**CART[0], "messageId": "m-nul", "properties": {"name": "Bo\x00ots"}}
    late = {**CART[1], "messageId": "m-late", "timestamp": "9999-12-31T23:59:59-01:00"}
    path.write_bytes(
        orjson.dumps(CART[0])
        + b"\n{oops\n"
        + b'{"a": "nul\x00byte"}\n'
        + orjson.dumps(nul_event)
        + b"\n"
        + orjson.dumps(late)
        + b"\n"
    )
    env = {"FOLLOWUP_DATABASE_URL": database_url}
    result = run(tmp_path, "ingest", str(path), env=env)
    assert result.returncode == 1, result.stderr
    assert "followup rejects list" in result.stdout
    again = invoke(tmp_path, "ingest", str(path), env=env)  # each reject is kept once
    assert again.exit_code == 1, again.output
    listed = run(tmp_path, "rejects", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    kept = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["source"], r["position"], r["reason"], r["field"]) for r in kept] == [
        (str(path), 5, "bad_timestamp", "timestamp"),
        (str(path), 3, "invalid_json", ""),
        (str(path), 2, "invalid_json", ""),
    ]
    assert kept[1]["raw"] == '{"a": "nul\ufffdbyte"}'
    assert orjson.loads(kept[0]["raw"])["messageId"] == "m-late"
    table = invoke(tmp_path, "rejects", "list", "--limit", "1", env=env)
    assert "bad_timestamp" in table.stdout and "invalid_json" not in table.stdout
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        names = conn.execute(sa.select(events.c.message_id, events.c.payload)).all()
    engine.dispose()
    assert {m: p.get("properties", {}).get("name") for m, p in names} == {
        "m1": "Boots",
        "m-nul": "Bo\ufffdots",
    }


def test_a_file_that_is_not_a_database_or_an_output_folder_exit_2(tmp_path: Path) -> None:
    """operations.md: commands exit 2 when they cannot run. A database_url naming a file that
    is no database, and a report written onto a folder, ended in a traceback with exit 1."""
    (tmp_path / "followup.yaml").write_text("database_url: sqlite:///notes.txt\n")
    (tmp_path / "notes.txt").write_text("not a database\n" * 200)
    for command in (["status"], ["report", "--format", "json"], ["customers", "list"]):
        result = run_followup(tmp_path, *command)
        assert result.returncode == 2, (command, result.stderr)
        assert "the database cannot be used: file is not a database" in result.stderr
        assert "Traceback" not in result.stderr
    (tmp_path / "followup.yaml").write_text("timezone: UTC\n")
    (tmp_path / "out.json").mkdir()
    result = run_followup(tmp_path, "report", "--out", "out.json", "--format", "json")
    assert result.returncode == 2 and "--out out.json: is a folder" in result.stderr
