"""A command group that imports each command only when it is looked up.

``followup tick`` from cron then imports the engine's pass and nothing of ``report``,
``simulate`` or the HTTP service; ``followup --help`` looks every command up to list it.
Commands are named by ``"module:attribute"``: a command function or a :class:`typer.Typer` app.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping
from importlib import import_module
from typing import TYPE_CHECKING, Any, ClassVar

import typer
import typer.main
from typer.core import TyperGroup

if TYPE_CHECKING:
    from typer._click import Command  # the base of every command (typer.core.TyperGroup's too)

Loader = Callable[[], Any]  # returns a command function or a typer.Typer app


def attribute(spec: str) -> Loader:
    """The loader of ``"module:attribute"``."""
    module, name = spec.split(":")
    return lambda: getattr(import_module(module), name)


class LazyCommands(MutableMapping[str, "Command"]):
    """Commands by name, each built from its loader the first time it is read.

    ``extra`` finds more loaders (the plugins) and is called once, only when a name is missing
    or every name is asked for: a built-in command never waits for it.
    """

    def __init__(
        self,
        loaders: Mapping[str, Loader],
        extra: Callable[[], Mapping[str, Loader]],
        build: Callable[[str, Any], Command],
        after: str,
    ) -> None:
        self._loaders = dict(loaders)
        self._extra: Callable[[], Mapping[str, Loader]] | None = extra
        self._after = after  # the extra commands come after this one, in order of name
        self._build = build
        self._built: dict[str, Command] = {}

    def _find_extra(self) -> None:
        if self._extra is None:
            return
        found, self._extra = self._extra(), None
        extra = {n: f for n, f in sorted(found.items()) if n not in self._loaders}
        names = list(self._loaders)
        cut = names.index(self._after) + 1 if self._after in names else len(names)
        loaders = self._loaders
        self._loaders = {n: loaders[n] for n in names[:cut]} | extra
        self._loaders |= {n: loaders[n] for n in names[cut:]}

    def __getitem__(self, name: str) -> Command:
        if name not in self._built:
            if name not in self._loaders:
                self._find_extra()
            self._built[name] = self._build(name, self._loaders[name]())
        return self._built[name]

    def __setitem__(self, name: str, command: Command) -> None:
        self._built[name] = command
        self._loaders.setdefault(name, lambda: command)

    def __delitem__(self, name: str) -> None:
        self._find_extra()
        del self._loaders[name]
        self._built.pop(name, None)

    def __contains__(self, name: object) -> bool:
        if name not in self._loaders:
            self._find_extra()
        return name in self._loaders

    def __iter__(self) -> Iterator[str]:
        self._find_extra()
        return iter(list(self._loaders))

    def __len__(self) -> int:
        self._find_extra()
        return len(self._loaders)


class LazyGroup(TyperGroup):
    """A :class:`TyperGroup` whose commands come from :attr:`loaders` and :meth:`extra`,
    built on first use exactly as ``command()`` and ``add_typer()`` would have built them."""

    loaders: ClassVar[Mapping[str, Loader]] = {}
    extra_after = ""  # the built-in command the extra ones follow in the listing

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.commands = LazyCommands(self.loaders, self.extra, self._build, self.extra_after)

    @staticmethod
    def extra() -> Mapping[str, Loader]:
        """More commands, found at run time (none here)."""
        return {}

    @staticmethod
    def _build(name: str, target: Any) -> Command:
        if isinstance(target, typer.Typer):  # as ``add_typer(target, name=name)`` builds it
            group = typer.main.get_group(target)
            group.name = name
            return group
        single = typer.Typer(add_completion=False)  # as ``command(name)(target)`` builds it
        single.command(name)(target)
        return typer.main.get_command(single)
