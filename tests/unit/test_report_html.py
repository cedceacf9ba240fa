"""The HTML report: one self-contained, deterministic page with the JSON report's figures."""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any

import pytest

from engine.reports.charts import count, money, nice_ticks, percent, points
from engine.reports.html import Timeline, render_html

DAYS = tuple(f"2024-05-{day:02d}" for day in range(1, 11))
_VOID = {"meta", "link", "br", "hr", "img", "input", "col", "area", "base", "source", "wbr"}


def _holdout(
    treatment: tuple[int, int, float, float],
    control: tuple[int, int, float, float],
    ci95: tuple[float, float],
    significant: bool,
) -> dict[str, Any]:
    (t_journeys, t_converted, t_rate, t_revenue) = treatment
    (c_journeys, c_converted, c_rate, c_revenue) = control
    absolute = t_rate - c_rate
    return {
        "treatment": {
            "journeys": t_journeys,
            "converted": t_converted,
            "rate": t_rate,
            "revenue": t_revenue,
        },
        "control": {
            "journeys": c_journeys,
            "converted": c_converted,
            "rate": c_rate,
            "revenue": c_revenue,
        },
        "lift": {
            "absolute": absolute,
            "relative": absolute / c_rate if c_rate else None,
            "ci95": list(ci95),
            "significant": significant,
        },
        "incremental": {
            "conversions": absolute * t_journeys,
            "revenue": (t_revenue / t_journeys - c_revenue / c_journeys) * t_journeys,
        },
    }


def sample_report() -> dict[str, Any]:
    """A report as REPORTS.md shapes it: two campaigns, two channels, web and POS orders."""
    return {
        "period": {"since": "2024-05-01T00:00:00Z", "until": "2024-05-11T00:00:00Z"},
        "model": "last_touch",
        "orders": {
            "count": 1480,
            "revenue": 98765.43,
            "attributed_count": 212.5,
            "attributed_revenue": 15432.1,
            "by_source": {
                "web": {
                    "count": 1100,
                    "revenue": 70123.45,
                    "attributed_count": 180.5,
                    "attributed_revenue": 13020.1,
                },
                "pos": {
                    "count": 380,
                    "revenue": 28641.98,
                    "attributed_count": 32.0,
                    "attributed_revenue": 2412.0,
                },
            },
        },
        "channels": {
            "email": {"touches": 2400, "attributed_count": 170.5, "attributed_revenue": 12345.68},
            "ads": {"touches": 900, "attributed_count": 42.0, "attributed_revenue": 3086.42},
        },
        "campaigns": [
            {
                "campaign": "abandoned-cart",
                "journeys": 1000,
                "held_out": 100,
                "touches": {"email": 1700, "ads": 900},
                "skipped": {"holdout": 200, "no_consent": 37},
                "exited": 140,
                "converted": 112,
                "conversion_value": 9876.5,
                "attributed_count": 150.25,
                "attributed_revenue": 12345.678,
                "holdout": _holdout(
                    (900, 108, 0.12, 8640.0), (100, 4, 0.04, 320.0), (0.0312, 0.1151), True
                ),
                "variants": {
                    "3": [
                        {
                            "variant": "A",
                            "journeys": 450,
                            "converted": 50,
                            "rate": 50 / 450,
                            "ci95": [0.0853, 0.1435],
                            "revenue_per_journey": 9.1,
                        },
                        {
                            "variant": "B",
                            "journeys": 450,
                            "converted": 58,
                            "rate": 58 / 450,
                            "ci95": [0.1008, 0.1633],
                            "revenue_per_journey": 10.1,
                        },
                    ]
                },
                "steps": [
                    {"step": "0", "reached": 1000, "sent": 0, "skipped": {}, "exited": 60},
                    {
                        "step": "1",
                        "reached": 940,
                        "sent": 820,
                        "skipped": {"holdout": 94, "no_consent": 26},
                        "exited": 50,
                    },
                    {"step": "2", "reached": 890, "sent": 880, "skipped": {}, "exited": 30},
                    {"step": "3", "reached": 860, "sent": 0, "skipped": {}, "exited": 0},
                    {
                        "step": "3.A.0",
                        "reached": 430,
                        "sent": 400,
                        "skipped": {"holdout": 30},
                        "exited": 0,
                    },
                ],
            },
            {
                "campaign": "winback",
                "journeys": 250,
                "held_out": 50,
                "touches": {"email": 700},
                "skipped": {"holdout": 50, "frequency_cap": 12},
                "exited": 20,
                "converted": 28,
                "conversion_value": 2100.0,
                "attributed_count": 20.25,
                "attributed_revenue": 3086.42,
                "holdout": _holdout(
                    (200, 24, 0.12, 1800.0), (50, 4, 0.08, 300.0), (-0.0612, 0.1088), False
                ),
                "variants": {},
                "steps": [
                    {
                        "step": "0",
                        "reached": 250,
                        "sent": 188,
                        "skipped": {"holdout": 50, "frequency_cap": 12},
                        "exited": 20,
                    }
                ],
            },
        ],
    }


