"""Meta's normalisation and hashing of customer keys, against Meta's published vectors
(``INTEGRATIONS.md`` section 3.3; sha256 of ``us`` is Meta's documented example)."""

from __future__ import annotations

import pytest

from engine.channels import Recipient
from integrations.facebook import keys
from integrations.outbox import ads

VECTORS = {
    "jane.doe@example.com": "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d",
    "14155550100": "5e7ec4c79ccac6e420876e65ad0e6b4b2ccf73ec3dccb50297bf2890a1ec73b9",
    "jane": "81f8f6dde88365f3928796ec7aa53f72820b06db8664f5fe76a7eb13e24546a2",
    "doe": "799ef92a11af918e3fb741df42934f3b568ed2d93ac1df74f1b8d41a27932a6f",
    "sanfrancisco": "1a6bd4d9d79dc0a79b53795c70d3349fa9e38968a3fbefbfe8783efb1d2b6aac",
    "ca": "6959097001d10501ac7d54c0bdb8db61420f658f2922cc26e46d536119a31126",
    "94103": "91dc2519ea98c5002cf2091e6a12b772eafdce9dca618e626d7d3b8275361789",
    "us": "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621",
}


@pytest.mark.parametrize(
    ("normalise", "raw", "normalised"),
    [
        (keys.email_key, "  Jane.Doe@Example.COM ", "jane.doe@example.com"),
        (keys.phone_key, "+1 (415) 555-0100", "14155550100"),
        (keys.phone_key, "(415) 555-0100", "14155550100"),  # national: US
        (keys.name_key, " Jane ", "jane"),
        (keys.name_key, "D'oe", "doe"),
        (keys.city_key, "San Francisco", "sanfrancisco"),
        (keys.state_key, "CA", "ca"),
        (keys.zip_key, "94103-1234", "94103"),
        (keys.zip_key, " 94103 ", "94103"),
        (keys.country_key, "US", "us"),
    ],
)
def test_each_key_normalises_to_meta_s_published_vector(
    normalise: object, raw: str, normalised: str
) -> None:
    assert callable(normalise)
    assert normalise(raw) == normalised
    assert keys.sha256_hex(normalise(raw)) == VECTORS[normalised]


@pytest.mark.parametrize(
    ("normalise", "raw", "normalised"),
    [
        # where the SDK helper is wrong (INTEGRATIONS.md 3.3)
        (keys.name_key, "José", "josé"),  # UTF-8 letters kept, not dropped
        (keys.name_key, "Mary-Jane", "maryjane"),
        (keys.name_key, "JOSE\u0301", "josé"),  # decomposed accent composed (NFC)
        (keys.zip_key, "SW1A 1AA", "sw1a1"),  # UK: area, district, sector; no space
        (keys.zip_key, "EC1A 1BB", "ec1a1"),
        (keys.phone_key, "+44 (0)20 7946 0958", "442079460958"),  # trunk zero dropped
        (keys.country_key, "United States", ""),  # not "un"
        (keys.email_key, "not an address", ""),
        (keys.phone_key, "call me", ""),
        (keys.name_key, None, ""),
    ],
)
def test_keys_follow_meta_where_the_sdk_helper_does_not(
    normalise: object, raw: str | None, normalised: str
) -> None:
    assert callable(normalise)
    assert normalise(raw) == normalised


def test_the_accented_name_hashes_its_utf8_bytes() -> None:
    assert keys.sha256_hex("josé") == keys.hashlib.sha256("josé".encode()).hexdigest()
    assert keys.sha256_hex("") == ""


def test_a_row_is_the_schema_in_order_extern_id_in_clear_missing_keys_empty() -> None:
    jane = Recipient(
        "cust-42",
        email="Jane.Doe@Example.com",
        phone="+1 415 555 0100",
        first_name="Jane",
        last_name="Doe",
    )
    assert keys.SCHEMA == ("EMAIL", "PHONE", "FN", "LN", "CT", "ST", "ZIP", "COUNTRY", "EXTERN_ID")
    assert keys.hashed_row(jane) == [
        VECTORS["jane.doe@example.com"],
        VECTORS["14155550100"],
        VECTORS["jane"],
        VECTORS["doe"],
        "",
        "",
        "",
        "",
        "cust-42",
    ]
    assert keys.hashed_row(Recipient("c9", email="a@b.co")) == [
        keys.hashlib.sha256(b"a@b.co").hexdigest(),
        *[""] * 7,
        "c9",
    ]
    assert keys.matchable(jane) and not keys.matchable(Recipient("c1", first_name="Jane"))


def test_the_file_outbox_hashes_with_the_same_module() -> None:
    assert ads.email_sha256 is keys.email_sha256 and ads.phone_sha256 is keys.phone_sha256
    assert ads.email_sha256(" Jane.Doe@Example.com ") == VECTORS["jane.doe@example.com"]
    assert ads.phone_sha256("+1 (415) 555-0100") == VECTORS["14155550100"]
