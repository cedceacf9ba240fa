"""A stateful Mailchimp stand-in on loopback: every request is first checked against the official
specs (the operation must exist; its JSON body must match the operation's schema, through
``jsonschema``), then answered as Mailchimp would, or with a scripted fault.

It keeps members, tags (with the time each was added), journey triggers, sent messages, store
resources and regular campaigns (created, sent once to the subscribed members of their tag), so a
test can count what reached "Mailchimp". Its times come from ``clock`` (a test's fixed clock). Faults are scripted per operation and address (``faults[("send", email)] =
["429", "ok"]``): ``429`` (problem+json with Retry-After), ``429-bare`` (no body), ``500``,
``400`` (problem+json with ``errors``), ``hang`` (the effect happens, then no answer until the
client has given up), ``reset`` (the connection is reset before anything happens).
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jsonschema
import yaml

SPECS = Path(__file__).resolve().parent / "specs"  # a copy of ../shared/specs, kept in step
MARKETING_SPEC = SPECS / "mailchimp-marketing.openapi.yaml"
TRANSACTIONAL_SPEC = SPECS / "mailchimp-transactional.swagger.json"
TRANSACTIONAL_PREFIX = "/api/1.3"
RETRY_AFTER_SECONDS = 7


class RequestRejected(Exception):
    """The request breaks the spec; the stand-in answers 422 and records why."""


@dataclass
class Operation:
    """One spec operation: its path template as a regex and where its body schema is."""

    name: str
    pattern: re.Pattern[str]
    schema: dict[str, Any] | None  # the spec's definitions with a $ref to the body schema
    body_required: bool
    _validator: jsonschema.Draft4Validator | None = None

    @property
    def validator(self) -> jsonschema.Draft4Validator | None:
        """Built on first use: most operations are never called."""
        if self._validator is None and self.schema is not None:
            self._validator = jsonschema.Draft4Validator(self.schema)
        return self._validator


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


class SpecCheck:
    """Finds a request's operation in an OpenAPI 3 or Swagger 2 document; validates bodies."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.spec = spec
        self.swagger2 = "swagger" in spec
        self.operations: dict[str, list[Operation]] = {}
        for template, item in spec["paths"].items():
            regex = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")
            for method, op in item.items():
                if method not in ("get", "put", "post", "patch", "delete"):
                    continue
                self.operations.setdefault(method.upper(), []).append(
                    self._operation(template, method, op, regex)
                )

    def _operation(
        self, template: str, method: str, op: Mapping[str, Any], regex: re.Pattern[str]
    ) -> Operation:
        root = {key: self.spec[key] for key in ("components", "definitions") if key in self.spec}
        if self.swagger2:
            found = [
                (i, p) for i, p in enumerate(op.get("parameters", [])) if p.get("in") == "body"
            ]
            if not found:
                return Operation(f"{method} {template}", regex, None, False)
            index, param = found[0]
            where = _pointer("paths", template, method, "parameters", str(index), "schema")
            required = bool(param.get("required"))
        else:
            body = op.get("requestBody")
            if not body:
                return Operation(f"{method} {template}", regex, None, False)
            where = _pointer("paths", template, method, "requestBody", "content")
            where += "/application~1json/schema"
            required = bool(body.get("required"))
        schema = {**root, "paths": self.spec["paths"], "$ref": where}
        return Operation(f"{method} {template}", regex, schema, required)

    def check(self, method: str, path: str, raw: bytes) -> tuple[str, Any]:
        """The operation's name and the parsed body; :class:`RequestRejected` if either the
        path or the body breaks the spec."""
        for op in self.operations.get(method, []):
            if op.pattern.match(path):
                break
        else:
            raise RequestRejected(f"no operation {method} {path} in the spec")
        body = json.loads(raw) if raw.strip() else None
        if op.validator is None:
            if body is not None:  # the python client sends `null` on body-less POSTs
                raise RequestRejected(f"{op.name} takes no body, got {body!r}")
            return op.name, None
        if body is None:
            if op.body_required:
                raise RequestRejected(f"{op.name} needs a body")
            return op.name, None
        problems = [
            f"{'.'.join(str(p) for p in e.absolute_path) or 'body'}: {e.message}"
            for e in op.validator.iter_errors(body)
        ]
        if problems:
            raise RequestRejected(f"{op.name}: " + "; ".join(problems))
        return op.name, body


