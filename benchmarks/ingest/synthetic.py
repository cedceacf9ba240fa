"""A deterministic synthetic Segment workload: shoppers on one or more devices browse, add to
cart, sign in, order and subscribe.

Sessions run concurrently (their events interleave) on a clock that only moves forward; a few
events carry a skewed or late timestamp, so the file is *mostly* in event-time order, as real
collectors deliver it. A shopper browses anonymously on each device until signing in there, so
signing in on a second device merges two profiles. Every messageId is unique (no resends), so the
floor's plain bulk insert accepts the same file.
"""

from __future__ import annotations

import argparse
import random
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

SEED = 20240501
START = datetime(2024, 3, 1, tzinfo=UTC)
SPAN = timedelta(days=30)  # the clock covers about this much for any event count
CONCURRENT_SESSIONS = 64
PRODUCTS = 5_000
CATEGORIES = ("shoes", "shirts", "bags", "hats", "jackets", "socks", "watches", "belts")
TIMEZONES = ("America/New_York", "America/Los_Angeles", "Europe/London", "Europe/Berlin")
USER_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
)
FIRST_NAMES = ("Ann", "Bo", "Chen", "Dana", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo")
LAST_NAMES = ("Smith", "Garcia", "Nguyen", "Okafor", "Rossi", "Schmidt", "Tanaka", "Wright")


@dataclass
class _Shopper:
    """One person: a userId, an email, devices (anonymousIds) and where they are signed in."""

    user_id: str
    email: str
    phone: str | None
    devices: list[str]
    timezone: str
    signed_in: set[int] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class SyntheticSpec:
    """What to generate: ``events`` messages over a population of ``customers`` shoppers."""

    events: int
    customers: int
    seed: int = SEED

    @property
    def file_name(self) -> str:
        """A name that identifies the content, so a generated file is reused."""
        return f"synthetic-{self.events}e-{self.customers}c-seed{self.seed}.jsonl"


class _Generator:
    """Sessions of messages (without time and messageId), built one session at a time."""

    def __init__(self, spec: SyntheticSpec) -> None:
        self.rng = random.Random(spec.seed)
        self.spec = spec
        self.shoppers: dict[int, _Shopper] = {}
        self.loyal = max(1, spec.customers // 20)  # the 5% who come back most
        self.orders = 0

    def shopper(self, index: int) -> _Shopper:
        found = self.shoppers.get(index)
        if found is None:
            rng = self.rng
            devices = 1 + (rng.random() < 0.4) + (rng.random() < 0.1)
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            email = f"{first}.{last}{index}@example.com"
            found = _Shopper(
                user_id=f"u{index:07d}",
                email=email if rng.random() < 0.9 else email.upper(),
                phone=f"+1 212 {rng.randrange(200, 1000)} {rng.randrange(10_000):04d}"
                if rng.random() < 0.3
                else None,
                devices=[
                    str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(devices)
                ],
                timezone=rng.choice(TIMEZONES),
            )
            self.shoppers[index] = found
        return found

    def product(self) -> dict[str, Any]:
        rng = self.rng
        number = int(PRODUCTS * rng.random() ** 3)  # skewed: a fifth of views go to 50 products
        return {
            "product_id": f"p{number:05d}",
            "sku": f"SKU-{number:05d}",
            "name": f"Product {number}",
            "category": CATEGORIES[number % len(CATEGORIES)],
            "price": round(5 + (number * 7919 % 19_500) / 100, 2),
        }

    def session(self) -> list[dict[str, Any]]:
        """One visit: maybe a page view and a sign-in, product views and adds, maybe an order."""
        rng = self.rng
        if rng.random() < 0.3:
            index = rng.randrange(self.loyal)
        else:
            index = rng.randrange(self.spec.customers)
        shopper = self.shopper(index)
        device = rng.randrange(len(shopper.devices))
        ids: dict[str, Any] = {"anonymousId": shopper.devices[device]}
        context = {
            "ip": f"198.51.100.{index % 250 + 1}",
            "userAgent": USER_AGENTS[(index + device) % len(USER_AGENTS)],
            "locale": "en-US",
            "timezone": shopper.timezone,
            "library": {"name": "analytics.js", "version": "5.2.0"},
        }
        messages: list[dict[str, Any]] = []

        def sign_in() -> None:
            ids["userId"] = shopper.user_id
            shopper.signed_in.add(device)
            traits: dict[str, Any] = {
                "email": shopper.email,
                "firstName": shopper.email.split(".")[0].title(),
            }
            if shopper.phone is not None:
                traits["phone"] = shopper.phone
            messages.append({"type": "identify", **ids, "traits": traits, "context": context})

        if device in shopper.signed_in:
            ids["userId"] = shopper.user_id
        elif rng.random() < 0.2:
            sign_in()
        if rng.random() < 0.4:
            path = rng.choice(("/", "/new", "/sale", f"/c/{rng.choice(CATEGORIES)}"))
            messages.append(
                {
                    "type": "page",
                    **ids,
                    "name": "Home" if path == "/" else "Listing",
                    "properties": {"path": path, "url": f"https://shop.example.com{path}"},
                    "context": context,
                }
            )
        cart: list[dict[str, Any]] = []
        for _ in range(1 + min(int(rng.expovariate(1 / 3.5)), 40)):
            product = self.product()
            track = {"type": "track", **ids, "context": context}
            messages.append({**track, "event": "Product Viewed", "properties": product})
            if rng.random() < 0.2:
                added = {**product, "quantity": 1 + (rng.random() < 0.15)}
                cart.append(added)
                messages.append({**track, "event": "Product Added", "properties": added})
        if cart and rng.random() < 0.3:
            if "userId" not in ids:
                sign_in()
            self.orders += 1
            revenue = round(sum(p["price"] * p["quantity"] for p in cart), 2)
            products = [{k: p[k] for k in ("product_id", "sku", "price", "quantity")} for p in cart]
            messages.append(
                {
                    "type": "track",
                    **ids,
                    "event": "Order Completed",
                    "properties": {
                        "order_id": f"o{self.orders:08d}",
                        "revenue": revenue,
                        "currency": "USD",
                        "products": products,
                    },
                    "context": context,
                }
            )
        if "userId" in ids and rng.random() < 0.04:
            messages.append(
                {
                    "type": "track",
                    **ids,
                    "event": "Subscribed",
                    "properties": {"channel": "email"},
                    "context": context,
                }
            )
        return messages


def _timestamp(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _messages(generator: _Generator) -> Iterator[dict[str, Any]]:
    """The workload's messages, in delivery order."""
    spec = generator.spec
    rng = generator.rng
    mean_gap = SPAN.total_seconds() / spec.events
    clock = 0.0
    active = [generator.session() for _ in range(CONCURRENT_SESSIONS)]
    for _ in range(spec.events):
        slot = rng.randrange(CONCURRENT_SESSIONS)
        while not active[slot]:
            active[slot] = generator.session()
        message = active[slot].pop(0)
        clock += rng.expovariate(1 / mean_gap)
        skew = rng.random()
        if skew < 0.005:  # delivered late (an app coming back online)
            at = clock - rng.uniform(60, 3600)
        elif skew < 0.03:  # a client clock a little behind
            at = clock - rng.uniform(0, 30)
        else:
            at = clock
        message["timestamp"] = _timestamp(START + timedelta(seconds=max(at, 0.0)))
        message["messageId"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        yield message


def _kind(message: dict[str, Any]) -> str:
    return str(message.get("event") or message["type"])


@dataclass(frozen=True, slots=True)
class SyntheticFile:
    """A generated workload: the file, its messages by event name (``identify``/``page`` for
    those calls) and how many of the population's shoppers appear in it."""

    path: Path
    mix: dict[str, int]
    shoppers_seen: int


def ensure_synthetic(
    spec: SyntheticSpec,
    work_dir: Path,
    generator_type: Callable[[SyntheticSpec], _Generator] | None = None,
    prefix: str = "",
) -> SyntheticFile:
    """The workload's JSONL file in ``work_dir``, generated unless already there (by
    ``generator_type``, default this module's generator; ``prefix`` names its variant)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / f"{prefix}{spec.file_name}"
    stats_path = path.with_suffix(".stats.json")
    if path.exists() and stats_path.exists():
        stats = orjson.loads(stats_path.read_bytes())
        return SyntheticFile(path, stats["mix"], stats["shoppers_seen"])
    generator = (generator_type or _Generator)(spec)
    mix: Counter[str] = Counter()
    partial = path.with_suffix(".partial")
    with partial.open("wb") as handle:
        for message in _messages(generator):
            mix[_kind(message)] += 1
            handle.write(orjson.dumps(message) + b"\n")
    partial.replace(path)
    result = SyntheticFile(path, dict(mix.most_common()), len(generator.shoppers))
    stats_path.write_bytes(orjson.dumps({"mix": result.mix, "shoppers_seen": result.shoppers_seen}))
    return result


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.ingest.synthetic OUT_DIR --events N --customers N``: generate the
    file (unless there) and print its path, mix and shoppers seen as JSON."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    found = ensure_synthetic(SyntheticSpec(args.events, args.customers, args.seed), args.out_dir)
    report = {"path": str(found.path), "mix": found.mix, "shoppers_seen": found.shoppers_seen}
    sys.stdout.write(orjson.dumps(report).decode() + "\n")


if __name__ == "__main__":
    main()
