"""Campaign versions: the ones in the campaign files now, and the older ones journeys keep.

A journey runs the version of its campaign it entered with. The current versions are recorded in
``campaign_versions`` as the schema's JSON; an older one is read back from there when a journey
still runs it. A campaign that is paused, or whose file is gone, is *held*: no new entries, and
its journeys take no step until it is active again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa

from engine.campaigns.loader import campaign_version
from engine.campaigns.schema import Campaign, CampaignStatus
from engine.storage.tables import campaign_versions
from engine.storage.upserts import insert_new


class CampaignBook:
    """The campaigns the runtime runs, and every version a journey may still hold."""

    def __init__(self, campaigns: Iterable[Campaign]) -> None:
        self.current = {campaign.id: campaign for campaign in campaigns}
        self.version_of = {cid: campaign_version(c) for cid, c in self.current.items()}
        self._versions = {(cid, self.version_of[cid]): c for cid, c in self.current.items()}
        # in the order of their ids, as the journey engine takes them (and ticks at one instant)
        active = (c for c in self.current.values() if c.status is CampaignStatus.ACTIVE)
        self.active = sorted(active, key=lambda campaign: campaign.id)

    def held(self, known: Iterable[str]) -> frozenset[str]:
        """Of the campaign ids in ``known``, those whose journeys must wait (paused or gone)."""
        running = {c.id for c in self.active}
        return frozenset(cid for cid in known if cid not in running)

    def version_for(self, campaign: Campaign) -> str:
        """The version of a campaign a journey holds."""
        current = self.current.get(campaign.id)
        if current is campaign:
            return self.version_of[campaign.id]
        return campaign_version(campaign)

    def record(self, conn: sa.Connection, now: datetime) -> None:
        """Keep every current version in the database (once each)."""
        stored = set(
            conn.execute(sa.select(campaign_versions.c.campaign_id, campaign_versions.c.version))
        )
        rows = [
            {
                "campaign_id": cid,
                "version": version,
                "definition": self.current[cid].model_dump(mode="json", by_alias=True),
                "first_seen_at": now,
            }
            for cid, version in sorted(self.version_of.items())
            if (cid, version) not in stored
        ]
        insert_new(conn, campaign_versions, rows)  # another worker may record them too

    def get(self, conn: sa.Connection, campaign_id: str, version: str) -> Campaign:
        """The campaign ``campaign_id`` at ``version``."""
        found = self._versions.get((campaign_id, version))
        if found is None:
            definition = conn.scalar(
                sa.select(campaign_versions.c.definition).where(
                    campaign_versions.c.campaign_id == campaign_id,
                    campaign_versions.c.version == version,
                )
            )
            if definition is None:
                raise LookupError(f"campaign {campaign_id} version {version} is not recorded")
            found = self._versions[(campaign_id, version)] = Campaign.model_validate(definition)
        return found