@dataclass
class World:
    """What reached the stand-in's "Mailchimp"."""

    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    tags: dict[str, set[str]] = field(default_factory=dict)
    sent: Counter[str] = field(default_factory=Counter)  # recipient address -> messages
    messages: list[dict[str, Any]] = field(default_factory=list)
    triggers: Counter[str] = field(default_factory=Counter)  # address -> journey triggers
    rejected: list[str] = field(default_factory=list)  # spec violations: must stay empty
    faults: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    bounced: set[str] = field(default_factory=set)  # addresses Transactional rejects
    store: dict[str, dict[str, Any]] = field(default_factory=dict)  # "carts/c1" -> resource
    store_writes: list[str] = field(default_factory=list)  # "POST carts/c1", in order
    tagged_at: dict[tuple[str, str], str] = field(default_factory=dict)  # (member, tag) -> time
    segments: dict[str, int] = field(default_factory=dict)  # tag name -> static segment id
    campaigns: dict[str, dict[str, Any]] = field(default_factory=dict)
    campaign_sends: dict[str, list[str]] = field(default_factory=dict)  # id -> addresses
    in_flight: int = 0
    most_in_flight: int = 0
    delay: float = 0.0


def _address(kind: str, body: Any) -> str:
    if not isinstance(body, Mapping):
        return ""
    if kind == "send":
        return str(body["message"]["to"][0]["email"])
    return str(body.get("email_address", ""))


