"""Fixtures of the Mailchimp tests: Prism on the official specs (once per session), the stateful
stand-in (fresh per test, the parsed specs shared), and providers pointed at either."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.channels import ProviderContext
from engine.clock import Clock
from integrations.mailchimp.email import MailchimpEmail
from integrations.mailchimp.registry import mailchimp_provider
from tests.conftest import FIXED_NOW, need_service
from tests.mailchimp import prism as prism_mock
from tests.mailchimp import standin

MARKETING_KEY = "0123456789abcdef0123456789abcdef-us19"
TRANSACTIONAL_KEY = "md-SECRET-transactional-key"
ENVIRON = {"MAILCHIMP_API_KEY": MARKETING_KEY, "MAILCHIMP_TRANSACTIONAL_KEY": TRANSACTIONAL_KEY}
SETTINGS: dict[str, Any] = {
    "provider": "mailchimp",
    "list_id": "abc123",
    "sender": "Shop <shop@example.com>",
    "journeys": {"win-back": {"journey_id": 11, "step_id": 22}},
    "store_id": "shop-1",
}


def make_provider(
    marketing: str, transactional: str, clock: Clock = lambda: FIXED_NOW, **settings: Any
) -> MailchimpEmail:
    """The provider through its registered factory, pointed at ``marketing``/``transactional``."""
    context = ProviderContext("email", Path("."), ENVIRON, clock=clock)
    provider = mailchimp_provider(
        {**SETTINGS, "host": marketing, "transactional_host": transactional, **settings},
        context,
        wall_clock=clock,  # the stand-in dates its campaigns on the test's clock too
    )
    assert isinstance(provider, MailchimpEmail)
    return provider


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups off the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``pytest -n --dist loadgroup`` one worker takes every Mailchimp test: Prism starts
    once."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.xdist_group("prism"))


@pytest.fixture(scope="session", autouse=True)
def prism_mocks(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[prism_mock.Mocks | prism_mock.PrismUnavailable]:
    """Prism started as the first Mailchimp test starts: it loads its specs (~20 s) while the
    stand-in tests run (the contract tests' file sorts after them)."""
    try:
        mocks = prism_mock.Mocks(tmp_path_factory.mktemp("prism"))
    except prism_mock.PrismUnavailable as error:
        yield error
        return
    yield mocks
    mocks.stop()


@pytest.fixture(scope="session")
def prism(prism_mocks: prism_mock.Mocks | prism_mock.PrismUnavailable) -> prism_mock.Prism:
    """Prism serving both specs, once it answers."""
    try:
        if isinstance(prism_mocks, prism_mock.PrismUnavailable):
            raise prism_mocks
        return prism_mocks.wait()
    except prism_mock.PrismUnavailable as error:
        need_service("Prism (npm @stoplight/prism-cli)", error)
        raise


@pytest.fixture(scope="session")
def spec_checks() -> tuple[standin.SpecCheck, standin.SpecCheck]:
    """Both specs parsed once."""
    if not standin.MARKETING_SPEC.exists():
        need_service(
            "the Mailchimp specs in tests/mailchimp/specs", FileNotFoundError(standin.SPECS)
        )
    return standin.load_checks()


@pytest.fixture
def stand_in(spec_checks: tuple[standin.SpecCheck, standin.SpecCheck]) -> Iterator[standin.StandIn]:
    """A fresh stateful stand-in; the test fails if any request broke the spec."""
    with standin.running(*spec_checks, hang=1.0) as server:
        yield server
    assert server.world.rejected == [], "requests the spec rejects"
