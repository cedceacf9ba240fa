"""Who holds an outbox row's claim, and whether that holder can still finish it.

Each dispatch claims its rows under a holder name of its own and keeps the holder alive while it
runs. A dispatch that finds a row ``sending`` asks how its holder is: a dead holder's row is
retaken at once, a live one's is left to it however long its call takes, and one that cannot be
told is left for the lease.

- PostgreSQL (:class:`SessionLocks`): the holder is a session advisory lock, ``(OUTBOX_HOLDERS,
  key)``, taken by a connection the dispatch keeps for as long as it runs. The server drops the
  lock when the dispatch ends, when its process dies or when its connection is cut, whichever
  machine it ran on: a holder is alive exactly while ``pg_locks`` shows its lock. The session
  asks the server to probe it every few seconds once idle (TCP keepalives), so a machine that
  died without closing its connection loses its lock within about a minute, not the system's
  two hours.
- SQLite (:class:`Processes`): the database is on one machine (WAL needs memory shared between
  its processes), so the holder names its host, boot, process (its pid namespace, pid and start
  time, so a reused pid is not taken for it) and dispatch. It is dead when that process is gone
  or the machine has booted since; in the process that asks, it is alive exactly while that
  dispatch runs. Another live process's dispatch cannot be seen, nor a holder of another host
  (the file was moved) or of a container whose pids this one cannot see: those are left for the
  lease.
"""

from __future__ import annotations

import enum
import itertools
import os
import secrets
import socket
import threading
from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa

from engine.storage.database import KEEPALIVES

OUTBOX_HOLDERS = 0x6F757462  # "outb": the first key of the holders' advisory locks
_KEY_RANGE = 2**31 - 1  # the second key, positive as pg_locks shows it (an oid)

# The holders of the dispatches running in this process, whichever dispatcher runs them
_RUNNING: set[str] = set()
_MUTEX = threading.Lock()
_NUMBERS = itertools.count(1)


class Holder(enum.Enum):
    """What is known of a holder."""

    ALIVE = "alive"
    DEAD = "dead"
    UNKNOWN = "unknown"  # the lease decides


class Holders(Protocol):
    """Names the holder of a dispatch's claims, and tells dead holders from live ones."""

    def holding(self) -> AbstractContextManager[str]:
        """A new holder name, alive until the context ends."""
        ...

    def judge(self, conn: sa.Connection, holders: Collection[str]) -> dict[str, Holder]:
        """What is known of each of ``holders``."""
        ...


def holders_for(db: sa.Engine) -> Holders:
    """The holders of ``db``'s backend."""
    return SessionLocks(db) if db.dialect.name == "postgresql" else Processes()


class SessionLocks:
    """Holders as PostgreSQL session advisory locks (see the module)."""

    def __init__(self, db: sa.Engine) -> None:
        self.db = db

    @contextmanager
    def holding(self) -> Iterator[str]:
        with self.db.connect() as conn:
            conn.exec_driver_sql(KEEPALIVES)
            key = 0
            while not key:
                key = secrets.randbelow(_KEY_RANGE) + 1
                taken = conn.scalar(
                    sa.text("SELECT pg_try_advisory_lock(:space, :key)"),
                    {"space": OUTBOX_HOLDERS, "key": key},
                )
                key = key if taken else 0
            conn.commit()  # a session lock: no transaction stays open while the dispatch runs
            try:
                yield f"pg:{key}"
            finally:
                conn.execute(
                    sa.text("SELECT pg_advisory_unlock(:space, :key)"),
                    {"space": OUTBOX_HOLDERS, "key": key},
                )
                conn.commit()

    def judge(self, conn: sa.Connection, holders: Collection[str]) -> dict[str, Holder]:
        keys = {h: int(h[3:]) for h in holders if h.startswith("pg:") and h[3:].isdigit()}
        found = dict.fromkeys(holders, Holder.UNKNOWN)
        if not keys:
            return found
        live = set(
            conn.scalars(
                sa.text(
                    "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory'"
                    " AND database = (SELECT oid FROM pg_database WHERE datname ="
                    " current_database()) AND classid = CAST(:space AS oid) AND objsubid = 2"
                    " AND granted"
                ),
                {"space": OUTBOX_HOLDERS},
            )
        )
        for holder, key in keys.items():
            found[holder] = Holder.ALIVE if key in live else Holder.DEAD
        return found


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    """Which pids this process sees (containers sharing a host name may not see each other)."""
    try:
        return "".join(c for c in os.readlink("/proc/self/ns/pid") if c.isdigit())
    except OSError:
        return ""


def _started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from ``/proc``): ``None`` when it
    is gone, ``""`` where ``/proc`` cannot say (then only whether the pid is in use)."""
    stat = _read(f"/proc/{pid}/stat")
    if stat:
        return stat.rpartition(")")[2].split()[19]  # field 22; the name may hold spaces
    if Path("/proc/self/stat").exists():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return ""


class Processes:
    """Holders as processes of this machine (see the module):
    ``host/boot/pid-namespace/pid/start/n``."""

    @staticmethod
    def _process() -> tuple[str, str, str, str, str]:
        host = socket.gethostname().replace("/", "_")[:100]
        boot = _read("/proc/sys/kernel/random/boot_id")
        pid = os.getpid()
        return host, boot, _pid_namespace(), str(pid), _started(pid) or ""

    @contextmanager
    def holding(self) -> Iterator[str]:
        holder = "/".join([*self._process(), str(next(_NUMBERS))])
        with _MUTEX:
            _RUNNING.add(holder)
        try:
            yield holder
        finally:
            with _MUTEX:
                _RUNNING.discard(holder)

    def judge(self, conn: sa.Connection, holders: Collection[str]) -> dict[str, Holder]:
        host, boot, namespace, pid, start = self._process()
        with _MUTEX:
            running = set(_RUNNING)
        found = dict.fromkeys(holders, Holder.UNKNOWN)
        for holder in holders:
            parts = holder.split("/")
            if len(parts) != 6 or parts[0] != host or not parts[3].isdigit():
                continue  # another machine's, or not a name of ours
            if parts[1] != boot:
                found[holder] = Holder.DEAD  # the machine has booted since
            elif parts[2] != namespace:
                continue  # a container whose processes this one cannot see
            elif parts[3:5] == [pid, start]:  # this process: is that dispatch running?
                found[holder] = Holder.ALIVE if holder in running else Holder.DEAD
            elif _started(int(parts[3])) != parts[4]:
                found[holder] = Holder.DEAD  # the process is gone (or its pid is another's)
        return found
