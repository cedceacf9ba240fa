"""File plumbing shared by the outbox providers: safe names, durable appends keyed once.

:class:`KeyedAppendFile` is the exactly-once seam of the ads and call outboxes. A record is one
line whose key is read back from the line itself, so the file is its own index: on first use the
file is scanned for the keys it holds, later appends by other processes are caught up under the
same lock, and a key already present is never appended again. Appends take a ``flock`` (POSIX),
go out in one ``write`` and are flushed and fsynced before the caller hears yes. A torn last line
left by a crash is cut off before the next append, so the file only ever holds whole lines.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from engine.channels import DeliveryOutcome, DeliveryStatus, ProviderCheck
from engine.clock import Clock, utc_now

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"{p}{n}" for p in ("COM", "LPT") for n in range(1, 10)]
)
MAX_NAME_LENGTH = 120
ALREADY = "already in the outbox"
"""The detail of a repeated delivery: its key was carried before, nothing was written again."""


def safe_name(text: str, *, fingerprint: str | None = None, force: bool = False) -> str:
    """``text`` as a file name that is safe on every common file system.

    Characters other than letters, digits, ``.``, ``_`` and ``-`` become ``_``. When anything had
    to change (or ``force``), a short digest of ``fingerprint`` (default ``text``) is appended, so
    two different inputs never share a name.
    """
    cleaned = _UNSAFE.sub("_", text).strip("._") or "_"
    reserved = cleaned.split(".")[0].upper() in _WINDOWS_RESERVED
    if force or reserved or cleaned != text or len(cleaned) > MAX_NAME_LENGTH:
        digest = hashlib.sha256((fingerprint or text).encode()).hexdigest()[:12]
        cleaned = f"{cleaned[:MAX_NAME_LENGTH]}-{digest}"
    return cleaned


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def fsync_dir(folder: Path) -> None:
    """Make a new directory entry in ``folder`` durable (a no-op where directories can't be
    opened, as on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _syncfs() -> Callable[[int], int] | None:
    """Linux's ``syncfs(2)``, if this C library has it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        found: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    return found


_SYNCFS = _syncfs()


def sync_files(folder: Path, files: Sequence[str | Path]) -> None:
    """Make the data of ``files`` (written in ``folder``) durable: on Linux one ``syncfs`` of
    the file system that holds ``folder`` (a group commit: one wait for the disk, not one per
    file), elsewhere an ``fsync`` of each. Raises :class:`OSError` when the disk refused."""
    if _SYNCFS is not None and len(files) > 1:
        fd = os.open(folder, os.O_RDONLY)
        try:
            if _SYNCFS(fd) != 0:
                error = ctypes.get_errno()
                raise OSError(error, os.strerror(error))
        finally:
            os.close(fd)
        return
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def failed(detail: str) -> DeliveryOutcome:
    """A failure that retrying cannot fix (a missing address, an unsupported action)."""
    return DeliveryOutcome(DeliveryStatus.FAILED, detail)


def io_failed(error: OSError, clock: Clock, retry_after: timedelta) -> DeliveryOutcome:
    """A file-system failure (disk full, permissions): worth retrying after ``retry_after``."""
    reason = error.strerror or type(error).__name__
    return DeliveryOutcome(
        DeliveryStatus.FAILED, f"cannot write the outbox: {reason}", clock() + retry_after
    )


if sys.platform != "win32":
    import fcntl

    def _lock(handle: BinaryIO) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # released when the handle closes

else:  # pragma: no cover - Windows: one process per outbox folder, threads still serialised

    def _lock(handle: BinaryIO) -> None:
        return None


class KeyedAppendFile:
    """An append-only file of one-line records in which each key appears at most once.

    ``key_of`` reads the key back from a line (``None`` for a line that has none); ``header``, if
    given, is written as the first line of a new file. Records must not contain line breaks.
    Moving the file away starts a new, empty record: the file is the index.
    """

    def __init__(
        self, path: Path, key_of: Callable[[str], str | None], header: str | None = None
    ) -> None:
        self.path = path
        self._key_of = key_of
        self._header = header
        self._mutex = threading.Lock()
        self._keys: set[str] = set()
        self._scanned = 0  # bytes of the file whose keys are in self._keys
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the scanned file

    def append_once(self, key: str, record: str) -> bool:
        """Append ``record`` unless ``key`` is already in the file; ``True`` if it was appended.

        Raises :class:`OSError` when the file cannot be written; the file is then left as it was.
        """
        if "\n" in record or "\r" in record:
            raise ValueError("a record must be a single line")
        with self._mutex, self.path.open("a+b") as handle:
            _lock(handle)
            self._catch_up(handle)
            if key in self._keys:
                return False
            data = (record + "\n").encode()
            if self._scanned == 0 and self._header is not None:
                data = (self._header + "\n").encode() + data
            start = self._scanned
            try:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            except OSError:
                self._truncate(handle, start)
                raise
            self._keys.add(key)
            self._scanned = start + len(data)
            return True

    def _catch_up(self, handle: BinaryIO) -> None:
        """Read the keys of lines appended since the last scan (by anyone), and cut off a torn
        last line left by a crash."""
        stat = os.fstat(handle.fileno())
        identity = (stat.st_dev, stat.st_ino)
        if identity != self._identity or stat.st_size < self._scanned:
            self._keys.clear()
            self._scanned = 0
            self._identity = identity
        if stat.st_size == self._scanned:
            return
        handle.seek(self._scanned)
        chunk = handle.read(stat.st_size - self._scanned)
        whole = chunk.rfind(b"\n") + 1
        skip_header = self._scanned == 0 and self._header is not None
        for number, raw in enumerate(chunk[:whole].splitlines()):
            if skip_header and number == 0:
                continue
            key = self._read_key(raw)
            if key is not None:
                self._keys.add(key)
        self._scanned += whole
        if whole < len(chunk):
            self._truncate(handle, self._scanned)

    def _read_key(self, raw: bytes) -> str | None:
        try:
            return self._key_of(raw.decode())
        except (ValueError, KeyError, IndexError, TypeError):
            return None  # a line edited by hand or from elsewhere: not ours to deduplicate

    @staticmethod
    def _truncate(handle: BinaryIO, size: int) -> None:
        try:
            handle.truncate(size)
            os.fsync(handle.fileno())
        except OSError:
            pass  # the next append's catch-up cuts the torn line off again


def folder_check(path: Path) -> ProviderCheck:
    """Whether files can be written into ``path`` (the file providers' ``providers check``)."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent  # a folder made at the first write: its nearest ancestor
    if not existing.is_dir():
        return ProviderCheck(False, f"{existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        return ProviderCheck(False, f"{existing} is not writable")
    return ProviderCheck(True, f"writes to {path}")


class KeyedFileOutbox:
    """Base of the outboxes that keep one :class:`KeyedAppendFile` per audience or list in a
    folder, opened once each (safe across threads)."""

    suffix = ""
    header: str | None = None

    def __init__(
        self,
        path: Path,
        *,
        clock: Clock = utc_now,
        retry_after: timedelta = timedelta(minutes=5),
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._retry_after = retry_after
        self._files: dict[str, KeyedAppendFile] = {}
        self._files_mutex = threading.Lock()
        self.path.mkdir(parents=True, exist_ok=True)

    def check(self) -> ProviderCheck:
        """Whether the folder takes files."""
        return folder_check(self.path)

    @staticmethod
    def key_of(line: str) -> str | None:
        """The key of a line of this outbox's files."""
        raise NotImplementedError

    def _file(self, name: str) -> KeyedAppendFile:
        with self._files_mutex:
            found = self._files.get(name)
            if found is None:
                target = self.path / f"{safe_name(name)}{self.suffix}"
                found = KeyedAppendFile(target, self.key_of, self.header)
                self._files[name] = found
            return found
