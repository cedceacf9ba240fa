"""The dashboard's login over real HTTP: only dashboard keys log in, only write keys send events,
the session cookie is signed, expires, dies with its key and is cleared by logging out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from engine.api import Followup
from engine.config import Project
from engine.service.app import create_app
from engine.service.dashboard.session import COOKIE
from engine.service.keys import KeyStore
from engine.service.server import BackgroundServer
from engine.signed_links import SignedTokens
from tests.conftest import TickingClock
from tests.service.conftest import ENVIRON, Running, project_config

PAGES = (
    "/dashboard",
    "/dashboard?range=7d",
    "/dashboard/campaigns/cart",
    "/dashboard/customers/ann@example.com",
    "/dashboard/customers?ref=ann",
    "/dashboard/outbox",
)


@pytest.fixture
def dashboard_key(service: Running) -> tuple[str, str]:
    """A dashboard key of the running service: its id and the key."""
    record, key = KeyStore(service.followup.engine).create(
        "marketing", None, service.clock(), role="dashboard"
    )
    return record.id, key


def _http(service: Running) -> httpx.Client:
    return httpx.Client(base_url=service.url, timeout=30, follow_redirects=False)


def _login(service: Running, key: str) -> httpx.Response:
    with _http(service) as http:
        return http.post("/dashboard/login", data={"key": key, "next": "/dashboard"})


def _token(response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    cookie = response.headers["set-cookie"]
    name, _, rest = cookie.partition("=")
    assert name == COOKIE
    return rest.split(";")[0]


def _get(service: Running, path: str, token: str | None) -> httpx.Response:
    headers = {"Cookie": f"{COOKIE}={token}"} if token is not None else {}
    with _http(service) as http:
        return http.get(path, headers=headers)


def _sent_to_login(response: httpx.Response) -> bool:
    location = response.headers.get("location", "")
    return response.status_code == 303 and location.startswith("/dashboard/login")


def test_every_page_sends_a_stranger_to_the_login(service: Running) -> None:
    for path in PAGES:
        assert _sent_to_login(_get(service, path, None)), path
    with _http(service) as http:
        page = http.get("/dashboard/login")
    assert page.status_code == 200
    assert 'name="key"' in page.text and "<script" not in page.text


def test_a_write_key_cannot_log_in(service: Running) -> None:
    refused = _login(service, service.key)
    assert refused.status_code == 401
    assert "set-cookie" not in refused.headers
    assert "not a dashboard key" in refused.text
    assert _login(service, "fu_nonsense").status_code == 401
    assert _login(service, "").status_code == 401


def test_a_dashboard_key_logs_in_and_cannot_send_events(
    service: Running, dashboard_key: tuple[str, str]
) -> None:
    _, key = dashboard_key
    token = _token(_login(service, key))
    for path in PAGES:
        page = _get(service, path, token)
        if path.startswith("/dashboard/customers?"):
            assert page.status_code == 303
            assert page.headers["location"].startswith("/dashboard/customers/ann")
            continue
        assert page.status_code in (200, 404), (path, page.status_code)  # no such customer
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-store"
    with service.client(key) as client:
        refused = client.post("/v1/track", json={"userId": "u1", "event": "Product Viewed"})
    assert refused.status_code == 401
    with service.client() as client:  # the write key still works
        assert client.post("/v1/track", json={"userId": "u1", "event": "Viewed"}).status_code == 200


def test_a_login_goes_back_to_the_page_asked_for_and_never_elsewhere(
    service: Running, dashboard_key: tuple[str, str]
) -> None:
    _, key = dashboard_key
    asked = _get(service, "/dashboard/outbox?range=7d", None)
    assert asked.headers["location"] == "/dashboard/login?next=%2Fdashboard%2Foutbox%3Frange%3D7d"
    with _http(service) as http:
        back = http.post("/dashboard/login", data={"key": key, "next": "/dashboard/outbox"})
        assert back.headers["location"] == "/dashboard/outbox"
        elsewhere_all = (
            "https://evil.example",
            "//evil.example/dashboard",
            "/v1/track",
            "/dashboard/../unsubscribe/x",  # found by review: out of the dashboard by ..
            "/dashboard/login/",
        )
        for elsewhere in elsewhere_all:
            sent = http.post("/dashboard/login", data={"key": key, "next": elsewhere})
            assert sent.headers["location"] == "/dashboard", elsewhere


def test_forged_and_expired_cookies_are_refused(
    service: Running, dashboard_key: tuple[str, str]
) -> None:
    key_id, key = dashboard_key
    token = _token(_login(service, key))
    assert _get(service, "/dashboard", token).status_code == 200
    payload, _, signature = token.partition(".")
    forged = [
        f"{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}",
        SignedTokens(b"another project's key", "dashboard-session", "x").make(
            {"key": key_id}, service.clock() + timedelta(hours=1)
        ),
        SignedTokens(b"x" * 8, None, "x").make({"key": key_id}, service.clock()),
        "garbage",
        "",
    ]
    for cookie in forged:
        assert _sent_to_login(_get(service, "/dashboard", cookie)), cookie
    service.clock.now += timedelta(hours=12, seconds=1)
    assert _sent_to_login(_get(service, "/dashboard", token))


def test_an_unsubscribe_token_is_no_session(
    service: Running, dashboard_key: tuple[str, str]
) -> None:
    """A token of another purpose, signed with the same key, is not a session."""
    key_id, _ = dashboard_key
    from engine.unsubscribe import signing_key

    same_key = signing_key(service.followup.project.root)
    other = SignedTokens(same_key, "confirm", "confirmation").make(
        {"key": key_id}, service.clock() + timedelta(hours=1)
    )
    assert _sent_to_login(_get(service, "/dashboard", other))
    session = SignedTokens(same_key, "dashboard-session", "dashboard session").make(
        {"key": key_id}, service.clock() + timedelta(hours=1)
    )
    assert _get(service, "/dashboard", session).status_code == 200


def test_revoking_the_key_ends_its_sessions_at_once(
    service: Running, dashboard_key: tuple[str, str]
) -> None:
    key_id, key = dashboard_key
    token = _token(_login(service, key))
    assert _get(service, "/dashboard/outbox", token).status_code == 200
    KeyStore(service.followup.engine).revoke(key_id, service.clock())
    assert _sent_to_login(_get(service, "/dashboard/outbox", token))
    assert _login(service, key).status_code == 401


def test_logout_clears_the_cookie(service: Running, dashboard_key: tuple[str, str]) -> None:
    _, key = dashboard_key
    with _http(service) as http:
        logged_in = http.post("/dashboard/login", data={"key": key})
        assert logged_in.status_code == 303
        assert http.get("/dashboard").status_code == 200  # the client keeps the cookie
        out = http.post("/dashboard/logout")
        assert out.status_code == 303
        assert out.headers["location"] == "/dashboard/login"
        cleared = out.headers["set-cookie"]
        assert cleared.startswith(f"{COOKIE}=;") and "Max-Age=0" in cleared
        assert "Path=/dashboard" in cleared
        assert _sent_to_login(http.get("/dashboard"))


def test_the_cookie_is_http_only_strict_and_scoped(
    service: Running, dashboard_key: tuple[str, str]
) -> None:
    _, key = dashboard_key
    cookie = _login(service, key).headers["set-cookie"]
    flags = [part.strip() for part in cookie.split(";")[1:]]
    assert "HttpOnly" in flags
    assert "SameSite=Lax" in flags
    assert "Path=/dashboard" in flags
    assert f"Max-Age={12 * 3600}" in flags
    assert "Secure" not in flags  # the server's public URL is plain http


@pytest.fixture
def https_service(tmp_path: Path, clock: TickingClock) -> Iterator[Running]:
    """The service of a project whose public URL is https."""
    url = f"sqlite:///{tmp_path / 'secure.db'}"
    config = project_config(url, public_url="https://events.example.com")
    followup = Followup(Project(config, tmp_path), clock)
    _, key = KeyStore(followup.engine).create("dash", None, clock(), role="dashboard")
    server = BackgroundServer(create_app(followup, environ=ENVIRON)).start()
    yield Running(server.url, key, followup, clock)
    server.stop()
    followup.close()


def test_the_cookie_is_secure_behind_https(https_service: Running) -> None:
    cookie = _login(https_service, https_service.key).headers["set-cookie"]
    assert "Secure" in [part.strip() for part in cookie.split(";")]


def test_keys_create_a_dashboard_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``followup keys create --role dashboard`` makes a key that logs in and sends nothing."""
    from tests.service.test_cli import invoke

    monkeypatch.delenv("FOLLOWUP_DATABASE_URL", raising=False)
    created = invoke(tmp_path, "keys", "create", "--name", "marketing", "--role", "dashboard")
    assert created.exit_code == 0, created.output
    first, key = created.stdout.strip().splitlines()
    key_id = first.split()[1]
    assert "dashboard" in first
    assert invoke(tmp_path, "keys", "create", "--name", "shop").exit_code == 0
    listed = invoke(tmp_path, "keys", "list")
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines() if "key_" in line}
    assert rows[key_id][2] == "dashboard"
    assert sorted(row[2] for row in rows.values()) == ["dashboard", "write"]
    refused = invoke(tmp_path, "keys", "create", "--role", "admin")
    assert refused.exit_code == 2
    followup = Followup(Project(project_config(f"sqlite:///{tmp_path / 'followup.db'}"), tmp_path))
    try:
        store = KeyStore(followup.engine)
        assert store.authenticate(key, "dashboard") is not None
        assert store.authenticate(key) is None  # not a write key
    finally:
        followup.close()


