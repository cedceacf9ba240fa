"""Conditions and template strings: Jinja2 syntax in a sandbox, checked and compiled once at load.

A condition (``where``, ``audience``, ``if``, ``segment``, ``value``) is a Jinja2 *expression* over
the names ``customer``, ``event``, ``now``, ``days``, ``hours`` and ``minutes``. Attributes of
``customer`` and ``event`` must be the fields CAMPAIGN_FORMAT.md lists (anything under
``customer.traits`` and ``event.properties`` is free), so a typo fails at load with a suggestion
instead of silently reading as empty at send time. At run time a missing attribute is empty, and a
condition that cannot be compared (``None < now``) is false.

The same walk over the syntax tree lists the fixed paths a condition or template reads
(:func:`expression_paths`, :func:`template_paths`): ``followup validate`` checks the free-form ones
(``customer.traits.X``, ``event.properties.X``) against sample data.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from typing import Annotated, Any, TypeAlias, TypeVar

from jinja2 import (
    ChainableUndefined,
    TemplateError,
    TemplateSyntaxError,
    Undefined,
    meta,
    nodes,
)
from jinja2.environment import TemplateExpression
from jinja2.parser import Parser
from jinja2.sandbox import SandboxedEnvironment
from pydantic import AfterValidator, PlainSerializer, PlainValidator, WithJsonSchema

from engine.campaigns.fast_context import QuickRun
from engine.errors import FollowupError

EXPRESSION_NAMES = ("customer", "event", "now", "days", "hours", "minutes")
# an email body also sees its unsubscribe link, and a double opt-in confirmation its link
TEMPLATE_ONLY_NAMES = ("unsubscribe_url", "confirm_url")

# None marks a value whose own attributes are not checked (a string, a list, free-form traits).
Fields: TypeAlias = Mapping[str, "Fields | None"]

CUSTOMER_FIELDS: Fields = {
    "id": None,
    "email": None,
    "phone": None,
    "first_name": None,
    "last_name": None,
    "timezone": None,
    "locale": None,
    "traits": None,
    "consent": {"email": None, "sms": None, "call": None, "ads": None},
    "cart": {"items": None, "value": None, "updated_at": None},
    "orders": {"count": None, "total": None, "last_at": None, "last": None},
    "channels": None,
    "first_seen_at": None,
    "last_seen_at": None,
}
EVENT_FIELDS: Fields = {"name": None, "properties": None, "timestamp": None, "channel": None}
_ROOTS: Mapping[str, tuple[Fields, str, str]] = {
    "customer": (CUSTOMER_FIELDS, "a profile field", "or write customer.traits.{attr} for a trait"),
    "event": (EVENT_FIELDS, "an event field", "event data is under event.properties.{attr}"),
}


class ExpressionError(FollowupError, ValueError):
    """A condition or template string does not parse, or names something that does not exist."""


def days(n: float) -> timedelta:
    """``days(90)`` in a condition."""
    return timedelta(days=n)


def hours(n: float) -> timedelta:
    """``hours(4)`` in a condition."""
    return timedelta(hours=n)


def minutes(n: float) -> timedelta:
    """``minutes(30)`` in a condition."""
    return timedelta(minutes=n)


def _empty_if_none(value: Any) -> Any:
    """What a template prints for a value: a profile field that is not set (``None``) is empty."""
    return "" if value is None else value


@cache
def sandbox() -> SandboxedEnvironment:
    """The one sandbox conditions and template strings are compiled in (missing is empty)."""
    env = SandboxedEnvironment(undefined=ChainableUndefined, finalize=_empty_if_none)
    env.globals.update(days=days, hours=hours, minutes=minutes)
    env.policies["json.dumps_function"] = _json_dumps
    return env


def _json_dumps(value: Any, **options: Any) -> str:
    """``| tojson`` (a webhook's JSON body): a missing value is ``null``, as it is empty
    elsewhere, and a time is its ISO 8601 text, instead of failing the render."""
    return json.dumps(value, default=_json_value, **options)


def _json_value(value: Any) -> Any:
    if isinstance(value, Undefined):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON data")


class Expression:
    """A checked, compiled condition; equal when the source text is equal."""

    __slots__ = ("_compiled", "_quick", "source")

    def __init__(self, source: str, compiled: Callable[..., Any]) -> None:
        self.source = source
        self._compiled = compiled
        self._quick = (
            QuickRun(sandbox(), compiled) if isinstance(compiled, TemplateExpression) else None
        )

    def evaluate(self, names: Mapping[str, Any]) -> Any:
        """The value over ``names`` (``customer``, ``event``, ``now``); ``None`` when missing."""
        if self._quick is not None:
            return self._quick(names)
        return self._compiled(**names)

    def holds(self, names: Mapping[str, Any]) -> bool:
        """The expression as a condition: missing values and failed comparisons are false."""
        try:
            return bool(self.evaluate(names))
        except Exception:  # noqa: BLE001 - e.g. a division by zero on one customer's data
            return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expression) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def compile_expression(source: str) -> Expression:
    """``source`` checked and compiled; :class:`ExpressionError` says what is wrong and what to do."""
    problems = check_expression(source)
    if problems:
        raise ExpressionError("; ".join(problems))
    return Expression(source, sandbox().compile_expression(source))


def check_expression(source: str) -> list[str]:
    """What is wrong with the condition ``source``: syntax, unknown names, filters or fields."""
    if not source.strip():
        return ["empty expression; write a condition such as customer.consent.email"]
    tree, error = _parse_expression(source)
    if tree is None:
        return [error]
    problems = [_unknown_name(node.name) for node in _find(tree, nodes.Name)]
    problems = [p for p in problems if p]
    problems += [message for _, message in _check_tree(tree, EXPRESSION_NAMES)]
    return list(dict.fromkeys(problems))


def _parse_expression(source: str) -> tuple[nodes.Expr | None, str]:
    """The syntax tree of the condition ``source``, or ``None`` and what is wrong with it."""
    parser = Parser(sandbox(), source, state="variable")
    try:
        tree = parser.parse_expression()
        if not parser.stream.eos:
            return None, f"unexpected {parser.stream.current.value!r} after the expression"
    except TemplateSyntaxError as exc:
        return None, f"not a valid expression: {_syntax_message(exc)}"
    return tree, ""


def _to_expression(value: Any) -> Expression:
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, int | float):
        value = repr(value)
    text = value if isinstance(value, str) else None
    if text is None:
        raise ValueError(f"expected an expression, e.g. customer.consent.email; got {value!r}")
    return compile_expression(text.strip())


ExpressionField = Annotated[
    Expression,
    PlainValidator(_to_expression),
    PlainSerializer(lambda value: value.source, return_type=str),
    WithJsonSchema({"type": "string", "description": "Jinja2 expression"}),
]
"""A condition in a pydantic model: text (or a YAML true/false/number) in, :class:`Expression`
out, serialized back to its source."""


def _template_text(value: str) -> str:
    problems = check_template(value)
    if problems:
        raise ValueError("; ".join(problem.message for problem in problems))
    return value


TemplateText = Annotated[str, AfterValidator(_template_text)]
"""A template string in a pydantic model (an email ``subject``, a webhook ``body``)."""


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    """A problem in a template, at ``line`` of its text (1-based)."""

    line: int
    message: str


def check_template(source: str, name: str | None = None) -> list[TemplateProblem]:
    """What is wrong with the template text ``source``: syntax, unknown filters and fields.

    Names a template sets itself (``{% for item in ... %}``, ``{% set %}``) are fine, as are the
    sandbox's globals; ``customer.`` and ``event.`` attributes are checked as in conditions.
    """
    env = sandbox()
    try:
        tree = env.parse(source, name=name)
    except TemplateSyntaxError as exc:
        return [TemplateProblem(exc.lineno, f"not a valid template: {_syntax_message(exc)}")]
    problems = [TemplateProblem(line, message) for line, message in _check_tree(tree, ())]
    roots: tuple[str, ...] = tuple(_ROOTS)
    if not problems:  # finding the undeclared names fails on an unknown filter
        free = meta.find_undeclared_variables(tree)
        allowed = {*EXPRESSION_NAMES, *TEMPLATE_ONLY_NAMES, *env.globals, "caller"}
        problems = [
            TemplateProblem(_line_of(tree, name_), message)
            for name_ in sorted(free - allowed)
            if (message := _unknown_name(name_, quote_hint=False))
        ]
        roots = tuple(root for root in _ROOTS if root in free)
    problems += [TemplateProblem(line, message) for line, message in _check_tree(tree, roots)]
    problems = list(dict.fromkeys(problems))
    if not problems:
        try:
            env.compile(source, name=name)
        except TemplateError as exc:
            line = getattr(exc, "lineno", 1) or 1
            problems.append(TemplateProblem(line, f"not a valid template: {exc}"))
    return problems


@dataclass(frozen=True, slots=True)
class NamePath:
    """A fixed path a condition or template reads, such as ``customer.traits.plan`` or
    ``event.properties.price`` (``parts``), at ``line`` of its text (1-based)."""

    line: int
    parts: tuple[str, ...]

    def __str__(self) -> str:
        return ".".join(self.parts)


def expression_paths(source: str) -> list[NamePath]:
    """The ``customer.`` and ``event.`` paths the condition ``source`` reads, in order; none
    when it does not parse (:func:`check_expression` says why)."""
    tree, _ = _parse_expression(source)
    return [] if tree is None else _name_paths(tree, tuple(_ROOTS))


def template_paths(source: str) -> list[NamePath]:
    """The ``customer.`` and ``event.`` paths the template text ``source`` reads, with their
    lines; a template that sets ``customer`` or ``event`` itself reads none of that name."""
    env = sandbox()
    try:
        tree = env.parse(source)
    except TemplateSyntaxError:
        return []
    try:
        free = meta.find_undeclared_variables(tree)
    except TemplateError:  # an unknown filter: check_template reports it
        free = set(_ROOTS)
    return _name_paths(tree, tuple(root for root in _ROOTS if root in free))


def _name_paths(tree: nodes.Node, roots: tuple[str, ...]) -> list[NamePath]:
    """The paths under ``roots`` that ``tree`` reads. A method call reads its object
    (``customer.email.lower()`` reads ``customer.email``), except that ``.get('key')`` on a
    mapping reads that key."""
    calls = {id(call.node): call for call in _find(tree, nodes.Call)}
    rooted = [(item, chain) for item, chain in _accesses(tree) if chain and chain[0] in roots]
    inner = {id(item.node) for item, _ in rooted}  # customer.traits in customer.traits.plan
    found: list[NamePath] = []
    for item, chain in rooted:
        if id(item) in inner or chain is None:
            continue
        call = calls.get(id(item))
        if call is not None and chain.pop() == "get" and call.args:
            key = call.args[0]
            if isinstance(key, nodes.Const) and isinstance(key.value, str):
                chain.append(key.value)
        if len(chain) > 1:
            found.append(NamePath(item.lineno, tuple(chain)))
    return list(dict.fromkeys(found))


def did_you_mean(word: str, choices: Iterable[str], prefix: str = "", cutoff: float = 0.6) -> str:
    """``"; did you mean PREFIXchoice?"`` for the closest of ``choices`` (by
    :func:`difflib.get_close_matches`, at least ``cutoff`` alike), or ``""``."""
    return _did_you_mean(word, sorted(choices), prefix, cutoff)


def template_references(source: str) -> list[str]:
    """The other templates ``source`` extends, includes or imports by a fixed name."""
    try:
        tree = sandbox().parse(source)
    except TemplateSyntaxError:
        return []
    return [name for name in meta.find_referenced_templates(tree) if name is not None]


def _syntax_message(exc: TemplateSyntaxError) -> str:
    message = exc.message or str(exc)
    return message.replace("'end of template'", "end of text").replace(
        "chunk after expression", "unexpected text after the expression"
    )


def _line_of(tree: nodes.Node, name: str) -> int:
    lines = [node.lineno for node in _find(tree, nodes.Name) if node.name == name]
    return min(lines, default=1)


_N = TypeVar("_N", bound=nodes.Node)


def _find(tree: nodes.Node, kind: type[_N] | tuple[type[_N], ...]) -> Iterator[_N]:
    """``tree`` itself and every node below it of ``kind``."""
    if isinstance(tree, kind):
        yield tree
    yield from tree.find_all(kind)


def _did_you_mean(word: str, choices: list[str], prefix: str = "", cutoff: float = 0.6) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=cutoff)
    return f"; did you mean {prefix}{close[0]}?" if close else ""


def _unknown_name(name: str, quote_hint: bool = True) -> str:
    if name in EXPRESSION_NAMES:
        return ""
    hint = _did_you_mean(name, list(EXPRESSION_NAMES))
    if not hint:
        hint = f"; names are {', '.join(EXPRESSION_NAMES)}"
        if quote_hint:
            hint += f" (to write the text {name}, quote it: '{name}')"
    return f"unknown name {name!r}{hint}"


def _check_tree(tree: nodes.Node, roots: tuple[str, ...]) -> list[tuple[int, str]]:
    """Unknown filters and tests, and attribute chains under ``roots`` that are not fields,
    each with its line."""
    env = sandbox()
    problems: list[tuple[int, str]] = []
    for node in _find(tree, nodes.Filter):
        if node.name not in env.filters:
            hint = _did_you_mean(node.name, sorted(env.filters))
            problems.append((node.lineno, f"unknown filter {node.name!r}{hint}"))
    for test in _find(tree, nodes.Test):
        if test.name not in env.tests:
            hint = _did_you_mean(test.name, sorted(env.tests))
            problems.append((test.lineno, f"unknown test {test.name!r}{hint}"))
    for item, chain in _accesses(tree):
        if isinstance(item, nodes.Getattr) and item.attr.startswith("_"):
            problems.append((item.lineno, f"{item.attr!r}: names starting with _ are private"))
            continue
        if chain and chain[0] in roots and chain[0] in _ROOTS:  # now.hour is not a field path
            message = _check_chain(chain)
            if message:
                problems.append((item.lineno, message))
    return list(dict.fromkeys(problems))


def _accesses(tree: nodes.Node) -> Iterator[tuple[nodes.Getattr | nodes.Getitem, list[str] | None]]:
    """Every attribute or item access in ``tree`` (outer before inner), with its chain of
    names when it reads a fixed path from a name (see :func:`_chain`)."""
    for item in _find(tree, (nodes.Getattr, nodes.Getitem)):
        if isinstance(item, nodes.Getattr | nodes.Getitem):  # always; for the type checker
            yield item, _chain(item)


def _chain(node: nodes.Node) -> list[str] | None:
    """``customer.cart.value`` (or ``customer['cart']``) as ``[customer, cart, value]``."""
    parts: list[str] = []
    while True:
        if isinstance(node, nodes.Getattr):
            parts.append(node.attr)
            node = node.node
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
        ):
            parts.append(node.arg.value)
            node = node.node
        elif isinstance(node, nodes.Name):
            parts.append(node.name)
            return parts[::-1]
        else:
            return None


def _check_chain(chain: list[str]) -> str:
    fields, what, otherwise = _ROOTS[chain[0]]
    current: Fields | None = fields
    for depth, attr in enumerate(chain[1:], start=1):
        if current is None:
            return ""
        if attr not in current:
            path = ".".join(chain[:depth])
            wrong = f"{path}.{attr}"
            hint = _did_you_mean(attr, list(current), prefix=f"{path}.")
            if not hint:
                listed = ", ".join(current)
                extra = "; " + otherwise.format(attr=attr) if depth == 1 else ""
                hint = f"; {path} has {listed}{extra}"
            return f"{wrong} is not {what}{hint}"
        current = current[attr]
    return ""