class _Handler(BaseHTTPRequestHandler):
    server: StandIn
    query: dict[str, str]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    do_PUT = do_POST = do_PATCH = do_DELETE = do_GET

    def _handle(self) -> None:
        stand_in = self.server
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path, _, query = self.path.partition("?")
        self.query = {key: values[0] for key, values in parse_qs(query).items()}
        marketing = not path.startswith(TRANSACTIONAL_PREFIX)
        with stand_in.lock:
            stand_in.world.in_flight += 1
            stand_in.world.most_in_flight = max(
                stand_in.world.most_in_flight, stand_in.world.in_flight
            )
        self._counted = True
        try:
            if stand_in.world.delay:
                time.sleep(stand_in.world.delay)
            self._answer(stand_in, path, raw, marketing)
        finally:
            self._done()

    def _done(self) -> None:
        """The request leaves the in-flight count, once, before its answer goes out: once the
        client has the answer it may start another request at once."""
        if getattr(self, "_counted", False):
            self._counted = False
            with self.server.lock:
                self.server.world.in_flight -= 1

    def send_response(self, code: int, message: str | None = None) -> None:
        self._done()
        super().send_response(code, message)

    def _answer(self, stand_in: StandIn, path: str, raw: bytes, marketing: bool) -> None:
        try:
            if marketing:
                if not self.headers.get("Authorization", "").startswith("Basic "):
                    raise RequestRejected("no Basic authorization")
                name, body = stand_in.marketing.check(self.command, path, raw)
            else:
                tx_path = path[len(TRANSACTIONAL_PREFIX) :].removesuffix(".json")
                name, body = stand_in.transactional.check(self.command, tx_path, raw)
        except (RequestRejected, ValueError) as error:
            with stand_in.lock:
                stand_in.world.rejected.append(str(error))
            self._json(422, {"title": "Invalid request", "status": 422, "detail": str(error)})
            return
        kind = stand_in.kind(name)
        fault = stand_in.next_fault(kind, _address(kind, body))
        if fault == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            raise ConnectionAbortedError("reset on purpose")
        if fault in ("429", "429-bare", "500", "400"):
            self._fault(fault, marketing)
            return
        status, answer = stand_in.effect(kind, self.command, path, body, self.query)
        if fault == "hang":
            time.sleep(stand_in.hang)
            return
        self._json(status, answer)

    def _fault(self, fault: str, marketing: bool) -> None:
        if fault == "429-bare":
            self.send_response(429)
            self.send_header("Retry-After", str(RETRY_AFTER_SECONDS))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status = int(fault)
        title = {429: "Too Many Requests", 500: "Internal Server Error", 400: "Invalid Resource"}
        if marketing:
            body: dict[str, Any] = {
                "type": "https://mailchimp.com/developer/marketing/docs/errors/",
                "title": title[status],
                "status": status,
                "detail": "Your merge fields were invalid.",
                "instance": "0b6a4e7c",
            }
            if status == 400:
                body["errors"] = [{"field": "FNAME", "message": "Please enter a value"}]
        else:
            name = {429: "RequestLimitExceeded", 500: "GeneralError", 400: "ValidationError"}
            body = {"status": "error", "code": -2, "name": name[status], "message": "refused"}
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 429 else {}
        content_type = "application/problem+json" if marketing else "application/json"
        self._json(status, body, content_type, headers)

    def _json(
        self,
        status: int,
        body: Any,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if data:
            self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class StandIn(ThreadingHTTPServer):
    """The stand-in server; ``url`` is its base address for both APIs."""

    daemon_threads = True
    request_queue_size = 64  # 30 clients at once must not overflow the listen backlog

    def __init__(self, marketing: SpecCheck, transactional: SpecCheck, hang: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.marketing = marketing
        self.transactional = transactional
        self.hang = hang
        self.world = World()
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.lock = threading.Lock()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a reset on purpose, or a client that gave up on a hang

    @staticmethod
    def kind(name: str) -> str:
        """A short name for the operations the tests script faults on."""
        if name.endswith("/messages/send"):
            return "send"
        if name.startswith("put /lists/{list_id}/members/"):
            return "member"
        if name.endswith("/actions/trigger"):
            return "trigger"
        return name

    def next_fault(self, kind: str, address: str) -> str:
        with self.lock:
            queue = self.world.faults.get((kind, address)) or []
            return queue.pop(0) if queue else "ok"

    def effect(
        self, kind: str, method: str, path: str, body: Any, query: Mapping[str, str]
    ) -> tuple[int, Any]:
        """Carry the request out on the world; the status and body to answer."""
        world = self.world
        with self.lock:
            if path.startswith("/campaigns") or path.endswith("/segments"):
                return self._campaigns(method, path, body, query)
            if path.endswith("/tags") and method == "GET":
                member_id = path.split("/")[-2]
                tags = [
                    {"id": world.segments[name], "name": name, "date_added": at}
                    for (member, name), at in world.tagged_at.items()
                    if member == member_id
                ]
                return 200, {"tags": tags, "total_items": len(tags)}
            if kind == "member":
                member_id = path.rsplit("/", 1)[1]
                member = world.members.setdefault(member_id, {"id": member_id})
                status = body.get("status") or member.get("status") or body["status_if_new"]
                member.update(body, status=status)
                return 200, dict(member)
            if kind == "send":
                email = _address(kind, body)
                if email in world.bounced:
                    return 200, [{"email": email, "status": "rejected", "reject_reason": "hard-bounce", "_id": "r1"}]  # fmt: skip
                world.sent[email] += 1
                world.messages.append(body["message"])
                return 200, [{"email": email, "status": "sent", "_id": f"m{len(world.messages)}"}]
            if kind == "trigger":
                world.triggers[_address(kind, body)] += 1
                return 204, None
            if path.endswith("/tags"):
                member_id = path.split("/")[-2]
                world.tags.setdefault(member_id, set()).update(t["name"] for t in body["tags"])
                for tag in body["tags"]:
                    world.segments.setdefault(tag["name"], 1000 + len(world.segments))
                    world.tagged_at.setdefault((member_id, tag["name"]), self._now())
                return 204, None
            if path.startswith("/ecommerce/stores/"):
                return self._store(method, path, body)
            if path == "/ping":
                return 200, {"health_status": "Everything's Chimpy!"}
            if path.endswith("/users/ping.json"):
                return 200, "PONG!"
        return 404, {"title": "Resource Not Found", "status": 404, "detail": path}

    def _now(self) -> str:
        return self.clock().astimezone(UTC).isoformat(timespec="seconds")

    def _campaigns(
        self, method: str, path: str, body: Any, query: Mapping[str, str]
    ) -> tuple[int, Any]:
        """Static segments (tags), and regular campaigns: created, filled, sent once to the
        subscribed members with the segment's tag."""
        world = self.world
        parts = path.strip("/").split("/")  # campaigns[/id[/content | /actions/send]]
        if path.endswith("/segments"):
            segments = [
                {"id": i, "name": name, "type": "static"} for name, i in world.segments.items()
            ]
            return 200, {"segments": segments, "total_items": len(segments)}
        if method == "GET" and len(parts) == 1:
            since = query.get("since_create_time", "")
            found = (
                [
                    c
                    for c in world.campaigns.values()
                    if datetime.fromisoformat(c["create_time"]) >= datetime.fromisoformat(since)
                ]
                if since
                else list(world.campaigns.values())
            )
            return 200, {"campaigns": found, "total_items": len(found)}
        if method == "POST" and len(parts) == 1:
            campaign_id = f"cmp{len(world.campaigns) + 1}"
            world.campaigns[campaign_id] = {
                **body,
                "id": campaign_id,
                "status": "save",
                "create_time": self._now(),
                "send_time": "",
            }
            return 200, dict(world.campaigns[campaign_id])
        campaign = world.campaigns.get(parts[1])
        if campaign is None:
            return 404, {"title": "Resource Not Found", "status": 404, "detail": path}
        if path.endswith("/content"):
            campaign["content"] = body
            return 200, body
        if path.endswith("/actions/send"):
            if campaign["status"] != "save" or "content" not in campaign:
                return 400, {"title": "Bad Request", "status": 400, "detail": "cannot send"}
            segment = campaign["recipients"]["segment_opts"]["saved_segment_id"]
            tag = next(name for name, i in world.segments.items() if i == segment)
            world.campaign_sends[campaign["id"]] = sorted(
                member["email_address"]
                for member_id, member in world.members.items()
                if tag in world.tags.get(member_id, set()) and member["status"] == "subscribed"
            )
            campaign.update(status="sent", send_time=self._now())
            return 204, None
        return 404, {"title": "Resource Not Found", "status": 404, "detail": path}

    def _store(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        """Carts, orders and products of one store: PATCH/DELETE need the resource, POST
        creates it (400 if it exists), as Mailchimp does."""
        parts = path.split("/")[4:]  # ["carts"] or ["carts", "c1"]
        key = "/".join(parts) if len(parts) == 2 else f"{parts[0]}/{body.get('id')}"
        store = self.world.store
        self.world.store_writes.append(f"{method} {key}")
        if method == "POST":
            if key in store:
                return 400, {"title": "Invalid Resource", "status": 400, "detail": "exists"}
            store[key] = dict(body)
            return 200, dict(body)
        if key not in store:
            return 404, {"title": "Resource Not Found", "status": 404, "detail": key}
        if method == "DELETE":
            del store[key]
            return 204, None
        store[key].update(body)
        return 200, dict(store[key])


@contextmanager
def running(marketing: SpecCheck, transactional: SpecCheck, hang: float) -> Iterator[StandIn]:
    """A started stand-in, shut down afterwards."""
    server = StandIn(marketing, transactional, hang)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def load_checks() -> tuple[SpecCheck, SpecCheck]:
    """Both specs, parsed (the Marketing YAML takes about a second)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with MARKETING_SPEC.open() as handle:
        marketing = SpecCheck(yaml.load(handle, Loader=loader))
    transactional = SpecCheck(json.loads(TRANSACTIONAL_SPEC.read_text()))
    return marketing, transactional