def test_keys_made_before_roles_are_write_keys(tmp_path: Path, clock: TickingClock) -> None:
    """Migration 0016 gives every existing key the role ``write``."""
    import sqlalchemy as sa

    from engine.service.keys import hash_key
    from engine.storage.database import create_engine, upgrade

    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        upgrade(engine, to="0015")
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO api_keys (id, name, key_hash, prefix, created_at) "
                    "VALUES ('key_old', 'shop', :digest, 'fu_abcdef', '2024-06-01 12:00:00')"
                ),
                {"digest": hash_key("fu_old")},
            )
        upgrade(engine)
        store = KeyStore(engine)
        assert [key.role for key in store.list()] == ["write"]
        assert store.authenticate("fu_old") is not None
        assert store.authenticate("fu_old", "dashboard") is None
    finally:
        engine.dispose()


def test_forms_posted_from_another_site_are_refused(
    service: Running, dashboard_key: tuple[str, str]
) -> None:
    """Found by review: another site's page could log a browser in with its own key or log it
    out. The cookie is Lax (a link from a mail opens the dashboard), so both forms check."""
    _, key = dashboard_key
    with _http(service) as http:
        for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            login = http.post("/dashboard/login", data={"key": key}, headers=headers)
            assert login.status_code == 403 and "set-cookie" not in login.headers
            logout = http.post("/dashboard/logout", headers=headers)
            assert logout.status_code == 403
        same = {"Origin": service.url, "Sec-Fetch-Site": "same-origin"}
        assert http.post("/dashboard/login", data={"key": key}, headers=same).status_code == 303
