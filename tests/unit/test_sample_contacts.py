"""The demo's synthetic contacts: a name of the data set's country, not the id's digits; the
same for a customer on every build."""

from __future__ import annotations

from pathlib import Path

import orjson

from engine.sample_contacts import build_contacts


def test_contacts_get_names_of_their_country_the_same_every_build(tmp_path: Path) -> None:
    sample = tmp_path / "events.jsonl"
    users = ["cdnow-00001", "cdnow-00002", "tb-1", "tb-2"]
    sample.write_bytes(
        b"".join(
            orjson.dumps({"userId": u, "timestamp": "2017-11-25T00:00:00Z", "type": "track"})
            + b"\n"
            for u in users
        )
    )
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    build_contacts(sample, first)
    build_contacts(sample, second)
    assert first.read_bytes() == second.read_bytes()
    traits = {m["userId"]: m["traits"] for m in map(orjson.loads, first.read_bytes().splitlines())}
    for user, found in traits.items():
        assert found["firstName"] and found["lastName"]
        assert not any(ch.isdigit() for ch in found["firstName"] + found["lastName"]), user
    assert all(traits[u]["firstName"].isascii() for u in ("cdnow-00001", "cdnow-00002"))
    assert not any(traits[u]["lastName"].isascii() for u in ("tb-1", "tb-2"))  # zh_CN names
    assert len({traits[u]["firstName"] + traits[u]["lastName"] for u in users}) == len(users)
