"""Running a compiled sandboxed expression without Jinja2's per-call set-up.

``Environment.compile_expression`` makes a template whose generated code reads its names from a
context and its attributes through the sandbox's ``getattr``. Calling it through the template
builds a full :class:`jinja2.runtime.Context` (an evaluation context, block maps, a merged copy of
the globals) for every evaluation, and checks every attribute's safety again. :class:`QuickRun`
calls the same generated code, with the same sandbox rules, on a context made only of the names,
and remembers the sandbox's verdict per (type, attribute), which depends on nothing else
(``SandboxedEnvironment.is_safe_attribute``). Conditions run in every sweep of every customer,
so this is where ``simulate`` spends its time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import consume, missing


class _Names(Context):
    """A context of just the names (the globals first, the names over them)."""

    def __init__(self, environment: Any, parent: dict[str, Any], eval_ctx: Any) -> None:
        self.parent = parent
        self.vars = {}
        self.environment = environment
        self.eval_ctx = eval_ctx
        self.exported_vars = set()
        self.name = None
        self.globals_keys = set()
        self.blocks = {}

    def resolve_or_missing(self, key: str) -> Any:
        if key in self.vars:
            return self.vars[key]
        return self.parent.get(key, missing)


class _CachedSafety:
    """The sandbox, with its attribute verdicts remembered by type and name."""

    def __init__(self, sandbox: SandboxedEnvironment) -> None:
        self._sandbox = sandbox
        self._safe: dict[tuple[type, str], bool] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sandbox, name)

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``SandboxedEnvironment.getattr``, with the safety verdict cached."""
        try:
            value = getattr(obj, attribute)
        except AttributeError:
            try:
                return obj[attribute]
            except (TypeError, LookupError):
                pass
        else:
            key = (type(obj), attribute)
            safe = self._safe.get(key)
            if safe is None:
                safe = self._safe[key] = self._sandbox.is_safe_attribute(obj, attribute, value)
            if safe:
                return value
            return self._sandbox.unsafe_undefined(obj, attribute)
        return self._sandbox.undefined(obj=obj, name=attribute)


class QuickRun:
    """One compiled expression of ``sandbox``, evaluated on a light context."""

    __slots__ = ("_environment", "_eval_ctx", "_globals", "_root", "_to_none", "_undefined")

    def __init__(self, sandbox: SandboxedEnvironment, compiled: Any) -> None:
        if type(sandbox).getattr is not SandboxedEnvironment.getattr:
            raise TypeError("QuickRun reproduces SandboxedEnvironment.getattr only")
        template = compiled._template
        self._root = template.root_render_func
        self._environment = _CachedSafety(sandbox)
        self._eval_ctx = template.new_context({}).eval_ctx
        self._globals = dict(template.globals)
        self._undefined = sandbox.undefined
        self._to_none = compiled._undefined_to_none

    def __call__(self, names: Mapping[str, Any]) -> Any:
        context = _Names(self._environment, {**self._globals, **names}, self._eval_ctx)
        consume(self._root(context, environment=self._environment))
        result = context.vars["result"]
        if self._to_none and isinstance(result, self._undefined):
            return None
        return result
