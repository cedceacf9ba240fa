"""The webhook channel over HTTP (``provider: http``): each delivery POSTs its rendered body to
a URL the project names in ``providers.webhook.urls``.

The request is signed (see :mod:`integrations.webhook.signature`) and carries
``Idempotency-Key: <delivery key>``. Outcomes:

- 2xx: ``DELIVERED``;
- 408, 429 and 5xx, or a connection that fails before the whole request went out: ``FAILED``
  with ``retry_at`` (``Retry-After`` honoured, in seconds or as a date);
- any other status (3xx included: the configured URL should be the final one), an unknown URL
  name, an untrusted TLS certificate: ``FAILED`` for good, with the status and the start of the
  receiver's answer;
- no answer after the whole request went out (a timeout, a reset): ``UNKNOWN``, never resent,
  unless the receiver deduplicates by ``Idempotency-Key`` (``receiver_dedupes: true``): then the
  provider is ``idempotent`` and such a delivery is simply tried again.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from engine.channels import (
    Delivery,
    DeliveryAction,
    DeliveryOutcome,
    DeliveryStatus,
    ProviderCheck,
)
from engine.clock import Clock, utc_now
from engine.secrets import Redactor
from integrations.webhook.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

USER_AGENT = "followup-webhook/1"
RETRY_AFTER = timedelta(minutes=1)
MAX_RETRY_AFTER = timedelta(days=1)
RETRY_STATUSES = frozenset({408, 429})
_ANSWER_LIMIT = 200
_READ_LIMIT = 64 * 1024


@dataclass(frozen=True)
class WebhookTarget:
    """Where and how to POST: ``urls`` by name, the signing ``secret``, static ``headers``."""

    urls: Mapping[str, str] = field(default_factory=dict)
    secret: str = field(default="", repr=False)
    timeout: float = 10.0
    headers: Mapping[str, str] = field(default_factory=dict)
    receiver_dedupes: bool = False
    tls: ssl.SSLContext = field(default_factory=ssl.create_default_context, repr=False)


class _NotSent(Exception):
    """The request did not go out whole; the receiver cannot have acted on it."""


def content_type(body: str) -> str:
    """JSON when the body parses as JSON, else plain text."""
    try:
        json.loads(body)
    except ValueError:
        return "text/plain; charset=utf-8"
    return "application/json"


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """A ``Retry-After`` header (seconds, or an HTTP date) as a delay, at most a day."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        delay = timedelta(seconds=int(text))
    else:
        try:
            delay = parsedate_to_datetime(text) - now
        except (TypeError, ValueError):
            return None
    return min(max(delay, timedelta(0)), MAX_RETRY_AFTER)