def sample_timeline() -> Timeline:
    """Ten days of figures, one channel with a quiet day and one source with a zero day."""
    return Timeline(
        days=DAYS,
        attributed_by_channel={
            "email": (
                1200.5,
                980.0,
                1430.25,
                0.0,
                1510.0,
                1320.75,
                1105.0,
                1640.18,
                1500.0,
                1659.0,
            ),
            "ads": (210.0, 340.5, 280.0, 300.0, 260.42, 310.0, 330.0, 350.0, 305.5, 400.0),
        },
        revenue_by_source={
            "web": (
                7012.3,
                6900.0,
                7400.15,
                6500.0,
                7100.0,
                7300.0,
                6950.0,
                7050.0,
                7011.0,
                6900.0,
            ),
            "pos": (2864.2, 2900.0, 0.0, 3000.0, 2950.0, 2800.0, 3100.0, 2900.0, 3027.78, 3100.0),
        },
    )


def empty_report() -> dict[str, Any]:
    """A report over a period with nothing in it."""
    zero = {"count": 0, "revenue": 0.0, "attributed_count": 0.0, "attributed_revenue": 0.0}
    return {
        "period": {"since": None, "until": None},
        "model": "linear",
        "orders": {**zero, "by_source": {}},
        "channels": {},
        "campaigns": [],
    }


