"""``verify_signature`` on known vectors and tampering, and the http provider's settings."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.channels import ProviderContext
from engine.errors import ConfigError
from integrations.webhook import http_provider, sign, verify_signature

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
TS = int(NOW.timestamp())
BODY = b'{"event":"cart_abandoned"}'


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"key", f"{TS}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign("key", TS, BODY) == f"v1={expected}"
    assert sign(b"key", TS, BODY.decode()) == f"v1={expected}"


def test_verify_accepts_the_real_thing_and_refuses_every_change() -> None:
    header = sign("key", TS, BODY)
    assert verify_signature("key", str(TS), BODY, header, NOW)
    assert verify_signature(b"key", TS, BODY.decode(), header, NOW + timedelta(minutes=4))
    assert not verify_signature("other", str(TS), BODY, header, NOW)  # another secret
    assert not verify_signature("key", str(TS), BODY + b" ", header, NOW)  # body changed
    assert not verify_signature("key", str(TS + 1), BODY, header, NOW)  # timestamp changed
    assert not verify_signature("key", str(TS), BODY, header.upper(), NOW)
    assert not verify_signature("key", str(TS), BODY, "", NOW)
    assert not verify_signature("key", "soon", BODY, header, NOW)
    assert not verify_signature("key", str(TS), BODY, "v1=é", NOW)


def test_verify_refuses_a_replay_outside_the_tolerance() -> None:
    header = sign("key", TS, BODY)
    assert not verify_signature("key", str(TS), BODY, header, NOW + timedelta(minutes=6))
    assert not verify_signature("key", str(TS), BODY, header, NOW - timedelta(minutes=6))
    hour = timedelta(hours=1)
    assert verify_signature("key", str(TS), BODY, header, NOW + timedelta(minutes=6), hour)


def test_verify_takes_any_of_several_signatures_while_a_secret_rotates() -> None:
    header = f"{sign('old', TS, BODY)}, {sign('new', TS, BODY)}"
    assert verify_signature("new", str(TS), BODY, header, NOW)
    assert verify_signature("old", str(TS), BODY, header, NOW)
    assert not verify_signature("third", str(TS), BODY, header, NOW)


def _build(tmp_path: Path, environ: dict[str, str] | None = None, **settings: Any) -> Any:
    context = ProviderContext("webhook", tmp_path, environ or {"HOOK_SECRET": "k" * 16})
    return http_provider({"provider": "http", **settings}, context)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"urls": {"crm": "http://crm.example.com/in"}}, "is not encrypted; write https://"),
        ({"urls": {"crm": "ftp://crm.example.com/in"}}, "write an https:// URL"),
        ({"urls": {"crm": "https://u:p@crm.example.com/"}}, "no credentials in the URL"),
        ({"urls": {"crm": "https://crm.example.com:x/"}}, "is not a URL"),
        ({"headers": {"Authorization": "Bearer x"}}, "would put a secret in followup.yaml"),
        ({"headers": {"Idempotency-Key": "x"}}, "is set by followup itself"),
        ({"headers": {"X-A": "one\ntwo"}}, "must be one line"),
        ({"timeout": 0}, "providers.webhook.timeout"),
        ({"url": {}}, "unknown setting 'url'; did you mean 'urls'?"),
    ],
)
def test_bad_settings_name_the_setting_and_the_fix(
    tmp_path: Path, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match="providers.webhook") as raised:
        _build(tmp_path, secret_env="HOOK_SECRET", **settings)
    assert message in str(raised.value)


def test_urls_need_a_secret_from_the_environment(tmp_path: Path) -> None:
    urls = {"crm": "https://crm.example.com/in", "dev": "http://localhost:8080/in"}
    with pytest.raises(ConfigError, match=r"providers\.webhook\.secret_env: name the"):
        _build(tmp_path, urls=urls)
    with pytest.raises(ConfigError) as raised:
        _build(tmp_path, {"OTHER": "x"}, urls=urls, secret_env="HOOK_SECRET")
    assert "set the environment variable HOOK_SECRET" in str(raised.value)
    assert _build(tmp_path, urls=urls, secret_env="HOOK_SECRET").target.urls == urls


def test_a_missing_ca_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"providers\.webhook\.ca_file: cannot read"):
        _build(tmp_path, ca_file="missing.pem")
