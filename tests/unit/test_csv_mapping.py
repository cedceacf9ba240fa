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
        ("delimiter: ';;'\ntimestamp: {column: t}\ncolumns: {a: userId}\n", "not one character"),
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


SALES = """\
type: track
event: Order Completed
timestamp: {column: sold_at, format: "%Y-%m-%d %H:%M:%S", timezone: Europe/Paris}
columns:
  customer_no: userId
  total: {to: properties.revenue, type: number}
"""
HEADER = "receipt_no,sold_at,customer_no,total\n"


def _sales(tmp_path: Path, rows: str) -> list[Accepted | Rejection]:
    (tmp_path / "m.yaml").write_text(SALES)
    (tmp_path / "s.csv").write_bytes((HEADER + rows).encode())
    return list(read_csv(tmp_path / "s.csv", load_mapping(tmp_path / "m.yaml")))


def _rejected(records: list[Accepted | Rejection]) -> list[tuple[int, str, str]]:
    return [(r.line, r.message, r.raw) for r in records if isinstance(r, Rejection)]


def test_a_row_the_csv_reader_cannot_read_is_refused_and_the_rest_read(tmp_path: Path) -> None:
    """A lone CR in a cell, and a stray quote that would run to the field size limit, are each
    one refused row with its line; the rows after them are read (the reader raised, and every
    row after was lost)."""
    rows = "A,2024-05-02 17:45:00,L-1,1\nB,2024-05-02 17:45:00,L\r2,1\n"
    rows += 'C,2024-05-02 17:45:00,"L-3,1\n'  # a quote that never closes
    for count in (3000, 6000):  # to the end of the file; past the field size limit
        more = "".join(f"D{n},2024-05-02 17:45:00,L-{n},{n}{' ' * 20}\n" for n in range(count))
        records = _sales(tmp_path, rows + more)
        rejected = _rejected(records)
        assert [line for line, _message, _raw in rejected] == [3, 4]
        assert rejected[0][1].startswith("cannot read the row: new-line character")
        assert rejected[1][2] == 'C,2024-05-02 17:45:00,"L-3,1'
        assert sum(isinstance(r, Accepted) for r in records) == count + 1


def test_rows_keep_their_raw_line_and_must_have_the_headers_cells(tmp_path: Path) -> None:
    rows = 'R-1,2024-05-02 17:45:00,L-1,"1,5"\nR-2,2024-05-02 17:45:00,L-2,3,EXTRA\n'
    rows += "R-3,2024-05-02 17:45:00\n\nR-4,2024-05-02 17:45:00,L-4,nan\n"
    rows += "R-5,2024-05-02 17:45:00,L-5,1e999\nR-6,2024-05-02 17:45:00,L-6,1_000\n"
    assert _rejected(_sales(tmp_path, rows)) == [
        (2, "'1,5' is not a valid number", 'R-1,2024-05-02 17:45:00,L-1,"1,5"'),
        (3, "the row has 5 cells, the header 4", "R-2,2024-05-02 17:45:00,L-2,3,EXTRA"),
        (4, "the row has 2 cells, the header 4", "R-3,2024-05-02 17:45:00"),
        (6, "'nan' is not a valid number", "R-4,2024-05-02 17:45:00,L-4,nan"),
        (7, "'1e999' is not a valid number", "R-5,2024-05-02 17:45:00,L-5,1e999"),
        (8, "'1_000' is not a valid number", "R-6,2024-05-02 17:45:00,L-6,1_000"),
    ]


def test_without_an_id_column_every_column_makes_the_row_id(tmp_path: Path) -> None:
    """docs/ingest.md: the default messageId is 'a hash of the row'. Two sales alike in every
    mapped column but their receipt are two sales; the same row twice is one."""
    rows = "R-1,2024-05-02 17:45:00,L-1,5\nR-2,2024-05-02 17:45:00,L-1,5\n"
    rows += "R-1,2024-05-02 17:45:00,L-1,5\n"
    ids = [r.events[0].message_id for r in _sales(tmp_path, rows) if isinstance(r, Accepted)]
    assert len(ids) == 3 and ids[0] != ids[1] and ids[0] == ids[2]
