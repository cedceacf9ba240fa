"""Real data sets (Taobao, CDNOW) into Segment JSONL: mappings, order, stable ids, bad input."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.errors import InputError
from engine.events import parse_message
from engine.sample_data import (
    CDNOW_FILE,
    TAOBAO_FILE,
    SampleSummary,
    build_sample,
    cdnow_events,
    item_price,
    taobao_events,
)

PRICE = 21.1  # item 2268318's seeded price

REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

TAOBAO_ROWS = (
    "1,2268318,2520377,pv,1511544070\n"
    "1,2268318,2520377,cart,1511544080\n"
    "1,2268318,2520377,fav,1511544090\n"
    "1,2268318,2520377,buy,1511544100\n"
    "7,42,99,pv,1511500000\n"
)
CDNOW_ROWS = (
    " customer_id  date number_of_cds  dollar_value\r\n"
    " 00001 19970101  1   11.77\r\n"
    " 00002 19970112  2   0.00\r\n"
    " 00001 19970102  5   77.00\r\n"
)


def write_data(folder: Path, taobao: str = TAOBAO_ROWS, cdnow: str = CDNOW_ROWS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TAOBAO_FILE).write_text(taobao)
    (folder / CDNOW_FILE).write_bytes(cdnow.encode())
    return folder


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_each_taobao_behaviour_maps_to_its_segment_event(tmp_path: Path) -> None:
    path = write_data(tmp_path) / TAOBAO_FILE
    pv, cart, fav, buy, other = taobao_events(path)
    assert pv == {
        "type": "track",
        "event": "Product Viewed",
        "userId": "tb-1",
        "timestamp": "2017-11-24T17:21:10Z",
        "messageId": "tb-1",
        "channel": "web",
        "properties": {"product_id": "2268318", "category": "2520377", "price": PRICE},
    }
    assert (cart["event"], cart["messageId"]) == ("Product Added", "tb-2")
    assert cart["properties"] == {
        "product_id": "2268318",
        "category": "2520377",
        "price": PRICE,
        "quantity": 1,
    }
    assert (fav["event"], fav["properties"]) == (
        "Product Added to Wishlist",
        {"product_id": "2268318", "category": "2520377", "price": PRICE},
    )
    assert buy["event"] == "Order Completed"
    assert buy["properties"] == {
        "order_id": "tb-1-2268318-1511544100",
        "revenue": PRICE,
        "currency": "CNY",
        "products": [
            {"product_id": "2268318", "category": "2520377", "price": PRICE, "quantity": 1}
        ],
    }
    assert (other["userId"], other["messageId"]) == ("tb-7", "tb-5")
    for event in (pv, cart, fav, buy, other):
        assert parse_message(event)[0].message_id == event["messageId"]


def test_taobao_items_get_a_seeded_price_the_same_every_build() -> None:
    """The data has no prices: a seeded list gives each item one, so carts have a value."""
    prices = [item_price(str(item)) for item in range(2_000)]
    assert prices == [item_price(str(item)) for item in range(2_000)]
    assert item_price("2268318") == PRICE
    assert min(prices) >= 9.9 and max(prices) <= 600
    assert 0.3 < sum(price < 77 for price in prices) / len(prices) < 0.7  # a log scale


def test_cdnow_rows_become_orders_with_padded_ids_and_day_timestamps(tmp_path: Path) -> None:
    first, second, third = cdnow_events(write_data(tmp_path) / CDNOW_FILE)
    assert first == {
        "type": "track",
        "event": "Order Completed",
        "userId": "cdnow-00001",
        "timestamp": "1997-01-01T00:00:00Z",
        "messageId": "cdnow-1",
        "channel": "web",
        "properties": {
            "order_id": "cdnow-1",
            "revenue": 11.77,
            "currency": "USD",
            "products": [{"category": "cd", "quantity": 1}],
        },
    }
    assert second["properties"]["revenue"] == 0.0
    assert isinstance(second["properties"]["revenue"], float)
    assert (third["messageId"], third["properties"]["products"]) == (
        "cdnow-3",
        [{"category": "cd", "quantity": 5}],
    )


def test_build_sample_merges_sorted_by_timestamp_then_message_id(tmp_path: Path) -> None:
    taobao = TAOBAO_ROWS + "9,1,2,pv,1511500000\n"  # same second as row 5: tb-5 < tb-6
    data = write_data(tmp_path / "data", taobao=taobao)
    summary = build_sample(data, tmp_path / "out" / "nested" / "sample.jsonl")
    events = read_jsonl(summary.path)
    keys = [(e["timestamp"], e["messageId"]) for e in events]
    assert keys == sorted(keys)
    assert [e["messageId"] for e in events[:3]] == ["cdnow-1", "cdnow-3", "cdnow-2"]
    assert [e["messageId"] for e in events[3:5]] == ["tb-5", "tb-6"]
    assert summary == SampleSummary(
        events=9,
        customers=5,
        path=tmp_path / "out" / "nested" / "sample.jsonl",
        by_event={
            "Order Completed": 4,
            "Product Viewed": 3,
            "Product Added": 1,
            "Product Added to Wishlist": 1,
        },
    )


def test_rebuilding_gives_identical_bytes_and_unique_message_ids(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")
    first = build_sample(data, tmp_path / "a.jsonl").path.read_bytes()
    second = build_sample(data, tmp_path / "b.jsonl").path.read_bytes()
    assert first == second
    ids = [e["messageId"] for e in read_jsonl(tmp_path / "a.jsonl")]
    assert len(ids) == len(set(ids))


def test_limit_cdnow_keeps_whole_histories_of_the_first_customers(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")
    summary = build_sample(data, tmp_path / "s.jsonl", limit_cdnow=1)
    cdnow = [e for e in read_jsonl(summary.path) if e["userId"].startswith("cdnow-")]
    assert [e["messageId"] for e in cdnow] == ["cdnow-1", "cdnow-3"]
    assert summary.customers == 3
    with pytest.raises(ValueError, match="limit_cdnow"):
        build_sample(data, tmp_path / "s.jsonl", limit_cdnow=-1)


def test_a_failed_build_leaves_the_previous_output_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = write_data(tmp_path / "data")
    out_dir = tmp_path / "out"
    out = build_sample(data, out_dir / "sample.jsonl").path
    before = out.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    write_data(data, taobao=TAOBAO_ROWS + "8,1,2,pv,1511600000\n")
    with pytest.raises(OSError, match="disk gone"):
        build_sample(data, out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in out_dir.iterdir()) == ["sample.jsonl"]


def test_a_missing_file_names_the_path_and_where_data_belongs(tmp_path: Path) -> None:
    data = write_data(tmp_path / "data")
    (data / CDNOW_FILE).unlink()
    with pytest.raises(InputError, match=r"cdnow_master\.txt.*\.\./shared/data/"):
        build_sample(data, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()
    with pytest.raises(InputError, match=r"nope\.csv.*\.\./shared/data/"):
        list(taobao_events(tmp_path / "nope.csv"))


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("1,2,3,pv\n", "expected 5 columns"),
        ("1,2,3,pv,1511544070,x\n", "expected 5 columns"),
        ("1,2,3,pv,soon\n", "must be integers"),
        ("1,two,3,pv,1511544070\n", "must be integers"),
        ("1,2,3,click,1511544070\n", "'click' is not one of"),
    ],
)
def test_a_bad_taobao_row_is_an_error_naming_file_and_line(
    tmp_path: Path, row: str, problem: str
) -> None:
    path = write_data(tmp_path, taobao=TAOBAO_ROWS + row) / TAOBAO_FILE
    with pytest.raises(InputError, match=rf"{TAOBAO_FILE}:6: .*{problem}"):
        list(taobao_events(path))


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (" 00003 19970101 1\r\n", "expected 4 columns"),
        (" 00003 19970101 1 2.0 x\r\n", "expected 4 columns"),
        (" 00003 19971301 1 2.00\r\n", "YYYYMMDD"),
        (" 00003 19970101 one 2.00\r\n", "number_of_cds"),
        (" 00003 19970101 1 $2\r\n", "dollar_value"),
        (" abc 19970101 1 2.00\r\n", "customer_id"),
    ],
)
def test_a_bad_cdnow_row_is_an_error_naming_file_and_line(
    tmp_path: Path, row: str, problem: str
) -> None:
    data = write_data(tmp_path / "data", cdnow=CDNOW_ROWS + row)
    with pytest.raises(InputError, match=rf"{CDNOW_FILE}:5: .*{problem}"):
        build_sample(data, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_a_cdnow_file_without_its_header_is_an_error(tmp_path: Path) -> None:
    path = write_data(tmp_path, cdnow=" 00001 19970101  1   11.77\n") / CDNOW_FILE
    with pytest.raises(InputError, match=rf"{CDNOW_FILE}:1: expected the header"):
        list(cdnow_events(path))


def test_the_real_data_sets_give_the_documented_counts(tmp_path: Path) -> None:
    if not (REAL_DATA / TAOBAO_FILE).is_file() or not (REAL_DATA / CDNOW_FILE).is_file():
        pytest.skip(f"the real sample data is not in {REAL_DATA}")
    summary = build_sample(REAL_DATA, tmp_path / "sample.jsonl")
    taobao_rows, cdnow_rows = 4_321, 69_659
    assert summary.events == taobao_rows + cdnow_rows
    assert summary.customers == 43 + 23_570
    assert summary.by_event == {
        "Product Viewed": 3_926,
        "Product Added": 190,
        "Product Added to Wishlist": 128,
        "Order Completed": 77 + cdnow_rows,
    }
    lines = summary.path.read_bytes().splitlines()
    assert len(lines) == summary.events
    keys = []
    for line in lines:
        (event,) = parse_message(orjson.loads(line))
        keys.append((event.timestamp, event.message_id))
    assert keys == sorted(keys)  # in time order (ties by messageId, as the sample writes them)
    assert len({key[1] for key in keys}) == summary.events
