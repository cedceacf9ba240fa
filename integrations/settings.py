"""Reading one provider's settings (``providers.<channel>`` in ``followup.yaml``) into a
pydantic model, with errors that name the setting and what to write instead, and checking them
for ``followup validate`` without building the provider (:class:`CheckedFactory`)."""

from __future__ import annotations

import difflib
import functools
import ssl
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, Generic, ParamSpec, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from engine.channels import ChannelProvider, ProviderContext
from engine.errors import SettingProblem, SettingsError

P = ParamSpec("P")
Read = TypeVar("Read")
SettingsCheck = Callable[[Mapping[str, Any], ProviderContext], Sequence[SettingProblem]]


class ProviderSettings(BaseModel):
    """The settings every provider has: its name. Subclasses add their own."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    provider: str


Settings = TypeVar("Settings", bound=ProviderSettings)


def where_of(context: ProviderContext) -> str:
    """``providers.<channel>``: how errors name the settings being read."""
    return f"providers.{context.channel}"


def settings_error(
    context: ProviderContext, loc: Sequence[str | int], message: str
) -> SettingsError:
    """A :class:`SettingsError` about the one setting at ``loc`` (empty: the entry as a whole)."""
    return SettingsError(where_of(context), [SettingProblem(tuple(loc), message)])


def read_settings(
    model: type[Settings], settings: Mapping[str, Any], context: ProviderContext
) -> Settings:
    """``settings`` as ``model``; a :class:`SettingsError` naming ``providers.<channel>.<key>``
    for every unknown setting (with the closest known one) and every invalid value."""
    known = list(model.model_fields)
    problems: list[SettingProblem] = []
    meant: set[str] = set()  # a known setting an unknown one is probably a typo of
    for key in settings:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            meant.update(close)
            hint = f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(known)}"
            problems.append(
                SettingProblem((str(key),), f"unknown setting {key!r}; {hint}", at_key=True)
            )
    try:
        read = model.model_validate({k: v for k, v in settings.items() if k in known})
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            if error["type"] == "missing" and loc[:1] in [(m,) for m in meant]:
                continue  # already said: did you mean it?
            if error["type"] == "extra_forbidden":  # in a nested mapping
                problems.append(SettingProblem(loc, f"unknown setting {loc[-1]!r}", at_key=True))
            else:
                problems.append(SettingProblem(loc, error["msg"]))
    else:
        if not problems:
            return read
    raise SettingsError(where_of(context), problems)


def tls_context(ca_file: str | None, context: ProviderContext, where: str) -> ssl.SSLContext:
    """The TLS settings of a provider: the system's CAs, or the private CA's certificates in
    ``ca_file`` (relative to the project folder)."""
    if ca_file is None:
        return ssl.create_default_context()
    path = context.root / ca_file
    try:
        return ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError) as error:
        reason = getattr(error, "strerror", None) or error
        message = f"cannot read {path} as PEM certificates ({reason}); name the private CA's certificate file"
        raise SettingsError(where, [SettingProblem(("ca_file",), message)]) from None


def unset_variables(
    context: ProviderContext, variables: Iterable[tuple[str, str | None, str]]
) -> list[SettingProblem]:
    """A warning for each ``(setting, variable, what)`` whose environment variable is not set
    here (``variable`` ``None``: the setting is off). Never reads more than whether it is set."""
    return [
        SettingProblem(
            (setting,),
            f"the environment variable {variable} ({what}) is not set here; "
            "set it where followup runs",
            warning=True,
        )
        for setting, variable, what in variables
        if variable is not None and not context.environ.get(variable, "").strip()
    ]


def problems_of(check: Callable[[], object]) -> list[SettingProblem]:
    """The problems ``check`` raises as a :class:`SettingsError`; none when it returns."""
    try:
        check()
    except SettingsError as error:
        return list(error.problems)
    return []


def reading_check(
    read: Callable[[Mapping[str, Any], ProviderContext], Read],
    more: Callable[[Read, ProviderContext], list[SettingProblem]] | None = None,
) -> SettingsCheck:
    """The settings check of a provider whose settings ``read`` parses (as its factory does):
    the problems reading raises, else what ``more`` finds in the settings read (a CA file,
    unset environment variables). Nothing is built, opened or connected."""

    def check(settings: Mapping[str, Any], context: ProviderContext) -> list[SettingProblem]:
        try:
            found = read(settings, context)
        except SettingsError as error:
            return list(error.problems)
        return more(found, context) if more is not None else []

    return check


class CheckedFactory(Generic[P]):
    """A provider factory (``build``) that also checks settings without building anything
    (``check_settings``, see :class:`engine.channels.SettingsCheckingFactory`). Used as a
    decorator: ``@checked_by(check)`` over the factory function."""

    def __init__(
        self,
        build: Callable[P, ChannelProvider],
        check: SettingsCheck,
        list_campaigns: Callable[[Mapping[str, Any]], Collection[str]] | None = None,
    ) -> None:
        functools.update_wrapper(self, build)
        self._build = build
        self._check = check
        self._list_campaigns = list_campaigns

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> ChannelProvider:
        return self._build(*args, **kwargs)

    def check_settings(
        self, settings: Mapping[str, Any], context: ProviderContext
    ) -> Sequence[SettingProblem]:
        """Every problem of ``settings`` (errors, and warnings for unset variables)."""
        return self._check(settings, context)

    def list_campaigns(self, settings: Mapping[str, Any]) -> Collection[str]:
        """The campaigns sent as one content to a whole list (see
        :class:`engine.channels.ListContentFactory`); none unless the provider says."""
        return self._list_campaigns(settings) if self._list_campaigns else ()


def checked_by(
    check: SettingsCheck,
    list_campaigns: Callable[[Mapping[str, Any]], Collection[str]] | None = None,
) -> Callable[[Callable[P, ChannelProvider]], CheckedFactory[P]]:
    """Make the decorated factory a :class:`CheckedFactory` whose settings ``check`` checks
    (and which sends the ``list_campaigns`` of its settings to a whole list, if any)."""

    def wrap(build: Callable[P, ChannelProvider]) -> CheckedFactory[P]:
        return CheckedFactory(build, check, list_campaigns)

    return wrap
