"""``followup simulate --workers N``: customers split between processes, the same output."""

from __future__ import annotations

import shutil
from pathlib import Path

from engine.journeys.partitioned import PARALLEL_FROM
from tests.durable.harness import write_messages
from tests.e2e.cli import run_followup
from tests.journeys.test_partitioned_simulate import STRICT_NAME, signing_in_shoppers

ROOT = Path(__file__).resolve().parents[2]


def test_plan_report_and_warnings_are_the_same_split_or_not(tmp_path: Path) -> None:
    (tmp_path / "campaigns").mkdir()
    for name in ("abandoned_cart", "post_purchase", "welcome_series"):  # event-triggered: quick
        shutil.copy(ROOT / "campaigns" / f"{name}.yaml", tmp_path / "campaigns")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    (tmp_path / "templates" / "abandoned_cart.html").write_text(STRICT_NAME)
    events = write_messages(tmp_path / "events.jsonl", signing_in_shoppers(PARALLEL_FROM + 500))
    outputs = {}
    for workers in ("1", "2"):
        report = tmp_path / f"report-{workers}.json"
        plan = run_followup(
            tmp_path, "simulate", "--events", str(events), "--workers", workers,
            "--report", str(report),
        )  # fmt: skip
        assert plan.returncode == 0, plan.stderr
        warnings = plan.stderr.replace(str(report), "REPORT")
        outputs[workers] = (plan.stdout, warnings, report.read_text())
    assert outputs["1"] == outputs["2"]
    plan, warnings, _report = outputs["2"]
    assert plan.count("\n") > 1_000
    assert "abandoned_cart.html" in warnings and "render_error" in plan


def test_workers_must_be_at_least_one(tmp_path: Path) -> None:
    events = write_messages(tmp_path / "events.jsonl", signing_in_shoppers(10))
    result = run_followup(tmp_path, "simulate", "--events", str(events), "--workers", "0")
    assert result.returncode == 2
    assert "--workers" in result.stderr
