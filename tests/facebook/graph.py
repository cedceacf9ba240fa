"""A stand-in for Meta's Graph API behind the real ``facebook-business`` SDK.

Only the SDK's HTTP layer is replaced: ``responses`` patches the adapter of the SDK's
``requests.Session``, so the SDK builds every URL, query string and form body itself. The stand-in
keeps the ad account's audiences and their members, checks each request the way Graph would
(token and ``appsecret_proof`` in the query string, the API version, the fields of a new audience,
the multi-key schema, 10,000 rows at most, the session object) and answers in Graph's documented
shapes. A request it does not know gets error 100, so a wrong path fails a test instead of
passing. Every call is recorded, decoded, for the tests' exact assertions; faults are scripted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
import responses
from facebook_business.api import FacebookAdsApi

GRAPH = "https://graph.facebook.com"
VERSION = "v26.0"
ACCOUNT = "act_123"
TOKEN = "EAAtest0token0never0shown0123456789"
SECRET = "0123app0secret0never0shown"
PROOF = hmac.new(SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
AUTH = {"access_token": TOKEN, "appsecret_proof": PROOF}
SCHEMA = ["EMAIL", "PHONE", "FN", "LN", "CT", "ST", "ZIP", "COUNTRY", "EXTERN_ID"]
SESSION_KEYS = {"session_id", "batch_seq", "last_batch_flag", "estimated_num_total"}
_HEX = re.compile(r"^[0-9a-f]{64}$")
Reply = tuple[int, dict[str, str], str]


def sha(text: str) -> str:
    """SHA-256 hex, as the tests compute expected rows independently of the provider."""
    return hashlib.sha256(text.encode()).hexdigest()


def new_api(version: str = VERSION) -> FacebookAdsApi:
    """The SDK initialised as the provider's factory does it."""
    return FacebookAdsApi.init(
        access_token=TOKEN, app_secret=SECRET, api_version=version, crash_log=False, timeout=5
    )


@dataclass(frozen=True)
class Call:
    """One request as the SDK sent it: method, path after the version, query and form."""

    method: str
    version: str
    path: str
    query: dict[str, str]
    form: dict[str, str]

    def params(self) -> dict[str, str]:
        """The call's own parameters (query without the credentials, or the form)."""
        merged = {k: v for k, v in self.query.items() if k not in AUTH}
        merged.update(self.form)
        return merged

    def payload(self) -> dict[str, Any]:
        """The decoded ``payload`` parameter of a ``users`` call."""
        decoded: dict[str, Any] = json.loads(self.params()["payload"])
        return decoded

    def session(self) -> dict[str, Any]:
        """The decoded ``session`` parameter of a ``users`` call."""
        decoded: dict[str, Any] = json.loads(self.params()["session"])
        return decoded


@dataclass
class _Fault:
    method: str
    path: str
    reply: Callable[[], Reply | Exception]
    after_applying: bool
    skip: int


def graph_error(code: int, message: str, subcode: int | None = None, **extra: Any) -> str:
    """A Graph error body."""
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error.update(extra)
    error["fbtrace_id"] = "AbCdEf"
    return json.dumps({"error": error})


