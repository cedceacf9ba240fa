"""What a failed Graph API call means for the deliveries it carried: retry when, or never.

Sources (``INTEGRATIONS.md`` section 3.4): the Marketing API rate-limiting and error-reference
pages. Throttled, retried after a back-off: codes 4 (application), 17 (user), 613 (ad account),
80003 (custom audiences; from the Graph business-use-case table, not verified there) and 80004
(ads management), and any error Meta marks ``is_transient``. Also retried: codes 1 and 2
(unknown error, service unavailable), an HTTP 5xx or a failure without a Graph error body, a
timeout and a dropped connection, since adding or removing users is safe to repeat (see
:class:`integrations.facebook.provider.FacebookAudiences`). Every other Graph error (100 invalid
parameter, 190 bad token, 200 permissions, ...) is permanent and recorded with its code, subcode
and message. Nothing here ever shows the access token: texts go through the provider's redactor.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from facebook_business.exceptions import FacebookError, FacebookRequestError

RATE_LIMIT_CODES = frozenset({4, 17, 613, 80003, 80004})
TEMPORARY_CODES = frozenset({1, 2})
THROTTLE_BACKOFF = timedelta(minutes=1)  # error 17 blocks for about 60-300 s
TEMPORARY_BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed call, as the deliveries it carried record it: ``retry`` says whether a later
    attempt may succeed, ``throttled`` whether Meta asked us to slow down, ``hint`` how long
    Meta said to wait (if it did)."""

    detail: str
    retry: bool
    throttled: bool = False
    hint: timedelta | None = None


class UnreadableReply(Exception):
    """Meta answered with something that is not a Graph response (an HTML error page from its
    front end, an empty body). The SDK counts some of these as success (a 502 page without the
    words "Service Unavailable") and trips over others; the provider checks and raises this."""


CALL_ERRORS = (FacebookError, requests.RequestException, UnreadableReply)
"""What a call through the SDK may raise for a failure of the call itself."""


def failure_of(error: Exception, redact: Callable[[object], str]) -> Failure:
    """Any of :data:`CALL_ERRORS` as a :class:`Failure`."""
    if isinstance(error, FacebookRequestError):
        return graph_failure(error, redact)
    if isinstance(error, requests.RequestException):
        return transport_failure(error)
    if isinstance(error, UnreadableReply):
        return Failure(f"Meta answered without a Graph response ({redact(error)})", True)
    return Failure(redact(f"the SDK refused the call: {type(error).__name__}: {error}"), False)


def graph_failure(error: FacebookRequestError, redact: Callable[[object], str]) -> Failure:
    """A Graph API error as a :class:`Failure`: code, subcode and message."""
    code = error.api_error_code()
    subcode = error.api_error_subcode()
    message = error.api_error_message() or error.get_message()
    label = f"code {code}" + (f", subcode {subcode}" if subcode else "")
    status = error.http_status()
    if code is None:
        label = f"HTTP {status}"
    detail = redact(f"Meta Graph API error ({label}): {message}")
    throttled = code in RATE_LIMIT_CODES
    # no Graph error object at all (an HTML page, "Service Unavailable"): Meta's front end
    # failed, not our request
    server = code is None or (isinstance(status, int) and status >= 500)
    retry = throttled or bool(error.api_transient_error()) or code in TEMPORARY_CODES or server
    return Failure(detail, retry, throttled, retry_hint(error.http_headers()) if retry else None)


def transport_failure(error: requests.RequestException) -> Failure:
    """A timeout or a dropped connection: the request may or may not have reached Meta. The
    exception's own text is left out (its URL carries the access token)."""
    if isinstance(error, requests.Timeout):
        what = "timed out"
    elif isinstance(error, requests.ConnectionError):
        what = "lost the connection"
    else:
        what = "failed"
    return Failure(f"the call to Meta {what} ({type(error).__name__}); safe to retry", True)


def retry_hint(headers: Mapping[str, Any] | None) -> timedelta | None:
    """How long Meta asks us to wait: ``Retry-After`` (seconds), or the longest
    ``estimated_time_to_regain_access`` (minutes) in ``X-Business-Use-Case-Usage``."""
    if not headers:
        return None
    waits: list[timedelta] = []
    retry_after = _header(headers, "Retry-After")
    if retry_after and retry_after.strip().isdigit():
        waits.append(timedelta(seconds=int(retry_after.strip())))
    usage = _header(headers, "X-Business-Use-Case-Usage")
    if usage:
        try:
            parsed = json.loads(usage)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            for entries in parsed.values():
                for entry in entries if isinstance(entries, list) else []:
                    minutes = entry.get("estimated_time_to_regain_access") if entry else None
                    if isinstance(minutes, int | float) and minutes > 0:
                        waits.append(timedelta(minutes=minutes))
    return max(waits) if waits else None


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    for key, value in headers.items():
        if str(key).lower() == name.lower():
            return str(value)
    return None


class Backoff:
    """When to try again after a failure: doubling with each failure in a row (since the last
    success), from one minute when throttled or 30 s otherwise, at most an hour, and never
    sooner than Meta's own hint."""

    def __init__(self) -> None:
        self._streak = 0

    def succeeded(self) -> None:
        """A call went through: the next failure starts the back-off afresh."""
        self._streak = 0

    def retry_at(self, failure: Failure, now: datetime) -> datetime:
        """The time to retry after ``failure``."""
        base = THROTTLE_BACKOFF if failure.throttled else TEMPORARY_BACKOFF
        wait = min(base * (1 << min(self._streak, 12)), MAX_BACKOFF)
        self._streak += 1
        if failure.hint is not None:
            wait = max(wait, failure.hint)
        return now + wait
