"""The durable runtime of one project, put together from ``followup.yaml``: the composition
root of ``followup run`` and ``followup tick``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from engine.api import Followup
from engine.campaigns.loader import load_campaigns
from engine.channels import ActivityListener, ConsentListener
from engine.confirm_links import ConfirmLinks
from engine.double_opt_in import with_confirmation
from engine.drive.crash_points import CrashPoint, no_crash
from engine.drive.dispatcher import LEASE, OutboxDispatcher
from engine.drive.partitions import WHOLE, Partition
from engine.durable.book import CampaignBook
from engine.durable.content import SendContent
from engine.durable.runtime import DurableRuntime, TickSummary
from engine.durable.sql_outbox import SqlOutboxStore
from engine.policies import Policies
from engine.providers import build_providers, provider_rates
from engine.rendering import BodyCheck
from engine.unsubscribe import UnsubscribeLinks, signing_key


@dataclass
class PassResult:
    """One pass of the engine and of the outbox."""

    engine: TickSummary
    outbox: Counter[str]


class DurableProject:
    """A project's campaigns, runtime and outbox dispatcher on its database."""

    def __init__(
        self,
        followup: Followup,
        lease: timedelta = LEASE,
        crash: CrashPoint = no_crash,
        partition: Partition = WHOLE,
    ) -> None:
        project = followup.project
        config = project.config
        self.followup = followup
        campaigns = load_campaigns([project.path(config.campaigns)]).require().values()
        self.book = CampaignBook(with_confirmation(campaigns, config.policies))
        policies = Policies.model_validate(config.policies)
        self.links = UnsubscribeLinks(signing_key(project.root), config.server.base_url)
        providers = build_providers(
            project.root,
            config.providers,
            database_url=project.database_url,
            unsubscribe_base=config.server.base_url,
            clock=followup.clock,
        )
        templates = project.path(config.templates)
        links = self.links
        confirm = None
        if policies.double_opt_in is not None:
            confirm_links = ConfirmLinks(signing_key(project.root), config.server.base_url)
            confirm = (confirm_links, policies.double_opt_in.expires)
        self.bodies = BodyCheck(
            templates, lambda customer, at: links.url(customer, "email", at), keep_rendered=True
        )
        self._content = SendContent(
            templates, policies.calling_hours, self.links, confirm, self.bodies
        )
        self._providers = providers
        self._lease, self._crash = lease, crash
        self._passes: dict[Partition, tuple[DurableRuntime, OutboxDispatcher]] = {}
        self.runtime, self.dispatcher = self.over(partition)

    def over(self, partition: Partition) -> tuple[DurableRuntime, OutboxDispatcher]:
        """The runtime and outbox dispatcher of the passes over ``partition``, made at its
        first pass; every partition's share this project's providers, templates and body
        check (a process passing by 64 partitions opens one set of provider connections)."""
        if partition in self._passes:
            return self._passes[partition]
        followup, config, providers = self.followup, self.followup.project.config, self._providers
        runtime = DurableRuntime(
            followup.engine,
            self.book,
            config,
            followup.ingestor,
            self._content,
            followup.clock,
            crash=self._crash,
            consent_channels=frozenset(
                channel for channel, p in providers.items() if isinstance(p, ConsentListener)
            ),
            synced_events={
                channel: frozenset(p.synced_events)
                for channel, p in providers.items()
                if isinstance(p, ActivityListener) and p.synced_events
            },
            check_body=self.bodies,
            partition=partition,
        )
        dispatcher = OutboxDispatcher(
            SqlOutboxStore(followup.engine, partition),
            providers,
            runtime.policies,
            self.book,
            config.timezone,
            followup.clock,
            lease=self._lease,
            crash=self._crash,
            rates=provider_rates(config.providers),
        )
        self._passes[partition] = (runtime, dispatcher)
        return runtime, dispatcher

    def close(self) -> None:
        """Release what the providers hold (an SMTP connection, a database pool); each
        provider's ``close()``, where it has one (once, whichever partitions it served)."""
        providers = {
            id(provider): provider
            for _runtime, dispatcher in self._passes.values()
            for provider in dispatcher.providers.values()
        }
        for provider in providers.values():
            close = getattr(provider, "close", None)
            if callable(close):
                close()

    def run_once(self, partition: Partition | None = None) -> PassResult:
        """Decide everything due, then deliver everything decided: over ``partition``'s
        customers, by default this project's partition's (one pass at a time)."""
        runtime, dispatcher = (
            (self.runtime, self.dispatcher) if partition is None else self.over(partition)
        )
        self.bodies.forget()
        summary = runtime.tick()
        return PassResult(summary, dispatcher.dispatch())
