"""``/dashboard``: the read-only pages behind a login with a dashboard key.

Overview (orders, revenue and campaigns over a period), one page per campaign (counts, funnel,
lift, variants, latest decisions), one per customer (the unified profile and why they did or did
not get each message) and the outbox's health. Every figure of the report comes from
:func:`engine.reports.project.project_report`, as ``followup report --format json`` prints it.
Pages are read and rendered in a worker thread; a request without a valid session is sent to the
login page (``303``, :mod:`engine.service.dashboard.login`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from engine.campaigns.loader import load_campaigns
from engine.drive.explanation import explain_customer
from engine.drive.status_model import status_report
from engine.durable.explain_text import current_campaigns, decision_text, journey_text, why_nothing
from engine.durable.sql_reads import SqlExplainReads
from engine.durable.sql_service import SqlServiceReads
from engine.durable.sql_status import SqlStatusReads
from engine.providers import provider_rates
from engine.reports.charts import Series, bar_chart, finite, line_chart
from engine.reports.html import campaign_figures
from engine.reports.project import project_campaigns, project_report
from engine.service.context import ServiceContext
from engine.service.dashboard.figures import (
    RECENT_DECISIONS,
    PeriodChoice,
    daily_entries,
    outbox_health,
    pick_period,
)
from engine.service.dashboard.render import render, sparkline
from engine.service.dashboard.session import PATH
from engine.service.dashboard.web import layout, page, redirect, service, session, to_login

router = APIRouter(prefix=PATH, include_in_schema=False)
SOURCE_NAMES = {"web": "web", "pos": "in-store (POS)", "call": "call center"}


# -- overview ---------------------------------------------------------------------------------


def _lift_cell(campaign: Mapping[str, Any]) -> Mapping[str, Any] | None:
    holdout = campaign["holdout"]
    if (
        holdout is None
        or not holdout["treatment"]["journeys"]
        or not holdout["control"]["journeys"]
    ):
        return None
    lift: Mapping[str, Any] = holdout["lift"]
    return lift


def _overview(ctx: ServiceContext, choice: PeriodChoice) -> str:
    followup = ctx.followup
    report, timeline = project_report(followup, choice.period)
    with followup.engine.connect() as conn:
        entries = daily_entries(SqlServiceReads(conn), choice.period, followup.clock())
    names = sorted(timeline.attributed_by_channel)
    by_channel = line_chart(
        "Attributed revenue per day, by channel",
        timeline.days,
        [Series(n, tuple(finite(v) for v in timeline.attributed_by_channel[n])) for n in names],
        "money",
        "attributed revenue",
        plot_height=140.0,
    )
    sources = sorted(report["orders"]["by_source"].items())
    sources_chart = bar_chart(
        "Revenue and attributed revenue by order source",
        [SOURCE_NAMES.get(name, name) for name, _ in sources],
        [
            Series("revenue", tuple(finite(s["revenue"]) for _, s in sources)),
            Series("attributed", tuple(finite(s["attributed_revenue"]) for _, s in sources)),
        ],
        "money",
    )
    first, last = (entries.days[0], entries.days[-1]) if entries.days else ("", "")
    rows = [
        {
            "data": c,
            "lift": _lift_cell(c),
            "trend": sparkline(
                f"Entries per day of {c['campaign']}, {first} to {last}: "
                f"{sum(entries.of(c['campaign']))} in all",
                entries.of(c["campaign"]),
            ),
        }
        for c in report["campaigns"]
    ]
    return render(
        "overview.html",
        **layout(
            choice,
            page="overview",
            orders=report["orders"],
            sources=sources,
            source_names=SOURCE_NAMES,
            model=str(report["model"]).replace("_", " "),
            by_channel=by_channel,
            sources_chart=sources_chart,
            campaigns=rows,
        ),
    )


@router.get("")
async def overview(request: Request) -> Response:
    """Orders, revenue and the campaigns over the period picked."""
    if await session(request) is None:
        return to_login(request)
    ctx = service(request)
    choice = pick_period(request.query_params, ctx.followup.clock())
    return page(await run_in_threadpool(_overview, ctx, choice))


# -- one campaign -----------------------------------------------------------------------------


def _campaign_page(ctx: ServiceContext, campaign_id: str, choice: PeriodChoice) -> str | None:
    followup = ctx.followup
    campaigns = project_campaigns(followup.project)
    with followup.engine.connect() as conn:
        reads = SqlServiceReads(conn)
        if campaign_id not in campaigns and not reads.has_decisions(campaign_id):
            return None
        decisions = reads.recent_decisions(campaign_id, RECENT_DECISIONS)
    report, _timeline = project_report(
        followup, choice.period, only=campaign_id, campaigns=campaigns
    )
    campaign = report["campaigns"][0]
    figures = campaign_figures(campaign)
    lift = figures.lift
    return render(
        "campaign.html",
        **layout(
            choice,
            c=campaign,
            model=str(report["model"]).replace("_", " "),
            funnel=figures.funnel,
            reasons=figures.reasons,
            lift_chart=lift.chart if lift is not None else None,
            sentence=lift.sentence if lift is not None else None,
            splits=[(split.step, split.chart, split.variants) for split in figures.splits],
            decisions=decisions,
            quote=quote,
        ),
    )


@router.get("/campaigns/{campaign_id}")
async def campaign_page(request: Request, campaign_id: str) -> Response:
    """One campaign over the period picked, and its latest decisions."""
    if await session(request) is None:
        return to_login(request)
    ctx = service(request)
    choice = pick_period(request.query_params, ctx.followup.clock())
    html = await run_in_threadpool(_campaign_page, ctx, campaign_id, choice)
    if html is None:
        return _not_found(choice, f"No campaign {campaign_id!r}.")
    return page(html)


# -- one customer -----------------------------------------------------------------------------


def _customer_page(ctx: ServiceContext, ref: str, choice: PeriodChoice) -> str | None:
    followup = ctx.followup
    profile = followup.profile(ref, recent=10)
    if profile is None:
        return None
    project = followup.project
    loaded = load_campaigns([project.path(project.config.campaigns)])
    current = current_campaigns(loaded, project.config.policies)
    with followup.engine.connect() as conn:
        explanation = explain_customer(SqlExplainReads(conn), profile.id)
    files = {cid: found.campaign for cid, found in loaded.campaigns.items()}
    hints = [] if explanation.decisions else why_nothing(explanation, files, None)
    return render(
        "customer.html",
        **layout(
            choice,
            ref=ref,
            profile=profile,
            state=profile.state,
            explanation=explanation,
            lines=[(d, decision_text(d, profile.id)) for d in explanation.decisions],
            journeys=[(j, journey_text(j, current)) for j in explanation.journeys],
            hints=hints,
            quote=quote,
        ),
    )


@router.get("/customers")
async def find_customer(request: Request) -> Response:
    """The search box: go to the customer page of what was typed."""
    if await session(request) is None:
        return to_login(request)
    ref = request.query_params.get("ref", "").strip()
    if not ref:
        return redirect(PATH)
    query = f"?{request.url.query}" if request.url.query else ""
    return redirect(f"{PATH}/customers/{quote(ref, safe='@')}{query}")


@router.get("/customers/{ref:path}")
async def customer_page(request: Request, ref: str) -> Response:
    """A customer by id, userId, email, phone or anonymousId: profile and decisions."""
    if await session(request) is None:
        return to_login(request)
    ctx = service(request)
    choice = pick_period(request.query_params, ctx.followup.clock())
    html = await run_in_threadpool(_customer_page, ctx, ref, choice)
    if html is None:
        message = f"No customer is known as {ref!r} (id, userId, email, phone or anonymousId)."
        return _not_found(choice, message)
    return page(html)


# -- outbox -----------------------------------------------------------------------------------


def _outbox_page(ctx: ServiceContext, choice: PeriodChoice) -> str:
    followup = ctx.followup
    project = followup.project
    loaded = load_campaigns([project.path(project.config.campaigns)])
    current = current_campaigns(loaded, project.config.policies)
    rates = provider_rates(project.config.providers)
    with followup.engine.connect() as conn:
        health = outbox_health(SqlServiceReads(conn))
        status = status_report(SqlStatusReads(conn), current, followup.clock(), rates=rates)
    return render(
        "outbox.html", **layout(choice, page="outbox", health=health, status=status, quote=quote)
    )


@router.get("/outbox")
async def outbox_page(request: Request) -> Response:
    """The outbox by status: pending, retrying, sending, failed and skipped by reason, unknown,
    delivered; the rows a person should check."""
    if await session(request) is None:
        return to_login(request)
    ctx = service(request)
    choice = pick_period(request.query_params, ctx.followup.clock())
    return page(await run_in_threadpool(_outbox_page, ctx, choice))


def _not_found(choice: PeriodChoice, message: str) -> HTMLResponse:
    return page(render("not_found.html", **layout(choice, message=message)), status=404)
