"""``followup providers check`` with the smtp provider, as a user runs it, against a real SMTP
server: exit 0 when the login works, 1 with the server's reply (never the password) when not."""

from __future__ import annotations

from pathlib import Path

import trustme

from tests.e2e.cli import run_followup
from tests.smtp.server import PASSWORD, USERNAME, smtp_server

CONFIG = """\
providers:
  email:
    provider: smtp
    host: 127.0.0.1
    port: {port}
    security: starttls
    username_env: SMTP_USERNAME
    password_env: SMTP_PASSWORD
    sender: shop@example.com
    ca_file: ca.pem
    timeout: 5
"""


def test_providers_check_logs_in_and_never_prints_the_password(
    tmp_path: Path, ca: trustme.CA
) -> None:
    wrong = "Wr0ng-but-secret"
    with smtp_server("starttls", ca=ca) as server:
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        (tmp_path / "followup.yaml").write_text(CONFIG.format(port=server.port))
        good = run_followup(
            tmp_path,
            "providers",
            "check",
            env={"SMTP_USERNAME": USERNAME, "SMTP_PASSWORD": PASSWORD},
        )
        bad = run_followup(
            tmp_path, "providers", "check", env={"SMTP_USERNAME": USERNAME, "SMTP_PASSWORD": wrong}
        )
    assert good.returncode == 0, good.stdout + good.stderr
    assert "answered (STARTTLS, logged in)" in good.stdout
    assert "no urls: every webhook fails until" in good.stdout  # the default webhook provider
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "535" in bad.stdout
    for run in (good, bad):
        assert PASSWORD not in run.stdout + run.stderr
        assert wrong not in run.stdout + run.stderr
    assert server.handler.messages == [] and server.handler.commands == []
