"""Both Mailchimp SDK clients behind one connection limit, every failure translated at the edge.

The SDKs (``mailchimp-marketing`` 3.0.80, ``mailchimp-transactional`` 1.4.1) call ``requests``
directly and report failures three ways: ``ApiClientError`` with the body (a ``str`` for
Marketing's ``application/problem+json``), a bare ``requests.Response`` for an error without a
body (the body-less 429/403 of very high volume), or the network exception itself (wrapped in
``ApiClientError`` by Marketing only). :class:`Transport` turns all of them into one
:class:`MailchimpError` that says whether to retry, give up, or report the outcome as unknown.
"""

from __future__ import annotations

import enum
import json
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import mailchimp_marketing
import mailchimp_transactional
import requests
from mailchimp_marketing.api_client import ApiClientError as MarketingApiError
from mailchimp_transactional.api_client import ApiClientError as TransactionalApiError
from urllib3.exceptions import ConnectTimeoutError

from engine.clock import Clock, utc_now
from engine.errors import FollowupError
from engine.secrets import Redactor

MAX_CONNECTIONS = 10
"""Mailchimp allows 10 simultaneous connections per user; more get 429."""
MAX_RETRY_AFTER = timedelta(hours=1)


class Failure(enum.Enum):
    """What a failed call means for the delivery that made it."""

    RETRY = "retry"  # nothing happened at Mailchimp, or repeating is harmless: try again later
    PERMANENT = "permanent"  # Mailchimp refused the request itself: repeating cannot help
    UNKNOWN = "unknown"  # a send may have gone out: report, never resend