class _Structure(HTMLParser):
    """Walks a page: every end tag closes the element opened last."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.seen: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append(tag)
        self.ids.extend(value for name, value in attrs if name == "id" and value)
        if tag not in _VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()


def _walk(page: str) -> _Structure:
    parser = _Structure()
    parser.feed(page)
    parser.close()
    assert parser.open == []
    return parser


def _svgs(page: str) -> list[ET.Element]:
    return [ET.fromstring(markup) for markup in re.findall(r"<svg\b.*?</svg>", page, re.DOTALL)]


def _section(page: str, anchor: str) -> str:
    start = page.index(f'id="{anchor}"')
    end = page.find('<section class="campaign"', start)
    return page[start : end if end >= 0 else len(page)]


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(sample_report(), sample_timeline(), title="May report")


def test_the_same_report_renders_to_the_same_bytes(page: str) -> None:
    again = render_html(copy.deepcopy(sample_report()), sample_timeline(), title="May report")
    assert again == page


def test_the_page_needs_nothing_from_another_host(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    lowered = page.lower()
    for forbidden in ("http://", "https://", "<script", "@import", "<link", "src="):
        assert forbidden not in lowered
    assert not re.search(r"\b(nan|inf|infinity)\b", lowered)
    assert "@media print" in page and "break-inside: avoid" in page


def test_the_page_parses_and_every_chart_is_well_formed_xml(page: str) -> None:
    structure = _walk(page)
    assert structure.seen[0] == "html"
    svgs = _svgs(page)
    assert len(svgs) == structure.seen.count("svg") == 8  # 3 overall, funnels 2, lifts 2, split 1
    for svg in svgs:
        assert svg.get("role") == "img" and svg.get("aria-label")
        assert svg.find("title") is not None and svg.findtext("title") == svg.get("aria-label")
        for element in svg.iter():
            for name, value in element.attrib.items():
                if name in {"x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "width", "height"}:
                    float(value)


def test_sections_come_in_order_with_a_section_per_campaign(page: str) -> None:
    headings = [
        "Totals",
        "Attributed revenue over time, by channel",
        "Web vs in-store",
        "Channels",
        "Campaign abandoned-cart",
        "Campaign winback",
    ]
    positions = [page.index(f"<h2>{heading}</h2>") for heading in headings]
    assert positions == sorted(positions)
    ids = _walk(page).ids
    assert "campaign-abandoned-cart" in ids and "campaign-winback" in ids
    assert "Period: from 2024-05-01T00:00:00Z until 2024-05-11T00:00:00Z" in page
    assert "Attribution model: last touch" in page


def test_key_figures_appear_as_formatted_in_the_tables(page: str) -> None:
    cart = _section(page, "campaign-abandoned-cart")
    assert '<td class="num">12,345.68</td>' in cart  # attributed revenue
    assert '<td class="num">150.25</td>' in cart  # attributed count, fractional
    assert '<td class="num">9,876.50</td>' in cart
    assert '<td class="num">11.1%</td>' in cart and '<td class="num">12.9%</td>' in cart
    assert "8.5% to 14.3%" in cart  # variant A's Wilson interval
    assert '<td class="num">98,765.43</td>' in page  # all orders' revenue
    assert '<td class="num">212.5</td>' in page
    assert '<td class="num">15.6%</td>' in page  # share of revenue attributed
    assert '<th scope="row">2024-05-08</th>' in page and '<td class="num">1,640.18</td>' in page
    assert '<td class="num">26</td>' in cart  # step 1 skipped for no_consent


def test_the_lift_sentence_says_whether_the_interval_excludes_zero(page: str) -> None:
    cart, winback = _section(page, "campaign-abandoned-cart"), _section(page, "campaign-winback")
    assert (
        "Treatment converted 12.0% vs 4.0% in the control group: +8.0 points "
        "(95% interval +3.1 to +11.5 points), significant: the interval excludes zero."
    ) in cart
    assert (
        "Treatment converted 12.0% vs 8.0% in the control group: +4.0 points "
        "(95% interval -6.1 to +10.9 points), not significant: the interval crosses zero."
    ) in winback
    assert "not significant" not in cart
    assert "No A/B split in this campaign." in winback


def test_lift_whiskers_are_ordered_and_the_axis_includes_zero(page: str) -> None:
    lifts = [svg for svg in _svgs(page) if "interval-chart" in (svg.get("class") or "")]
    assert len(lifts) == 2
    for svg in lifts:
        lower = svg.find(".//line[@class='whisker ci-lower']")
        upper = svg.find(".//line[@class='whisker ci-upper']")
        estimate = svg.find(".//circle[@class='estimate']")
        zero = svg.find(".//line[@class='zero']")
        assert lower is not None and upper is not None and estimate is not None
        assert zero is not None
        assert (
            float(lower.get("x1", "")) < float(estimate.get("cx", "")) < float(upper.get("x1", ""))
        )
    winback_zero = lifts[1].find(".//line[@class='zero']")
    winback_lower = lifts[1].find(".//line[@class='whisker ci-lower']")
    assert winback_zero is not None and winback_lower is not None
    assert float(winback_lower.get("x1", "")) < float(winback_zero.get("x1", ""))


def test_every_channel_gets_a_line_and_the_legend_names_it(page: str) -> None:
    over_time = _svgs(page)[0]
    lines = over_time.findall(".//polyline")
    assert [line.findtext("title") for line in lines] == ["ads", "email"]
    assert len({line.get("stroke") for line in lines}) == 2
    assert all(len((line.get("points") or "").split()) == len(DAYS) for line in lines)
    labels = [text.text for text in over_time.iter("text")]
    assert {"ads", "email", DAYS[0], DAYS[4], DAYS[-1]} <= set(labels)


def test_a_campaign_without_holdout_says_lift_cannot_be_measured() -> None:
    report = sample_report()
    report["campaigns"][1]["holdout"] = None
    page = render_html(report, sample_timeline())
    assert "No holdout group: lift cannot be measured." in _section(page, "campaign-winback")
    assert len([s for s in _svgs(page) if "interval-chart" in (s.get("class") or "")]) == 1


def test_an_empty_report_renders_without_dividing_by_zero() -> None:
    page = render_html(
        empty_report(), Timeline(days=(), attributed_by_channel={}, revenue_by_source={})
    )
    _walk(page)
    for svg in _svgs(page):
        assert svg.findtext("title")
    assert "Period: all time" in page and "No campaigns in this report." in page
    assert not re.search(r"\b(nan|inf|infinity)\b", page.lower())


def test_zero_journeys_a_single_day_and_a_silent_channel_render() -> None:
    report = sample_report()
    campaign = report["campaigns"][1]
    empty_group = {"journeys": 0, "converted": 0, "rate": 0.0, "revenue": 0.0}
    campaign.update(journeys=0, held_out=0, converted=0, steps=[], variants={})
    campaign["holdout"] = {
        "treatment": empty_group,
        "control": empty_group,
        "lift": {"absolute": 0.0, "relative": None, "ci95": [0.0, 0.0], "significant": False},
        "incremental": {"conversions": 0.0, "revenue": 0.0},
    }
    report["campaigns"][0]["variants"]["3"][0].update(journeys=0, converted=0, rate=0.0)
    timeline = Timeline(
        days=("2024-05-01",),
        attributed_by_channel={"email": (0.0,), "sms": (0.0,)},
        revenue_by_source={"web": (12.5,)},
    )
    page = render_html(report, timeline)
    _walk(page)
    assert len(_svgs(page)) >= 6
    assert "group has no journeys yet: lift cannot be measured." in page
    assert not re.search(r"\b(nan|inf|infinity)\b", page.lower())


def test_names_from_the_data_are_escaped_in_tables_and_charts() -> None:
    report = sample_report()
    report["orders"]["by_source"]['<b>"shop"</b>'] = report["orders"]["by_source"].pop("pos")
    page = render_html(report, sample_timeline())
    assert "<b>" not in page and "&lt;b&gt;" in page
    _walk(page)
    _svgs(page)


def test_a_timeline_series_must_cover_every_day() -> None:
    with pytest.raises(ValueError, match="'email' has 2 values for 3 days"):
        Timeline(days=DAYS[:3], attributed_by_channel={"email": (1.0, 2.0)}, revenue_by_source={})


@pytest.mark.parametrize(
    ("value", "formatted"),
    [
        (money(1234567.891), "1,234,567.89"),
        (money(-0.001), "0.00"),
        (money(float("nan")), "0.00"),
        (count(3.0), "3"),
        (count(2.5), "2.5"),
        (count(1234.333), "1,234.33"),
        (percent(0.12345), "12.3%"),
        (points(0.04), "+4.0"),
        (points(-0.0123), "-1.2"),
        (points(0.0), "0.0"),
    ],
)
def test_numbers_are_formatted_with_fixed_decimals(value: str, formatted: str) -> None:
    assert value == formatted


def test_ticks_are_round_and_cover_zero_and_the_data() -> None:
    assert nice_ticks(0.0, 0.0) == (0.0, 0.5, 1.0)
    assert nice_ticks(-0.0612, 0.1088) == (-0.1, -0.05, 0.0, 0.05, 0.1, 0.15)
    assert nice_ticks(0.0, 1659.0) == (0.0, 500.0, 1000.0, 1500.0, 2000.0)
