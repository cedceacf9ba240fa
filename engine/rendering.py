"""Rendering email templates from ``templates/`` in the sandbox, with an HTML and a text part.

Templates see what conditions see (``customer``, ``event``, ``now``) and nothing else: the
sandbox refuses private attributes and unsafe calls, and a missing value renders empty.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, Template, TemplateError, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment
from lxml import etree
from lxml import html as lxml_html

from engine.campaigns.expressions import sandbox
from engine.confirm_links import PLACEHOLDER as CONFIRM_PLACEHOLDER
from engine.events import Event
from engine.journeys.context import names
from engine.state.profile import CustomerState

_BLOCKS = {"p", "div", "tr", "br", "li", "h1", "h2", "h3", "h4", "table", "ul", "ol", "title"}


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """An email as it would be sent: the rendered subject, HTML and its text alternative."""

    subject: str
    html: str
    text: str


_SKIPPED = frozenset({"style", "script", "head"})
_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def html_to_text(html: str) -> str:
    """A plain-text alternative of an HTML email: blocks on their own lines, links spelled out,
    style, script and head left out. Parsed by libxml2 (lxml): a tree, so a ``<br>`` ends one
    line and a block closed by the next one ends too; what libxml2 refuses (an XML declaration
    in text) goes through the standard library's parser instead."""
    try:
        parts = _tree_parts(html)
    except (ValueError, etree.ParserError):
        parts = _parser_parts(html)
    lines = [_SPACES.sub(" ", line).strip() for line in "".join(parts).splitlines()]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip() + "\n"


def _tree_parts(html: str) -> list[str]:
    """The text of ``html`` in document order, a line break at each block's start and end,
    each link's address after its text."""
    if not html.strip():
        return []
    parts: list[str] = []
    append = parts.append
    skipped = 0
    href: str | None = None
    root = lxml_html.document_fromstring(html)
    for event, element in etree.iterwalk(root, events=("start", "end", "comment", "pi")):
        tag = element.tag if isinstance(element.tag, str) else None  # None: a comment
        if tag is None:  # a comment or processing instruction: only the text after it
            if element.tail and not skipped:
                append(element.tail)
            continue
        if event == "start":
            if tag in _SKIPPED:
                skipped += 1
            elif tag == "a":
                href = element.get("href")
            elif tag in _BLOCKS:
                append("\n")
            if element.text and not skipped:
                append(element.text)
            continue
        if tag in _SKIPPED:
            skipped = max(0, skipped - 1)
        elif tag == "a" and href and href != "#":
            append(f" ({href})")
            href = None
        elif tag in _BLOCKS and tag != "br":  # a line break is one, not a block's two
            append("\n")
        if element.tail and not skipped:
            append(element.tail)
    return parts