class MailchimpError(FollowupError):
    """A Mailchimp call that did not succeed. ``detail`` is redacted and names the problem
    (``429 Too Many Requests: ...``); ``retry_after`` is Mailchimp's Retry-After, if it sent one."""

    def __init__(
        self,
        detail: str,
        failure: Failure,
        retry_after: timedelta | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.failure = failure
        self.retry_after = retry_after
        self.status = status


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """A Retry-After header (seconds or an HTTP date) as a delay from ``now``, capped at an hour."""
    if not value:
        return None
    value = value.strip()
    try:
        delay = timedelta(seconds=max(0.0, float(value)))
    except ValueError:
        try:
            delay = parsedate_to_datetime(value) - now
        except (TypeError, ValueError):
            return None
    return min(max(delay, timedelta(0)), MAX_RETRY_AFTER)


def problem_text(status: int, body: Any, reason: str = "") -> str:
    """``<status> <title>: <detail>`` from a Marketing problem document (with its ``errors``), a
    Transactional error (``name``, ``message``), or whatever else came back."""
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            text = " ".join(body.split())[:200]
            return (
                f"{status} {reason}: {text}".strip(": ") if text else f"{status} {reason}".strip()
            )
    if isinstance(body, Mapping):
        title = body.get("title") or body.get("name") or reason
        detail = body.get("detail") or body.get("message") or ""
        problems = [
            f"{e.get('field') or 'request'}: {e.get('message')}"
            for e in body.get("errors") or []
            if isinstance(e, Mapping)
        ]
        text = "; ".join(str(part) for part in [detail, *problems] if part)
        return f"{status} {title}: {text}" if text else f"{status} {title}"
    return f"{status} {reason}".strip()


def _before_sending(error: BaseException) -> bool:
    """Whether a network error happened before the request left (refused, unreachable, connect
    timeout), so Mailchimp cannot have seen it."""
    seen: set[int] = set()
    todo: list[object] = [error]
    while todo:
        item = todo.pop()
        if id(item) in seen or not isinstance(item, BaseException):
            continue
        seen.add(id(item))
        if isinstance(
            item, ConnectTimeoutError | ConnectionRefusedError | requests.ConnectTimeout
        ):  # urllib3's NewConnectionError (refused, no route, DNS) is a ConnectTimeoutError
            return True
        todo.extend([*item.args, getattr(item, "reason", None), item.__cause__, item.__context__])
    return False


class Transport:
    """Calls the two SDK clients, at most :data:`MAX_CONNECTIONS` at once across both."""

    def __init__(
        self,
        marketing_key: str,
        transactional_key: str | None,
        *,
        timeout: float = 30.0,
        host: str | None = None,
        transactional_host: str | None = None,
        clock: Clock = utc_now,
        wall_clock: Clock = utc_now,
        connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.redact = Redactor([marketing_key, transactional_key or ""])
        self.clock = clock  # the passes' clock: retries are dated on it
        self.wall_clock = wall_clock  # Mailchimp's times (Retry-After dates, create_time) are real
        self._slots = threading.BoundedSemaphore(connections)
        self._seen = threading.local()
        self._marketing = mailchimp_marketing.Client({"api_key": marketing_key, "timeout": timeout})
        if host:
            self._marketing.api_client.host = host
            self._marketing.api_client.server = ""  # the SDK would replace "server" in the URL
        self._record(self._marketing.api_client)
        self._transactional: Any = None
        if transactional_key:
            self._transactional = mailchimp_transactional.Client(transactional_key)
            self._transactional.api_client.set_timeout(timeout)
            if transactional_host:
                self._transactional.api_client.host = transactional_host
            self._record(self._transactional.api_client)

    def _record(self, api_client: Any) -> None:
        """Keep each response, per thread: the SDK errors drop the headers (Retry-After)."""
        send = api_client.request

        def request(*args: Any, **kwargs: Any) -> Any:
            response = send(*args, **kwargs)
            self._seen.response = response
            return response

        api_client.request = request

    def marketing(self, call: Callable[[Any], Any], *, sends: bool = False) -> Any:
        """``call(marketing_client)``; ``sends`` marks a call that is not safe to repeat."""
        return self._call(self._marketing, call, sends)

    def transactional(self, call: Callable[[Any], Any], *, sends: bool = False) -> Any:
        """``call(transactional_client)``, as :meth:`marketing`."""
        if self._transactional is None:
            raise MailchimpError("no Transactional key configured", Failure.PERMANENT)
        return self._call(self._transactional, call, sends)

    def _call(self, client: Any, call: Callable[[Any], Any], sends: bool) -> Any:
        with self._slots:
            self._seen.response = None
            try:
                result = call(client)
            except (MarketingApiError, TransactionalApiError) as error:
                if error.status_code is None and isinstance(error.text, BaseException):
                    raise self._network(error.text, sends) from error
                raise self._refused(error.status_code, error.text, sends) from error
            except requests.RequestException as error:
                raise self._network(error, sends) from error
        if isinstance(result, requests.Response) and not result.ok:
            raise self._refused(result.status_code, result.text, sends)
        return result

    def _network(self, error: BaseException, sends: bool) -> MailchimpError:
        if _before_sending(error):
            return MailchimpError(f"cannot connect: {self.redact(error)}", Failure.RETRY)
        if sends:
            return MailchimpError(
                f"no answer after the request was sent, it may have gone out: {self.redact(error)}",
                Failure.UNKNOWN,
            )
        return MailchimpError(f"no answer: {self.redact(error)}", Failure.RETRY)

    def _refused(self, status: int, body: Any, sends: bool) -> MailchimpError:
        response = getattr(self._seen, "response", None)
        reason = getattr(response, "reason", "") or ""
        detail = self.redact(problem_text(status, body, reason))
        header = response.headers.get("Retry-After") if response is not None else None
        # (a failed Response is falsy: `is not None`)
        wait = retry_after(header, self.wall_clock())
        if status == 504 and sends:  # a gateway timeout: the request may have been carried out
            return MailchimpError(detail, Failure.UNKNOWN, status=status)
        if status == 429 or status >= 500 or (status == 403 and not str(body or "").strip()):
            return MailchimpError(detail, Failure.RETRY, wait, status)
        return MailchimpError(detail, Failure.PERMANENT, status=status)
