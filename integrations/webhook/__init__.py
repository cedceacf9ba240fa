"""Webhooks over HTTP: :class:`HttpWebhook` POSTs each delivery, signed (``provider: http``);
:func:`verify_signature` checks a request on the receiving side."""

from __future__ import annotations

from integrations.webhook.poster import HttpWebhook, WebhookTarget
from integrations.webhook.registry import http_provider
from integrations.webhook.signature import sign, verify_signature

__all__ = ["HttpWebhook", "WebhookTarget", "http_provider", "sign", "verify_signature"]
