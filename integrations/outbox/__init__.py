"""The file outbox: the embedded default's channel providers, no credentials and no servers.

- :class:`FileEmailOutbox` — email as ``.eml`` files, one per delivery.
- :class:`FileAdsOutbox` — ad-audience changes as JSON lines with Meta-normalised SHA-256 hashes.
- :class:`CsvCallList` — calls as CSV call lists a dialer imports.

Each is idempotent by ``Delivery.key``. :func:`build_file_providers` builds them from the
``providers:`` section of ``followup.yaml``.
"""

from __future__ import annotations

from integrations.outbox.ads import FileAdsOutbox
from integrations.outbox.calls import CsvCallList
from integrations.outbox.email import FileEmailOutbox
from integrations.outbox.registry import build_file_providers

__all__ = ["CsvCallList", "FileAdsOutbox", "FileEmailOutbox", "build_file_providers"]
