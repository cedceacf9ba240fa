"""followup's PostgreSQL sessions compile no query to machine code: the engine's short index
lookups passed JIT's cost threshold and spent 13 ms compiling a query that ran in 0.2 ms."""

from __future__ import annotations

import pytest

from engine.storage.database import create_engine


@pytest.mark.external_service
def test_every_session_has_jit_off_even_after_a_rollback(empty_postgres: str) -> None:
    db = create_engine(empty_postgres)
    try:
        with db.connect() as conn:
            assert conn.exec_driver_sql("SHOW jit").scalar() == "off"
            conn.rollback()
            assert conn.exec_driver_sql("SHOW jit").scalar() == "off"
    finally:
        db.dispose()
