"""``followup validate`` checks each provider's own settings as CI runs it: a real process on a
real ``followup.yaml``, errors as ``path:line:column`` lines into it, nothing connected, and no
secret needed (an unset variable is a warning that ``--strict`` leaves alone)."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

from tests.e2e.cli import run_followup
from tests.e2e.test_validate_cli import CART, REPO, lines, project
from tests.integration.closing_provider import install_entry_point

SECRETS = (
    "SMTP_USER",
    "SMTP_PASSWORD",
    "MAILCHIMP_API_KEY",
    "MAILCHIMP_TRANSACTIONAL_KEY",
    "FACEBOOK_ACCESS_TOKEN",
)


def validate(root: Path, *args: str) -> tuple[int, list[str]]:
    """``followup validate`` with none of the providers' variables set, as in CI."""
    result = run_followup(root, "validate", *args, env=dict.fromkeys(SECRETS, ""))
    assert result.stderr == ""
    return result.returncode, lines(result)


def test_bad_smtp_settings_point_into_followup_yaml(tmp_path: Path) -> None:
    config = """\
providers:
  email:
    provider: smtp
    host: smtp.example.com
    port: five
    hots: relay.example.com
    security: starttls
    sender: shop@example.com
"""
    code, found = validate(project(tmp_path, {"cart.yaml": CART}, config))
    assert code == 1
    assert found == [
        (
            "followup.yaml:5:11: providers.email.port: "
            "Input should be a valid integer, unable to parse string as an integer"
        ),
        "followup.yaml:6:5: providers.email: unknown setting 'hots'; did you mean 'host'?",
    ]


def test_bad_mailchimp_settings_point_into_followup_yaml(tmp_path: Path) -> None:
    config = """\
providers:
  email: {provider: mailchimp, list_idd: abc123, sender: Shop <shop@example.com>,
          timeout: slow, newsletters: {weekly-newsletter: {tagg: weekly}}}
"""
    code, found = validate(project(tmp_path, {"cart.yaml": CART}, config))
    assert code == 1
    assert found == [
        "followup.yaml:2:32: providers.email: unknown setting 'list_idd'; did you mean 'list_id'?",
        (
            "followup.yaml:3:20: providers.email.timeout: "
            "Input should be a valid number, unable to parse string as a number"
        ),
        "followup.yaml:3:59: providers.email.newsletters.weekly-newsletter.tag: Field required",
        "followup.yaml:3:60: providers.email.newsletters.weekly-newsletter: unknown setting 'tagg'",
    ]


def test_settings_the_provider_itself_refuses_are_errors(tmp_path: Path) -> None:
    config = """\
providers:
  email: {provider: mailchimp, list_id: abc123}
  call: {provider: smtp, host: h, sender: s@example.com}
  webhook: {provider: http, urls: {crm: https://crm.example.com/hook}}
"""
    code, found = validate(project(tmp_path, {"cart.yaml": CART}, config))
    assert code == 1
    assert found == [
        (
            "followup.yaml:2:10: providers.email.sender: "
            "set the From address, e.g. Shop <shop@example.com>"
        ),
        "followup.yaml:3:9: providers.call: the smtp provider carries email only",
        (
            "followup.yaml:4:12: providers.webhook.secret_env: name the environment variable that "
            "holds the key the requests are signed with, e.g. secret_env: FOLLOWUP_WEBHOOK_SECRET"
        ),
    ]


