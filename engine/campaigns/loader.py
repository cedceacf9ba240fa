"""Campaign files from disk, with the line and column of every problem.

YAML is composed into nodes (PyYAML) so each value keeps its position; validation errors of the
schema are mapped back to ``path:line:column: message`` lines (:class:`Problem`). Plain scalars
keep YAML 1.2 sense where 1.1 would surprise: ``09:00`` stays the text ``"09:00"``, not 540.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from yaml.constructor import SafeConstructor
from yaml.error import Mark

from engine.campaigns.schema import (
    CAMPAIGN_ID,
    SCHEDULE_NEEDS_AUDIENCE,
    Campaign,
    UnknownKey,
)
from engine.errors import FollowupError

CAMPAIGN_SUFFIXES = (".yaml", ".yml")
Loc = tuple[str | int, ...]
ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One problem in one file: printed as ``path:line:column: message`` (1-based). A warning
    (``severity="warning"``) is printed as ``path:line:column: warning: message``."""

    path: str
    line: int
    column: int
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        label = "warning: " if self.severity == "warning" else ""
        return f"{self.path}:{self.line}:{self.column}: {label}{self.message}"

    def as_warning(self) -> Problem:
        """The same finding as a warning."""
        return Problem(self.path, self.line, self.column, self.message, "warning")


