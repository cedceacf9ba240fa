"""CSV exports with a column mapping: rows into Segment messages, bad rows into rejections."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.campaigns.loader import load_campaigns
from engine.config import ProjectConfig
from engine.errors import InputError
from engine.events import Event, Rejection, RejectReason, parse_message
from engine.ingest.csv_mapping import load_mapping, read_csv
from engine.ingest.pipeline import Accepted
from engine.journeys.plan import PlanAction
from engine.journeys.simulate import simulate

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"


def test_the_pos_example_becomes_pos_orders_email_only_rows_included() -> None:
    mapping = load_mapping(EXAMPLES / "pos_sales.mapping.yaml")
    records = list(read_csv(EXAMPLES / "pos_sales.csv", mapping))
    assert all(isinstance(r, Accepted) for r in records)
    events = [r.events[0] for r in records if isinstance(r, Accepted)]
    first = events[0]
    assert (first.name, first.channel, first.message_id) == ("Order Completed", "pos", "pos-R-1001")
    assert first.timestamp == datetime(2024, 5, 2, 15, 45, tzinfo=UTC)  # Paris summer time
    assert first.properties == {
        "order_id": "R-1001",
        "store": "Paris-01",
        "revenue": 89.9,
        "currency": "EUR",
    }
    assert first.traits == {"email": "ann@example.com", "phone": "+33 1 42 68 53 00"}
    assert records[0].source.endswith("pos_sales.csv:2")


def test_a_row_without_any_id_is_rejected_with_its_line(tmp_path: Path) -> None:
    mapping = load_mapping(EXAMPLES / "pos_sales.mapping.yaml")
    csv_file = tmp_path / "sales.csv"
    csv_file.write_text(
        "receipt_no,sold_at,store,customer_no,email,phone,total,currency\n"
        "R-1,2024-05-02 17:45:00,P,,,,10,EUR\n"
        "R-2,02/05/2024,P,C1,,,10,EUR\n"
        "R-3,2024-05-02 17:45:00,P,C1,,,ten,EUR\n"
        ",2024-05-02 17:45:00,P,C1,,,10,EUR\n"
        "R-5,2024-05-02 17:45:00,P,C1,,,10,EUR\n"
    )
    records = list(read_csv(csv_file, mapping))
    rejections = [(r.line, r.reason, r.field) for r in records if isinstance(r, Rejection)]
    assert rejections == [
        (2, RejectReason.MISSING_FIELD, "userId"),
        (3, RejectReason.BAD_TIMESTAMP, "sold_at"),
        (4, RejectReason.INVALID_ROW, "total"),
        (5, RejectReason.MISSING_FIELD, "receipt_no"),
    ]
    assert isinstance(records[-1], Accepted)


def test_a_row_that_is_not_utf8_is_refused_with_its_line_and_the_rest_kept(
    tmp_path: Path,
) -> None:
    """Not stored with a replacement character in its place (an email key changed), as a JSON
    line that is not UTF-8 is refused; a quoted field over two lines is one row."""
    mapping = load_mapping(EXAMPLES / "pos_sales.mapping.yaml")
    csv_file = tmp_path / "sales.csv"
    csv_file.write_bytes(
        b"\xef\xbb\xbfreceipt_no,sold_at,store,customer_no,email,phone,total,currency\n"
        b"R-1,2024-05-02 17:45:00,Caf\xe9-01,C1,,,10,EUR\n"
        b'R-2,2024-05-02 17:45:00,"Two\nlines \xe9",C1,,,10,EUR\n'
        b"R-3,2024-05-02 17:45:00,Caf\xc3\xa9-01,C1,jos\xc3\xa9@example.com,,10,EUR\n"
    )
    records = list(read_csv(csv_file, mapping))
    rejections = [(r.line, r.reason, r.message) for r in records if isinstance(r, Rejection)]
    assert rejections == [
        (2, RejectReason.INVALID_ROW, "byte 0xe9 is not UTF-8; save the file as UTF-8"),
        (4, RejectReason.INVALID_ROW, "byte 0xe9 is not UTF-8; save the file as UTF-8"),
    ]
    (kept,) = [r for r in records if isinstance(r, Accepted)]
    assert kept.events[0].properties["store"] == "Café-01"
    assert kept.events[0].traits["email"] == "josé@example.com"
    assert kept.source.endswith("sales.csv:5")


def test_a_header_that_is_not_utf8_is_an_input_error(tmp_path: Path) -> None:
    mapping = load_mapping(EXAMPLES / "pos_sales.mapping.yaml")
    csv_file = tmp_path / "sales.csv"
    csv_file.write_bytes(b"receipt_no,sold_at,st\xf6re\nR-1,2024-01-01,P\n")
    with pytest.raises(InputError, match=r"sales.csv:1: the header's byte 0xf6 is not UTF-8"):
        list(read_csv(csv_file, mapping))


def test_a_header_without_the_mapped_columns_is_an_input_error(tmp_path: Path) -> None:
    mapping = load_mapping(EXAMPLES / "pos_sales.mapping.yaml")
    csv_file = tmp_path / "sales.csv"
    csv_file.write_text("receipt,when\nR-1,2024-01-01\n")
    with pytest.raises(InputError, match="lacks the mapped column"):
        list(read_csv(csv_file, mapping))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("columns: {a: userId}\n", "timestamp"),
        ("timestamp: {column: t, timezone: Mars/Base}\ncolumns: {a: userId}\n", "IANA"),
        ("timestamp: {column: t}\ncolumns: {a: nowhere.x}\n", "must start with"),
        ("timestamp: {column: t}\ncolumns: {a: userId}\nextra: 1\n", "extra"),
        ("timestamp: [\n", "not valid YAML"),
    ],
)
def test_bad_mappings_say_what_is_wrong(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=problem) as info:
        load_mapping(path)
    assert str(path) in str(info.value)


def _online(kind: str, at: str, message_id: str, **fields: object) -> Event:
    """Ann's (``L-889``, the POS's customer number) message from the web shop."""
    message = {"type": kind, "userId": "L-889", "timestamp": at, "messageId": message_id}
    [event] = parse_message({**message, **fields})
    return event


def test_an_in_store_order_converts_the_cart_abandoned_online_with_its_amount() -> None:
    """The example mapping writes the amount where the example campaigns' goals read it."""
    mapping = load_mapping(EXAMPLES / "pos_sales.mapping.yaml")
    records = read_csv(EXAMPLES / "pos_sales.csv", mapping)
    in_store = next(r.events[0] for r in records if isinstance(r, Accepted))
    consent = {"email": "ann@example.com", "consent": {"email": True}}
    added = {"event": "Product Added", "properties": {"product_id": "p1", "price": 30}}
    online = [
        _online("identify", "2024-05-01T09:00:00Z", "i1", traits=consent),
        _online("track", "2024-05-02T09:00:00Z", "a1", **added),
    ]
    campaigns = load_campaigns([ROOT / "campaigns"]).require().values()
    plan = simulate(campaigns, [*online, in_store], ProjectConfig())
    converted = [
        (line.campaign, line.fields.get("value"))
        for line in plan
        if line.action is PlanAction.CONVERT
    ]
    assert ("abandoned-cart", 89.9) in converted
