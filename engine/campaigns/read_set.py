"""What of the customer a condition can read, when that is known from its text alone.

A condition such as ``customer.orders.last_at and customer.orders.last_at < now - days(90)``
reads the customer only through fixed paths (``customer.orders.last_at``); its value is then a
function of those paths' values and ``now``. :func:`customer_reads` gives those paths (the
names below ``customer``), or ``None`` when the condition uses ``customer`` any other way (passed
whole to a filter, indexed by a computed key): then nothing can be concluded from the paths.
A path followed by a call reads the object the method belongs to (``customer.traits.get('x')``
reads ``customer.traits``), so its whole value is compared.

A condition is also refused when ``now`` flows into anything but what an interval of times is
followed through exactly (:mod:`engine.campaigns.intervals`): adding and subtracting, comparing,
``and``/``or``/``not``/``if``, the calendar fields, ``.days`` and ``.total_seconds()``. A filter,
a test, ``in``, a literal or an index could see the interval itself and answer with confidence
for every time (``(now - x).days|int`` is 0 to a filter that swallows the error).
"""

from __future__ import annotations

from functools import cache

from jinja2 import nodes

from engine.campaigns.expressions import _find, _parse_expression
from engine.campaigns.intervals import CALENDAR_FIELDS

ROOT = "customer"


def _path(node: nodes.Node) -> list[str] | None:
    """The fixed path ``node`` reads from :data:`ROOT` (``['customer', 'orders']``), if it is
    one: names and constant keys only."""
    parts: list[str] = []
    while True:
        if isinstance(node, nodes.Getattr):
            parts.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            if not isinstance(node.arg.value, str) or not node.arg.value.isidentifier():
                return None
            parts.append(node.arg.value)
            node = node.node
        elif isinstance(node, nodes.Name) and node.name == ROOT:
            parts.append(ROOT)
            return parts[::-1]
        else:
            return None


# what ``now`` (a value moving with it) may flow through
_FOLLOWED = (nodes.Add, nodes.Sub, nodes.And, nodes.Or, nodes.Not, nodes.CondExpr)
_COMPARISONS = frozenset({"eq", "ne", "lt", "lteq", "gt", "gteq"})
_FIELDS = frozenset({*CALENDAR_FIELDS, "days"})
_METHODS = frozenset({"total_seconds", "weekday", "isoweekday", "date"})


def _now_followed(tree: nodes.Node) -> bool:
    """Whether every use of ``now`` in ``tree`` goes only through steps an interval follows."""
    parent: dict[int, nodes.Node] = {}
    for each in tree.find_all(nodes.Node):
        for child in each.iter_child_nodes():
            parent[id(child)] = each
    for child in tree.iter_child_nodes():
        parent[id(child)] = tree
    for name in _find(tree, nodes.Name):
        if name.name != "now":
            continue
        node: nodes.Node = name
        while (up := parent.get(id(node))) is not None:
            if isinstance(up, nodes.Compare):
                if not all(operand.op in _COMPARISONS for operand in up.ops):
                    return False
            elif isinstance(up, nodes.Operand):
                if up.op not in _COMPARISONS:
                    return False
            elif isinstance(up, nodes.Getattr):
                if up.attr not in _FIELDS | _METHODS:
                    return False
                if up.attr in _METHODS:  # ``now.date`` uncalled: a method, compared by identity
                    call = parent.get(id(up))
                    if not isinstance(call, nodes.Call) or call.node is not up:
                        return False
            elif isinstance(up, nodes.Call):
                method = up.node
                called = isinstance(method, nodes.Getattr) and method.attr in _METHODS
                if not called or up.args or up.kwargs or up.dyn_args or up.dyn_kwargs:
                    return False
                if node is not method:
                    return False  # ``now`` as an argument
            elif not isinstance(up, _FOLLOWED):
                return False
            node = up
    return True


@cache  # a journey engine is made per durable batch: each condition is read once
def customer_reads(source: str) -> tuple[tuple[str, ...], ...] | None:
    """The fixed customer paths the condition ``source`` reads (``("orders", "last_at")`` for
    ``customer.orders.last_at``), or ``None`` when it reads the customer otherwise, uses
    ``now`` beyond what an interval follows, or does not parse."""
    tree, _ = _parse_expression(source)
    if tree is None or not _now_followed(tree):
        return None
    accesses: list[nodes.Getattr | nodes.Getitem] = [
        *_find(tree, nodes.Getattr),
        *_find(tree, nodes.Getitem),
    ]
    inner = {id(access.node) for access in accesses}  # customer.orders in customer.orders.x
    called = {id(call.node) for call in _find(tree, nodes.Call)}
    bases = {id(access.node) for access in accesses if _path(access) is not None}
    for name in _find(tree, nodes.Name):
        if name.name == ROOT and id(name) not in bases:
            return None  # ``customer`` itself, not through a fixed path
    found: dict[tuple[str, ...], None] = {}
    for access in accesses:
        if id(access) in inner:
            continue
        parts = _path(access)
        if parts is None:
            if _path(access.node) is not None:  # a computed key on a fixed path
                return None
            continue
        if id(access) in called:
            parts = parts[:-1]  # a method: what it belongs to is what is read
        if len(parts) < 2:
            return None
        found[tuple(parts[1:])] = None
    return tuple(found)