def test_unset_secrets_are_warnings_even_with_strict_and_nothing_is_contacted(
    tmp_path: Path,
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as relay:
        relay.setblocking(False)
        port = relay.getsockname()[1]
        config = f"""\
providers:
  email:
    provider: smtp
    host: 127.0.0.1
    port: {port}
    username_env: SMTP_USER
    password_env: SMTP_PASSWORD
    sender: shop@example.com
  ads: {{provider: facebook, ad_account_id: act_123}}
server: {{public_url: "https://events.shop.example"}}
"""
        root = project(tmp_path, {"cart.yaml": CART}, config)
        for strict in ((), ("--strict",)):
            code, found = validate(root, *strict)
            assert code == 0, found
            assert found == [
                (
                    "followup.yaml:6:19: warning: providers.email.username_env: the environment "
                    "variable SMTP_USER (the SMTP user name) is not set here; set it where followup runs"
                ),
                (
                    "followup.yaml:7:19: warning: providers.email.password_env: the environment "
                    "variable SMTP_PASSWORD (the SMTP password) is not set here; set it where "
                    "followup runs"
                ),
                (
                    "followup.yaml:9:8: warning: providers.ads.access_token_env: the environment "
                    "variable FACEBOOK_ACCESS_TOKEN (a Meta access token) is not set here; set it "
                    "where followup runs"
                ),
                "ok: 1 campaign, 1 template and followup.yaml are valid; 3 warnings",
            ]
        try:
            relay.accept()
        except BlockingIOError:
            pass  # no connection came: validate never reached the relay
        else:
            raise AssertionError("validate connected to the SMTP relay")
    assert sorted(path.name for path in root.iterdir()) == [
        "campaigns",
        "followup.yaml",
        "templates",
    ]


def test_set_secrets_give_no_warning(tmp_path: Path) -> None:
    config = """\
providers:
  email: {provider: mailchimp, list_id: abc123, sender: shop@example.com}
server: {public_url: "https://events.shop.example"}
"""
    root = project(tmp_path, {"cart.yaml": CART}, config)
    keys = {"MAILCHIMP_API_KEY": "k-us1", "MAILCHIMP_TRANSACTIONAL_KEY": "t"}
    result = run_followup(root, "validate", env=keys)
    assert result.returncode == 0
    assert lines(result) == ["ok: 1 campaign, 1 template and followup.yaml are valid"]


def test_emails_that_leave_the_machine_want_a_public_https_unsubscribe_link(
    tmp_path: Path,
) -> None:
    """Without server.public_url, real emails would carry http://127.0.0.1:8000 links; over
    plain http, no one-click unsubscribe. A warning, as an unset secret (a development config
    may leave it out): --strict leaves it alone. The file outbox sends nothing out."""
    smtp = "providers:\n  email: {provider: smtp, host: h, sender: shop@example.com}\n"
    root = project(tmp_path / "a", {"cart.yaml": CART}, smtp)
    code, found = validate(root, "--strict")
    assert code == 0
    assert found[0] == (
        "followup.yaml:2:21: warning: emails sent by smtp carry unsubscribe links to "
        "http://127.0.0.1:8000/unsubscribe/…, which customers cannot reach; set "
        "server.public_url to the https address where followup serve answers"
    )
    plain = smtp + 'server: {public_url: "http://events.shop.example"}\n'
    root = project(tmp_path / "b", {"cart.yaml": CART}, plain)
    assert "is not https: emails get no one-click unsubscribe" in validate(root)[1][0]
    local = "providers:\n  email: {provider: outbox}\n"
    root = project(tmp_path / "c", {"cart.yaml": CART}, local)
    assert validate(root)[1] == ["ok: 1 campaign, 1 template and followup.yaml are valid"]


def test_a_provider_without_a_settings_check_is_not_built(tmp_path: Path) -> None:
    config = (
        "providers:\n  email: {provider: outbox}\n  ads: {provider: closing, record: built.log}\n"
    )
    root = project(tmp_path / "shop", {"cart.yaml": CART}, config)
    plugins = install_entry_point(tmp_path / "plugins")
    path = os.pathsep.join([str(plugins), str(REPO)])
    result = run_followup(root, "validate", env={"PYTHONPATH": path})
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines(result) == ["ok: 1 campaign, 1 template and followup.yaml are valid"]
    assert not (root / "built.log").exists()


NEWSLETTERS = """\
providers:
  email: {provider: mailchimp, list_id: abc123, sender: shop@example.com,
          newsletters: {weekly-newsletter: {tag: weekly}}}
  ads: {provider: outbox}
  call: {provider: csv}
"""


def test_a_mailchimp_newsletter_must_not_personalise(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    shutil.copytree(REPO / "campaigns", root / "campaigns")
    shutil.copytree(REPO / "templates", root / "templates")
    (root / "followup.yaml").write_text(NEWSLETTERS)
    weekly = root / "campaigns" / "weekly_newsletter.yaml"
    personal = weekly.read_text()
    assert "template: newsletter.html" in personal

    code, found = validate(root)
    assert code == 1
    assert [line for line in found if "warning:" not in line] == [
        (
            "campaigns/weekly_newsletter.yaml:13:15: newsletter.html reads customer.locale (line 3), "
            "but providers.email in followup.yaml sends weekly-newsletter as one email to the whole "
            "list (newsletters:), rendered for its first member; use a template that reads neither "
            "customer nor event, like newsletter_list.html"
        )
    ]

    weekly.write_text(
        personal.replace("newsletter.html", "newsletter_list.html").replace(
            '"This week at the shop"', '"This week, {{ customer.first_name }}"'
        )
    )
    code, found = validate(root)
    assert code == 1
    assert [line for line in found if "warning:" not in line] == [
        (
            "campaigns/weekly_newsletter.yaml:14:14: the subject reads customer.first_name, but "
            "providers.email in followup.yaml sends weekly-newsletter as one email to the whole list "
            "(newsletters:), rendered for its first member; write one for everyone"
        )
    ]

    weekly.write_text(personal.replace("newsletter.html", "newsletter_list.html"))
    code, found = validate(root)
    assert code == 0, found
    assert found[-1].startswith("ok: ")