class MetaStandIn:
    """Graph API for one ad account: its audiences and their members, with scripted faults."""

    def __init__(self, mock: responses.RequestsMock, account: str = ACCOUNT) -> None:
        self.account = account
        self.account_status = 1  # ACTIVE
        self.names: dict[str, str] = {}  # audience id -> name
        self.members: dict[str, set[tuple[str, ...]]] = {}
        self.sessions: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.calls: list[Call] = []
        self.page_size_seen: list[int] = []
        self._faults: list[_Fault] = []
        self._next_id = 23850000000000001
        for method in ("GET", "POST", "DELETE"):
            mock.add_callback(method, re.compile(rf"{re.escape(GRAPH)}/.*"), self._handle)

    def add_audience(self, name: str) -> str:
        """An audience already in the account (made by an earlier run, or by hand)."""
        audience_id = str(self._next_id)
        self._next_id += 1
        self.names[audience_id] = name
        self.members[audience_id] = set()
        return audience_id

    def fail(
        self,
        method: str,
        path: str,
        reply: Callable[[], Reply | Exception],
        *,
        after_applying: bool = False,
        skip: int = 0,
    ) -> None:
        """The next ``method path`` call (after ``skip`` that go through) gets ``reply()``: a
        response, or an exception to raise. With ``after_applying`` the stand-in first carries
        the call out (a timeout after Meta acted). Faults for one path come in order."""
        self._faults.append(_Fault(method, path, reply, after_applying, skip))

    def id_of(self, name: str) -> str:
        """The id of the (single) audience called ``name``."""
        (found,) = [i for i, n in self.names.items() if n == name]
        return found

    def users_calls(self) -> list[Call]:
        """The calls to any ``users`` edge, in order."""
        return [c for c in self.calls if c.path.endswith("/users")]

    def _handle(self, request: requests.PreparedRequest) -> Reply | Exception:
        url = urlsplit(str(request.url))
        parts = url.path.lstrip("/").split("/", 1)
        body = request.body.decode() if isinstance(request.body, bytes) else request.body or ""
        call = Call(
            str(request.method),
            parts[0],
            "/" + (parts[1] if len(parts) > 1 else ""),
            dict(parse_qsl(url.query, keep_blank_values=True)),
            dict(parse_qsl(body, keep_blank_values=True)),
        )
        self.calls.append(call)
        if {k: call.query.get(k) for k in AUTH} != AUTH:
            return 400, {}, graph_error(190, "Invalid OAuth access token.")
        if call.version != VERSION:
            return 400, {}, graph_error(2635, f"unexpected API version {call.version}")
        for fault in self._faults:
            if (fault.method, fault.path) == (call.method, call.path):
                if fault.skip:
                    fault.skip -= 1
                    break
                self._faults.remove(fault)
                if fault.after_applying:
                    self._route(call)
                return fault.reply()
        return self._route(call)

    def _route(self, call: Call) -> Reply:
        account = f"/{self.account}/"
        if (call.method, call.path) == ("GET", account):
            if call.params() != {"fields": "name,account_status"}:
                return 400, {}, graph_error(100, "expected fields=name,account_status")
            return _ok(
                {"id": self.account, "name": "Shop Ads", "account_status": self.account_status}
            )
        if (call.method, call.path) == ("GET", f"{account}customaudiences"):
            return self._list(call)
        if (call.method, call.path) == ("POST", f"{account}customaudiences"):
            return self._create(call)
        match = re.fullmatch(r"/(\d+)/users", call.path)
        if match and match.group(1) in self.names and call.method in ("POST", "DELETE"):
            return self._users(match.group(1), call)
        return 400, {}, graph_error(100, f"Unsupported {call.method} request {call.path}")

    def _list(self, call: Call) -> Reply:
        params = call.params()
        if params.get("fields") != "name":
            return 400, {}, graph_error(100, "expected fields=name")
        limit = int(params.get("limit", "25"))
        self.page_size_seen.append(limit)
        ids = sorted(self.names)
        start = ids.index(params["after"]) + 1 if "after" in params else 0
        page = ids[start : start + limit]
        reply: dict[str, Any] = {"data": [{"id": i, "name": self.names[i]} for i in page]}
        if page:
            reply["paging"] = {"cursors": {"before": page[0], "after": page[-1]}}
            if start + limit < len(ids):
                reply["paging"]["next"] = f"{GRAPH}/{VERSION}{call.path}?after={page[-1]}"
        return _ok(reply)

    def _create(self, call: Call) -> Reply:
        params = call.params()
        expected = {"name", "subtype", "description", "customer_file_source"}
        if set(params) != expected or params["subtype"] != "CUSTOM":
            return 400, {}, graph_error(100, f"bad audience fields {sorted(params)}")
        return _ok({"id": self.add_audience(params["name"])})

    def _users(self, audience_id: str, call: Call) -> Reply:
        params = call.params()
        if set(params) != {"payload", "session"}:
            return 400, {}, graph_error(100, f"bad users params {sorted(params)}")
        payload, session = call.payload(), call.session()
        rows = payload.get("data", [])
        problems = []
        if set(payload) != {"schema", "is_raw", "data"} or payload["is_raw"] is not True:
            problems.append("payload keys")
        if payload.get("schema") != SCHEMA:
            problems.append("schema")
        if not 1 <= len(rows) <= 10_000:
            problems.append("row count")
        for row in rows:
            hashed, extern_id = row[:-1], row[-1]
            if len(row) != len(SCHEMA) or not all(_HEX.match(k) or k == "" for k in hashed):
                problems.append(f"row {row}")
            if not isinstance(extern_id, str):
                problems.append("extern id")
        if set(session) != SESSION_KEYS:
            problems.append("session keys")
        if problems:
            return 400, {}, graph_error(100, f"Data does not match schema: {problems[:3]}")
        self.sessions.setdefault((audience_id, session["session_id"]), []).append(session)
        members = self.members[audience_id]
        if call.method == "POST":
            members.update(tuple(row) for row in rows)
        else:
            members.difference_update(tuple(row) for row in rows)
        return _ok(
            {
                "audience_id": audience_id,
                "session_id": session["session_id"],
                "num_received": len(rows),
                "num_invalid_entries": 0,
                "invalid_entry_samples": {},
            }
        )


def _ok(body: dict[str, Any]) -> Reply:
    return 200, {"Content-Type": "application/json"}, json.dumps(body)
