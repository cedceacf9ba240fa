"""The contract tests' copy of the Mailchimp specs is the project's shared one, byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mailchimp.standin import MARKETING_SPEC, TRANSACTIONAL_SPEC

SHARED = Path(__file__).resolve().parents[3] / "shared" / "specs"


@pytest.mark.parametrize("copy", [MARKETING_SPEC, TRANSACTIONAL_SPEC], ids=lambda p: p.name)
def test_the_copy_is_the_shared_spec(copy: Path) -> None:
    original = SHARED / copy.name
    if not original.exists():
        pytest.skip(f"{SHARED} is not beside this checkout: nothing to compare with")
    assert copy.read_bytes() == original.read_bytes()
