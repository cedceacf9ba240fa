"""The dashboard in a real browser: headless Chromium through Selenium logs in with the form,
reads the overview's figures from the page and finds them equal to ``project_report``'s (the
JSON of ``followup report``), picks other periods, follows a campaign, finds a customer with the
search box, opens the outbox and logs out. Screenshots of each page go to ``tmp_path``; with
``FOLLOWUP_SCREENSHOTS=1`` the overview and a campaign page also to ``docs/images/``."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from engine.api import Followup
from engine.reports.charts import count, money, percent, points
from engine.reports.journey_counts import Period
from engine.reports.project import project_report
from engine.service.app import create_app
from engine.service.keys import KeyStore
from engine.service.server import BackgroundServer
from engine.storage.tables import outbox
from tests.conftest import need_service
from tests.durable.shop import T0, run_shop

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1800",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """Debian's Chromium, headless, with a profile of its own."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        need_service("Chromium", FileNotFoundError(f"{', '.join(missing)} not installed"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ARGUMENTS:
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    try:
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    except WebDriverException as exc:
        need_service("Chromium", exc)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[tuple[str, str, Followup]]:
    """The shop's project served on loopback: its URL, a dashboard key and the engine."""
    followup, clock = run_shop(tmp_path / "shop")
    _, key = KeyStore(followup.engine).create("marketing", None, clock(), role="dashboard")
    server = BackgroundServer(create_app(followup, environ={})).start()
    yield server.url, key, followup
    server.stop()
    followup.close()


def _figure(driver: WebDriver, name: str, within: Any = None) -> str:
    scope = within if within is not None else driver
    return str(scope.find_element(By.CSS_SELECTOR, f'[data-figure="{name}"]').text.strip())


def _shot(driver: WebDriver, tmp_path: Path, name: str, keep: bool = False) -> None:
    path = tmp_path / f"{name}.png"
    assert driver.save_screenshot(str(path))
    if keep and os.environ.get("FOLLOWUP_SCREENSHOTS") == "1":
        IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, IMAGES / f"dashboard-{name}.png")


def _check_overview(driver: WebDriver, report: dict[str, Any]) -> None:
    orders = report["orders"]
    assert _figure(driver, "orders-count") == count(orders["count"])
    assert _figure(driver, "orders-revenue") == money(orders["revenue"])
    assert _figure(driver, "orders-attributed-count") == count(orders["attributed_count"])
    assert _figure(driver, "orders-attributed-revenue") == money(orders["attributed_revenue"])
    for source, figures in orders["by_source"].items():
        assert _figure(driver, f"source-{source}-count") == count(figures["count"])
        assert _figure(driver, f"source-{source}-revenue") == money(figures["revenue"])
        assert _figure(driver, f"source-{source}-attributed-revenue") == money(
            figures["attributed_revenue"]
        )
    rows = driver.find_elements(By.CSS_SELECTOR, "#campaigns-table tbody tr")
    assert [row.get_attribute("data-campaign") for row in rows] == [
        c["campaign"] for c in report["campaigns"]
    ]
    for row, campaign in zip(rows, report["campaigns"], strict=True):
        assert _figure(driver, "journeys", row) == count(campaign["journeys"])
        assert _figure(driver, "converted", row) == count(campaign["converted"])
        assert _figure(driver, "conversion-value", row) == money(campaign["conversion_value"])
        assert _figure(driver, "attributed-revenue", row) == money(campaign["attributed_revenue"])
        holdout = campaign["holdout"]
        if holdout is not None and holdout["control"]["journeys"]:
            assert _figure(driver, "lift", row) == points(holdout["lift"]["absolute"])
            significant = "yes" if holdout["lift"]["significant"] else "no"
            assert _figure(driver, "significant", row) == significant
        assert row.find_elements(By.CSS_SELECTOR, "svg.spark polyline")


def _pick(driver: WebDriver, value: str, since: str = "", until: str = "") -> None:
    Select(driver.find_element(By.ID, "period-range")).select_by_value(value)
    for field, text in (("period-since", since), ("period-until", until)):
        driver.execute_script(  # a date input's typing depends on the locale: set it
            "arguments[0].value = arguments[1]", driver.find_element(By.ID, field), text
        )
    _click_to(driver, "#period-apply", "/dashboard", f"range={value}")


def _path(driver: WebDriver) -> str:
    return urlsplit(driver.current_url).path


def _click_to(driver: WebDriver, selector: str, path: str, query: str = "") -> None:
    """Click ``selector`` and wait until the page at ``path`` (with ``query`` in its URL) is
    loaded: a form's submission may still be under way when ``click`` returns."""
    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.CSS_SELECTOR, selector).click()
    WebDriverWait(driver, 20).until(
        lambda d: (
            _path(d) == path
            and query in urlsplit(d.current_url).query
            and d.execute_script("return document.readyState") == "complete"
            and not _same(old, d)
        )
    )


def _same(old: Any, driver: WebDriver) -> bool:
    """Whether the page of ``old`` (an element) is still the one shown."""
    try:
        return bool(old.id == driver.find_element(By.TAG_NAME, "html").id)
    except WebDriverException:
        return False


