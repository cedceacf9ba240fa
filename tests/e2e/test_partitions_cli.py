"""``followup tick --partition i/N`` as an operator runs it: N passes, one per partition, decide
what one pass over everyone decides; a partition written wrong is refused with exit 2."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.durable.harness import shop_decisions
from tests.e2e.cli import run_followup

ROOT = Path(__file__).resolve().parents[2]
STORIES = ROOT / "docs" / "examples" / "stories" / "events.jsonl"
PASSES = ["2024-05-06T07:30:00Z", "2024-05-20T00:00:00Z"]  # a tick's grace, then the end


def _shop(folder: Path) -> Path:
    folder.mkdir()
    shutil.copytree(ROOT / "campaigns", folder / "campaigns")
    shutil.copytree(ROOT / "templates", folder / "templates")
    ingested = run_followup(folder, "ingest", str(STORIES))
    assert ingested.returncode == 0, ingested.stderr
    return folder


def test_passes_split_in_partitions_decide_what_one_pass_does(tmp_path: Path) -> None:
    whole, split = _shop(tmp_path / "whole"), _shop(tmp_path / "split")
    for now in PASSES:
        result = run_followup(whole, "tick", "--now", now)
        assert result.returncode == 0, result.stderr
        for index in range(3):
            result = run_followup(split, "tick", "--now", now, "--partition", f"{index}/3")
            assert result.returncode == 0, result.stderr
    decided = shop_decisions(whole)
    assert len(decided) >= 20
    assert shop_decisions(split) == decided
    sent = sorted(p.name for p in (whole / "outbox").rglob("*.eml"))
    assert sent and sorted(p.name for p in (split / "outbox").rglob("*.eml")) == sent


def test_a_partition_written_wrong_is_refused(tmp_path: Path) -> None:
    shop = _shop(tmp_path / "shop")
    for wrong, says in [("3/3", "counted from 0 to 2"), ("half", "written i/N")]:
        result = run_followup(shop, "tick", "--partition", wrong)
        assert result.returncode == 2
        assert "--partition" in result.stderr and says in result.stderr