class _TextExtractor(HTMLParser):
    """The same parts by the standard library's parser, event by event (no tree)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skip += 1
        elif tag == "a":
            self._href = dict(attrs).get("href")
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skip = max(0, self._skip - 1)
        elif tag == "a" and self._href and self._href != "#":
            self.parts.append(f" ({self._href})")
            self._href = None
        elif tag in _BLOCKS and tag != "br":
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _parser_parts(html: str) -> list[str]:
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    return extractor.parts


@cache
def template_environment(templates: Path) -> SandboxedEnvironment:
    """The sandbox, loading templates from ``templates`` (HTML escaped automatically)."""
    env = sandbox().overlay(loader=FileSystemLoader(str(templates)), autoescape=True)
    assert isinstance(env, SandboxedEnvironment)
    return env


def render_body(templates: Path, template: str, scope: dict[str, Any]) -> tuple[str, str]:
    """The HTML of ``template`` for the names in ``scope``, and its text part."""
    html = template_environment(templates).get_template(template).render(**scope)
    return html, html_to_text(html)


def render_email(
    templates: Path, template: str, subject: str, scope: dict[str, Any]
) -> RenderedEmail:
    """Render ``template`` and the ``subject`` string for the names in ``scope``."""
    html, text = render_body(templates, template, scope)
    rendered_subject = sandbox().from_string(subject).render(**scope)
    return RenderedEmail(" ".join(rendered_subject.split()), html, text)


@dataclass(frozen=True, slots=True)
class TemplateFault:
    """Where a template failed and why: the file, the line (``None`` when unknown), the
    message, and the source line itself (empty when unknown)."""

    file: str
    line: int | None
    message: str
    source: str = ""

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.file}: {self.message}"
        shown = f"{self.file}:{self.line}: {self.message}"
        return f"{shown}\n    {self.source}" if self.source else shown


def template_fault(error: Exception, templates: Path, template: str) -> TemplateFault:
    """Where ``error`` happened in ``template``, found in the syntax error or in the template's
    frame of the traceback (Jinja2 gives rendering errors the template's file and line)."""
    found: tuple[str, int] | None = None
    if isinstance(error, TemplateSyntaxError) and error.lineno:
        found = (error.filename or str(templates / template), error.lineno)
    else:
        trace = error.__traceback__
        folder = str(templates.resolve())
        while trace is not None:  # the innermost template frame is the line that failed
            filename = trace.tb_frame.f_code.co_filename
            if filename.startswith(folder) or filename.endswith(f"/{template}"):
                found = (filename, trace.tb_lineno)
            trace = trace.tb_next
    message = getattr(error, "message", None) or str(error)
    if not isinstance(error, TemplateError):  # a ZeroDivisionError, a KeyError: say which
        message = f"{type(error).__name__}: {message}"
    if found is None:
        return TemplateFault(str(templates / template), None, message)
    filename, line = found
    try:
        source = Path(filename).read_text(encoding="utf-8").splitlines()[line - 1].strip()
    except (OSError, IndexError, UnicodeDecodeError):
        source = ""
    return TemplateFault(filename, line, message, source)


def template_problem(error: Exception, templates: Path, template: str) -> str:
    """``error`` as a person fixes it: ``file:line: message`` and the line itself; the bare
    message when no line is known (see :func:`template_fault`)."""
    return str(template_fault(error, templates, template))


class BodyCheck:
    """Renders email bodies from ``templates`` as sends are decided, so that a body that cannot
    render for a customer is a ``render_error`` skip in the plan rather than a send that fails
    at the provider. The first fault of each template is kept (``problems``) for the run to
    report.

    A template that never reads ``now`` (nor does any template it includes) renders the same
    for the same customer state and trigger: its answer is kept until the state changes, so a
    weekly newsletter to an unchanged list renders each customer once, not every week.

    With ``keep_rendered`` (the durable runtime), the HTML of each body rendered is kept for
    :meth:`take`: the content written with the send is that body, not a second rendering."""

    def __init__(
        self,
        templates: Path,
        unsubscribe_url: Callable[[str, datetime], str] = lambda customer_id, _at: (
            f"https://followup.invalid/unsubscribe/{customer_id}"
        ),
        keep_rendered: bool = False,
    ) -> None:
        self.templates = templates
        self.unsubscribe_url = unsubscribe_url  # (customer, at) -> the link the email carries
        self.keep_rendered = keep_rendered
        self.problems: dict[str, TemplateFault] = {}
        # the send each was met at, (time, customer): of a template's faults, the one kept is
        # the smallest, so that which one is shown does not hang on the order of one instant's
        # decisions (nor on how a simulation was split between processes)
        self.problems_at: dict[str, tuple[datetime, str]] = {}
        self._environment = template_environment(templates)
        self._read_names: dict[tuple[str, str], bool] = {}  # (template, name) -> reads it
        self._templates: dict[str, Template] = {}  # by name, fetched this pass
        # (template, customer) -> (the state and trigger it was rendered for, whether it did)
        self._answers: dict[tuple[str, str], tuple[CustomerState, Event | None, bool]] = {}
        # (template, customer, at) -> the state, trigger and unsubscribe link rendered with,
        # and the HTML (keep_rendered)
        self._rendered: dict[
            tuple[str, str, datetime], tuple[CustomerState, Event | None, str, str]
        ] = {}

    def __call__(
        self,
        template: str,
        customer_id: str,
        state: CustomerState,
        event: Event | None,
        at: datetime,
    ) -> bool:
        """Whether ``template`` renders for the customer at ``at``."""
        timeless = not self._template_reads(template, "now")
        key = (template, customer_id)
        if timeless:
            known = self._answers.get(key)
            if known is not None and known[0] is state and known[1] is event:
                return known[2]
        try:
            scope = names(customer_id, state, event, at)
            scope["unsubscribe_url"] = unsubscribe = self.unsubscribe_url(customer_id, at)
            scope["confirm_url"] = f"{CONFIRM_PLACEHOLDER}{customer_id}"
            html = self._template(template).render(**scope)
            renders = True
            if self.keep_rendered:
                self._rendered[(template, customer_id, at)] = (state, event, unsubscribe, html)
        except Exception as exc:  # noqa: BLE001 - the send is skipped, not the run
            met = (at, customer_id)
            if template not in self.problems or met < self.problems_at[template]:
                self.problems[template] = template_fault(exc, self.templates, template)
                self.problems_at[template] = met
            renders = False
        if timeless:
            self._answers[key] = (state, event, renders)
        return renders

    def take(
        self,
        template: str,
        customer_id: str,
        state: CustomerState,
        event: Event | None,
        at: datetime,
        unsubscribe_url: str | None,
    ) -> str | None:
        """The HTML this check rendered for the send, if it rendered it with exactly that
        scope (the same state and trigger objects, the same link, and a template that does not
        read ``confirm_url``, which a check fills with a placeholder); handed over once."""
        kept = self._rendered.pop((template, customer_id, at), None)
        if kept is None or kept[0] is not state or kept[1] is not event:
            return None
        if kept[2] != unsubscribe_url:
            return None
        return None if self._template_reads(template, "confirm_url") else kept[3]

    def forget(self) -> None:
        """Drop the answers, bodies and templates kept (between a long-running process's
        batches: each loads its customers' states afresh, so the old ones would only be held,
        and a template edited meanwhile is read again)."""
        self._answers.clear()
        self._rendered.clear()
        self._templates.clear()

    def _template(self, template: str) -> Template:
        """The compiled ``template``, fetched once until :meth:`forget` (the durable store's
        every batch; a simulation's whole run): Jinja's own cache looks at the file's time on
        every fetch, a system call per send (2% of a pass deciding emails)."""
        found = self._templates.get(template)
        if found is None:
            found = self._templates[template] = self._environment.get_template(template)
        return found

    def _template_reads(self, template: str, name: str) -> bool:
        """:meth:`_reads`, worked out once per template and name."""
        known = self._read_names.get((template, name))
        if known is None:
            known = self._read_names[(template, name)] = self._reads(template, name, set())
        return known

    def _reads(self, template: str, name: str, seen: set[str]) -> bool:
        """Whether the template, or one it includes, may read ``name`` (by its text: a
        template that cannot be read counts as reading it)."""
        if template in seen:
            return False
        seen.add(template)
        loader = self._environment.loader
        try:
            assert loader is not None
            source = loader.get_source(self._environment, template)[0]
            parsed = self._environment.parse(source)
        except Exception:  # noqa: BLE001 - rendering will say what is wrong
            return True
        if name in source:
            return True
        for included in meta.find_referenced_templates(parsed):
            if included is None or self._reads(included, name, seen):
                return True
        return False
