"""``followup preview TEMPLATE --customer ID``: a template as that customer would get it."""

from __future__ import annotations

from typing import Annotated

import typer

from engine.cli.context import ConfigOption, console, fail, open_engine


def preview(
    ctx: typer.Context,
    template: Annotated[str, typer.Argument(help="A template in the config's templates folder.")],
    customer: Annotated[
        str, typer.Option(help="Customer id, userId, email, phone or anonymousId.")
    ],
    subject: Annotated[str, typer.Option(help="A subject template to render too.")] = "",
    text: Annotated[
        bool, typer.Option("--text", help="Print the text part, not the HTML.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Render a template with a customer's unified profile (``event`` is empty; the
    unsubscribe link is a stand-in that unsubscribes no one)."""
    from engine.confirm_links import PLACEHOLDER as CONFIRM_PLACEHOLDER
    from engine.journeys.context import names
    from engine.rendering import render_email, template_problem
    from engine.unsubscribe import PATH as UNSUBSCRIBE_PATH

    with open_engine(ctx) as followup:
        profile = followup.profile(customer, recent=0)
        if profile is None:
            raise fail(f"no customer is known as {customer!r}")
        folder = followup.project.path(followup.project.config.templates)
        if not (folder / template).is_file():
            raise fail(f"{folder / template}: no such template")
        scope = names(profile.id, profile.state, None, followup.clock())
        scope["confirm_url"] = f"{CONFIRM_PLACEHOLDER}{profile.id}"  # a double opt-in's link
        # the footer's link as a sent email has it, on the project's public address, but no
        # working token: a click in a preview must not unsubscribe the customer
        base_url = followup.project.config.server.base_url
        scope["unsubscribe_url"] = f"{base_url}{UNSUBSCRIBE_PATH}preview-{profile.id}"
        try:
            email = render_email(folder, template, subject, scope)
        except Exception as exc:
            raise fail(template_problem(exc, folder, template)) from exc
    if subject:
        console.out(f"Subject: {email.subject}\n")
    console.out(email.text if text else email.html, highlight=False)
