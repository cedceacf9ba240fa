"""The synthetic shop stream of the campaign benchmark: the ingest benchmark's generator, with a
``Checkout Started`` step added.

:mod:`benchmarks.ingest.synthetic` makes shoppers who view, add to cart, sign in and order. Here
each order is preceded by a ``Checkout Started`` that lists the cart (the Segment e-commerce
snapshot the cart reducer replaces the cart with), and 15% of the carts that are not ordered
reach checkout too. The extra draws come from a second seeded generator, so the sessions
themselves are those of the ingest workload.

    python -m benchmarks.campaigns.workload OUT_DIR --events N --customers N
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Any

import orjson

from benchmarks.ingest.synthetic import (
    SEED,
    SyntheticFile,
    SyntheticSpec,
    _Generator,
    ensure_synthetic,
)

ABANDONED_CHECKOUT = 0.15  # share of carts not ordered that still reach checkout


class _CheckoutGenerator(_Generator):
    """Sessions of the ingest generator with a ``Checkout Started`` before each order."""

    def __init__(self, spec: SyntheticSpec) -> None:
        super().__init__(spec)
        self.extra = random.Random(spec.seed ^ 0x5EED)

    def session(self) -> list[dict[str, Any]]:
        messages = super().session()
        cart: dict[str, dict[str, Any]] = {}
        out: list[dict[str, Any]] = []
        for message in messages:
            name = message.get("event")
            if name == "Product Added":
                cart[message["properties"]["product_id"]] = message["properties"]
            if name == "Order Completed":
                out.append(_checkout(message, list(cart.values())))
            out.append(message)
        ordered = any(m.get("event") == "Order Completed" for m in messages)
        if cart and not ordered and self.extra.random() < ABANDONED_CHECKOUT:
            out.append(_checkout(messages[-1], list(cart.values())))
        return out


def _checkout(like: dict[str, Any], cart: list[dict[str, Any]]) -> dict[str, Any]:
    """A ``Checkout Started`` from the identity and context of ``like``, listing ``cart``."""
    ids: dict[str, Any] = {k: like[k] for k in ("userId", "anonymousId") if k in like}
    products = [{k: p[k] for k in ("product_id", "sku", "name", "price", "quantity")} for p in cart]
    value = round(sum(p["price"] * p["quantity"] for p in products), 2)
    return {
        "type": "track",
        **ids,
        "event": "Checkout Started",
        "properties": {"value": value, "currency": "USD", "products": products},
        "context": like["context"],
    }


Workload = SyntheticFile  # the generated stream: file, messages by event name, shoppers seen


def ensure_workload(spec: SyntheticSpec, work_dir: Path) -> Workload:
    """The stream's JSONL file in ``work_dir``, generated unless already there."""
    return ensure_synthetic(spec, work_dir, _CheckoutGenerator, "campaigns-")


def main(argv: list[str] | None = None) -> None:
    """Generate the stream (unless there); print its path, mix and shoppers seen as JSON."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    found = ensure_workload(SyntheticSpec(args.events, args.customers, args.seed), args.out_dir)
    report = {"path": str(found.path), "mix": found.mix, "shoppers_seen": found.shoppers_seen}
    sys.stdout.write(orjson.dumps(report).decode() + "\n")


if __name__ == "__main__":
    main()