def test_the_dashboard_in_a_browser(
    browser: WebDriver, shop: tuple[str, str, Followup], tmp_path: Path
) -> None:
    url, key, followup = shop
    now: datetime = followup.clock()

    # a stranger is sent to the login form; the dashboard key logs in
    browser.get(f"{url}/dashboard")
    assert _path(browser) == "/dashboard/login"
    _shot(browser, tmp_path, "login")
    browser.find_element(By.ID, "login-key").send_keys(key)
    _click_to(browser, "#login-submit", "/dashboard")
    assert "<script" not in browser.page_source

    # the overview, by default the last 30 days: the report's figures
    report, _ = project_report(followup, Period(now - timedelta(days=30), None))
    assert report["orders"]["by_source"]["pos"]["count"] > 0
    _check_overview(browser, report)
    _shot(browser, tmp_path, "overview", keep=True)

    # the last 7 days cut the shop's first days off: other figures, still the report's
    _pick(browser, "7d")
    week, _ = project_report(followup, Period(now - timedelta(days=7), None))
    assert week["orders"]["count"] < report["orders"]["count"]
    _check_overview(browser, week)

    # two custom days (inclusive)
    first, last = (T0 + timedelta(days=1)).date(), (T0 + timedelta(days=2)).date()
    _pick(browser, "custom", first.isoformat(), last.isoformat())
    since = datetime.combine(first, datetime.min.time(), T0.tzinfo)
    days, _ = project_report(followup, Period(since, since + timedelta(days=2)))
    assert 0 < days["orders"]["count"] < report["orders"]["count"]
    _check_overview(browser, days)

    # back to all time, then to the cart campaign's page
    _pick(browser, "all")
    everything, _ = project_report(followup, Period())
    _check_overview(browser, everything)
    _click_to(
        browser, '[data-campaign="cart"] a.campaign-link', "/dashboard/campaigns/cart", "range=all"
    )
    cart = next(c for c in everything["campaigns"] if c["campaign"] == "cart")
    assert _figure(browser, "journeys") == count(cart["journeys"])
    assert _figure(browser, "held-out") == count(cart["held_out"])
    assert _figure(browser, "converted") == count(cart["converted"])
    assert _figure(browser, "attributed-revenue") == money(cart["attributed_revenue"])
    steps = browser.find_elements(By.CSS_SELECTOR, "#funnel-table tbody tr")
    assert [s.get_attribute("data-step") for s in steps] == [s["step"] for s in cart["steps"]]
    for row, step in zip(steps, cart["steps"], strict=True):
        assert _figure(browser, "reached", row) == count(step["reached"])
        assert _figure(browser, "sent", row) == count(step["sent"])
    lift = cart["holdout"]["lift"]
    assert _figure(browser, "lift-absolute") == points(lift["absolute"])
    assert _figure(browser, "lift-lower") == points(lift["ci95"][0])
    assert _figure(browser, "lift-upper") == points(lift["ci95"][1])
    assert _figure(browser, "lift-significant") == ("yes" if lift["significant"] else "no")
    control = browser.find_element(By.CSS_SELECTOR, '#lift [data-group="control"]')
    assert _figure(browser, "rate", control) == percent(cart["holdout"]["control"]["rate"])
    assert browser.find_elements(By.CSS_SELECTOR, "#lift svg.interval-chart")
    decided = browser.find_elements(By.CSS_SELECTOR, "#decisions-table tbody tr")
    assert 0 < len(decided) <= 50
    _shot(browser, tmp_path, "campaign", keep=True)

    # the promo's A/B split
    browser.get(f"{url}/dashboard/campaigns/promo?range=all")
    promo = next(c for c in everything["campaigns"] if c["campaign"] == "promo")
    for variant in promo["variants"]["0"]:
        row = browser.find_element(By.CSS_SELECTOR, f'[data-variant="{variant["variant"]}"]')
        assert _figure(browser, "journeys", row) == count(variant["journeys"])
        assert _figure(browser, "rate", row) == percent(variant["rate"])

    # a customer from the search box: profile and the decisions about them
    browser.find_element(By.NAME, "ref").send_keys("u03@example.com")
    _click_to(browser, "#customer-search button", "/dashboard/customers/u03@example.com")
    assert _figure(browser, "email") == "u03@example.com"
    assert _figure(browser, "user-id") == "u03"
    timeline = browser.find_elements(By.CSS_SELECTOR, "#decisions-timeline li")
    assert timeline, browser.page_source
    assert any("entered" in item.text for item in timeline)
    _shot(browser, tmp_path, "customer")

    # the outbox's health
    _click_to(browser, "#nav-outbox", "/dashboard/outbox")
    with followup.engine.connect() as conn:
        delivered = conn.scalar(
            sa.select(sa.func.count()).select_from(outbox).where(outbox.c.status == "delivered")
        )
    assert _figure(browser, "delivered") == count(delivered)
    assert _figure(browser, "unknown") == "0"
    _shot(browser, tmp_path, "outbox")

    # logging out leads back to the login, and the pages stay closed
    _click_to(browser, "#logout button", "/dashboard/login")
    browser.get(f"{url}/dashboard/outbox")
    assert _path(browser) == "/dashboard/login"
