"""The late-events workload: ``customers`` shoppers with ``per_customer`` events each, their
timestamps spread uniformly over a month, written twice with the same messages: in time order,
and shuffled (each customer's events arrive out of order, as from clients that buffer, retry or
come back online).

Every event carries the shopper's userId and one device's anonymousId; the first in time of each
shopper's events is an ``identify`` with an email. So there are no merges: what the shuffled
order costs beyond the sorted one is late events alone. Every messageId is a unique UUID, so the
floor's plain insert accepts both files.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

SEED = 20241114
START = datetime(2024, 3, 1, tzinfo=UTC)
SPAN_MS = 30 * 24 * 3600 * 1000  # a month
ORDERS = ("sorted", "shuffled")
_PRODUCTS = 2_000
_CATEGORIES = ("shoes", "shirts", "bags", "hats", "jackets", "socks")
_AGENT = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/605.1.15"


@dataclass(frozen=True, slots=True)
class LateSpec:
    """What to generate: ``customers`` shoppers with ``per_customer`` events each."""

    customers: int
    per_customer: int
    seed: int = SEED

    def file_name(self, order: str) -> str:
        """A name that identifies the content, so generated files are reused."""
        return f"late-{self.customers}c-{self.per_customer}e-seed{self.seed}-{order}.jsonl"


def _product(rng: random.Random) -> dict[str, Any]:
    number = int(_PRODUCTS * rng.random() ** 2)
    return {
        "product_id": f"p{number:05d}",
        "name": f"Product {number}",
        "category": _CATEGORIES[number % len(_CATEGORIES)],
        "price": round(5 + (number * 7919 % 19_500) / 100, 2),
    }


def _body(rng: random.Random, index: int) -> dict[str, Any]:
    """One shopper event past the first: views, adds, pages, now and then an order."""
    roll = rng.random()
    if roll < 0.55:
        return {"type": "track", "event": "Product Viewed", "properties": _product(rng)}
    if roll < 0.75:
        return {
            "type": "track",
            "event": "Product Added",
            "properties": {**_product(rng), "quantity": 1 + (rng.random() < 0.15)},
        }
    if roll < 0.92:
        path = rng.choice(("/", "/new", "/sale", f"/c/{rng.choice(_CATEGORIES)}"))
        return {"type": "page", "name": "Listing", "properties": {"path": path}}
    product = _product(rng)
    return {
        "type": "track",
        "event": "Order Completed",
        "properties": {
            "order_id": f"o{index:06d}-{rng.getrandbits(32):08x}",
            "revenue": product["price"],
            "currency": "USD",
            "products": [{**product, "quantity": 1}],
        },
    }


def _messages(spec: LateSpec) -> list[dict[str, Any]]:
    """Every message with its timestamp, in no particular order."""
    rng = random.Random(spec.seed)
    messages: list[dict[str, Any]] = []
    for index in range(spec.customers):
        user_id = f"u{index:06d}"
        device = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        context = {
            "ip": f"198.51.100.{index % 250 + 1}",
            "userAgent": _AGENT,
            "library": {"name": "analytics.js", "version": "5.2.0"},
        }
        times = sorted(rng.randrange(SPAN_MS) for _ in range(spec.per_customer))
        for number, at in enumerate(times):
            if number == 0:
                body: dict[str, Any] = {
                    "type": "identify",
                    "traits": {"email": f"shopper{index}@example.com", "firstName": "Ann"},
                }
            else:
                body = _body(rng, index)
            stamp = START + timedelta(milliseconds=at)
            messages.append(
                {
                    **body,
                    "userId": user_id,
                    "anonymousId": device,
                    "messageId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    "context": context,
                }
            )
    return messages


def ensure_late(spec: LateSpec, work_dir: Path) -> dict[str, Path]:
    """The workload's two files (``sorted``, ``shuffled``) in ``work_dir``, generated unless
    already there: the same messages, in time order and in a seeded random order."""
    work_dir.mkdir(parents=True, exist_ok=True)
    paths = {order: work_dir / spec.file_name(order) for order in ORDERS}
    if all(path.exists() for path in paths.values()):
        return paths
    messages = _messages(spec)
    messages.sort(key=lambda m: (m["timestamp"], m["messageId"]))
    orders = {
        "sorted": messages,
        "shuffled": random.Random(spec.seed + 1).sample(messages, k=len(messages)),
    }
    for order, path in paths.items():
        partial = path.with_suffix(".partial")
        partial.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in orders[order]))
        partial.replace(path)
    return paths
