"""``followup tick`` with nothing due answers from the SQLite file (engine/cli/quiet_tick.py):
the line a full pass prints, the decisions full passes make, and a full pass whenever anything
is due or the campaigns, the config or the environment changed."""

from __future__ import annotations

import os
import shutil
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.cli.quiet_tick import tick_request
from tests.durable.harness import shop_decisions
from tests.e2e.cli import run_followup

ROOT = Path(__file__).resolve().parents[2]
STORIES = ROOT / "docs" / "examples" / "stories" / "events.jsonl"
EXTRA = "campaign: extra\ntrigger: {event: Product Viewed}\nsteps:\n  - wait: 1h\n"
TUESDAY = datetime(2024, 5, 7, 10, 0, tzinfo=UTC)  # no schedule tick due before the hour


def _shop(folder: Path, events: bool = True) -> Path:
    folder.mkdir()
    shutil.copytree(ROOT / "campaigns", folder / "campaigns")
    shutil.copytree(ROOT / "templates", folder / "templates")
    if events:
        ingested = run_followup(folder, "ingest", str(STORIES))
        assert ingested.returncode == 0, ingested.stderr
    return folder


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _tick(shop: Path, at: datetime, *more: str, env: dict[str, str] | None = None) -> str:
    result = run_followup(shop, "tick", "--now", _iso(at), *more, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _marked_at(shop: Path) -> str | None:
    """When the last full tick ran (the quiet answer writes nothing)."""
    with closing(sqlite3.connect(shop / "followup.db")) as conn:
        row = conn.execute("SELECT updated_at FROM engine_marks WHERE name = 'quiet_tick'")
        found = row.fetchone()
    return found[0] if found else None


def _full(shop: Path, at: datetime, *more: str, env: dict[str, str] | None = None) -> bool:
    """Whether a tick at ``at`` ran a full pass."""
    before = _marked_at(shop) if (shop / "followup.db").exists() else None
    _tick(shop, at, *more, env=env)
    return _marked_at(shop) != before


def test_nothing_due_is_answered_with_the_line_of_a_full_pass(tmp_path: Path) -> None:
    shop = _shop(tmp_path / "shop", events=False)
    assert _full(shop, TUESDAY)
    later = TUESDAY + timedelta(minutes=5)
    before = _marked_at(shop)
    out = _tick(shop, later)
    assert _marked_at(shop) == before  # answered quietly
    assert out == (
        "2024-05-07T10:05:00Z: 0 events, timers of 0 customers, 0 scheduled, 0 swept; "
        "decided nothing; outbox nothing\n"
    )
    assert _tick(shop, later, "--partition", "0/1") == out  # a full pass says the same
    assert _full(shop, TUESDAY + timedelta(hours=1))  # the hourly segment sweep is due


def test_quiet_ticks_decide_and_send_what_full_ticks_do(tmp_path: Path) -> None:
    quiet, full = _shop(tmp_path / "quiet"), _shop(tmp_path / "full")
    start = datetime(2024, 5, 6, 8, 0, tzinfo=UTC)
    gaps = [0, 5, 45, 1, 20, 60, 3, 600, 1, 1440, 2]
    answered_quietly = 0
    at = start
    for gap in gaps:
        at += timedelta(minutes=gap)
        before = _marked_at(quiet)
        said = _tick(quiet, at)
        answered_quietly += _marked_at(quiet) == before
        assert said == _tick(full, at, "--partition", "0/1")  # always a full pass
    assert answered_quietly >= 3
    assert shop_decisions(quiet) == shop_decisions(full)
    assert len(shop_decisions(full)) >= 5
    sent = sorted(p.name for p in (full / "outbox").rglob("*.eml"))
    assert sent and sorted(p.name for p in (quiet / "outbox").rglob("*.eml")) == sent


def test_changed_campaigns_config_environment_or_events_mean_a_full_pass(tmp_path: Path) -> None:
    shop = _shop(tmp_path / "shop", events=False)
    env = {"FOLLOWUP_NOTE": "a"}
    at = TUESDAY
    assert _full(shop, at, env=env)

    def append(path: Path, text: str) -> None:
        with path.open("a") as file:
            file.write(text)

    changes = [
        ("a campaign edited", lambda: append(shop / "campaigns" / "welcome_series.yaml", "#\n")),
        ("an empty folder", lambda: (shop / "campaigns" / "extra").mkdir()),
        ("a new campaign file", lambda: append(shop / "campaigns" / "extra" / "x.yaml", EXTRA)),
        ("the config", lambda: (shop / "followup.yaml").write_text("timezone: UTC\n")),
        ("the environment", lambda: env.update(FOLLOWUP_NOTE="b")),
        ("events", lambda: run_followup(shop, "ingest", str(STORIES))),
    ]
    for what, change in changes:
        at += timedelta(minutes=1)
        assert not _full(shop, at, env=env), f"before {what}"
        change()
        at += timedelta(minutes=1)
        assert _full(shop, at, env=env) is (what != "an empty folder"), what


def test_only_a_plain_tick_is_answered(tmp_path: Path) -> None:
    assert tick_request(["tick"]) is not None
    request = tick_request(["--config", "f.yaml", "tick", "--now=2024-05-20T00:00:00+02:00"])
    assert request is not None and request.config == Path("f.yaml")
    assert request.now == datetime(2024, 5, 19, 22, tzinfo=UTC)
    for args in (
        ["tick", "--summary"],
        ["tick", "--partition", "0/2"],
        ["tick", "--now"],
        ["tick", "--now", "yesterday"],
        ["tick", "--now", "2024-05-20T00:00:00"],  # no offset: the full command reads it
        ["tick", "--now", "1899-12-31T23:00:00Z"],
        ["tick", "--now", "2024-02-30T00:00:00Z"],  # the full command says what is wrong
        ["tick", "--now", "2024-05-07T24:00Z"],
        ["tick", "--now", "0001-01-01T00:00:00+01:00"],
        ["--now", "2024-05-20T00:00:00Z", "tick"],
        ["tick", "tick"],
        ["simulate"],
        [],
        ["--help"],
        ["tick", "--help"],
    ):
        assert tick_request(args) is None, args


@pytest.mark.parametrize(
    "config", ["database_url: postgresql://x/y\n", "- a list\n", "timezone: [unclosed\n"]
)
def test_a_database_that_is_not_a_sqlite_file_always_gets_the_full_pass(
    tmp_path: Path, config: str
) -> None:
    from engine.cli.quiet_tick import quiet_project

    (tmp_path / "followup.yaml").write_text(config)
    assert quiet_project(tmp_path / "followup.yaml") is None


def test_a_config_that_is_not_yaml_is_reported_by_the_full_command(tmp_path: Path) -> None:
    shop = _shop(tmp_path / "shop", events=False)
    _tick(shop, TUESDAY)
    (shop / "followup.yaml").write_text("timezone: [unclosed\n")
    result = run_followup(shop, "tick", "--now", _iso(TUESDAY + timedelta(minutes=1)))
    assert result.returncode != 0
    assert "followup.yaml:2:1: not valid YAML" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_fingerprint_holds_named_secrets_the_key_file_and_the_campaigns_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What fails a full pass with nothing due changes the fingerprint: a provider's secret
    the config names by variable, an empty signing key file, the campaigns folder going away."""
    from engine.cli.quiet_tick import quiet_project

    config = tmp_path / "followup.yaml"
    config.write_text("providers:\n  email:\n    provider: smtp\n    username_env: SMTP_USERNAME\n")
    (tmp_path / "campaigns").mkdir()
    monkeypatch.chdir(tmp_path)

    def seen() -> str:
        project = quiet_project(config)
        assert project is not None
        return project.fingerprint

    monkeypatch.setenv("SMTP_USERNAME", "shop")
    prints = [seen()]
    monkeypatch.setenv("SMTP_USERNAME", "other")
    prints.append(seen())
    monkeypatch.delenv("SMTP_USERNAME")
    prints.append(seen())
    (tmp_path / ".followup").mkdir()
    (tmp_path / ".followup" / "secret_key").write_text("")  # a full pass would fail on it
    prints.append(seen())
    (tmp_path / ".followup" / "secret_key").write_text("k2")  # as one the full pass made
    assert seen() == prints[-2]
    (tmp_path / "campaigns").rmdir()
    prints.append(seen())
    assert len(set(prints)) == len(prints)
    assert seen() == prints[-1]  # and the same inputs, the same fingerprint


def test_a_plugin_installed_or_upgraded_means_a_full_pass(tmp_path: Path) -> None:
    """An installed provider, command or table module is part of the fingerprint: one that
    fails to load would stop the full pass, which the quiet answer must not hide."""
    shop = _shop(tmp_path / "shop", events=False)
    site = tmp_path / "site"
    dist = site / "followup_extra-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: followup-extra\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[followup.providers]\nextra = integrations.outbox.registry:outbox_provider\n"
    )
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    installed = {"PYTHONPATH": path}
    assert _full(shop, TUESDAY)
    assert not _full(shop, TUESDAY + timedelta(minutes=1))  # nothing changed: quiet
    assert _full(shop, TUESDAY + timedelta(minutes=2), env=installed)  # installed
    assert not _full(shop, TUESDAY + timedelta(minutes=3), env=installed)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: followup-extra\nVersion: 1.1\n")
    assert _full(shop, TUESDAY + timedelta(minutes=4), env=installed)  # upgraded
    assert _full(shop, TUESDAY + timedelta(minutes=5))  # removed
