"""``followup samples build|contacts``: the real sample data sets as Segment events, and
synthetic contacts for the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.cli.context import console, fail
from engine.errors import FollowupError

samples_app = typer.Typer(
    help="The real sample data sets, as Segment events.", no_args_is_help=True
)


@samples_app.command("build")
def build_samples(
    source: Annotated[Path, typer.Option("--from", help="Folder with the shared data sets.")],
    out: Annotated[Path, typer.Option(help="The JSONL file to write.")],
) -> None:
    """Convert the Taobao and CDNOW data sets into Segment JSONL, sorted by time."""
    from engine.sample_data import build_sample

    try:
        summary = build_sample(source, out)
    except FollowupError as exc:
        raise fail(str(exc)) from exc
    console.print(
        f"wrote {summary.events:,} events of {summary.customers:,} customers to {summary.path}"
    )


@samples_app.command("contacts")
def build_sample_contacts(
    sample: Annotated[Path, typer.Option("--from", help="The sample JSONL file.")],
    out: Annotated[Path, typer.Option(help="The JSONL file of identify messages to write.")],
    email_share: Annotated[
        float, typer.Option(help="The share of customers who consent to email (0 to 1).")
    ] = 0.05,
) -> None:
    """Synthetic contacts (example.com addresses, consent for a stable share) for the demo."""
    from engine.sample_contacts import build_contacts

    try:
        summary = build_contacts(sample, out, email_share)
    except FollowupError as exc:
        raise fail(str(exc)) from exc
    console.print(
        f"wrote {summary.customers:,} synthetic contacts ({summary.consented:,} consenting to "
        f"email) to {summary.path}"
    )
