"""Real shopper behaviour as Segment-spec JSONL, for the demo and the benchmarks.

Two public data sets (see ``../shared/data/README.md``) become ``track`` messages:

* Taobao UserBehavior slice (``taobao_userbehavior_sample.csv``): views, adds to cart, wishlist
  adds and purchases of 43 users. The data has no prices: each item gets one from a seeded price
  list (:func:`item_price`, the same on every build), so carts have a value and the demo's
  abandoned-cart campaign acts on the real behaviour; orders carry it as ``revenue``.
* CDNOW (``cdnow_master.txt``): 69,659 purchases of 23,570 customers, day resolution.

messageIds and order ids are derived from the source row, so a rebuild gives identical output and
replaying it twice dedupes. A bad row is an :class:`~engine.errors.InputError` naming file and line.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from engine.errors import InputError

TAOBAO_FILE = "taobao_userbehavior_sample.csv"
CDNOW_FILE = "cdnow_master.txt"
_CDNOW_HEADER = ["customer_id", "date", "number_of_cds", "dollar_value"]
_TAOBAO_EVENTS = {
    "pv": "Product Viewed",
    "cart": "Product Added",
    "fav": "Product Added to Wishlist",
    "buy": "Order Completed",
}
_ISO = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True, slots=True)
class SampleSummary:
    """What :func:`build_sample` wrote: event and distinct-customer counts, events by name."""

    events: int
    customers: int
    path: Path
    by_event: dict[str, int]


def _missing(path: Path) -> InputError:
    return InputError(
        f"{path}: file not found; the sample data is expected in ../shared/data/ "
        "(next to the repository; see ../shared/data/README.md)"
    )


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines of ``path`` with their 1-based line numbers; unreadable -> InputError."""
    try:
        with path.open(encoding="utf-8", newline=None) as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield number, line
    except FileNotFoundError:
        raise _missing(path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the sample data: {exc}") from exc


def _track(
    event: str, user_id: str, timestamp: str, message_id: str, properties: dict[str, Any]
) -> dict[str, Any]:
    return {
        "type": "track",
        "event": event,
        "userId": user_id,
        "timestamp": timestamp,
        "messageId": message_id,
        "channel": "web",
        "properties": properties,
    }


def taobao_events(path: Path) -> Iterator[dict[str, Any]]:
    """One track message per row of the Taobao UserBehavior CSV (no header), in file order."""
    for row, (number, line) in enumerate(_lines(path), start=1):
        where = f"{path}:{number}"
        fields = line.strip().split(",")
        if len(fields) != 5:
            raise InputError(
                f"{where}: expected 5 columns (user_id,item_id,category_id,behavior_type,"
                f"timestamp), got {len(fields)}"
            )
        user, item, category, behaviour, seconds = (f.strip() for f in fields)
        try:
            user_n, item_n, category_n, ts = int(user), int(item), int(category), int(seconds)
            timestamp = datetime.fromtimestamp(ts, UTC).strftime(_ISO)
        except (ValueError, OverflowError, OSError):
            raise InputError(
                f"{where}: user_id, item_id, category_id and timestamp must be integers "
                f"(unix seconds), got {line.strip()!r}"
            ) from None
        event = _TAOBAO_EVENTS.get(behaviour)
        if event is None:
            raise InputError(
                f"{where}: behavior_type {behaviour!r} is not one of pv, cart, fav, buy"
            )
        user_id, product, cat = f"tb-{user_n}", str(item_n), str(category_n)
        properties: dict[str, Any]
        price = item_price(product)
        if behaviour == "buy":
            properties = {
                "order_id": f"{user_id}-{product}-{ts}",
                "revenue": price,
                "currency": "CNY",
                "products": [
                    {"product_id": product, "category": cat, "price": price, "quantity": 1}
                ],
            }
        else:
            properties = {"product_id": product, "category": cat, "price": price}
            if behaviour == "cart":
                properties["quantity"] = 1
        yield _track(event, user_id, timestamp, f"tb-{row}", properties)


def item_price(item_id: str) -> float:
    """The seeded list price of a Taobao item, 9.90 to 600 on a log scale (as many under 77 as
    over): from a hash of the id, so every build gives the same price."""
    digest = hashlib.sha256(f"taobao-price\x1f{item_id}".encode()).digest()
    share = int.from_bytes(digest[:8], "big") / 2**64
    price: float = round(9.9 * (600 / 9.9) ** share, 1)
    return price


@functools.lru_cache(maxsize=4096)
def _day(date: str) -> str:
    """YYYYMMDD as midnight UTC in ISO 8601 (cached: CDNOW has a few hundred distinct days)."""
    return datetime.strptime(date, "%Y%m%d").strftime("%Y-%m-%dT00:00:00Z")


def cdnow_events(path: Path) -> Iterator[dict[str, Any]]:
    """One ``Order Completed`` per purchase row of CDNOW_master.txt (header line), in file order."""
    lines = _lines(path)
    header = next(lines, None)
    if header is None or header[1].split() != _CDNOW_HEADER:
        at = header[0] if header else 1
        raise InputError(
            f"{path}:{at}: expected the header '{' '.join(_CDNOW_HEADER)}' of CDNOW_master.txt"
        )
    for row, (number, line) in enumerate(lines, start=1):
        where = f"{path}:{number}"
        fields = line.split()
        if len(fields) != 4:
            raise InputError(
                f"{where}: expected 4 columns ({' '.join(_CDNOW_HEADER)}), got {len(fields)}"
            )
        customer, date, cds, dollars = fields
        try:
            if not customer.isdigit():
                raise ValueError(customer)
            day = _day(date)
            quantity, revenue = int(cds), float(dollars)
        except ValueError:
            raise InputError(
                f"{where}: expected a numeric customer_id, a YYYYMMDD date, an integer "
                f"number_of_cds and a dollar_value, got {line.strip()!r}"
            ) from None
        properties = {
            "order_id": f"cdnow-{row}",
            "revenue": revenue,
            "currency": "USD",
            "products": [{"category": "cd", "quantity": quantity}],
        }
        yield _track("Order Completed", f"cdnow-{customer}", day, f"cdnow-{row}", properties)


def _first_customers(events: Iterator[dict[str, Any]], limit: int) -> Iterator[dict[str, Any]]:
    kept: set[str] = set()
    for event in events:
        if event["userId"] not in kept and len(kept) < limit:
            kept.add(event["userId"])
        if event["userId"] in kept:
            yield event


def build_sample(data_dir: Path, out: Path, *, limit_cdnow: int | None = None) -> SampleSummary:
    """Write both data sets from ``data_dir`` to ``out`` as JSONL sorted by (timestamp, messageId).

    ``limit_cdnow`` keeps only the first N CDNOW customers (in file order), each with all of their
    purchases, so repeat-purchase histories stay complete. ``out`` is replaced atomically.
    """
    if limit_cdnow is not None and limit_cdnow < 0:
        raise ValueError("limit_cdnow must be zero or more")
    taobao, cdnow = data_dir / TAOBAO_FILE, data_dir / CDNOW_FILE
    for path in (taobao, cdnow):
        if not path.is_file():
            raise _missing(path)
    cdnow_iter = cdnow_events(cdnow)
    if limit_cdnow is not None:
        cdnow_iter = _first_customers(cdnow_iter, limit_cdnow)
    events = [*taobao_events(taobao), *cdnow_iter]
    events.sort(key=lambda e: (e["timestamp"], e["messageId"]))

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o644)  # mkstemp makes 0600; the output is a plain file
            handle.write(b"".join(orjson.dumps(e) + b"\n" for e in events))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, out)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return SampleSummary(
        events=len(events),
        customers=len({e["userId"] for e in events}),
        path=out,
        by_event=dict(Counter(e["event"] for e in events)),
    )
