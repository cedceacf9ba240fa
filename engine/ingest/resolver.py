"""Identity resolution for a batch of events, in memory: which customer each event belongs to.

Pure: it is given the identity keys already known (key -> customer) and the first-seen time of
those customers, and works out new customers, new keys and merges. Anything that links two
profiles merges them; the survivor is the profile seen first (by event time, then id), so the
outcome does not depend on the order in which the linking events arrive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from engine.identity import customer_id_for
from engine.storage.customer_store import MergeRecord


@dataclass
class BatchResolution:
    """What resolving a batch decided: each event's customer, new keys, new customers, merges."""

    customer_of_event: list[str] = field(default_factory=list)
    new_keys: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    created: set[str] = field(default_factory=set)
    merges: list[MergeRecord] = field(default_factory=list)
    survivor_of: dict[str, str] = field(default_factory=dict)

    def final(self, customer_id: str) -> str:
        """The live customer that ``customer_id`` ended up as after this batch's merges."""
        seen = customer_id
        while seen in self.survivor_of:
            seen = self.survivor_of[seen]
        return seen


class IdentityResolver:
    """Resolves events to customers given the known keys; one instance per batch."""

    def __init__(self, owners: dict[str, str], first_seen: dict[str, datetime]) -> None:
        self._owners = dict(owners)
        self._first_seen = dict(first_seen)
        self.result = BatchResolution()

    def resolve(self, keys: list[str], at: datetime, message_id: str) -> str:
        """The customer of an event carrying ``keys`` at event time ``at``; links and merges."""
        if not keys:
            raise ValueError(f"event {message_id} carries no identity; parse_message rejects those")
        result = self.result
        sole = self._sole_owner(keys)
        if sole is not None:  # most events: nothing to create, link or merge
            return self.seen_again(sole, at)
        found = self._owners_of(keys)
        if not found:
            customer_id = customer_id_for(keys[0])
            result.created.add(customer_id)
            self._first_seen[customer_id] = at
        elif len(found) == 1:
            customer_id = found.pop()
        else:
            customer_id = min(found, key=lambda c: (self._first_seen.get(c, at), c))
            for merged_id in sorted(found - {customer_id}):
                result.survivor_of[merged_id] = customer_id
                result.merges.append(
                    MergeRecord(customer_id, merged_id, message_id, tuple(keys), at)
                )
                earlier = self._first_seen.get(merged_id, at)
                if earlier < self._first_seen.get(customer_id, at):
                    self._first_seen[customer_id] = earlier
        if at < self._first_seen.get(customer_id, at):
            self._first_seen[customer_id] = at
        for key in keys:
            if key not in self._owners:
                self._owners[key] = customer_id
                result.new_keys[key] = (customer_id, at)
        result.customer_of_event.append(customer_id)
        return customer_id

    def owner(self, key_or_id: str) -> str | None:
        """The live customer behind an identity key, or a customer id merged away (``None``:
        unknown here)."""
        owner = self._owners.get(key_or_id)
        if owner is None and key_or_id not in self.result.survivor_of:
            return None
        return self.result.final(owner or key_or_id)

    def seen_again(self, customer_id: str, at: datetime) -> str:
        """:meth:`resolve` for an event whose keys live ``customer_id`` already owns (each one
        itself, or a profile merged into it): only the customer's first-seen time can change.
        For a caller that knows the customer of such an event without its keys."""
        if at < self._first_seen.get(customer_id, at):
            self._first_seen[customer_id] = at
        self.result.customer_of_event.append(customer_id)
        return customer_id

    def _sole_owner(self, keys: list[str]) -> str | None:
        """The live customer that already owns every one of ``keys``, if one does: then
        :meth:`resolve` has only that customer's first-seen time to keep."""
        owners = self._owners
        owner = owners.get(keys[0])
        if owner is None or owner in self.result.survivor_of:
            return None
        for index in range(1, len(keys)):
            if owners.get(keys[index]) != owner:
                return None
        return owner

    def _owners_of(self, keys: list[str]) -> set[str]:
        """The live customers that own any of ``keys`` (each key's owner, followed through
        this batch's merges). Written out rather than with ``BatchResolution.final``: it runs
        for every event."""
        owners, survivor_of = self._owners, self.result.survivor_of
        found = set()
        for key in keys:
            owner = owners.get(key)
            if owner is not None:
                while owner in survivor_of:
                    owner = survivor_of[owner]
                found.add(owner)
        return found