class HttpWebhook:
    """POSTs webhook deliveries; see the module for what each outcome means."""

    name = "http"

    def __init__(
        self,
        target: WebhookTarget,
        *,
        clock: Clock = utc_now,
        wall_clock: Clock = utc_now,
        retry_after: timedelta = RETRY_AFTER,
        where: str = "providers.webhook",
    ) -> None:
        self.target = target
        self.idempotent = target.receiver_dedupes
        self._clock = clock  # the passes' clock: retries are dated on it
        self._wall = wall_clock  # the receiver checks the signed timestamp against real time
        self._retry_after = retry_after
        self._where = where
        self._redact = Redactor([target.secret])

    def _connection(self, url: str) -> tuple[http.client.HTTPConnection, str]:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                host, port, timeout=self.target.timeout, context=self.target.tls
            )
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.target.timeout)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return conn, path

    def deliver(self, delivery: Delivery) -> DeliveryOutcome:
        """POST the delivery's body to its named URL; never raises for the channel's failures."""
        if delivery.action is not DeliveryAction.SEND:
            return self._failed(f"a webhook cannot {delivery.action.value}")
        name = str(delivery.fields.get("url") or "")
        url = self.target.urls.get(name)
        if url is None:
            return self._failed(f"no url named {name}; add it under {self._where}.urls")
        body = str(delivery.fields.get("body") or "")
        data = body.encode()
        now, wall = self._clock(), self._wall()
        timestamp = int(wall.timestamp())
        headers = {
            **self.target.headers,
            "Content-Type": content_type(body),
            "User-Agent": USER_AGENT,
            "Idempotency-Key": delivery.key,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self.target.secret, timestamp, data),
        }
        conn, path = self._connection(url)
        try:
            try:
                conn.connect()
                conn.request("POST", path, body=data, headers=headers)
            except (OSError, http.client.HTTPException) as exc:
                raise _NotSent(exc) from exc
            response = conn.getresponse()
            answer = response.read(_READ_LIMIT)
        except _NotSent as exc:
            detail = f"{name}: cannot send to {_origin(url)}: {_reason(exc)}"
            if isinstance(exc.__cause__, ssl.SSLCertVerificationError):
                return self._failed(detail)  # a configuration error: retrying cannot fix it
            return self._retry(now, detail)
        except (OSError, http.client.HTTPException) as exc:
            return self._no_answer(now, name, exc)
        finally:
            conn.close()
        return self._answered(now, wall, name, response, answer)

    def _answered(
        self,
        now: datetime,
        wall: datetime,
        name: str,
        response: http.client.HTTPResponse,
        answer: bytes,
    ) -> DeliveryOutcome:
        status = response.status
        said = f"{name}: {status} {response.reason}"
        if 200 <= status < 300:
            return DeliveryOutcome(DeliveryStatus.DELIVERED, self._redact(said))
        text = " ".join(answer.decode("utf-8", "replace").split())[:_ANSWER_LIMIT]
        detail = f"{said}: {text}" if text else said
        if status in RETRY_STATUSES or status >= 500:
            delay = retry_after(response.getheader("Retry-After"), wall) or self._retry_after
            return DeliveryOutcome(DeliveryStatus.FAILED, self._redact(detail), now + delay)
        if 300 <= status < 400:
            where = response.getheader("Location") or "elsewhere"
            detail = f"{said}: redirected to {where}; put the final URL in {self._where}.urls"
        return self._failed(detail)

    def _no_answer(self, now: datetime, name: str, exc: BaseException) -> DeliveryOutcome:
        what = f"{name}: the request was sent but no answer came ({_reason(exc)})"
        if self.idempotent:
            return self._retry(now, f"{what}; the receiver dedupes, so it is sent again")
        return DeliveryOutcome(
            DeliveryStatus.UNKNOWN,
            self._redact(f"{what}; the receiver may have acted, so it is not resent"),
        )

    def _failed(self, detail: str) -> DeliveryOutcome:
        return DeliveryOutcome(DeliveryStatus.FAILED, self._redact(detail))

    def _retry(self, now: datetime, detail: str) -> DeliveryOutcome:
        return DeliveryOutcome(DeliveryStatus.FAILED, self._redact(detail), now + self._retry_after)

    def check(self) -> ProviderCheck:
        """Connect to each URL's host (TCP, and TLS for https); no request is sent."""
        urls = self.target.urls
        if not urls:
            return ProviderCheck(
                True, f"no urls: every webhook fails until {self._where}.urls names one"
            )
        problems = []
        for name, url in sorted(urls.items()):
            conn, _ = self._connection(url)
            try:
                conn.connect()
            except OSError as exc:
                problems.append(f"{name} ({_origin(url)}): {_reason(exc)}")
            finally:
                conn.close()
        if problems:
            return ProviderCheck(False, self._redact("cannot connect to " + "; ".join(problems)))
        return ProviderCheck(True, f"connected to {len(urls)} url(s): {', '.join(sorted(urls))}")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__ if isinstance(exc, _NotSent) and exc.__cause__ else exc
    if isinstance(cause, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({cause.verify_message}); set ca_file for a private CA"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(cause) or type(cause).__name__
