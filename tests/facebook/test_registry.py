"""The ``facebook`` entry point: settings read into the SDK (secrets from the environment only,
``crash_log=False``, the API version, ``appsecret_proof``), bad settings named, and ``check``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from engine.channels import CheckableProvider, DeliveryStatus, ProviderContext
from engine.errors import ConfigError
from engine.providers import build_providers, provider_factory
from integrations.facebook.provider import FacebookAudiences
from integrations.facebook.registry import facebook_provider
from tests.facebook.deliveries import JANE, audience_change
from tests.facebook.graph import ACCOUNT, AUTH, PROOF, SECRET, TOKEN, VERSION, MetaStandIn

ENVIRON = {"FACEBOOK_ACCESS_TOKEN": TOKEN, "FACEBOOK_APP_SECRET": SECRET, "FB_APP": "4242"}
SETTINGS = {
    "provider": "facebook",
    "ad_account_id": ACCOUNT,
    "access_token_env": "FACEBOOK_ACCESS_TOKEN",
    "app_secret_env": "FACEBOOK_APP_SECRET",
}


def _build(
    settings: dict[str, Any], environ: dict[str, str] = ENVIRON, channel: str = "ads"
) -> Any:
    return facebook_provider(settings, ProviderContext(channel, Path("."), environ))


def test_the_entry_point_builds_the_ads_provider_without_the_crash_reporter(
    graph: MetaStandIn, tmp_path: Path
) -> None:
    hook = sys.excepthook
    assert provider_factory("facebook") is facebook_provider
    providers = build_providers(tmp_path, {"ads": SETTINGS}, environ=ENVIRON)

    ads = providers["ads"]
    assert isinstance(ads, FacebookAudiences) and isinstance(ads, CheckableProvider)
    assert (ads.name, ads.idempotent) == ("facebook", True)
    assert sys.excepthook is hook  # crash_log=False: no hook posting to Meta
    assert ads.check().ok
    (call,) = graph.calls
    assert (call.method, call.version, call.path) == ("GET", VERSION, f"/{ACCOUNT}/")
    assert call.query == {**AUTH, "fields": "name,account_status"}


def test_check_reports_the_account_and_sends_nothing(graph: MetaStandIn) -> None:
    provider = _build(SETTINGS)
    assert provider.check().detail == f"ad account {ACCOUNT} 'Shop Ads': active"
    graph.account_status = 2
    disabled = provider.check()
    assert (disabled.ok, disabled.detail) == (
        False,
        f"ad account {ACCOUNT} 'Shop Ads': account_status 2, not active",
    )
    assert [c.method for c in graph.calls] == ["GET", "GET"]
    assert graph.users_calls() == [] and graph.names == {}


def test_check_with_a_bad_token_says_so_without_the_token(graph: MetaStandIn) -> None:
    provider = _build(SETTINGS, {**ENVIRON, "FACEBOOK_ACCESS_TOKEN": "EAAwrong0token0123"})
    result = provider.check()
    assert not result.ok
    assert result.detail == "Meta Graph API error (code 190): Invalid OAuth access token."
    assert "EAAwrong0token0123" not in result.detail


def test_without_an_app_secret_no_proof_is_sent_and_the_version_is_the_setting(
    graph: MetaStandIn,
) -> None:
    settings = {"provider": "facebook", "ad_account_id": ACCOUNT, "api_version": "v25.0"}
    result = _build(settings, {"FACEBOOK_ACCESS_TOKEN": TOKEN}).check()
    (call,) = graph.calls
    assert call.version == "v25.0"
    assert call.query == {"access_token": TOKEN, "fields": "name,account_status"}
    assert not result.ok  # the stand-in wants the proof and v26.0: Graph error 190
    assert TOKEN not in result.detail and PROOF not in result.detail


@pytest.mark.parametrize(
    ("settings", "environ", "channel", "message"),
    [
        (SETTINGS, ENVIRON, "email", "providers.email: the facebook provider carries ads only"),
        (
            {"provider": "facebook"},
            ENVIRON,
            "ads",
            (
                "providers.ads.ad_account_id: Value error, required; write the ad account as"
                " act_<digits> (act_1234567890)"
            ),
        ),
        (
            {**SETTINGS, "ad_account_id": "123"},
            ENVIRON,
            "ads",
            (
                "providers.ads.ad_account_id: Value error, write the ad account as act_<digits>"
                " (act_1234567890), not '123'"
            ),
        ),
        (
            {"provider": "facebook", "ad_acount_id": ACCOUNT},
            ENVIRON,
            "ads",
            "providers.ads: unknown setting 'ad_acount_id'; did you mean 'ad_account_id'?",
        ),
        (
            SETTINGS,
            {"FACEBOOK_APP_SECRET": SECRET},
            "ads",
            (
                "providers.ads.access_token_env: set the environment variable FACEBOOK_ACCESS_TOKEN"
                " (a Meta access token with ads_management)"
            ),
        ),
        (
            SETTINGS,
            {"FACEBOOK_ACCESS_TOKEN": TOKEN},
            "ads",
            (
                "providers.ads.app_secret_env: set the environment variable FACEBOOK_APP_SECRET"
                " (the Meta app secret)"
            ),
        ),
        (
            {**SETTINGS, "app_id_env": "NO_SUCH_VAR"},
            ENVIRON,
            "ads",
            "providers.ads.app_id_env: set the environment variable NO_SUCH_VAR (the Meta app id)",
        ),
        (
            {**SETTINGS, "api_version": "26"},
            ENVIRON,
            "ads",
            "providers.ads.api_version: String should match pattern",
        ),
        (
            {**SETTINGS, "customer_file_source": "MINE"},
            ENVIRON,
            "ads",
            "providers.ads.customer_file_source: Input should be 'USER_PROVIDED_ONLY',",
        ),
    ],
)
def test_bad_settings_name_the_setting_and_what_to_write(
    settings: dict[str, Any], environ: dict[str, str], channel: str, message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        _build(settings, environ, channel)
    assert str(raised.value).startswith(message)
    assert TOKEN not in str(raised.value) and SECRET not in str(raised.value)


def test_app_id_and_custom_file_source_are_used(graph: MetaStandIn) -> None:
    settings = {
        **SETTINGS,
        "app_id_env": "FB_APP",
        "customer_file_source": "PARTNER_PROVIDED_ONLY",
        "timeout_seconds": 5,
    }
    provider = _build(settings)
    assert provider.deliver(audience_change(JANE)).status is DeliveryStatus.DELIVERED
    creation = next(c for c in graph.calls if c.method == "POST" and "customaudiences" in c.path)
    assert creation.params()["customer_file_source"] == "PARTNER_PROVIDED_ONLY"