class CampaignError(FollowupError):
    """Campaign files are invalid; ``problems`` says where and what to write instead."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = tuple(problems)


def display_path(path: Path) -> str:
    """``path`` as the user would write it: relative to the current folder when inside it."""
    if not path.is_absolute():
        return str(path)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class SourceMap:
    """Where each value of a YAML document starts, by its key path (``("steps", 3, "then")``)."""

    path: str
    values: Mapping[Loc, Mark] = field(default_factory=dict)
    keys: Mapping[Loc, Mark] = field(default_factory=dict)

    def problem(self, loc: Loc, message: str, at_key: bool = False) -> Problem:
        """A problem at ``loc``, or at the nearest enclosing value the file has (a missing key
        is reported on its mapping); ``at_key`` points at the key rather than its value."""
        known = _known_prefix(loc, self.values)
        marks = self.keys if at_key and known in self.keys else self.values
        mark = marks.get(known)
        if mark is None:
            return Problem(self.path, 1, 1, message)
        return Problem(self.path, mark.line + 1, mark.column + 1, message)

    def errors(self, error: ValidationError, prefix: Loc = ()) -> list[Problem]:
        """Every error of a schema validation (of the value at ``prefix``), as problems at their
        places."""
        details = error.errors(include_url=False)
        locs = [_known_prefix((*prefix, *detail["loc"]), self.values) for detail in details]
        problems = []
        for detail, loc in zip(details, locs, strict=True):
            if detail["type"] == "too_short" and any(
                other != loc and other[: len(loc)] == loc for other in locs
            ):
                continue  # an emptied list only because its items failed
            message, at, at_key = describe_error(detail)
            if at is not None:
                loc = _known_prefix((*loc, at), self.values)
            problems.append(self.problem(loc, message, at_key=at_key))
        return list(dict.fromkeys(problems))


def _known_prefix(loc: Sequence[str | int], values: Mapping[Loc, Mark]) -> Loc:
    """The part of a pydantic ``loc`` that exists in the file: union tags (``step:send``) and
    missing keys fall away."""
    known: Loc = ()
    for part in loc:
        if (*known, part) in values:
            known = (*known, part)
        elif not (isinstance(part, str) and ":" in part):
            break
    return known


def describe_error(detail: ErrorDetails) -> tuple[str, str | int | None, bool]:
    """A schema error as a sentence that says what to write, the key it is about (if not its
    ``loc``) and whether to point at that key rather than its value."""
    message, at, at_key = _describe(detail), None, False
    ctx = detail.get("ctx") or {}
    if detail["type"] == "followup":
        at, at_key = ctx.get("at"), bool(ctx.get("key"))
    elif detail["type"] == "extra_forbidden" or detail["loc"][-1:] == ("[key]",):
        at_key = True
    return message, at, at_key


_LIMITS = {
    "greater_than": "greater than",
    "greater_than_equal": "at least",
    "less_than": "less than",
    "less_than_equal": "at most",
}


def _describe(detail: ErrorDetails) -> str:
    kind, ctx, value = detail["type"], detail.get("ctx") or {}, detail.get("input")
    last = detail["loc"][-1] if detail["loc"] else "value"
    if kind == "followup":
        return str(ctx["message"])
    if kind == "value_error":
        return str(ctx.get("error", detail["msg"]))
    if kind == "extra_forbidden":
        return value.message if isinstance(value, UnknownKey) else f"unknown field {last!r}"
    if last == "[key]":
        key = detail["loc"][-2] if len(detail["loc"]) > 1 else value
        return f"unknown key {key!r}; expected {ctx.get('expected', 'another key')}"
    if kind == "missing":
        return f"missing field {last!r}"
    if kind in ("string_type", "string_too_short"):
        got = "nothing" if value in (None, "") else repr(value)
        return f"{last} must be text; got {got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"{last} must be true or false; got {value!r}"
    if kind in ("int_type", "int_parsing", "float_type", "float_parsing"):
        return f"{last} must be a number; got {value!r}"
    if kind in ("tuple_type", "list_type"):
        return f"{last} must be a list (lines starting with '- '); got {value!r}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        got = "nothing" if value is None else repr(value)
        return f"{last} must be a mapping (key: value lines); got {got}"
    if kind in _LIMITS:
        limit = next(iter(ctx.values()), "")
        return f"{last} must be {_LIMITS[kind]} {limit}; got {value!r}"
    if kind == "too_short":
        count = ctx.get("min_length", 1)
        return f"{last} needs at least {count} item{'s' if count != 1 else ''}"
    if kind in ("enum", "literal_error"):
        return f"unknown value {value!r} for {last}; expected {ctx.get('expected')}"
    return f"{last}: {detail['msg']}"


MAX_COLLECTIONS = 100_000  # mappings and lists in one file, aliases expanded: far over any campaign
_INT_OR_FLOAT = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


@dataclass
class _Reader:
    """Turns composed nodes into plain data, noting where each value and key starts."""

    path: str
    constructor: SafeConstructor = field(default_factory=SafeConstructor)
    values: dict[Loc, Mark] = field(default_factory=dict)
    keys: dict[Loc, Mark] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    open: set[int] = field(default_factory=set)  # the collections being read, outermost first
    expanded: int = 0  # collections read, an alias counting each time it is used

    def report(self, mark: Mark, message: str) -> None:
        self.problems.append(Problem(self.path, mark.line + 1, mark.column + 1, message))

    def value(self, node: yaml.Node, loc: Loc) -> Any:
        self.values[loc] = node.start_mark
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            if id(node) in self.open:  # ``steps: &s [{wait: *s}]``: an alias inside itself
                self.report(node.start_mark, "a YAML alias (*name) refers to a value it is in")
                return None
            self.expanded += 1
            if self.expanded > MAX_COLLECTIONS:  # aliases of aliases, nested: "billion laughs"
                if self.expanded == MAX_COLLECTIONS + 1:
                    self.report(node.start_mark, "YAML aliases (*name) expand to too much data")
                return None
            self.open.add(id(node))
            try:
                if isinstance(node, yaml.MappingNode):
                    return self.mapping(node, loc)
                return [self.value(item, (*loc, index)) for index, item in enumerate(node.value)]
            finally:
                self.open.discard(id(node))
        return self.scalar(node)

    def mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[str | int, Any]:
        self.constructor.flatten_mapping(node)  # ``<<: *defaults`` merge keys
        result: dict[str | int, Any] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str | int) or isinstance(key, bool):
                self.report(key_node.start_mark, "a key must be a name, e.g. wait or send")
                continue
            if key in result:
                self.report(key_node.start_mark, f"duplicate key {key!r}; write each key once")
                continue
            self.keys[(*loc, key)] = key_node.start_mark
            result[key] = self.value(value_node, (*loc, key))
        return result

    def scalar(self, node: yaml.Node) -> Any:
        # YAML 1.1 reads 09:00 as the number 540 and 2024-05-01 as a date: keep them as text.
        if node.tag == "tag:yaml.org,2002:timestamp" or (
            node.tag in _INT_OR_FLOAT and ":" in str(node.value)
        ):
            return node.value
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.report(node.start_mark, f"not valid YAML: {getattr(exc, 'problem', exc)}")
            return node.value


def not_utf8(shown: str, error: UnicodeDecodeError) -> Problem:
    """Where the first byte that is not UTF-8 is, and what to do about it."""
    before = error.object[: error.start]
    line = before.count(b"\n") + 1
    column = len(before) - (before.rfind(b"\n") + 1) + 1
    byte = error.object[error.start]
    return Problem(shown, line, column, f"byte 0x{byte:02x} is not UTF-8; save the file as UTF-8")


def read_yaml(path: Path, shown: str | None = None) -> tuple[Any, SourceMap, list[Problem]]:
    """The data of a YAML file, where its values are, and its problems (unreadable, not YAML,
    duplicate keys). The data is ``None`` when the file could not be read or parsed."""
    shown = shown or display_path(path)
    empty = SourceMap(shown)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, empty, [Problem(shown, 1, 1, "no such file")]
    except UnicodeDecodeError as exc:
        return None, empty, [not_utf8(shown, exc)]
    except OSError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        return None, empty, [Problem(shown, 1, 1, f"cannot read the file: {reason}")]
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = exc.problem or exc.context or "cannot parse"
        if exc.context and exc.problem:
            reason = f"{exc.problem} ({exc.context})"
        return None, empty, [Problem(shown, line, column, f"not valid YAML: {reason}")]
    except yaml.YAMLError as exc:
        return None, empty, [Problem(shown, 1, 1, f"not valid YAML: {exc}")]
    if node is None:
        return None, empty, [Problem(shown, 1, 1, "the file is empty")]
    reader = _Reader(shown)
    data = reader.value(node, ())
    return data, SourceMap(shown, reader.values, reader.keys), reader.problems


def validate_document(
    model: type[ModelT], data: Any, source: SourceMap, at: Loc = ()
) -> tuple[ModelT | None, list[Problem]]:
    """``data`` (found at ``at`` in the file) as ``model``, or the problems at their places."""
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, source.errors(exc, at)


@dataclass(frozen=True)
class LoadedCampaign:
    """A valid campaign with the file it came from and where each of its values is."""

    campaign: Campaign
    file: Path
    source: SourceMap

    @property
    def version(self) -> str:
        """See :func:`campaign_version`."""
        return campaign_version(self.campaign)


def campaign_version(campaign: Campaign) -> str:
    """A short hash of the campaign's meaning (not its layout): journeys keep the version
    they entered with."""
    dump = campaign.model_dump_json(by_alias=True).encode()
    return hashlib.sha256(dump).hexdigest()[:12]


def load_file(path: Path) -> tuple[LoadedCampaign | None, list[Problem]]:
    """One campaign file: the campaign when valid, and every problem found in it."""
    loaded, problems, _document = _load_document(path)
    return loaded, problems


def _load_document(
    path: Path,
) -> tuple[LoadedCampaign | None, list[Problem], tuple[dict[str, Any], SourceMap] | None]:
    """:func:`load_file`, and the document of a campaign that did not load, when it is a
    mapping (what can still be checked of it)."""
    data, source, problems = read_yaml(path)
    if data is None:
        return None, problems, None
    if not isinstance(data, dict):
        problems.append(
            source.problem((), "a campaign file is a mapping that starts with campaign: ID")
        )
        return None, problems, None
    campaign, invalid = validate_document(Campaign, data, source)
    problems += invalid
    if campaign is None or problems:
        return None, problems + whole_campaign_problems(data, source, problems), (data, source)
    return LoadedCampaign(campaign, path, source), [], None


def _spelled_id(data: dict[str, Any]) -> str | None:
    """The valid campaign id a document that did not load spells, if any."""
    value = data.get("campaign")
    return value if isinstance(value, str) and CAMPAIGN_ID.fullmatch(value) else None


def whole_campaign_problems(
    data: dict[str, Any], source: SourceMap, found: list[Problem]
) -> list[Problem]:
    """What the rules on the whole campaign say of a file whose fields did not all validate
    (pydantic checks them only on valid fields), so one run lists every problem: a schedule
    trigger without ``audience``."""
    trigger = data.get("trigger")
    if isinstance(trigger, dict) and "schedule" in trigger and data.get("audience") is None:
        problem = source.problem(("trigger",), SCHEDULE_NEEDS_AUDIENCE)
        if problem not in found:
            return [problem]
    return []


def raw_email_templates(data: dict[str, Any]) -> Iterator[tuple[Loc, str]]:
    """The ``template`` of every email step of a campaign document, valid or not, with its
    location (``("steps", 2, "then", 0, "template")``): what can be checked of its sends."""
    return raw_send_fields(data, "email", "template")


def raw_send_fields(data: dict[str, Any], channel: str, key: str) -> Iterator[tuple[Loc, str]]:
    """The text ``key`` of every ``channel`` step of a campaign document, valid or not, with
    its location (``("steps", 2, "then", 0, key)``)."""

    def walk(steps: object, loc: Loc) -> Iterator[tuple[Loc, str]]:
        if not isinstance(steps, list):
            return
        for index, step in enumerate(steps):
            if not isinstance(step, dict):
                continue
            at = (*loc, index)
            if step.get("send") == channel and isinstance(step.get(key), str):
                yield (*at, key), step[key]
            for branch in ("then", "else"):
                yield from walk(step.get(branch), (*at, branch))
            variants = step.get("split")
            if isinstance(variants, list):
                for number, variant in enumerate(variants):
                    if isinstance(variant, dict):
                        yield from walk(variant.get("steps"), (*at, "split", number, "steps"))

    return walk(data.get("steps"), ("steps",))


def campaign_files(path: Path) -> list[Path]:
    """The campaign files under a folder (``*.yaml``, ``*.yml``, hidden ones left out), sorted."""
    found = [
        file
        for file in path.rglob("*")
        if file.suffix in CAMPAIGN_SUFFIXES
        and file.is_file()
        and not any(part.startswith(".") for part in file.relative_to(path).parts)
    ]
    return sorted(found)


@dataclass(frozen=True)
class CampaignSet:
    """The campaigns that loaded, by id, and the problems of the files that did not."""

    campaigns: Mapping[str, LoadedCampaign]
    problems: tuple[Problem, ...]
    files: int
    # the documents of the files that did not load (mappings only): what can still be checked
    unloaded: tuple[tuple[dict[str, Any], SourceMap], ...] = ()

    def require(self) -> dict[str, Campaign]:
        """The campaigns by id; :class:`CampaignError` when any file has a problem."""
        if self.problems:
            raise CampaignError(self.problems)
        return {cid: loaded.campaign for cid, loaded in self.campaigns.items()}


def load_campaigns(paths: Iterable[Path]) -> CampaignSet:
    """Every campaign in ``paths`` (files or folders). Never raises: a missing path, an invalid
    file or a campaign id used by two files is a :class:`Problem` (a file that did not load
    still claims the id it spells, so a duplicate is told at once, with its other problems)."""
    campaigns: dict[str, LoadedCampaign] = {}
    problems: list[Problem] = []
    unloaded: list[tuple[dict[str, Any], SourceMap]] = []
    claimed: dict[str, tuple[Path, SourceMap]] = {}  # each id, by the first file spelling it
    files = 0
    for path in paths:
        if path.is_dir():
            found = campaign_files(path)
        elif path.exists():
            found = [path]
        else:
            problems.append(Problem(display_path(path), 1, 1, "no such file or folder"))
            continue
        for file in found:
            files += 1
            loaded, file_problems, document = _load_document(file)
            problems += file_problems
            campaign_id: str | None
            if loaded is not None:
                campaign_id, source = loaded.campaign.id, loaded.source
            elif document is not None:
                unloaded.append(document)
                campaign_id, source = _spelled_id(document[0]), document[1]
            else:
                continue
            if campaign_id is None:
                continue
            first = claimed.setdefault(campaign_id, (file, source))
            if first[0].resolve() == file.resolve():
                if loaded is not None:  # the first file with the id, or the same one twice
                    campaigns.setdefault(campaign_id, loaded)
                continue
            where = first[1].problem(("campaign",), "")
            problems.append(
                source.problem(
                    ("campaign",),
                    f"duplicate campaign id {campaign_id!r}: also in "
                    f"{where.path}:{where.line}:{where.column}; each campaign needs its own id",
                )
            )
    return CampaignSet(campaigns, tuple(sorted(set(problems))), files, tuple(unloaded))
